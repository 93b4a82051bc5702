"""The model factory: a :class:`ModelSpec` and a seed in, a ``keras.Sequential`` out.

Keras is imported inside :func:`build_model`, so that describing a model (and the CLI's
``--help``) does not pay TensorFlow's import time.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

from stellarnet.checks import check_choice, check_positive_int, check_seed, is_int
from stellarnet.errors import ConfigError
from stellarnet.vocabulary import ACTIVATIONS

if TYPE_CHECKING:
    import keras


@dataclass(frozen=True)
class ModelSpec:
    """A dense feed-forward network: inputs -> hidden layers -> outputs.

    Parameters
    ----------
    inputs : int
        Number of input features.
    hidden : sequence of int
        Width of each hidden ``Dense`` layer, in order.
    activation : str
        Activation of the hidden layers.
    output_activation : str
        Activation of the output layer (``"linear"`` for regression).
    outputs : int
        Width of the output layer.
    kernel_initializer, bias_initializer : str
        Keras initializer names.
    dropout : float
        Dropout rate after each hidden layer (0: none). Active while training only.
    l2 : float
        L2 weight-decay factor on every kernel (``keras.regularizers.L2``); the penalty
        ``l2 * sum(w**2)`` is added to the loss (0: none).
    """

    inputs: int = 1
    hidden: tuple[int, ...] = (6,)
    activation: str = "relu"
    output_activation: str = "linear"
    outputs: int = 1
    kernel_initializer: str = "glorot_uniform"
    bias_initializer: str = "zeros"
    dropout: float = 0.0
    l2: float = 0.0

    def __post_init__(self) -> None:
        if not (isinstance(self.dropout, int | float) and 0 <= self.dropout < 1):
            raise ConfigError(f"ModelSpec.dropout must be in [0, 1), got {self.dropout!r}")
        if not (isinstance(self.l2, int | float) and self.l2 >= 0):
            raise ConfigError(f"ModelSpec.l2 must be >= 0, got {self.l2!r}")
        object.__setattr__(self, "hidden", tuple(self.hidden))
        for name in ("inputs", "outputs"):
            check_positive_int(getattr(self, name), f"ModelSpec.{name}")
        if not all(is_int(width) and width >= 1 for width in self.hidden):
            raise ConfigError(f"ModelSpec.hidden must be positive integers, got {self.hidden!r}")
        for name in ("activation", "output_activation"):
            check_choice(getattr(self, name), f"ModelSpec.{name}", ACTIVATIONS)

    @property
    def plain(self) -> bool:
        """Whether it builds a plain Dense net (no dropout, no penalty): the recorders then
        compute its gradients with written-out ops, and K of them can train stacked. The
        Keras-model side of the same test is :attr:`stellarnet.train.chain.DenseChain.plain`."""
        return not self.dropout and not self.l2

    @property
    def layer_sizes(self) -> tuple[int, ...]:
        """All layer widths, inputs first: (1, 6, 1) for the assignment's net."""
        return (self.inputs, *self.hidden, self.outputs)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (for run records)."""
        return asdict(self) | {"hidden": list(self.hidden)}

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> ModelSpec:
        """Build from a config table or a ``run.json`` model table, naming any unknown key.

        A ``seed`` key is skipped: older ``run.json`` files repeat the experiment's seed in
        their model table, and the seed is an argument of :func:`build_model`, not a setting.
        """
        values = {key: value for key, value in values.items() if key != "seed"}
        unknown = set(values) - set(cls.__dataclass_fields__)
        if unknown:
            raise ConfigError(
                f"unknown model setting(s) {sorted(unknown)}; "
                f"known: {sorted(cls.__dataclass_fields__)}"
            )
        return cls(**values)


HR_NET = ModelSpec(inputs=1, hidden=(6,), activation="relu", output_activation="linear")
"""The assignment's network: 1 input, Dense(6, relu), Dense(1, linear)."""


def build_model(spec: ModelSpec, seed: int) -> keras.Sequential:
    """Build the network of ``spec`` right after ``keras.utils.set_random_seed(seed)``.

    The seed is an argument, not part of the spec: an experiment has one seed, its config's,
    which decides the initial weights and the row shuffle alike. The weights are a function
    of ``spec`` and ``seed`` alone.
    """
    import keras

    keras.utils.set_random_seed(check_seed(seed))
    regularizer = keras.regularizers.L2(spec.l2) if spec.l2 else None

    def dense(width: int, activation: str) -> keras.layers.Dense:
        return keras.layers.Dense(
            width,
            activation=activation,
            kernel_initializer=spec.kernel_initializer,
            bias_initializer=spec.bias_initializer,
            kernel_regularizer=regularizer,
        )

    layers: list[Any] = [keras.Input(shape=(spec.inputs,))]
    for width in spec.hidden:
        layers.append(dense(width, spec.activation))
        if spec.dropout:
            layers.append(keras.layers.Dropout(spec.dropout))
    layers.append(dense(spec.outputs, spec.output_activation))
    return keras.Sequential(layers)


def dense_parameters(model: keras.Model) -> list[tuple[int, str, Any]]:
    """List ``(layer, kind, variable)`` for every Dense kernel and bias, layers 1-based.

    ``kind`` is ``"w"`` for a kernel and ``"b"`` for a bias; this order is the order of the
    history columns.
    """
    import keras

    found = []
    dense = [layer for layer in model.layers if isinstance(layer, keras.layers.Dense)]
    for index, layer in enumerate(dense, start=1):
        found.append((index, "w", layer.kernel))
        if layer.use_bias:
            found.append((index, "b", layer.bias))
    return found


def model_layers(model: keras.Model) -> list[tuple[Any, Any]]:
    """Copies of each Dense layer's (kernel, bias) as numpy arrays (as :mod:`stellarnet.params`)."""
    import keras

    return [
        (layer.kernel.numpy().copy(), layer.bias.numpy().copy())
        for layer in model.layers
        if isinstance(layer, keras.layers.Dense)
    ]


def set_model_layers(model: keras.Model, layers: list[tuple[Any, Any]]) -> keras.Model:
    """Assign (kernel, bias) arrays to the model's Dense layers, in order; return the model."""
    import keras

    dense = [layer for layer in model.layers if isinstance(layer, keras.layers.Dense)]
    if len(dense) != len(layers):
        raise ConfigError(f"model has {len(dense)} Dense layers, got parameters for {len(layers)}")
    for layer, (kernel, bias) in zip(dense, layers, strict=True):
        if tuple(layer.kernel.shape) != kernel.shape or tuple(layer.bias.shape) != bias.shape:
            raise ConfigError(
                f"parameters of shape {kernel.shape}, {bias.shape} do not fit layer "
                f"{layer.name} ({tuple(layer.kernel.shape)}, {tuple(layer.bias.shape)})"
            )
        layer.kernel.assign(kernel)
        layer.bias.assign(bias)
    return model

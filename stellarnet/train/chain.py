"""A Keras model as the recorder sees it: a chain of Dense layers (and parameter-free layers
between them), its variables in history order, its penalties and constraints.

Models the recorder cannot reproduce are refused here, with an error that names the fix.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from stellarnet.errors import ConfigError

if TYPE_CHECKING:
    import keras


def chain_of_layers(model: keras.Model) -> list[Any]:
    """The layers of ``model`` in order, without its input layer, if each takes the previous
    one's output (a ``Sequential`` model, or a functional one without branches); otherwise
    ConfigError."""
    import keras

    layers = [layer for layer in model.layers if not isinstance(layer, keras.layers.InputLayer)]
    if isinstance(model, keras.Sequential):
        return layers
    chained = (
        bool(layers)
        and getattr(model, "inputs", None) is not None  # a subclassed model has none
        and len(model.inputs) == len(model.outputs) == 1
        and layers[0].input is model.inputs[0]
        and layers[-1].output is model.outputs[0]
        and all(layer.input is layers[i].output for i, layer in enumerate(layers[1:]))
    )
    if not chained:
        raise ConfigError(
            f"model {model.name!r} is not a chain of layers: the recorder trains a Sequential "
            "model, or a functional one in which each layer takes the previous one's output "
            "(a subclassed model: rebuild it with keras.Sequential)"
        )
    return layers


def check_layer(layer: Any) -> None:
    """Raise ConfigError for a layer whose call the recorder does not reproduce
    (:meth:`~stellarnet.train.recorder.Recorder.forward` applies a Dense layer's kernel, bias
    and activation, and calls the other layers, on float32 values)."""
    if getattr(layer, "lora_enabled", False) or getattr(layer, "quantization_mode", None):
        raise ConfigError(
            f"layer {layer.name!r} is LoRA-enabled or quantized, which the recorder does "
            "not train: record a plain Dense layer (without lora_rank or quantize())"
        )
    if layer.compute_dtype != "float32" or layer.variable_dtype != "float32":
        raise ConfigError(
            f"layer {layer.name!r} computes in {layer.compute_dtype} (variables "
            f"{layer.variable_dtype}); the recorder works in float32: build the model under "
            'keras.mixed_precision.set_global_policy("float32")'
        )


class DenseChain:
    """The parts of ``model`` the recorder trains and records.

    Attributes
    ----------
    layers : list
        Every layer in order (without the input layer); ``dense`` the Dense ones, ``others``
        the rest (e.g. Dropout).
    parameters : list of (layer, kind, variable)
        Every kernel (``"w"``) and bias (``"b"``), Dense layers numbered from 1, in the
        order of the history columns; ``variables`` the variables alone.
    activations : list of str or None
        Each Dense layer's activation name (None: one :mod:`stellarnet.train.backprop` does
        not write out).
    layer_positions : list of (int, int or None)
        Each Dense layer's kernel and bias index in ``variables`` (bias None: no bias).
    penalties, constraints : list of (int, callable)
        The variables' regularisers (part of ``model.losses``) and constraints, by index.
    """

    def __init__(self, model: keras.Model) -> None:
        import keras

        from stellarnet.train.backprop import activation_name
        from stellarnet.train.models import dense_parameters

        self.model = model
        self.layers = chain_of_layers(model)
        for layer in self.layers:
            check_layer(layer)
        self.dense = [layer for layer in self.layers if isinstance(layer, keras.layers.Dense)]
        self.others = [layer for layer in self.layers if layer not in self.dense]
        self.activations = [activation_name(layer.activation) for layer in self.dense]
        self.parameters = dense_parameters(model)
        self.variables = [variable for _, _, variable in self.parameters]
        trainable = [layer.name for layer in self.others if layer.trainable_weights]
        if trainable or len(self.variables) != len(model.trainable_variables):
            raise ConfigError(
                f"the recorder trains Dense layers only, and {trainable or 'the model'} has "
                "other trainable weights: freeze such layers (layer.trainable = False; a "
                "frozen BatchNormalization applies its moving statistics) or remove them"
            )
        where = {(layer, kind): i for i, (layer, kind, _) in enumerate(self.parameters)}
        self.layer_positions = [
            (where[index, "w"], where.get((index, "b"))) for index in range(1, len(self.dense) + 1)
        ]
        self.penalties = _by_index(self.variables, "regularizer")
        # Applied after every update, as Keras' optimizers do (e.g. keras.constraints.NonNeg).
        self.constraints = _by_index(self.variables, "constraint")

    @property
    def plain(self) -> bool:
        """A plain Dense net: Dense layers only, each with an activation
        :mod:`stellarnet.train.backprop` writes out, and nothing added to the loss. Its
        gradients are computed with the tape's ops written out; anything else uses the tape.
        (A :class:`~stellarnet.train.models.ModelSpec` builds one when
        :attr:`~stellarnet.train.models.ModelSpec.plain` is true.)"""
        return not (
            self.others
            or self.model.losses
            or any(layer.activity_regularizer is not None for layer in self.dense)
            or None in self.activations
        )

    @property
    def layer_sizes(self) -> tuple[int, ...]:
        """Widths, inputs first."""
        return (self.dense[0].kernel.shape[0], *(layer.units for layer in self.dense))

    @property
    def biases(self) -> tuple[bool, ...]:
        """Whether each Dense layer has a bias."""
        return tuple(layer.use_bias for layer in self.dense)

    def layer_parameters(self, parameters: list[Any]) -> list[tuple[Any, Any]]:
        """Each Dense layer's ``(kernel, bias)`` (bias None: none) from ``parameters`` shaped
        like :attr:`variables`."""
        return [
            (parameters[w], None if b is None else parameters[b]) for w, b in self.layer_positions
        ]


def _by_index(variables: list[Any], attribute: str) -> list[tuple[int, Any]]:
    """``(index, variable.<attribute>)`` for the variables that have one."""
    return [
        (i, getattr(variable, attribute))
        for i, variable in enumerate(variables)
        if getattr(variable, attribute, None) is not None
    ]

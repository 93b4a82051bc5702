"""``stellarnet check-gradients``: hand-derived gradients against TensorFlow's autodiff.

For an experiment's model and data, :func:`check_gradients` trains a few full-batch epochs
with the recorded loop (:func:`stellarnet.train.recorder.train`) and, at the parameters of every
history row (row 0: the initial model; row k: after k updates), compares the hand-derived
gradients of :mod:`stellarnet.train.analytic` with

``tape float64``
    ``tf.GradientTape`` gradients of a float64 copy of the model holding those parameters,
    on the same data in float64. Only rounding separates the two (about 1e-16 relative):
    a difference above ``tolerance`` (default 1e-6) means the derivation is wrong.
``recorded float32``
    The gradients the training run itself recorded in row k + 1, which were computed with
    row k's parameters (:mod:`stellarnet.results.history`), in float32. They differ from the exact
    values by float32 rounding (about 1e-7 to 1e-5 relative, growing with the batch), so
    they are held to the looser ``tolerance_float32``; a larger difference means the
    recording (or the row alignment) is wrong.

Per parameter group (``g^1``: the kernel of layer 1, ``gb^1``: its bias, ...) the check
reports the largest absolute difference and the relative difference

    rel = max |analytic - other| / max S

over the group's entries, where ``S`` is the gradient's *size scale*
(:func:`gradient_scale`): the same chain rule with every factor replaced by its absolute
value and the error ``yhat - y`` by ``|y| + |yhat| + sum |a1 w2| + |b2|``. ``S >= |gradient|``,
and rounding errors are a few units of the last place of ``S``, not of the gradient: near a
minimum the gradient is a small difference of large terms (the errors of many samples, or
``yhat - y`` for one sample), and dividing by the gradient itself would make float32
rounding look like a 1e-4 disagreement after ten steps on one galaxy. ``rel`` stays near
1e-16 (float64) and 1e-7 (float32) however small the gradient.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from stellarnet.errors import ConfigError
from stellarnet.params import Layers, layers_from_row
from stellarnet.runs.config import ExperimentConfig
from stellarnet.schema import PARAMETER_KINDS, column_name, parse_column
from stellarnet.train.analytic import DERIVATIVES, LOSS_FACTORS, Backprop, backprop

if TYPE_CHECKING:
    import keras

DEFAULT_TOLERANCE = 1e-6
"""Largest relative difference allowed between the analytic and the float64 tape gradients."""
DEFAULT_TOLERANCE_FLOAT32 = 1e-4
"""Largest relative difference allowed between the analytic and the recorded float32
gradients (float32 rounding of sums over up to a few thousand samples)."""
COMPARISONS = ("tape float64", "recorded float32")


def float64_copy(model: keras.Model) -> keras.Model:
    """A copy of ``model``'s architecture with float64 inputs, weights and arithmetic."""
    import keras

    def clone(layer: Any) -> Any:
        return layer.__class__.from_config(layer.get_config() | {"dtype": "float64"})

    inputs = keras.Input(shape=model.inputs[0].shape[1:], dtype="float64")
    return keras.models.clone_model(model, input_tensors=inputs, clone_function=clone)


def tape_gradients(
    model: keras.Model, layers: Layers, x: np.ndarray, y: np.ndarray, loss: str
) -> dict[str, float]:
    """``tf.GradientTape`` gradients of ``loss`` for ``model`` holding ``layers``.

    ``model`` should be a float64 copy (:func:`float64_copy`); the Keras loss is computed in
    the model's dtype. Returns the gradients named like the history (``g^{l}_{i}``, ...).
    """
    import keras
    import tensorflow as tf

    from stellarnet.train.models import dense_parameters, set_model_layers

    set_model_layers(model, layers)
    dtype = model.layers[-1].kernel.dtype
    mse = keras.losses.MeanSquaredError(dtype=dtype)
    x = tf.constant(x, dtype=dtype)
    y = tf.constant(y, dtype=dtype)
    parameters = dense_parameters(model)
    with tf.GradientTape() as tape:
        value = LOSS_FACTORS[loss] * mse(y, model(x))
    grads = tape.gradient(value, [variable for _, _, variable in parameters])
    named = {}
    for (layer, kind, _), grad in zip(parameters, grads, strict=True):
        for index, entry in enumerate(np.ravel(grad.numpy()), start=1):
            named[column_name(PARAMETER_KINDS[kind], layer, index)] = float(entry)
    return named


def gradient_scale(
    passed: Backprop,
    layers: Layers,
    x: np.ndarray,
    y: np.ndarray,
    activation: str,
    output_activation: str,
    loss: str,
) -> dict[str, float]:
    """The size scale S of each gradient entry, named like the gradients.

    The backward pass of :func:`stellarnet.train.analytic.backprop` with absolute values: the
    error ``yhat - y`` becomes the magnitude of the numbers it is computed from, ``|y| +
    |yhat| + |a1| @ |W2| + |b2|``, and every weight, activation and derivative its absolute
    value. Rounding a gradient computed in floating point changes it by a few units of the
    last place of S.
    """
    (_, _), (w2, b2) = layers
    x = np.abs(np.asarray(x, dtype=np.float64).reshape(len(passed.z1), -1))
    y = np.abs(np.asarray(y, dtype=np.float64).reshape(passed.yhat.shape))
    size = (
        2.0
        * LOSS_FACTORS[loss]
        * (y + np.abs(passed.yhat) + np.abs(passed.a1) @ np.abs(w2) + np.abs(b2))
        / passed.yhat.size
    )
    delta2 = size * np.abs(DERIVATIVES[output_activation](passed.z2))
    delta1 = (delta2 @ np.abs(w2).T) * np.abs(DERIVATIVES[activation](passed.z1))
    scale = Backprop(
        passed.z1,
        passed.a1,
        passed.z2,
        passed.yhat,
        passed.loss,
        delta2,
        delta1,
        [(x.T @ delta1, delta1.sum(axis=0)), (np.abs(passed.a1).T @ delta2, delta2.sum(axis=0))],
    )
    return scale.named()


def compare(
    analytic: dict[str, float], other: dict[str, float], scale: dict[str, float]
) -> dict[str, tuple[float, float]]:
    """Per parameter group (``g^1``, ``gb^1``, ...), the largest absolute difference between
    two sets of named gradients and that difference relative to the group's largest
    ``scale`` (0 when the difference is exactly 0)."""
    missing = sorted(set(analytic) ^ set(other))
    if missing:
        raise ConfigError(f"gradient sets differ in column(s) {missing}")
    groups: dict[str, list[str]] = {}
    for name in analytic:
        kind, layer, _ = parse_column(name)
        groups.setdefault(f"{kind}^{layer}", []).append(name)
    result = {}
    for group, names in groups.items():
        a = np.array([analytic[n] for n in names])
        b = np.array([other[n] for n in names])
        largest_abs = float(np.max(np.abs(a - b)))
        size = float(np.max([scale[n] for n in names]))
        relative = 0.0 if largest_abs == 0 else largest_abs / size if size > 0 else np.inf
        result[group] = (largest_abs, relative)
    return result


@dataclass
class GradientCheck:
    """The outcome of :func:`check_gradients`.

    Attributes
    ----------
    table : DataFrame
        One row per (epoch, comparison, group): ``epoch`` (the history row whose parameters
        were used), ``against``, ``group``, ``size``, ``max_abs`` and ``max_rel`` (relative
        to the size scale, see the module docstring).
    tolerance, tolerance_float32 : float
        The relative tolerances of the two comparisons.
    zeros, pre_activations : int
        How many hidden and output pre-activations were exactly 0 (where ReLU's H(0)
        convention matters), out of how many.
    description : str
        The experiment, model and data checked.
    """

    table: pd.DataFrame
    tolerance: float
    tolerance_float32: float
    zeros: int
    pre_activations: int
    description: str

    def worst(self) -> pd.DataFrame:
        """Per group and comparison, the largest differences over all checked epochs."""
        return self.table.groupby(["against", "group"], sort=False).agg(
            size=("size", "first"), max_abs=("max_abs", "max"), max_rel=("max_rel", "max")
        )

    def failures(self) -> list[str]:
        """One line per comparison whose relative difference exceeds its tolerance."""
        lines = []
        limits = dict(zip(COMPARISONS, (self.tolerance, self.tolerance_float32), strict=True))
        for (against, group), row in self.worst().iterrows():
            if not row["max_rel"] <= limits[against]:
                lines.append(
                    f"{group} vs {against}: relative difference {row['max_rel']:.3g} > "
                    f"tolerance {limits[against]:g}"
                )
        return lines

    @property
    def passed(self) -> bool:
        """True if every comparison is within its tolerance."""
        return not self.failures()

    def report(self) -> str:
        """The table the CLI prints."""
        worst = self.worst()
        header = f"{'max abs':>10} {'max rel':>10}"
        lines = [
            self.description,
            f"  ReLU derivative H(0) = 0 (TensorFlow's convention); pre-activations exactly 0: "
            f"{self.zeros} of {self.pre_activations}",
            f"  {'group':<6} {'size':>4}   {'vs tape float64':^21}   {'vs recorded float32':^21}",
            f"  {'':<6} {'':>4}   {header}   {header}",
        ]
        for group in dict.fromkeys(worst.index.get_level_values("group")):
            cells = []
            for against in COMPARISONS:
                if (against, group) in worst.index:
                    row = worst.loc[(against, group)]
                    cells.append(f"{row['max_abs']:>10.3g} {row['max_rel']:>10.3g}")
                else:
                    cells.append(f"{'-':>10} {'-':>10}")
            size = int(worst.xs(group, level="group")["size"].iloc[0])
            lines.append(f"  {group:<6} {size:>4}   {cells[0]}   {cells[1]}")
        lines.append(
            "  (max rel: largest difference / largest size scale S of the group, "
            "see stellarnet.runs.gradcheck)"
        )
        failures = self.failures()
        if failures:
            lines += ["FAILED:", *(f"  {line}" for line in failures)]
        else:
            lines.append(
                f"OK: analytic gradients agree with autodiff (float64 within {self.tolerance:g}, "
                f"recorded float32 within {self.tolerance_float32:g}, relative)"
            )
        return "\n".join(lines)


def check_gradients(
    config: ExperimentConfig,
    epochs: int = 3,
    tolerance: float = DEFAULT_TOLERANCE,
    tolerance_float32: float = DEFAULT_TOLERANCE_FLOAT32,
    initial_layers: Layers | None = None,
) -> GradientCheck:
    """Compare hand-derived and autodiff gradients on ``config``'s model and data.

    Parameters
    ----------
    config : ExperimentConfig
        The experiment; its model must have one hidden layer. Its optimizer, learning rate
        and loss are used; training is full batch whatever the config says.
    epochs : int
        Epochs to train; the gradients are checked at the parameters of rows 0..epochs.
    tolerance, tolerance_float32 : float
        Relative tolerances of the float64 and the recorded float32 comparison.
    initial_layers : Layers, optional
        Start from these parameters instead of the seeded initial model.

    Raises
    ------
    ConfigError
        If the model is not a one-hidden-layer dense net without regularisation.
    TrainingDiverged
        If the few epochs of training diverge.
    """
    spec, sizes, loss = config.model, config.model.layer_sizes, config.training.loss
    if len(spec.hidden) != 1:
        raise ConfigError(
            f"experiment {config.name!r} has hidden = {list(spec.hidden)}; analytic gradients "
            "are written out for one hidden layer"
        )
    model, history, x, y = recorded_training(config, epochs, initial_layers)
    model64 = float64_copy(model)
    rows, zeros, total = [], 0, 0
    for k in range(len(history)):
        layers = layers_from_row(history.iloc[k], sizes)
        passed = backprop(layers, x, y, spec.activation, spec.output_activation, loss)
        analytic = passed.named()
        scale = gradient_scale(passed, layers, x, y, spec.activation, spec.output_activation, loss)
        zeros += int(np.sum(passed.z1 == 0) + np.sum(passed.z2 == 0))
        total += passed.z1.size + passed.z2.size
        others = {"tape float64": tape_gradients(model64, layers, x, y, loss)}
        if k + 1 < len(history):
            recorded = history.iloc[k + 1]
            others["recorded float32"] = {n: float(recorded[n]) for n in analytic}
        rows += difference_rows(int(history["epoch"].iloc[k]), analytic, others, scale)
    description = (
        f"check-gradients {config.name}: {'-'.join(map(str, sizes))} "
        f"{spec.activation}/{spec.output_activation} net, loss {loss}, "
        f"{len(y)} samples, optimizer {config.training.optimizer} lr "
        f"{config.training.learning_rate:g}, parameters of epochs 0..{epochs}"
    )
    return GradientCheck(
        pd.DataFrame(rows), tolerance, tolerance_float32, zeros, total, description
    )


def recorded_training(
    config: ExperimentConfig, epochs: int, initial_layers: Layers | None
) -> tuple[keras.Model, pd.DataFrame, np.ndarray, np.ndarray]:
    """Train ``config``'s model for ``epochs`` full-batch epochs, recording every parameter
    and gradient; return the trained model, its history and the data in float64."""
    from stellarnet.runs.experiment import load_data
    from stellarnet.train.loop import train
    from stellarnet.train.models import build_model, set_model_layers

    _, dataset = load_data(config)
    model = build_model(config.model, config.seed)
    if initial_layers is not None:
        set_model_layers(model, initial_layers)
    if model.losses or len(model.trainable_variables) != 2 * len(config.model.layer_sizes[1:]):
        raise ConfigError("analytic gradients cover Dense layers without regularisation only")
    history = train(
        model,
        dataset.x,
        dataset.y,
        learning_rate=config.training.learning_rate,
        epochs=epochs,
        optimizer=config.training.optimizer,
        loss=config.training.loss,
        record=("kernels", "biases", "gradients"),
        engine="eager",
    )
    return model, history, dataset.x.astype(np.float64), dataset.y.astype(np.float64)


def difference_rows(
    epoch: int,
    analytic: dict[str, float],
    others: dict[str, dict[str, float]],
    scale: dict[str, float],
) -> list[dict[str, Any]]:
    """The rows of :attr:`GradientCheck.table` for one epoch's parameters: per comparison and
    parameter group, the largest absolute and relative differences."""
    rows = []
    for against, other in others.items():
        for group, (largest_abs, relative) in compare(analytic, other, scale).items():
            rows.append(
                {
                    "epoch": epoch,
                    "against": against,
                    "group": group,
                    "size": sum(1 for n in analytic if n.startswith(group + "_")),
                    "max_abs": largest_abs,
                    "max_rel": relative,
                }
            )
    return rows

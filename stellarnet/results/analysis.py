"""Numbers read off saved results: which hidden units died, what a saved network predicts
and what loss it has on the data it was trained on.

Kept apart from :mod:`stellarnet.results.saved` (which only reads folders back) so that the
figures, the tables and the report compute each of these in one place, the same way.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from stellarnet.params import Layers, parameter_names
from stellarnet.results.run_catalog import log_space
from stellarnet.results.saved import SavedResults
from stellarnet.schema import column_name

LOSS_FUNCTIONS = {
    "mse": lambda y, yhat: float(np.mean((y - yhat) ** 2)),
    "half_mse": lambda y, yhat: float(0.5 * np.mean((y - yhat) ** 2)),
}
"""The training losses (:mod:`stellarnet.train.recorder`) in numpy, float64."""

LOSS_SCALES = {"mse": 1.0, "half_mse": 0.5}
"""The same losses as multiples of the mean squared error, for :func:`network_loss_batch`."""

CURVE_POINTS = 200
"""Points of a prediction curve: smooth at figure size for the nets drawn here."""


# --- hidden units that stopped learning ------------------------------------------------


def parameter_matrix(history: pd.DataFrame, layer_sizes: Sequence[int]) -> np.ndarray:
    """Per-epoch parameter vectors, shape (rows, parameters): kernels then biases, float64."""
    names = parameter_names(layer_sizes, "w") + parameter_names(layer_sizes, "b")
    return history[names].to_numpy(dtype=float)


def unit_gradient_columns(layer_sizes: Sequence[int], layer: int, unit: int) -> list[str]:
    """Gradient columns of hidden unit ``unit`` (1-based) of Dense layer ``layer``: its
    incoming kernel entries and its bias."""
    n_in, n_out = layer_sizes[layer - 1], layer_sizes[layer]
    incoming = [column_name("g", layer, i * n_out + unit) for i in range(n_in)]
    return [*incoming, column_name("gb", layer, unit)]


def dead_units(history: pd.DataFrame, layer_sizes: Sequence[int]) -> dict[tuple[int, int], int]:
    """Hidden units whose gradient is exactly zero from some epoch to the end.

    Returns
    -------
    dict
        ``(layer, unit) -> first epoch of the final all-zero stretch``; 1 means the unit had
        zero gradient throughout (a ReLU dead from the start). Units that still learn at the
        last epoch are left out.
    """
    trained = history[history["epoch"] >= 1]
    dead: dict[tuple[int, int], int] = {}
    if trained.empty:
        return dead
    for layer in range(1, len(layer_sizes) - 1):
        for unit in range(1, layer_sizes[layer] + 1):
            zero = (trained[unit_gradient_columns(layer_sizes, layer, unit)] == 0).all(axis=1)
            zero = zero.to_numpy()
            if not zero[-1]:
                continue
            alive = np.flatnonzero(~zero)
            first = 0 if alive.size == 0 else alive[-1] + 1
            dead[(layer, unit)] = int(trained["epoch"].iloc[first])
    return dead


def inactive_units(
    history: pd.DataFrame, layer_sizes: Sequence[int], epoch: int
) -> set[tuple[int, int]]:
    """Hidden units with zero gradient in ``epoch`` (for epoch 0, in epoch 1, whose gradient
    is computed at the initial weights); empty if that gradient was not recorded."""
    rows = history[history["epoch"] == max(epoch, 1)]
    if rows.empty:
        return set()
    row = rows.iloc[0]
    return {
        (layer, unit)
        for layer in range(1, len(layer_sizes) - 1)
        for unit in range(1, layer_sizes[layer] + 1)
        if all(row[c] == 0 for c in unit_gradient_columns(layer_sizes, layer, unit))
    }


def describe_dead(dead: Mapping[tuple[int, int], int]) -> str:
    """``{(1, 1): 1, (1, 2): 1, (1, 5): 5}`` -> ``"layer 1: units 1, 2 throughout, unit 5 from
    epoch 5"``; ``"none"`` if empty."""
    if not dead:
        return "none"
    parts = []
    for layer in sorted({layer for layer, _ in dead}):
        groups: dict[int, list[int]] = {}
        for (where, unit), first in sorted(dead.items()):
            if where == layer:
                groups.setdefault(first, []).append(unit)
        phrases = [
            f"unit{'s' if len(units) > 1 else ''} {', '.join(map(str, units))} "
            + ("throughout" if first == 1 else f"from epoch {first}")
            for first, units in sorted(groups.items())
        ]
        parts.append(f"layer {layer}: " + ", ".join(phrases))
    return "; ".join(parts)


# --- what a saved network predicts -------------------------------------------------------


def network_loss(results: SavedResults, layers: Layers) -> float:
    """The training loss of the network ``layers`` on the run's (x, y), in float64."""
    dataset = results.dataset()
    yhat = results.predict(layers, dataset.x)
    return LOSS_FUNCTIONS[results.loss_name](dataset.y.astype(float), yhat)


BATCH_ROWS = 16384
"""Networks x training rows evaluated at once by :func:`network_loss_batch`: small enough
that the activations stay in cache (measured fastest on the HR net)."""


def network_loss_batch(results: SavedResults, vectors: np.ndarray) -> np.ndarray:
    """:func:`network_loss` of many networks at once, vectorised: one loss per row of
    ``vectors`` (parameter vectors ordered as :func:`parameter_matrix`'s columns, kernels
    then biases), equal to the one-network loss up to float64 round-off.

    Used for the loss landscape's grid (1681 networks for 41 x 41), where one call per
    network cost more in Python than in arithmetic.
    """
    from stellarnet.params import ACTIVATION_FUNCTIONS

    dataset = results.dataset()
    x, y = dataset.x.astype(float), dataset.y.astype(float)
    sizes = results.layer_sizes
    vectors = np.atleast_2d(np.asarray(vectors, dtype=float))
    n_kernels = sum(a * b for a, b in zip(sizes[:-1], sizes[1:], strict=True))
    scale = LOSS_SCALES[results.loss_name]
    losses = np.empty(len(vectors))
    step = max(1, BATCH_ROWS // max(len(x), 1))
    for start in range(0, len(vectors), step):
        chunk = vectors[start : start + step]
        values = np.broadcast_to(x, (len(chunk), *x.shape))
        kernel_at, bias_at = 0, n_kernels
        for depth, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:], strict=True), 1):
            kernels = chunk[:, kernel_at : kernel_at + n_in * n_out].reshape(-1, n_in, n_out)
            biases = chunk[:, bias_at : bias_at + n_out][:, None, :]
            kernel_at, bias_at = kernel_at + n_in * n_out, bias_at + n_out
            name = results.output_activation if depth == len(sizes) - 1 else results.activation
            values = ACTIVATION_FUNCTIONS[name](values @ kernels + biases)
        losses[start : start + step] = scale * np.mean((y - values) ** 2, axis=(1, 2))
    return losses


def network_losses(results: SavedResults, layers: Layers) -> dict[str, float]:
    """The loss of the network ``layers`` on each part of the run's rows
    (:meth:`~stellarnet.results.saved.SavedResults.parts`), in float64: ``{"train": ...}``
    without a split, plus ``"validation"`` and/or ``"test"`` with one. ``"train"`` is
    :func:`network_loss`; ``"validation"`` is what the recorder's ``val_loss`` gives for the
    same weights (up to its float32 rounding)."""
    loss = LOSS_FUNCTIONS[results.loss_name]
    return {
        name: loss(y.astype(float), results.predict(layers, x))
        for name, (x, y) in results.parts().items()
    }


def prediction_curve(
    results: SavedResults,
    lr: float,
    epoch: int | None = None,
    points: int = CURVE_POINTS,
    inputs: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """The network's prediction along its one input, in catalog units.

    Parameters
    ----------
    inputs : ndarray, optional
        The network inputs to evaluate (as the network sees them, after the feature's
        transforms); default ``points`` values over the range of the training data.

    Returns
    -------
    feature, prediction : ndarray
        The input de-normalised (e.g. log10 L) and the output mapped back to the target's
        log space (e.g. log10 Teff); for untransformed columns, the catalog values.
    """
    dataset = results.dataset()
    feature, target = results.features[0], results.target
    x = inputs if inputs is not None else np.linspace(*_span(dataset.x[:, 0]), points)
    yhat = results.predict(results.layers(lr, epoch), np.asarray(x, dtype=float)[:, None])
    params = dataset.transform_params
    return log_space(x, params[feature.column])[0], log_space(yhat[:, 0], params[target.column])[0]


def _span(values: np.ndarray) -> tuple[float, float]:
    return float(values.min()), float(values.max())


def residuals(
    results: SavedResults, lr: float, epoch: int | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Per training row: the input in catalog units (log10 L for the HR net) and predicted -
    true target in the target's log space if it is logged (log10 Teff)."""
    dataset = results.dataset()
    feature, target = results.features[0], results.target
    yhat = results.predict(results.layers(lr, epoch), dataset.x)
    params = dataset.transform_params
    predicted = log_space(yhat[:, 0], params[target.column])[0]
    true = log_space(dataset.y[:, 0].astype(float), params[target.column])[0]
    return log_space(dataset.x[:, 0].astype(float), params[feature.column])[0], predicted - true

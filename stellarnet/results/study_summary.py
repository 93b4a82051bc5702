"""What a study found: one row of statistics per member, and one row per grid cell.

Per member (:func:`member_stats`, computed where the member trained, so that a Dask client
gathers these rows only):

``monotone``
    The recorded loss falls at every step: row k+1's loss < row k's, over the rows of epoch
    1 on (row 1's loss is row 0's in a full-batch run, so epoch 0 takes no part).
``overshoot``
    The loss rises at some step (row k+1's > row k's, same rows). A plateau is neither.
``diverged``
    Some output or loss is NaN or infinite (:func:`stellarnet.schema.first_divergence`).
``dead_start``, ``dead_end``
    Hidden units with exactly zero gradient in epoch 1 (at the initial weights) and in the
    last recorded epoch: :func:`stellarnet.results.analysis.inactive_units` and
    :func:`~stellarnet.results.analysis.dead_units`, counted over members at once. Without
    recorded gradients (``record = "loss"``) they are counted from the weights: units whose
    activation is zero on every training row at the initial and the final weights.
``loss_first``, ``loss_final``
    The loss of epoch 0 and of the last recorded row.

Per cell (:func:`cell_summary`): the fractions of members that are monotone, overshoot or
diverged, the mean dead units, and the 10/50/90 % quantiles of the final loss over the members
whose final loss is finite.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from stellarnet.params import ACTIVATION_FUNCTIONS, Layers
from stellarnet.results.analysis import unit_gradient_columns

SUMMARY_COLUMNS = (
    "lr",
    "hidden",
    "init",
    "members",
    "monotone",
    "overshoot",
    "diverged",
    "dead_start",
    "dead_end",
    "loss_q10",
    "loss_q50",
    "loss_q90",
)
"""The columns of ``summary.csv``, in order."""
MEMBER_COLUMNS = (
    "lr",
    "hidden",
    "seed",
    "monotone",
    "overshoot",
    "diverged",
    "dead_start",
    "dead_end",
    "loss_first",
    "loss_final",
)
"""The columns of ``members.csv``, in order."""


def _by_member(frame: pd.DataFrame, column: str, members: int) -> np.ndarray:
    """``[members, rows]`` values of ``column``, rows padded with NaN past a member's end."""
    values = frame[column].to_numpy(dtype=float)
    sizes = frame.groupby("member", sort=False).size().to_numpy()
    if (sizes == sizes[0]).all():
        return values.reshape(members, sizes[0])
    out = np.full((members, sizes.max()), np.nan)
    starts = np.concatenate([[0], np.cumsum(sizes)[:-1]])
    for m, (start, size) in enumerate(zip(starts, sizes, strict=True)):
        out[m, :size] = values[start : start + size]
    return out


def loss_steps(losses: np.ndarray, epochs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(monotone, overshoot)`` per member from losses ``[members, rows]`` (NaN-padded) whose
    rows are ``epochs``: over the rows of epoch 1 on, every step falls / some step rises."""
    trained = losses[:, epochs >= 1]
    before, after = trained[:, :-1], trained[:, 1:]
    present = ~np.isnan(after) | ~np.isnan(before)  # padding: neither falls nor rises
    falls = (after < before) | ~present
    return falls.all(axis=1), (after > before).any(axis=1)


def member_stats(
    frame: pd.DataFrame,
    layer_sizes: Sequence[int],
    keys: pd.DataFrame,
    layers: tuple[list[Layers], list[Layers]] | None = None,
    x: np.ndarray | None = None,
    activation: str = "relu",
) -> pd.DataFrame:
    """The statistics (:data:`MEMBER_COLUMNS`) of each member of a stacked history ``frame``
    (a ``member`` column 0..K-1, rows in epoch order; a diverged member may end early).

    ``keys`` holds the members' ``lr``, ``hidden`` and ``seed``, in member order. Without
    gradient columns, ``layers`` (initial and final layers of each member) and the inputs
    ``x`` count the dead units from activations.
    """
    members = len(keys)
    sizes = frame.groupby("member", sort=False).size().to_numpy()
    epochs = frame.loc[frame["member"] == int(np.argmax(sizes)), "epoch"].to_numpy()
    loss = _by_member(frame, "loss", members)
    output = _by_member(frame, "output", members)
    monotone, overshoot = loss_steps(loss, epochs)
    ends = sizes - 1
    padded = np.arange(loss.shape[1])[None, :] > ends[:, None]
    finite = np.isfinite(loss) & np.isfinite(output) | padded
    stats = keys.reset_index(drop=True)[["lr", "hidden", "seed"]].copy()
    stats["monotone"] = monotone
    stats["overshoot"] = overshoot
    stats["diverged"] = ~finite.all(axis=1)
    stats["dead_start"], stats["dead_end"] = _dead(frame, layer_sizes, members, epochs, ends)
    if layers is not None and np.isnan(stats["dead_start"]).all():
        stats["dead_start"] = [dead_by_activation(m, x, activation) for m in layers[0]]
        stats["dead_end"] = [dead_by_activation(m, x, activation) for m in layers[1]]
    stats["loss_first"] = loss[:, 0]
    stats["loss_final"] = loss[np.arange(members), ends]
    return stats


def _dead(
    frame: pd.DataFrame,
    layer_sizes: Sequence[int],
    members: int,
    epochs: np.ndarray,
    ends: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """Dead hidden units per member at epoch 1 and at its last row, from the gradient columns
    (NaN without them, or without an epoch-1 row)."""
    start, end = np.zeros(members), np.zeros(members)
    first = np.flatnonzero(epochs == 1)
    layers = range(1, len(layer_sizes) - 1)
    if not layers or not first.size:
        return np.full(members, np.nan), np.full(members, np.nan)
    for layer in layers:
        for unit in range(1, layer_sizes[layer] + 1):
            columns = unit_gradient_columns(layer_sizes, layer, unit)
            if not set(columns) <= set(frame.columns):
                return np.full(members, np.nan), np.full(members, np.nan)
            zero = np.ones_like(_by_member(frame, columns[0], members), dtype=bool)
            for column in columns:
                zero &= _by_member(frame, column, members) == 0
            start += zero[:, first[0]]
            end += zero[np.arange(members), ends]
    return start, end


def dead_by_activation(layers: Layers, x: np.ndarray, activation: str = "relu") -> float:
    """Hidden units whose activation is zero on every row of ``x`` (float64 forward pass)."""
    values, dead = np.asarray(x, dtype=float), 0
    for kernel, bias in layers[:-1]:
        values = ACTIVATION_FUNCTIONS[activation](values @ kernel + bias)
        dead += int((values == 0).all(axis=0).sum())
    return float(dead)


def cell_summary(stats: pd.DataFrame, init: str) -> pd.DataFrame:
    """One row per (lr, hidden) cell, in the order of ``stats``: :data:`SUMMARY_COLUMNS`."""
    rows = []
    for (lr, hidden), cell in stats.groupby(["lr", "hidden"], sort=False):
        final = cell["loss_final"].to_numpy(dtype=float)
        final = final[np.isfinite(final)]
        q10, q50, q90 = np.quantile(final, [0.1, 0.5, 0.9]) if final.size else (np.nan,) * 3
        rows.append(
            {
                "lr": lr,
                "hidden": int(hidden),
                "init": init,
                "members": len(cell),
                "monotone": cell["monotone"].mean(),
                "overshoot": cell["overshoot"].mean(),
                "diverged": cell["diverged"].mean(),
                "dead_start": cell["dead_start"].mean(),
                "dead_end": cell["dead_end"].mean(),
                "loss_q10": q10,
                "loss_q50": q50,
                "loss_q90": q90,
            }
        )
    return pd.DataFrame(rows, columns=list(SUMMARY_COLUMNS))


def wilson_interval(successes: np.ndarray, trials: np.ndarray, z: float = 1.96) -> np.ndarray:
    """``[2, n]`` lower and upper Wilson score bounds of binomial fractions (95 % by default)."""
    k, n = np.asarray(successes, float), np.asarray(trials, float)
    p = np.divide(k, n, out=np.zeros_like(k), where=n > 0)
    denominator = 1 + z**2 / n
    centre = (p + z**2 / (2 * n)) / denominator
    half = z * np.sqrt(p * (1 - p) / n + z**2 / (4 * n**2)) / denominator
    return np.vstack([np.clip(centre - half, 0, 1), np.clip(centre + half, 0, 1)])

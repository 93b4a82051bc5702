"""What the explorer's epoch slider steps through, as plain numpy arrays (no Bokeh here).

The slider has one *frame* per recorded epoch, up to :data:`MAX_FRAMES`; a longer history is
thinned evenly (every k-th recorded epoch, the last one always kept) and the page says so.
For each learning rate and frame this module gathers the history row exactly as saved
(float64, the history's own column names), which hidden units are inactive (zero gradient in
that epoch, as :func:`stellarnet.results.analysis.inactive_units` decides), and the size of
each layer's gradient. A rate whose history lacks a frame's epoch (it diverged, or stopped
early) has NaN there and ``present`` False.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from stellarnet.results.analysis import unit_gradient_columns
from stellarnet.results.names import rate_label
from stellarnet.results.saved import SavedResults, lr_label
from stellarnet.schema import parameter_names, parse_column
from stellarnet.viz.network import parameter_scale
from stellarnet.viz.style import rate_colors

MAX_FRAMES = 400
"""Slider positions at most: every recorded epoch of runs up to this long."""
MAX_LOSS_POINTS = 5000
"""Points of each loss-vs-epoch line at most (a longer history is thinned evenly)."""
VAL_LOSS = "val_loss"
"""The history's validation-loss column (runs with validation rows)."""
GRADIENT_KINDS = (("g", "weights"), ("gb", "biases"))
"""Gradient column kinds and how the gradient panel names them."""


@dataclass
class Frames:
    """The epochs the slider steps through.

    Attributes
    ----------
    epochs : ndarray of int
        The frame epochs, ascending.
    recorded : int
        Distinct epochs recorded in the histories.
    stride : int
        Every ``stride``-th recorded epoch is a frame (1: all of them), plus the last.
    """

    epochs: np.ndarray
    recorded: int
    stride: int

    def note(self) -> str:
        """How the slider's epochs relate to the recorded ones, for the page."""
        if self.stride == 1:
            return f"every recorded epoch ({self.recorded})"
        return (
            f"{len(self.epochs)} of {self.recorded} recorded epochs: every {self.stride}th, "
            "and the last (thinned evenly to keep the page small)"
        )


@dataclass
class RateTrack:
    """One learning rate's history at the frames.

    Attributes
    ----------
    lr : float
    key : str
        The rate as in its ``lr=<rate>`` folder (:func:`stellarnet.results.names.rate_label`):
        the key of the page's scripting hook.
    label, color : str
        ``LR=<rate>`` and its colour in every stellarnet figure
        (:func:`stellarnet.viz.style.rate_colors`), as ``#rrggbb``.
    columns : dict of str to ndarray
        The history's columns (``epoch``, ``output``, ``loss``, ``w^l_i``, ``b^l_i``,
        ``g^l_i``, ``gb^l_i``, ...) at the frames, float64 exactly as saved; NaN where absent.
    present : ndarray of bool
        Whether the history has a row at each frame's epoch.
    inactive : ndarray of bool, shape (frames, hidden units)
        Hidden units with zero gradient in that epoch (epoch 0: in epoch 1).
    gradient_norms : ndarray, shape (frames, 2 * layers)
        Euclidean norm of each layer's kernel gradient, then bias gradient (NaN: none).
    loss_epochs, loss_values : ndarray
        The loss line: every finite recorded epoch (thinned beyond :data:`MAX_LOSS_POINTS`).
    val_values : ndarray or None
        The validation loss at ``loss_epochs`` (None: the run held no validation rows).
    scale : float
        The largest |parameter| over the run: the diagram's colour and width scale.
    status : str
        ``""``, or how the run ended early (``"diverged at epoch 25"``).
    diverged_at : int or None
        The epoch whose loss or weights were no longer finite.
    """

    lr: float
    key: str
    label: str
    color: str
    columns: dict[str, np.ndarray]
    present: np.ndarray
    inactive: np.ndarray
    gradient_norms: np.ndarray
    loss_epochs: np.ndarray
    loss_values: np.ndarray
    scale: float
    status: str
    val_values: np.ndarray | None = None
    diverged_at: int | None = None


def choose_frames(results: SavedResults, max_frames: int = MAX_FRAMES) -> Frames:
    """Every recorded epoch (of any rate), or every k-th and the last when there are more
    than ``max_frames``."""
    epochs = np.unique(
        np.concatenate([h["epoch"].to_numpy(dtype=np.int64) for h in results.histories.values()])
    )
    stride = max(1, -(-(len(epochs) - 1) // max(max_frames - 1, 1)))
    chosen = epochs[::stride]
    if chosen[-1] != epochs[-1]:
        chosen = np.append(chosen, epochs[-1])
    return Frames(chosen, len(epochs), stride)


def hidden_units(layer_sizes: tuple[int, ...]) -> list[tuple[int, int]]:
    """(layer, unit) of every hidden unit, layer by layer, units 1-based."""
    return [
        (layer, unit)
        for layer in range(1, len(layer_sizes) - 1)
        for unit in range(1, layer_sizes[layer] + 1)
    ]


def gradient_blocks(layer_sizes: tuple[int, ...]) -> list[tuple[int, str, str]]:
    """(layer, gradient kind, name) of each bar of the gradient panel, layer by layer."""
    return [
        (layer, kind, f"layer {layer} {what}")
        for layer in range(1, len(layer_sizes))
        for kind, what in GRADIENT_KINDS
    ]


def _inactive(aligned: pd.DataFrame, layer_sizes: tuple[int, ...]) -> np.ndarray:
    """Per frame and hidden unit: zero gradient in that epoch (for epoch 0, in epoch 1, whose
    gradient is computed at the initial weights), as ``inactive_units`` decides; False where
    that gradient was not recorded."""
    units = hidden_units(layer_sizes)
    out = np.zeros((len(aligned), len(units)), dtype=bool)
    for j, (layer, unit) in enumerate(units):
        grads = aligned[unit_gradient_columns(layer_sizes, layer, unit)].to_numpy(dtype=float)
        out[:, j] = np.all(grads == 0, axis=1)
    return out


def _gradient_norms(aligned: pd.DataFrame, layer_sizes: tuple[int, ...]) -> np.ndarray:
    blocks = gradient_blocks(layer_sizes)
    out = np.full((len(aligned), len(blocks)), np.nan)
    for j, (layer, kind, _) in enumerate(blocks):
        names = [n for n in parameter_names(layer_sizes, kind) if parse_column(n)[1] == layer]
        values = aligned[names].to_numpy(dtype=float)
        out[:, j] = np.sqrt(np.sum(values**2, axis=1))
    return out


def _thinned(values: np.ndarray, limit: int) -> np.ndarray:
    if len(values) <= limit:
        return values
    keep = np.unique(np.linspace(0, len(values) - 1, limit).round().astype(int))
    return values[keep]


def rate_track(results: SavedResults, lr: float, color: str, frames: Frames) -> RateTrack:
    """One learning rate's history at ``frames`` (see :class:`RateTrack`)."""
    history = results.histories[lr]
    sizes = results.layer_sizes
    indexed = history.set_index(history["epoch"].astype(np.int64), drop=False)
    aligned = indexed.reindex(frames.epochs)
    present = np.isin(frames.epochs, indexed.index.to_numpy())
    columns = {name: aligned[name].to_numpy(dtype=float) for name in history.columns}
    # epoch 0 holds no gradient: its units are greyed by epoch 1's, as in the static diagram
    gradients_from = aligned.copy()
    if 0 in indexed.index and 1 in indexed.index and frames.epochs[0] == 0:
        grads = [c for c in history.columns if c.startswith(("g^", "gb^"))]
        gradients_from.loc[0, grads] = indexed.loc[1, grads].to_numpy(dtype=float)
    finite = results.finite_history(lr)
    divergence = results.divergence(lr)
    return RateTrack(
        lr=lr,
        key=rate_label(lr),
        label=lr_label(lr),
        color=color,
        columns=columns,
        present=present,
        inactive=_inactive(gradients_from, sizes) & present[:, None],
        gradient_norms=_gradient_norms(aligned, sizes),
        loss_epochs=_thinned(finite["epoch"].to_numpy(dtype=np.int64), MAX_LOSS_POINTS),
        loss_values=_thinned(finite["loss"].to_numpy(dtype=float), MAX_LOSS_POINTS),
        scale=parameter_scale(results, lr) if len(finite) else 1.0,
        status="" if divergence is None else f"diverged at epoch {divergence.epoch}",
        val_values=_thinned(finite[VAL_LOSS].to_numpy(dtype=float), MAX_LOSS_POINTS)
        if VAL_LOSS in finite.columns
        else None,
        diverged_at=None if divergence is None else int(divergence.epoch),
    )


def rate_tracks(results: SavedResults, frames: Frames) -> list[RateTrack]:
    """:func:`rate_track` of every learning rate, in sweep order."""
    colors = rate_colors(results.learning_rates)
    return [rate_track(results, lr, _hex(colors[lr]), frames) for lr in results.learning_rates]


def _hex(color: str | tuple) -> str:
    """A colour of :func:`rate_colors` (a name or an RGBA tuple beyond six rates) as #rrggbb."""
    if isinstance(color, str):
        return color
    from matplotlib.colors import to_hex

    return to_hex(color)

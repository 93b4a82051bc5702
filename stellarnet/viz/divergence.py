"""How figures show a run that diverged (its history ends with the first row whose loss or
weights are not finite; see :mod:`stellarnet.results.status`).

* Loss curves are drawn up to the last finite row and end with a cross at the top of the axes
  at the epoch where the loss stopped being finite, and a dotted line there; the label says
  ``diverged at epoch N``. The y range is that of the rates that did not diverge, so that a
  loss racing towards infinity does not flatten theirs; the off-scale part of a diverged
  curve is marked by triangles along the top. When every rate diverged, a loss spanning more
  than :data:`LOG_RANGE` is drawn on a log scale instead.
* Figures that need the weights (prediction curves, residuals, the network) draw those of
  the last finite row and say so; the landscape leaves diverged rates out (with a note) when
  another rate trained to the end.

Runs that trained to the end are drawn exactly as before: none of this touches their figures.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from stellarnet.results.saved import SavedResults, lr_label
from stellarnet.viz.style import lr_color

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.lines import Line2D

LOG_RANGE = 100.0
"""When every rate diverged, a loss spanning more than this factor goes on a log scale."""
MARGIN = 0.05
"""Padding of a clipped y range, as a fraction of its span (matplotlib's default margin)."""
DIVERGED_LABEL = "loss no longer finite (diverged)"


def diverged_rates(results: SavedResults) -> list[float]:
    """The learning rates of ``results`` that diverged, in sweep order."""
    return [lr for lr in results.learning_rates if results.divergence(lr) is not None]


def drawn_rates(results: SavedResults) -> list[float]:
    """The rates drawn by figures that compare networks (residuals, the landscape): those
    that trained to the end, as a diverged one would swamp them; if every rate diverged,
    each with a finite row (drawn up to it)."""
    complete = [lr for lr in results.learning_rates if results.divergence(lr) is None]
    finite = [lr for lr in results.learning_rates if results.weights_epoch(lr) is not None]
    return complete or finite


def trained_losses(results: SavedResults, lr: float) -> tuple[np.ndarray, np.ndarray]:
    """Epochs >= 1 and their losses, up to the last finite row."""
    history = results.finite_history(lr)
    trained = history[history["epoch"] >= 1]
    return trained["epoch"].to_numpy(), trained["loss"].to_numpy(dtype=float)


def _padded(low: float, high: float, log: bool) -> tuple[float, float]:
    if log:
        low, high = np.log10(low), np.log10(high)
    span = high - low if high > low else max(abs(high), 1.0)
    low, high = low - MARGIN * span, high + MARGIN * span
    return (10**low, 10**high) if log else (low, high)


def _fit_y_range(ax: Axes, results: SavedResults) -> bool:
    """Clip the y range to the losses of the rates that did not diverge, or, when every rate
    diverged, switch to a log scale if the loss spans decades; return whether it clipped."""
    log = ax.get_yscale() == "log"
    complete = [lr for lr in results.learning_rates if results.divergence(lr) is None]
    pool = complete or results.learning_rates
    values = np.concatenate([trained_losses(results, lr)[1] for lr in pool])
    values = values[np.isfinite(values) & ((values > 0) if log else True)]
    if not values.size:
        return False
    if complete:
        ax.set_ylim(*_padded(float(values.min()), float(values.max()), log))
        return True
    if not log and values.min() > 0 and values.max() > LOG_RANGE * values.min():
        ax.set_yscale("log")
    return False


def mark_divergence(ax: Axes, results: SavedResults, lines: dict[float, Line2D]) -> None:
    """Mark where each diverged rate's loss curve ends, and its part beyond the y range."""
    clipped = _fit_y_range(ax, results)
    top = ax.get_ylim()[1]
    along_top = ax.get_xaxis_transform()  # x in data, y in axes coordinates
    for position, lr in enumerate(results.learning_rates):
        divergence = results.divergence(lr)
        if divergence is None:
            continue
        colour = lr_color(position)
        epochs, losses = trained_losses(results, lr)
        above = epochs[losses > top] if clipped else epochs[:0]
        if above.size:
            ax.plot(
                above,
                np.ones(above.size),
                transform=along_top,
                linestyle="none",
                marker="^",
                markersize=3.5,
                color=colour,
                clip_on=False,
            )
            lines[lr].set_label(f"{lines[lr].get_label()} (off scale from epoch {above[0]})")
        ax.axvline(divergence.epoch, color=colour, linestyle=":", linewidth=0.9)
        ax.plot(
            [divergence.epoch],
            [1.0],
            transform=along_top,
            linestyle="none",
            marker="X",
            markersize=8,
            color=colour,
            markeredgecolor="white",
            clip_on=False,
            zorder=5,
        )
    ax.plot([], [], linestyle="none", marker="X", color="0.3", label=DIVERGED_LABEL)


def finite_note(results: SavedResults, lr: float) -> str:
    """A line for a figure's title: what is drawn of a diverged run (empty otherwise)."""
    divergence = results.divergence(lr)
    if divergence is None:
        return ""
    last = results.weights_epoch(lr)
    shown = "no finite row" if last is None else f"rows up to epoch {last} drawn"
    return f"\n{lr_label(lr)} {divergence.describe()}: {shown}"


def weights_note(results: SavedResults, lr: float, wrap: bool = False) -> str:
    """``", diverged at epoch 25: last finite weights"`` for a diverged rate, else ''; with
    ``wrap``, a line break after the colon (for a legend)."""
    divergence = results.divergence(lr)
    if divergence is None:
        return ""
    gap = "\n   " if wrap else " "
    return f", diverged at epoch {divergence.epoch}:{gap}last finite weights"


def finite_curve(curve: tuple[np.ndarray, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """A prediction curve with values that overflowed (the weights of a diverging run) left
    out (NaN, a gap in the line)."""
    x, y = curve
    return x, np.where(np.isfinite(y), y, np.nan)


def note_off_axes(ax: Axes, results: SavedResults, lines: dict) -> None:
    """Say so in the legend when a diverged rate's curve lies wholly outside the axes."""
    (left, right), (bottom, top) = sorted(ax.get_xlim()), sorted(ax.get_ylim())
    for lr, line in lines.items():
        x, y = np.asarray(line.get_xdata()), np.asarray(line.get_ydata())
        inside = (x >= left) & (x <= right) & (y >= bottom) & (y <= top)
        if results.divergence(lr) is not None and not inside.any():
            line.set_label(f"{line.get_label()}, off the axes")

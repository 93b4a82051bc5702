"""How figures show a run that diverged (its history ends with the first row whose loss or
weights are not finite; see :mod:`stellarnet.results.status`).

* Loss curves are drawn up to the last finite row and end with a cross at the top of the axes
  at the epoch where the loss stopped being finite, and a dotted line there; the label says
  ``diverged at epoch N``. A rate that stays finite but explodes (:func:`peak`) is wild too.
  The y range is that of the calm rates, so that a loss racing towards infinity does not
  flatten theirs; the off-scale part of a wild curve is marked by triangles along the top.
* Figures that need the weights (prediction curves, residuals, the network) draw those of
  the last finite row and say so; the landscape fits its plane to the calm rates only.

Runs that trained to the end are drawn exactly as before: none of this touches their figures.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from stellarnet.results.saved import SavedResults, lr_label
from stellarnet.viz.style import number, rate_colors, wants_log

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.lines import Line2D

EXPLODE_FACTOR = 10.0
"""A rate whose finite loss rises above this multiple of its first trained loss exploded:
its curve is clipped and it is kept out of the landscape's fit (LR 3 on the HR relation
spikes 57x, to 791, at epoch 2, while the calm rates span 13.8 to 0.00014)."""
MARGIN = 0.05
"""Padding of a clipped y range, as a fraction of its span (matplotlib's default margin)."""
DIVERGED_LABEL = "loss no longer finite (diverged)"


def diverged_rates(results: SavedResults) -> list[float]:
    """The learning rates of ``results`` that diverged, in sweep order."""
    return [lr for lr in results.learning_rates if results.divergence(lr) is not None]


def peak(results: SavedResults, lr: float) -> tuple[int, float] | None:
    """The epoch and loss of run ``lr``'s finite peak if it exploded (rose above
    :data:`EXPLODE_FACTOR` times its first trained loss), else None."""
    epochs, losses = trained_losses(results, lr)
    finite = np.isfinite(losses)
    if not finite.any() or losses[finite][0] <= 0:
        return None
    top = int(np.argmax(np.where(finite, losses, -np.inf)))
    if losses[top] <= EXPLODE_FACTOR * losses[finite][0]:
        return None
    return int(epochs[top]), float(losses[top])


def calm_rates(results: SavedResults) -> list[float]:
    """The rates that neither diverged nor exploded: they set the y range of loss panels and
    the plane of the landscape, so that one wild rate does not flatten or own them."""
    return [
        lr
        for lr in results.learning_rates
        if results.divergence(lr) is None and peak(results, lr) is None
    ]


def wild_rates(results: SavedResults) -> list[float]:
    """The rates that diverged or exploded, in sweep order."""
    calm = calm_rates(results)
    return [lr for lr in results.learning_rates if lr not in calm]


def wild_text(results: SavedResults, lr: float) -> str:
    """``"LR=3 diverged at epoch 25"`` or ``"LR=3 spiked to 790.9 (57.2x its start) at epoch
    2"``: what a caption says of a wild rate."""
    divergence = results.divergence(lr)
    if divergence is not None:
        return f"{lr_label(lr)} diverged at epoch {divergence.epoch}"
    epoch, loss = peak(results, lr)
    first = trained_losses(results, lr)[1][0]
    return (
        f"{lr_label(lr)} spiked to {number(loss)} ({number(loss / first)}x its start) "
        f"at epoch {epoch}"
    )


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


def padded_range(low: float, high: float, log: bool) -> tuple[float, float]:
    """``low, high`` widened by :data:`MARGIN` of their span (in decades on a log axis)."""
    if log:
        low, high = np.log10(low), np.log10(high)
    span = high - low if high > low else max(abs(high), 1.0)
    low, high = low - MARGIN * span, high + MARGIN * span
    return (10**low, 10**high) if log else (low, high)


def fit_loss_axis(
    ax: Axes, results: SavedResults, lines: dict[float, Line2D], log_scale: bool | None = None
) -> None:
    """Scale and range of a loss panel: log when the calm rates' losses span more than two
    decades (:func:`stellarnet.viz.style.wants_log`) or ``log_scale`` says so, the y range
    clipped to the calm rates when others diverged or exploded, with the wild ones marked
    (:func:`mark_wild`)."""
    calm = calm_rates(results)
    pool = calm or results.learning_rates
    values = np.concatenate([trained_losses(results, lr)[1] for lr in pool])
    values = values[np.isfinite(values)]
    log = wants_log(values) if log_scale is None else log_scale
    if log:
        ax.set_yscale("log")
        values = values[values > 0]
    clipped = bool(calm) and len(calm) < len(results.learning_rates) and bool(values.size)
    if clipped:
        ax.set_ylim(*padded_range(float(values.min()), float(values.max()), log))
    mark_wild(ax, results, lines, clipped)


def mark_wild(ax: Axes, results: SavedResults, lines: dict[float, Line2D], clipped: bool) -> None:
    """Mark each wild rate's curve: triangles along the top where it is off scale (when the
    range is ``clipped``), and for a diverged one a dotted line and a cross at the epoch its
    loss stopped being finite."""
    top = ax.get_ylim()[1]
    along_top = ax.get_xaxis_transform()  # x in data, y in axes coordinates
    colours = rate_colors(results.learning_rates)
    diverged = diverged_rates(results)
    for lr in wild_rates(results):
        colour = colours[lr]
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
        divergence = results.divergence(lr)
        if divergence is None:
            continue
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
    if diverged:
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


def inside_axes(ax: Axes, line: Line2D) -> np.ndarray:
    """Which points of ``line`` lie within the axis ranges of ``ax`` (non-finite: none)."""
    (left, right), (bottom, top) = sorted(ax.get_xlim()), sorted(ax.get_ylim())
    x, y = np.asarray(line.get_xdata()), np.asarray(line.get_ydata())
    return (x >= left) & (x <= right) & (y >= bottom) & (y <= top)


def note_off_axes(ax: Axes, results: SavedResults, lines: dict) -> None:
    """Say so in the legend when a diverged rate's curve lies wholly outside the axes."""
    for lr, line in lines.items():
        if results.divergence(lr) is not None and not inside_axes(ax, line).any():
            line.set_label(f"{line.get_label()}, off the axes")

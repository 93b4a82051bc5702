"""Figures of what the trained network predicts against the catalog it was trained on (read
from the path in ``run.json``, checked by its sha256): the HR diagram with each learning
rate's prediction curve (``hr``) and the residuals per learning rate (``residuals``).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from stellarnet.data.datasets import ColumnSpec, transform_column, valid_rows
from stellarnet.errors import StellarnetError
from stellarnet.results.analysis import network_loss, prediction_curve, residuals
from stellarnet.results.saved import SavedResults, as_results, lr_label
from stellarnet.viz.captions import add_caption, run_caption
from stellarnet.viz.divergence import (
    diverged_rates,
    drawn_rates,
    finite_curve,
    inside_axes,
    note_off_axes,
    weights_note,
)
from stellarnet.viz.style import (
    WIDE,
    axis_label,
    new_figure,
    number,
    rate_colorbar,
    rate_colors,
    rates_list,
    uses_colorbar,
    write_figure,
)
from stellarnet.viz.training import rates_title, status_label

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

HR_COLUMNS = ("Lum", "Teff")
"""Input and target columns of an HR-relation experiment: only those get the HR diagram."""
COLOR_COLUMN = "BP-RP"
"""Catalog column that colours the HR diagram's points, when the catalog has it."""
CROWDED = 1000
"""Above this many stars the HR diagram shades the point density beneath the points."""
MIN_BIN = 5
"""Fewest rows in an input bin for the residual figure to draw its median."""
MEDIAN_COLOR = "black"
GRID_COLUMNS = 4
WIDE_GRID_COLUMNS = 6
"""Columns of the residual small multiples: 4, or 6 beyond 16 rates (32 rates: 6 x 6)."""
PANEL_HEIGHT = 1.6
"""Height in inches of a row of residual panels."""
SHARED_Y_SPREAD = 10.0
"""Residual panels share their y axis unless their spreads differ by more than this."""


def is_hr_relation(results: SavedResults) -> bool:
    """Whether the experiment predicts Teff from Lum, so that its data form an HR diagram."""
    columns = (*(spec.column for spec in results.features), results.target.column)
    return columns == HR_COLUMNS


def has_one_input_and_output(results: SavedResults) -> bool:
    """Whether the network maps one column to one: only then can its prediction be drawn as
    a curve over the data."""
    return len(results.features) == 1 and results.layer_sizes[-1] == 1


def check_one_input_and_output(results: SavedResults, what: str) -> None:
    """Raise StellarnetError unless :func:`has_one_input_and_output`."""
    if not has_one_input_and_output(results):
        raise StellarnetError(
            f"the {what} figure needs one input column and one output; experiment "
            f"{results.experiment!r} has {len(results.features)} input(s)"
        )


# --- the HR relation with the network's prediction ----------------------------------------


def _log_values(frame: pd.DataFrame, spec: ColumnSpec) -> tuple[np.ndarray, bool]:
    """A catalog column with its transforms up to the last log10 applied (log10 L, log10 Teff)."""
    steps = list(spec.transforms)
    upto = len(steps) - steps[::-1].index("log10") if "log10" in steps else 0
    values, _ = transform_column(
        frame[spec.column].to_numpy(dtype=float), ColumnSpec(spec.column, tuple(steps[:upto]))
    )
    return values, upto > 0


def _limits(data: np.ndarray, extra: np.ndarray) -> tuple[float, float]:
    """Axis range of ``data`` padded by 5%, widened towards ``extra`` (a prediction curve) by
    at most the data's own span, so that a poor early fit does not squash the catalog."""
    low, high = float(np.nanmin(data)), float(np.nanmax(data))
    span = max(high - low, 1e-9)
    low = max(min(low, float(np.nanmin(extra))), low - span)
    high = min(max(high, float(np.nanmax(extra))), high + span)
    return low - 0.05 * span, high + 0.05 * span


def density_contours(ax: Axes, x: np.ndarray, y: np.ndarray, bins: int = 40) -> None:
    """Grey contours of the star density (a lightly smoothed 2-D histogram), drawn where points
    overlap too much to show it, at 2%, 10%, 30% and 60% of the peak."""
    counts, x_edges, y_edges = np.histogram2d(x, y, bins=bins)
    kernel = np.array([0.25, 0.5, 0.25])
    for axis in (0, 1):
        counts = np.apply_along_axis(np.convolve, axis, counts, kernel, mode="same")
    centres = (0.5 * (x_edges[1:] + x_edges[:-1]), 0.5 * (y_edges[1:] + y_edges[:-1]))
    peak = counts.max()
    if peak <= 0:
        return
    ax.contour(
        *centres,
        counts.T,
        levels=peak * np.array([0.02, 0.1, 0.3, 0.6]),
        colors="0.2",
        linewidths=0.7,
        alpha=0.8,
        zorder=3,
    )
    ax.plot([], [], color="0.2", linewidth=0.7, label="star density (2, 10, 30, 60% of peak)")


def _catalog_points(
    fig: Figure, ax: Axes, results: SavedResults, stars: pd.DataFrame, x: np.ndarray, y: np.ndarray
) -> None:
    """The stars, coloured by :data:`COLOR_COLUMN` (with a colour bar) when the catalog has it
    and the rates do not need a colour bar of their own (two colour scales on one diagram
    would be read as one), else grey; gid ``catalog`` so that tests find them."""
    colour: dict[str, Any] = {"color": "0.55", "alpha": 0.5}
    by_colour = COLOR_COLUMN in stars.columns and not uses_colorbar(results.learning_rates)
    if by_colour:
        colour = {"c": stars[COLOR_COLUMN].to_numpy(dtype=float), "cmap": "RdYlBu_r", "alpha": 0.7}
    points = ax.scatter(x, y, s=3, linewidths=0, zorder=2, rasterized=True, gid="catalog", **colour)
    if by_colour:
        fig.colorbar(points, ax=ax, label=axis_label(COLOR_COLUMN, results.unit(COLOR_COLUMN)))


def _prediction_curves(ax: Axes, results: SavedResults, epoch: int | None) -> dict:
    """Each learning rate's prediction (log Teff on x, log L on y); return the lines drawn
    by learning rate. A diverged rate is drawn with its last finite weights, and a rate with
    none is named in the legend only. Beyond :data:`~stellarnet.viz.style.MAX_LEGEND_RATES`
    rates the lines carry no legend label (a colour bar names them)."""
    lines = {}
    colours = rate_colors(results.learning_rates)
    legend = not uses_colorbar(results.learning_rates)
    for lr in results.learning_rates:
        shown = results.weights_epoch(lr, epoch)
        if shown is None:
            label = f"network, {status_label(results, lr)}: no finite weights, not drawn"
            ax.plot([], [], color=colours[lr], linewidth=2, label=label if legend else None)
            continue
        curve_x, curve_y = finite_curve(prediction_curve(results, lr, shown))
        loss = network_loss(results, results.layers(lr, shown))
        label = (
            f"network, {lr_label(lr)}{weights_note(results, lr, wrap=True)}, after "
            f"epoch {shown} (loss {number(loss)})"
        )
        (lines[lr],) = ax.plot(
            curve_y,
            curve_x,
            color=colours[lr],
            linewidth=2 if legend else 1.2,
            zorder=4,
            label=label if legend else None,
        )
    return lines


def leaving_axes(ax: Axes, lines: dict) -> list[float]:
    """The rates whose curve leaves the axes somewhere (clipped by the axis range)."""
    leaving = []
    for lr, line in lines.items():
        finite = np.isfinite(line.get_xdata()) & np.isfinite(line.get_ydata())
        if (finite & ~inside_axes(ax, line)).any():
            leaving.append(lr)
    return leaving


def _hr_caption(results: SavedResults, ax: Axes, lines: dict, stars: int) -> str:
    """The run caption, the stars drawn, and the curves that leave the axes."""
    trained = len(results.part("train")[1])
    text = f"{run_caption(results)}. Points: the catalog's {stars} stars ({trained} trained on)"
    leaving = leaving_axes(ax, lines)
    if leaving:
        text += f". Curves clipped at the axes: {rates_list(leaving, len(results.learning_rates))}"
    return text


def plot_hr(results: SavedResults, epoch: int | None = None) -> Figure:
    """The training stars as log L vs log Teff (Teff axis reversed), points coloured by BP-RP
    and shaded by density when crowded, with the network's prediction curve per learning
    rate; a caption names the curves that leave the axes."""
    check_one_input_and_output(results, "HR relation")
    feature, target = results.features[0], results.target
    frame = results.catalog()
    stars = frame.loc[valid_rows(frame, [feature, target])]
    x_values, x_log = _log_values(stars, target)
    y_values, y_log = _log_values(stars, feature)
    fig = new_figure(WIDE)
    ax = fig.add_subplot()
    _catalog_points(fig, ax, results, stars, x_values, y_values)
    if len(stars) > CROWDED:
        density_contours(ax, x_values, y_values)
    lines = _prediction_curves(ax, results, epoch)
    predicted = np.concatenate([line.get_xdata() for line in lines.values()] or [x_values])
    ax.set_xlim(*reversed(_limits(x_values, predicted)))
    ax.set_ylim(*_limits(y_values, y_values))
    if diverged_rates(results):
        note_off_axes(ax, results, lines)
    ax.set_xlabel(axis_label(target.column, results.unit(target.column), x_log))
    ax.set_ylabel(axis_label(feature.column, results.unit(feature.column), y_log))
    ax.set_title(f"HR relation and network prediction ({rates_title(results)})")
    if uses_colorbar(results.learning_rates):
        rate_colorbar(fig, ax, results.learning_rates)
    # beside the axes: below them it would collide with the caption, inside it covers stars
    fig.legend(loc="outside right upper", fontsize=7, frameon=False)
    add_caption(fig, _hr_caption(results, ax, lines, len(stars)))
    return fig


def hr_figure(source: str | Path | SavedResults, epoch: int | None = None) -> Path:
    """Write ``hr.png`` and ``hr.pdf`` into a run or sweep folder."""
    results = as_results(source)
    return write_figure(lambda: plot_hr(results, epoch), results.folder, "hr")


# --- residuals -------------------------------------------------------------------------------


def _binned_medians(x: np.ndarray, values: np.ndarray, bins: int) -> tuple[np.ndarray, list]:
    """Bin centres over the range of ``x`` and the median of ``values`` in each bin (NaN in
    bins of fewer than :data:`MIN_BIN` rows, whose median would be noise)."""
    edges = np.linspace(x.min(), x.max(), bins + 1)
    which = np.clip(np.digitize(x, edges) - 1, 0, bins - 1)
    medians = [
        np.median(values[which == b]) if np.count_nonzero(which == b) >= MIN_BIN else np.nan
        for b in range(bins)
    ]
    return 0.5 * (edges[1:] + edges[:-1]), medians


def _finite_residuals(
    results: SavedResults, lr: float, epoch: int | None
) -> tuple[np.ndarray, np.ndarray]:
    """:func:`stellarnet.results.analysis.residuals` without the rows whose prediction
    overflowed (the weights of a diverging run)."""
    x, resid = residuals(results, lr, epoch)
    keep = np.isfinite(resid)
    return x[keep], resid[keep]


def _residual_panel(
    ax: Axes, x: np.ndarray, resid: np.ndarray, colour: Any, bins: int, unit: str, narrow: bool
) -> None:
    """One learning rate's residuals vs the input with their binned median and the RMS.
    Few rows are drawn larger and opaque: the faint dots that keep 2000 stars legible would
    all but vanish."""
    from matplotlib import patheffects

    if not x.size:
        ax.text(0.5, 0.5, "no finite prediction", transform=ax.transAxes, ha="center")
        return
    dots = {"s": 3, "alpha": 0.3} if len(x) > CROWDED else {"s": 14, "alpha": 0.8}
    ax.scatter(x, resid, color=colour, linewidths=0, rasterized=True, **dots)
    centres, medians = _binned_medians(x, resid, bins)
    if not np.all(np.isnan(medians)):
        halo = [patheffects.withStroke(linewidth=3, foreground="white")]
        ax.plot(centres, medians, color=MEDIAN_COLOR, linewidth=1.5, path_effects=halo)
    ax.axhline(0.0, color="0.3", linewidth=0.8)
    rms = float(np.sqrt(np.mean(resid**2)))
    ax.text(
        0.03,
        0.95,
        f"RMS {number(rms)}{unit}",
        transform=ax.transAxes,
        va="top",
        fontsize=7 if narrow else 8,
        bbox={"facecolor": "white", "alpha": 0.8, "linewidth": 0, "pad": 1},
    )


def _grid(n: int) -> tuple[int, int]:
    """Rows and columns of the small multiples of ``n`` panels."""
    columns = min(n, GRID_COLUMNS if n <= GRID_COLUMNS**2 else WIDE_GRID_COLUMNS)
    return -(-n // columns), columns


def _shared_y(panels: list[tuple[np.ndarray, np.ndarray]]) -> bool:
    """Whether the panels share a y scale: always beyond :data:`GRID_COLUMNS` x 2 panels
    (narrow panels need their width for data, not tick labels, and many panels are read by
    comparison), else unless their residual spreads differ by more than
    :data:`SHARED_Y_SPREAD` (one rate far off would flatten every other panel)."""
    if len(panels) > 2 * GRID_COLUMNS:
        return True
    spreads = [float(np.ptp(np.percentile(r, [1, 99]))) for _, r in panels if r.size]
    positive = [s for s in spreads if s > 0]
    return not positive or max(positive) <= SHARED_Y_SPREAD * min(positive)


def plot_residuals(results: SavedResults, epoch: int | None = None, bins: int = 20) -> Figure:
    """Predicted minus true target (in its log space if it is logged) vs the input in catalog
    units: small multiples, one panel per learning rate, with the binned median and the RMS.

    Panels share their axes unless the residuals' spreads differ by more than a factor
    :data:`SHARED_Y_SPREAD` (said in the title). Rates that diverged are left out (named in
    the title) when others trained to the end; if every rate diverged, each is drawn with its
    last finite weights.
    """
    from matplotlib.ticker import MaxNLocator

    check_one_input_and_output(results, "residuals")
    target, feature = results.target, results.features[0]
    rates = drawn_rates(results)
    shown = {lr: results.weights_epoch(lr, epoch) for lr in rates}
    panels = [_finite_residuals(results, lr, shown[lr]) for lr in rates]
    rows, columns = _grid(max(len(rates), 1))
    size = None if columns == 1 else (WIDE[0], max(WIDE[1], 1.2 + PANEL_HEIGHT * rows))
    fig = new_figure(size)
    shared = _shared_y(panels)
    axes = fig.subplots(rows, columns, sharex=True, sharey=shared, squeeze=False).ravel()
    y_log = "log10" in target.transforms
    unit = "dex" if y_log else results.unit(target.column)
    colours = rate_colors(results.learning_rates)
    x_log = "log10" in feature.transforms  # residuals() gives the input in its log space
    for ax, lr, (x, resid) in zip(axes, rates, panels, strict=False):
        narrow = columns > GRID_COLUMNS
        _residual_panel(ax, x, resid, colours[lr], bins, f" {unit}" if unit else "", narrow)
        title = f"{lr_label(lr)}{weights_note(results, lr)}"
        ax.set_title(title, fontsize=8 if columns > 1 else None)
    for ax in axes[len(rates) :]:
        ax.set_axis_off()
    axes[0].xaxis.set_major_locator(MaxNLocator(4 if columns <= GRID_COLUMNS else 3))
    for ax in axes[max(len(rates) - columns, 0) : len(rates)]:
        ax.set_xlabel(axis_label(feature.column, results.unit(feature.column), x_log))
        ax.xaxis.set_tick_params(labelbottom=True)
    prefix = "log$_{10}$ " if y_log else ""
    label = f"predicted - true {prefix}{target.column}" + (f" [{unit}]" if unit else "")
    fig.supylabel(label, fontsize=9)
    epochs = sorted(set(shown.values()) - {None})
    when = f"after epoch {epochs[0]}" if len(epochs) == 1 else "at each rate's last finite row"
    fig.suptitle(
        f"Residuals of the network's prediction, {when}"
        + ("" if shared else "\neach panel on its own y scale")
        + _left_out_note(results, rates)
    )
    add_caption(
        fig,
        f"{run_caption(results)}. Black line (white halo): median residual in {bins} bins "
        f"of the input (bins of {MIN_BIN}+ rows)",
    )
    return fig


def _left_out_note(results: SavedResults, rates: list[float]) -> str:
    left_out = [lr for lr in results.learning_rates if lr not in rates]
    if not left_out:
        return ""
    names = ", ".join(f"{lr_label(lr)} (epoch {results.divergence(lr).epoch})" for lr in left_out)
    return f"\nnot drawn, diverged: {names}"


def residuals_figure(source: str | Path | SavedResults, epoch: int | None = None) -> Path:
    """Write ``residuals.png`` and ``.pdf`` into a run or sweep folder."""
    results = as_results(source)
    return write_figure(lambda: plot_residuals(results, epoch), results.folder, "residuals")

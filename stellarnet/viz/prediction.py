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
from stellarnet.viz.divergence import (
    diverged_rates,
    drawn_rates,
    finite_curve,
    note_off_axes,
    weights_note,
)
from stellarnet.viz.style import (
    WIDE,
    axis_label,
    lr_color,
    new_figure,
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
    """The stars, coloured by :data:`COLOR_COLUMN` (with a colour bar) when the catalog has it,
    else grey; gid ``catalog`` so that tests find them."""
    colour: dict[str, Any] = {"color": "0.4", "alpha": 0.5}
    if COLOR_COLUMN in stars.columns:
        colour = {"c": stars[COLOR_COLUMN].to_numpy(dtype=float), "cmap": "RdYlBu_r", "alpha": 0.7}
    points = ax.scatter(x, y, s=3, linewidths=0, zorder=2, rasterized=True, gid="catalog", **colour)
    if COLOR_COLUMN in stars.columns:
        fig.colorbar(points, ax=ax, label=axis_label(COLOR_COLUMN, results.unit(COLOR_COLUMN)))


def _prediction_curves(ax: Axes, results: SavedResults, epoch: int | None) -> dict:
    """Each learning rate's prediction (log Teff on x, log L on y); return the lines drawn
    by learning rate. A diverged rate is drawn with its last finite weights, and a rate with
    none is named in the legend only."""
    lines = {}
    for position, lr in enumerate(results.learning_rates):
        shown = results.weights_epoch(lr, epoch)
        if shown is None:
            label = f"network, {status_label(results, lr)}: no finite weights, not drawn"
            ax.plot([], [], color=lr_color(position), linewidth=2, label=label)
            continue
        curve_x, curve_y = finite_curve(prediction_curve(results, lr, shown))
        loss = network_loss(results, results.layers(lr, shown))
        (lines[lr],) = ax.plot(
            curve_y,
            curve_x,
            color=lr_color(position),
            linewidth=2,
            zorder=4,
            label=f"network, {lr_label(lr)}{weights_note(results, lr, wrap=True)}, after "
            f"epoch {shown} (loss {loss:.4g})",
        )
    return lines


def plot_hr(results: SavedResults, epoch: int | None = None) -> Figure:
    """The catalog as log L vs log Teff (Teff axis reversed), points coloured by BP-RP and
    shaded by density when crowded, with the network's prediction curve per learning rate."""
    check_one_input_and_output(results, "HR relation")
    frame = results.catalog()
    feature, target = results.features[0], results.target
    stars = frame.loc[valid_rows(frame, [feature, target])]
    x_values, x_log = _log_values(stars, target)
    y_values, y_log = _log_values(stars, feature)
    fig = new_figure()
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
    fig.legend(loc="outside lower center", ncol=1, fontsize=7, frameon=False)
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


def _residual_panel(
    ax: Axes, results: SavedResults, position: int, epoch: int | None, bins: int
) -> float:
    """One learning rate's residuals vs the input with their binned median; return the RMS.
    Few rows are drawn larger and opaque: the faint dots that keep 2000 stars legible would
    all but vanish."""
    lr = results.learning_rates[position]
    x, resid = residuals(results, lr, epoch)
    if not np.all(np.isfinite(resid)):  # the weights of a diverging run overflowed
        keep = np.isfinite(resid)
        x, resid = x[keep], resid[keep]
        if not keep.any():
            return float("nan")
    dots = {"s": 3, "alpha": 0.3} if len(x) > CROWDED else {"s": 14, "alpha": 0.8}
    ax.scatter(x, resid, color=lr_color(position), linewidths=0, rasterized=True, **dots)
    centres, medians = _binned_medians(x, resid, bins)
    if not np.all(np.isnan(medians)):
        ax.plot(
            centres,
            medians,
            color="tab:orange",
            linewidth=2,
            label=f"median in bins of {MIN_BIN}+ rows",
        )
        ax.legend(loc="best")
    ax.axhline(0.0, color="0.3", linewidth=0.8)
    feature = results.features[0]
    x_log = "log10" in feature.transforms
    ax.set_xlabel(axis_label(feature.column, results.unit(feature.column), x_log))
    return float(np.sqrt(np.mean(resid**2)))


def plot_residuals(results: SavedResults, epoch: int | None = None, bins: int = 20) -> Figure:
    """Predicted minus true target (in its log space if it is logged) vs the input in catalog
    units, one panel per learning rate, with the binned median and the RMS.

    Rates that diverged are left out (named in the title) when others trained to the end;
    if every rate diverged, each is drawn with its last finite weights on its own y scale.
    """
    check_one_input_and_output(results, "residuals")
    target = results.target
    rates = drawn_rates(results)
    fig = new_figure(WIDE if len(rates) > 1 else None)
    diverged = bool(rates) and results.divergence(rates[0]) is not None
    axes = fig.subplots(1, max(len(rates), 1), sharey=not diverged, squeeze=False)[0]
    y_log = "log10" in target.transforms
    unit = "dex" if y_log else results.unit(target.column)
    unit_text = f" {unit}" if unit else ""
    for ax, lr in zip(axes, rates, strict=False):
        shown = results.weights_epoch(lr, epoch)
        rms = _residual_panel(ax, results, results.learning_rates.index(lr), shown, bins)
        if diverged:
            ax.set_title(
                f"{status_label(results, lr)}:\nlast finite weights (epoch {shown}), "
                f"RMS {rms:.3g}{unit_text}",
                fontsize=8,
            )
        else:
            ax.set_title(f"{lr_label(lr)}, after epoch {shown}: RMS {rms:.3f}{unit_text}")
    prefix = "log$_{10}$ " if y_log else ""
    axes[0].set_ylabel(f"predicted - true {prefix}{target.column}" + (f" [{unit}]" if unit else ""))
    fig.suptitle("Residuals of the network's prediction" + _left_out_note(results, rates))
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

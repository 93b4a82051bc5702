"""Figures of the galaxy-size experiments (``experiments/galaxy_sizes*.toml``), and of any
run whose one input and one output are catalog columns as they are (no transforms), so that
the network's curve can be drawn over the data in catalog units.

Like every stellarnet figure they are read from a results folder by
:func:`~stellarnet.results.saved.load_results` (the history, ``run.json``, and the catalog
that ``run.json`` names, checked against its recorded sha256), drawn in the shared style and
written as PNG and PDF by :mod:`stellarnet.viz.style`:

:func:`fit_figure` (``fit.png``/``.pdf``)
    The data (HST vs JWST half-light radius, arcsec) with the network's fitted curve after
    the last step, one per learning rate, and the initial curve.
:func:`loss_steps_figure` (``loss_steps.png``/``.pdf``)
    Loss vs gradient-descent step, one line per learning rate, on a log axis when the loss
    spans more than two decades.

Axes are labelled in catalog units (no log10: these runs transform nothing), legends stand
beside the axes, and a caption under each figure names the catalog, the rows trained on,
the optimiser and the initial weights (:func:`stellarnet.viz.captions.run_caption`).

``stellarnet figures galaxy_sizes`` draws them with the rest; to draw only these two for
every galaxy run under ``results/``::

    python -m stellarnet.viz.galaxy [RESULTS_DIR]
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from stellarnet.errors import StellarnetError
from stellarnet.results.analysis import network_loss, prediction_curve
from stellarnet.results.saved import RUN_JSON, SavedResults, as_results, lr_label
from stellarnet.viz.captions import add_caption, run_caption
from stellarnet.viz.divergence import diverged_rates, finite_curve, note_off_axes, weights_note
from stellarnet.viz.style import (
    LOSS_LABELS,
    WIDE,
    axis_label,
    loss_unit,
    new_figure,
    number,
    rate_colorbar,
    rate_colors,
    uses_colorbar,
    write_figure,
)
from stellarnet.viz.training import draw_loss_lines, loss_legend, rates_title, status_label

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

EXPERIMENTS = ("galaxy_sizes", "galaxy_sizes_single")
"""Experiment folders :func:`galaxy_figures` looks for under the results folder."""

FIT_POINTS = 300
REACH = 1.05
"""The fitted curve runs from input 0 (where a ReLU net's kinks show) to this much beyond
the largest input."""
FEW = 5
"""Up to this many trained galaxies are drawn larger, to stand out among the others."""
DATA_COLOR = "0.5"
"""Grey of the galaxies, light enough that the darkest learning-rate line stands out."""


def fits_in_catalog_units(results: SavedResults) -> bool:
    """Whether the run maps one untransformed column to one untransformed column, so that the
    fit can be drawn in catalog units."""
    specs = (*results.features, results.target)
    return (
        len(results.features) == 1
        and results.layer_sizes[-1] == 1
        and not any(spec.transforms for spec in specs)
    )


def _trained_rows(results: SavedResults, rows: int) -> np.ndarray:
    """Per catalog row, whether the run's ``[dataset] rows`` selected it (all by default)."""
    trained = np.zeros(rows, dtype=bool)
    selected = results.config["dataset"].get("rows")
    trained[selected if selected is not None else slice(None)] = True
    return trained


def _draw_galaxies(ax: Axes, results: SavedResults, x_name: str, y_name: str) -> float:
    """The catalog's galaxies: filled those the run trained on, hollow the others; return the
    largest input."""
    catalog = results.catalog()
    trained = _trained_rows(results, len(catalog))
    x, y = catalog[x_name].to_numpy(dtype=float), catalog[y_name].to_numpy(dtype=float)
    label = f"trained on ({trained.sum()})"
    ax.scatter(
        x[trained],
        y[trained],
        s=20 if trained.sum() > FEW else 45,
        color=DATA_COLOR,
        edgecolors="white",
        linewidths=0.6,
        label=label,
        zorder=5,  # above the curves: a single trained galaxy sits on its fitted line
    )
    if not trained.all():
        ax.scatter(
            x[~trained],
            y[~trained],
            s=16,
            facecolors="none",
            edgecolors=DATA_COLOR,
            linewidths=0.8,
            label="other galaxies",
            zorder=2,
        )
    return float(np.nanmax(x))


def plot_fit(results: SavedResults) -> Figure:
    """The data and the fitted network of a run (or of each rate of a sweep), in catalog units.

    The network is evaluated with the last history row's parameters (after the last step)
    by :func:`stellarnet.results.analysis.prediction_curve`; the dashed curve is the initial
    network (row 0). Rows the run trained on (``[dataset] rows``) are drawn filled, the
    others hollow. The legend, beside the axes, gives each network's loss on the rows it
    trained on (beyond :data:`~stellarnet.viz.style.MAX_LEGEND_RATES` rates a colour bar
    names the rates instead); the caption says which rows, in which units.

    Raises
    ------
    StellarnetError
        If the run has more than one feature or transformed columns (the curve is drawn in
        catalog units), or its catalog is missing or changed.
    """
    if not fits_in_catalog_units(results):
        raise StellarnetError(
            f"{results.folder}: the fit figure draws one untransformed feature against an "
            "untransformed target"
        )
    x_name, y_name = results.features[0].column, results.target.column
    fig = new_figure(WIDE)
    ax = fig.add_subplot()
    grid = np.linspace(0.0, REACH * _draw_galaxies(ax, results, x_name, y_name), FIT_POINTS)
    ax.plot(grid, grid, ls=":", color="0.5", lw=1, label="JWST = HST", zorder=1)
    drawable = [lr for lr in results.learning_rates if results.weights_epoch(lr) is not None]
    if drawable:
        first = drawable[0]
        ax.plot(
            *prediction_curve(results, first, 0, inputs=grid),
            ls="--",
            color="0.35",
            lw=1,
            label="initial network",
            zorder=3,
        )
    lines = {}
    colours = rate_colors(results.learning_rates)
    many = uses_colorbar(results.learning_rates)
    for lr in results.learning_rates:
        steps = results.weights_epoch(lr)
        if steps is None:
            label = f"{status_label(results, lr)}: no finite weights"
            ax.plot([], [], color=colours[lr], lw=2, label=None if many else label)
            continue
        loss = network_loss(results, results.layers(lr, steps))
        label = (
            f"{lr_label(lr)}{weights_note(results, lr, wrap=True)},\nafter {steps} steps "
            f"(loss {number(loss)})"
        )
        (lines[lr],) = ax.plot(
            *finite_curve(prediction_curve(results, lr, steps, inputs=grid)),
            color=colours[lr],
            lw=2 if not many else 1.2,
            label=None if many else label,
            zorder=4,
        )
    if diverged_rates(results):
        _fit_range(ax, results, lines)
    ax.set_xlabel(axis_label(x_name, results.unit(x_name)))
    ax.set_ylabel(axis_label(y_name, results.unit(y_name)))
    ax.set_title(f"{results.experiment}: data and fitted network ({rates_title(results)})")
    if many:
        rate_colorbar(fig, ax, results.learning_rates)
    fig.legend(loc="outside right upper", fontsize=7, frameon=False)
    note = "" if many else f". {_fit_note(results)}"  # many rates: no losses in a legend
    add_caption(fig, f"{run_caption(results, wild=True)}{note}")
    return fig


def _fit_note(results: SavedResults) -> str:
    """What the fit figure's losses are: which loss, on which rows, in which unit."""
    loss_name = LOSS_LABELS.get(results.loss_name, results.loss_name)
    unit = loss_unit(results.target.transforms, results.unit(results.target.column))
    rows = len(results.part("train")[1])
    return (
        f"Loss in the legend: {loss_name} of the network drawn on the {rows} training "
        f"row{'s' if rows != 1 else ''}" + (f" [{unit}]" if unit else "")
    )


def _fit_range(ax: Axes, results: SavedResults, lines: dict) -> None:
    """The y range of the galaxies and the networks that trained to the end, so that a
    diverged network's curve does not squash them; say so if it lies off the axes."""
    catalog = results.catalog()
    values = [catalog[results.target.column].to_numpy(dtype=float)]
    values += [
        np.asarray(line.get_ydata(), dtype=float)
        for lr, line in lines.items()
        if results.divergence(lr) is None
    ]
    finite = np.concatenate(values)
    finite = finite[np.isfinite(finite)]
    low, high = float(finite.min()), float(finite.max())
    pad = 0.05 * max(high - low, 1e-9)
    ax.set_ylim(min(low, 0.0) - pad, high + pad)
    note_off_axes(ax, results, lines)


def plot_loss_steps(results: SavedResults) -> Figure:
    """Loss vs gradient-descent step, one line per learning rate, on a log axis when the
    loss spans more than two decades (:func:`stellarnet.viz.training.draw_loss_lines`).

    The x axis is the history's epoch k (one full-batch step per epoch); its loss is the one
    computed with the parameters *before* step k, whose gradient step k took. Row 0 (the
    same initial loss as row 1) is left out. With mini-batches an epoch takes several steps
    and its loss is their mean: the axis then says epoch.
    """
    fig = new_figure()
    ax = fig.add_subplot()
    draw_loss_lines(ax, results)
    unit = loss_unit(results.target.transforms, results.unit(results.target.column))
    unit = f" [{unit}]" if unit else ""
    if results.config["training"].get("batch_size"):
        ax.set_xlabel("Epoch k")
        ax.set_ylabel(f"Mean loss over epoch k's steps{unit}")
    else:
        ax.set_xlabel("Gradient-descent step k")
        ax.set_ylabel(f"Loss before step k{unit}")
    ax.set_title(f"{results.experiment}: loss vs gradient-descent step")
    loss_legend(fig, ax, results)
    loss_name = LOSS_LABELS.get(results.loss_name, results.loss_name)
    rows = len(results.part("train")[1])
    when = (
        "the mean over each epoch's steps, each computed before its step's update"
        if results.config["training"].get("batch_size")
        else "computed before the step's update"
    )
    add_caption(
        fig,
        f"{run_caption(results, wild=True)}. Loss: {loss_name} on the {rows} training "
        f"row{'s' if rows != 1 else ''}, {when}",
    )
    return fig


def fit_figure(source: str | Path | SavedResults, name: str = "fit.png") -> Path:
    """Write :func:`plot_fit` as ``<folder>/fit.png`` and ``.pdf``; return the PNG path."""
    results = as_results(source)
    return write_figure(lambda: plot_fit(results), results.folder, Path(name).stem)


def loss_steps_figure(source: str | Path | SavedResults, name: str = "loss_steps.png") -> Path:
    """Write :func:`plot_loss_steps` as ``<folder>/loss_steps.png`` and ``.pdf``."""
    results = as_results(source)
    return write_figure(lambda: plot_loss_steps(results), results.folder, Path(name).stem)


def galaxy_figures(results_dir: str | Path = "results") -> list[Path]:
    """Draw both figures for every galaxy run and sweep folder under ``results_dir``."""
    written = []
    for experiment in EXPERIMENTS:
        for record_path in sorted((Path(results_dir) / experiment).glob(f"**/{RUN_JSON}")):
            results = as_results(record_path.parent)
            written += [fit_figure(results), loss_steps_figure(results)]
    return written


def main(argv: list[str] | None = None) -> int:
    """``python -m stellarnet.viz.galaxy [RESULTS_DIR]``."""
    argv = sys.argv[1:] if argv is None else argv
    paths = galaxy_figures(argv[0] if argv else "results")
    for path in paths:
        print(f"wrote {path}")
    if not paths:
        print(
            "no galaxy runs found; run `stellarnet sweep galaxy_sizes --lr 0.1 0.6` first",
            file=sys.stderr,
        )
    return 0 if paths else 1


if __name__ == "__main__":
    sys.exit(main())

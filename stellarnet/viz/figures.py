"""Figures drawn from saved results only (``history.parquet`` and ``run.json``, plus the
catalog named in ``run.json``, checked by its sha256), never from live training state, so
any figure can be regenerated from ``results/`` alone, identically.

Each figure has a ``plot_*`` function that draws it from a
:class:`~stellarnet.results.saved.SavedResults` and returns the :class:`~matplotlib.figure.Figure` (no files, handy in a notebook or a test),
and a ``*_figure`` function that takes a results folder and writes ``<name>.png`` and
``<name>.pdf`` into it. :func:`regenerate` writes every figure, table and the report of one
folder; ``stellarnet figures`` calls it for each run and sweep it finds.

=====================  =====================================================  ===========
file                   what it shows                                          needs
=====================  =====================================================  ===========
``loss``               loss vs epoch, every learning rate on one axis         history
``hr``                 catalog log L vs log Teff + the network's curve        catalog
``residuals``          predicted - true log Teff vs log L, per learning rate  catalog
``parameters``         every weight and bias vs epoch, per layer              history
``gradients``          every gradient vs epoch, per layer                     history
``network``            the network diagram at one epoch (``.gif``: animated)  history
``landscape``          loss contours on the PCA plane of the training path    catalog
``history.md/.tex``    the history table, rounded, in column groups           history
``report.md/.html``    all of the above with the run's provenance             all
=====================  =====================================================  ===========

Per-run figures (parameters, gradients, network, tables) are written in run folders; a sweep
folder gets the figures that compare learning rates (loss, hr, residuals, landscape).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from stellarnet.data.datasets import ColumnSpec, transform_column, valid_rows
from stellarnet.errors import StellarnetError
from stellarnet.params import forward
from stellarnet.results.saved import (
    SavedResults,
    dead_units,
    describe_dead,
    history_row,
    load_results,
    log_space,
    lr_label,
    network_loss,
)
from stellarnet.viz.style import (
    WIDE,
    axis_label,
    loss_label,
    lr_color,
    math_name,
    new_figure,
    save_figure,
    style,
)

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

log = logging.getLogger(__name__)

HR_COLUMNS = ("Lum", "Teff")
"""Input and target columns of an HR-relation experiment: only those get the HR diagram."""
COLOR_COLUMN = "BP-RP"
"""Catalog column that colours the HR diagram's points, when the catalog has it."""
CROWDED = 1000
"""Above this many stars the HR diagram shades the point density beneath the points."""
CURVE_POINTS = 200
MIN_BIN = 5
"""Fewest rows in an input bin for the residual figure to draw its median."""


def _results(source: str | Path | SavedResults) -> SavedResults:
    return source if isinstance(source, SavedResults) else load_results(source)


def _integer_epochs(ax: Axes) -> None:
    from matplotlib.ticker import MaxNLocator

    ax.xaxis.set_major_locator(MaxNLocator(integer=True))


def _rates_title(results: SavedResults) -> str:
    return "LR=" + ", ".join(f"{lr:g}" for lr in results.learning_rates)


# ---------------------------------------------------------------------------------------
# 1. loss vs epoch


def plot_loss(results: SavedResults, log_scale: bool = False) -> Figure:
    """Loss vs epoch, one line per learning rate, titled like the assignment.

    Epoch 0 is left out: its loss is the initial model's, the same number as epoch 1's (both
    are computed before the first update).
    """
    fig = new_figure()
    ax = fig.add_subplot()
    for position, (lr, history) in enumerate(results.histories.items()):
        trained = history[history["epoch"] >= 1]
        ax.plot(
            trained["epoch"],
            trained["loss"],
            color=lr_color(position),
            label=lr_label(lr),
            marker="o" if len(trained) <= 50 else None,
            markersize=3,
        )
    ax.set_xlabel("Epoch")
    ax.set_ylabel(loss_label(results.loss_name, results.target.transforms))
    if log_scale:
        ax.set_yscale("log")
    _integer_epochs(ax)
    ax.set_title(f"Training Loss vs Epochs ({_rates_title(results)})")
    ax.legend()
    return fig


def loss_figure(run_folder: str | Path, name: str = "loss", log_scale: bool = False) -> Path:
    """Plot loss vs epoch of a run or sweep folder; write ``<folder>/<name>.png`` and ``.pdf``."""
    results = _results(run_folder)
    with style():
        return save_figure(plot_loss(results, log_scale), results.folder, Path(name).stem)


# ---------------------------------------------------------------------------------------
# 2. the HR relation with the network's prediction


def is_hr_relation(results: SavedResults) -> bool:
    """Whether the experiment predicts Teff from Lum, so that its data form an HR diagram."""
    columns = (*(spec.column for spec in results.features), results.target.column)
    return columns == HR_COLUMNS


def _check_single_feature(results: SavedResults, what: str) -> None:
    if len(results.features) != 1 or results.layer_sizes[-1] != 1:
        raise StellarnetError(
            f"the {what} figure needs one input column and one output; experiment "
            f"{results.experiment!r} has {len(results.features)} input(s)"
        )


def _log_values(frame, spec: ColumnSpec) -> tuple[np.ndarray, bool]:
    """A catalog column with its transforms up to the last log10 applied (log10 L, log10 Teff)."""
    steps = list(spec.transforms)
    upto = len(steps) - steps[::-1].index("log10") if "log10" in steps else 0
    values, _ = transform_column(
        frame[spec.column].to_numpy(dtype=float), ColumnSpec(spec.column, tuple(steps[:upto]))
    )
    return values, upto > 0


def prediction_curve(
    results: SavedResults, lr: float, epoch: int | None = None, points: int = CURVE_POINTS
) -> tuple[np.ndarray, np.ndarray]:
    """The network's prediction over the data's input range, in catalog units.

    Returns
    -------
    feature, prediction : ndarray
        The input de-normalised (e.g. log10 L) and the output mapped back to the target's
        log space (e.g. log10 Teff).
    """
    dataset = results.dataset()
    feature, target = results.features[0], results.target
    x = np.linspace(dataset.x[:, 0].min(), dataset.x[:, 0].max(), points)
    yhat, _ = forward(
        results.layers(lr, epoch), x[:, None], results.activation, results.output_activation
    )
    params = dataset.transform_params
    return log_space(x, params[feature.column])[0], log_space(yhat[:, 0], params[target.column])[0]


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


def plot_hr(results: SavedResults, epoch: int | None = None) -> Figure:
    """The catalog as log L vs log Teff (Teff axis reversed), points coloured by BP-RP and
    shaded by density when crowded, with the network's prediction curve per learning rate."""
    _check_single_feature(results, "HR relation")
    frame = results.catalog()
    feature, target = results.features[0], results.target
    stars = frame.loc[valid_rows(frame, [feature, target])]
    x_values, x_log = _log_values(stars, target)
    y_values, y_log = _log_values(stars, feature)
    fig = new_figure()
    ax = fig.add_subplot()
    crowded = len(stars) > CROWDED
    if COLOR_COLUMN in stars.columns:
        colour = stars[COLOR_COLUMN].to_numpy(dtype=float)
        points = ax.scatter(
            x_values,
            y_values,
            c=colour,
            s=3,
            cmap="RdYlBu_r",
            alpha=0.7,
            linewidths=0,
            zorder=2,
            rasterized=True,
        )
        points.set_gid("catalog")
        fig.colorbar(points, ax=ax, label=axis_label(COLOR_COLUMN, results.unit(COLOR_COLUMN)))
    else:
        ax.scatter(
            x_values,
            y_values,
            s=3,
            color="0.4",
            alpha=0.5,
            linewidths=0,
            zorder=2,
            rasterized=True,
            gid="catalog",
        )
    if crowded:
        density_contours(ax, x_values, y_values)
    curves = []
    for position, lr in enumerate(results.learning_rates):
        curve_x, curve_y = prediction_curve(results, lr, epoch)
        shown = int(history_row(results.histories[lr], epoch)["epoch"])
        loss = network_loss(results, results.layers(lr, epoch))
        ax.plot(
            curve_y,
            curve_x,
            color=lr_color(position),
            linewidth=2,
            zorder=4,
            label=f"network, {lr_label(lr)}, after epoch {shown} (loss {loss:.4g})",
        )
        curves.append(curve_y)
    ax.set_xlim(*reversed(_limits(x_values, np.concatenate(curves))))
    ax.set_ylim(*_limits(y_values, y_values))
    ax.set_xlabel(axis_label(target.column, results.unit(target.column), x_log))
    ax.set_ylabel(axis_label(feature.column, results.unit(feature.column), y_log))
    ax.set_title(f"HR relation and network prediction ({_rates_title(results)})")
    fig.legend(loc="outside lower center", ncol=1, fontsize=7, frameon=False)
    return fig


def hr_figure(run_folder: str | Path, epoch: int | None = None) -> Path:
    """Write ``hr.png`` and ``hr.pdf`` into a run or sweep folder."""
    results = _results(run_folder)
    with style():
        return save_figure(plot_hr(results, epoch), results.folder, "hr")


# ---------------------------------------------------------------------------------------
# 5. residuals


def residuals(
    results: SavedResults, lr: float, epoch: int | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Per training row: the input in catalog units (log10 L for the HR net) and predicted -
    true target in the target's log space if it is logged (log10 Teff)."""
    dataset = results.dataset()
    feature, target = results.features[0], results.target
    yhat, _ = forward(
        results.layers(lr, epoch),
        dataset.x.astype(float),
        results.activation,
        results.output_activation,
    )
    params = dataset.transform_params
    predicted = log_space(yhat[:, 0], params[target.column])[0]
    true = log_space(dataset.y[:, 0].astype(float), params[target.column])[0]
    return log_space(dataset.x[:, 0].astype(float), params[feature.column])[0], predicted - true


def plot_residuals(results: SavedResults, epoch: int | None = None, bins: int = 20) -> Figure:
    """Predicted minus true target (in its log space if it is logged) vs the input in catalog
    units, one panel per learning rate, with the binned median and the RMS."""
    _check_single_feature(results, "residuals")
    feature, target = results.features[0], results.target
    rates = results.learning_rates
    fig = new_figure(WIDE if len(rates) > 1 else None)
    axes = fig.subplots(1, len(rates), sharey=True, squeeze=False)[0]
    y_log = "log10" in target.transforms
    unit = "dex" if y_log else results.unit(target.column)
    unit_text = f" {unit}" if unit else ""
    for position, (ax, lr) in enumerate(zip(axes, rates, strict=True)):
        x, resid = residuals(results, lr, epoch)
        colour = lr_color(position)
        ax.scatter(x, resid, s=3, color=colour, alpha=0.3, linewidths=0, rasterized=True)
        edges = np.linspace(x.min(), x.max(), bins + 1)
        which = np.clip(np.digitize(x, edges) - 1, 0, bins - 1)
        centres = 0.5 * (edges[1:] + edges[:-1])
        medians = [
            np.median(resid[which == b]) if np.count_nonzero(which == b) >= MIN_BIN else np.nan
            for b in range(bins)
        ]
        ax.plot(
            centres,
            medians,
            color="tab:orange",
            linewidth=2,
            label=f"median in bins of {MIN_BIN}+ rows",
        )
        ax.axhline(0.0, color="0.3", linewidth=0.8)
        rms = float(np.sqrt(np.mean(resid**2)))
        shown = int(history_row(results.histories[lr], epoch)["epoch"])
        ax.set_title(f"{lr_label(lr)}, after epoch {shown}: RMS {rms:.3f}{unit_text}")
        ax.set_xlabel(axis_label(feature.column, results.unit(feature.column), True))
        ax.legend(loc="best")
    prefix = "log$_{10}$ " if y_log else ""
    axes[0].set_ylabel(f"predicted - true {prefix}{target.column}" + (f" [{unit}]" if unit else ""))
    fig.suptitle("Residuals of the network's prediction")
    return fig


def residuals_figure(run_folder: str | Path, epoch: int | None = None) -> Path:
    """Write ``residuals.png`` and ``.pdf`` into a run or sweep folder."""
    results = _results(run_folder)
    with style():
        return save_figure(plot_residuals(results, epoch), results.folder, "residuals")


# ---------------------------------------------------------------------------------------
# 3. parameter and gradient trajectories

KINDS = {"parameters": ("w", "b"), "gradients": ("g", "gb")}
KIND_NAMES = {"w": "weights", "b": "biases", "g": "weight gradients", "gb": "bias gradients"}


def _hidden_unit(
    layer_sizes: tuple[int, ...], layer: int, kind: str, index: int
) -> tuple[int, int] | None:
    """The hidden unit a parameter belongs to: its output unit in a hidden layer, its input
    unit in the output layer; None for the output layer's biases."""
    last = layer == len(layer_sizes) - 1
    if kind in ("b", "gb"):
        return None if last else (layer, index)
    source, target = divmod(index - 1, layer_sizes[layer])
    return (layer - 1, source + 1) if last else (layer, target + 1)


def plot_trajectories(results: SavedResults, lr: float, which: str = "parameters") -> Figure:
    """Every weight and bias (``which="parameters"``) or every gradient (``"gradients"``) vs
    epoch: one panel per layer and kind, lines coloured by the hidden unit they belong to.

    Dead hidden units (zero gradient to the end) are marked: dashed grey if dead throughout,
    a cross where a unit died during training.
    """
    from matplotlib import colormaps

    from stellarnet.params import parameter_names

    kinds = KINDS[which]
    history = results.histories[lr]
    if which == "gradients":
        history = history[history["epoch"] >= 1]
    sizes = results.layer_sizes
    dead = dead_units(results.histories[lr], sizes)
    n_layers = len(sizes) - 1
    fig = new_figure((max(WIDE[0], 3.4 * n_layers), WIDE[1] * 1.3))
    axes = fig.subplots(len(kinds), n_layers, sharex=True, squeeze=False)
    palette = colormaps["tab10"]
    for row, kind in enumerate(kinds):
        for layer in range(1, n_layers + 1):
            ax = axes[row][layer - 1]
            names = [n for n in parameter_names(sizes, kind) if n.startswith(f"{kind}^{layer}_")]
            for name in names:
                index = int(name.rsplit("_", 1)[1])
                unit = _hidden_unit(sizes, layer, kind, index)
                died = dead.get(unit) if unit else None
                label = math_name(name)
                colour = palette((unit[1] - 1) % 10) if unit else "black"
                line_style = {"color": colour, "linewidth": 1.2}
                if died == 1:
                    line_style = {"color": "0.6", "linestyle": "--", "linewidth": 1.0}
                    label += " (dead)"
                elif died is not None:
                    label += f" (dies ep. {died})"
                ax.plot(history["epoch"], history[name], label=label, **line_style)
                if died is not None and died > 1:
                    value = history.loc[history["epoch"] == died, name]
                    ax.plot([died], value, marker="x", color="black", markersize=6, zorder=3)
            ax.set_title(f"layer {layer} {KIND_NAMES[kind]}")
            if len(names) <= 12:
                ax.legend(fontsize=6, ncol=2 if len(names) > 6 else 1, loc="best")
            if row == len(kinds) - 1:
                ax.set_xlabel("Epoch")
                _integer_epochs(ax)
    title = "Parameters" if which == "parameters" else "Gradients (d loss / d parameter)"
    fig.suptitle(
        f"{title} vs epoch ({lr_label(lr)})\ndead units (zero gradient to the end): "
        f"{describe_dead(dead)}",
        fontsize=9,
    )
    return fig


def trajectories_figure(run_folder: str | Path, which: str = "parameters") -> Path:
    """Write ``parameters.png``/``.pdf`` or ``gradients.png``/``.pdf`` into a run folder."""
    results = _results(run_folder)
    lr = results.learning_rates[0]
    with style():
        return save_figure(plot_trajectories(results, lr, which), results.folder, which)


# ---------------------------------------------------------------------------------------
# everything for one folder


def regenerate(
    folder: str | Path,
    *,
    epoch: int | None = None,
    digits: int = 4,
    log_scale: bool = False,
    stride: int | None = None,
    grid: int = 41,
    catalog: str | Path | None = None,
) -> list[Path]:
    """Write every figure, table and the report of one run or sweep folder.

    Parameters
    ----------
    folder : path
        A run folder (``results/<experiment>/lr=<lr>/``) or a sweep folder.
    epoch : int, optional
        The epoch of the network diagram and of the prediction curves (default: the last).
    digits : int
        Decimal places of the table exports.
    log_scale : bool
        Loss axes on a log scale.
    stride : int, optional
        Epochs between frames of the animated network (default: every epoch, at most about
        150 frames).
    grid : int
        Points per side of the loss-landscape grid.
    catalog : path, optional
        A copy of the run's catalog (checked against the recorded sha256).

    Returns
    -------
    list of Path
        The files written (PNG, GIF, Markdown, LaTeX, HTML; each PNG has a PDF beside it).

    Raises
    ------
    StellarnetError
        If the folder is not a results folder, or the catalog is missing or changed.
    """
    from stellarnet.viz.galaxy import fit_figure, loss_steps_figure
    from stellarnet.viz.landscape import landscape_figure
    from stellarnet.viz.network import network_animation, network_figure
    from stellarnet.viz.report import write_report
    from stellarnet.viz.tables import write_tables

    results = load_results(folder, catalog)
    results.dataset()  # check the catalog first: fail before writing anything
    written = []
    with style():
        written.append(save_figure(plot_loss(results, log_scale), results.folder, "loss"))
        if not results.is_sweep:
            lr = results.learning_rates[0]
            for which in KINDS:
                written.append(
                    save_figure(plot_trajectories(results, lr, which), results.folder, which)
                )
            written.append(network_figure(results, epoch=epoch))
            written.append(
                network_animation(results, stride=stride, log_scale=True if log_scale else None)
            )
            written.extend(write_tables(results, digits=digits))
        untransformed = not any(spec.transforms for spec in (*results.features, results.target))
        if len(results.features) == 1 and results.layer_sizes[-1] == 1 and untransformed:
            # e.g. the galaxy sizes: the data and the fitted curve in catalog units
            written.append(fit_figure(results.folder))
            written.append(loss_steps_figure(results.folder))
        if len(results.features) == 1 and results.layer_sizes[-1] == 1:
            if is_hr_relation(results):
                written.append(save_figure(plot_hr(results, epoch), results.folder, "hr"))
            written.append(save_figure(plot_residuals(results, epoch), results.folder, "residuals"))
        else:
            log.info("%s: more than one input column; no HR and residual figures", folder)
        written.append(landscape_figure(results, grid=grid))
    written.extend(write_report(results, digits=digits))
    return written

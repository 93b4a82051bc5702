"""Figures drawn from saved results only (``history.parquet`` and ``run.json``, plus the
catalog named in ``run.json``, checked by its sha256), never from live training state, so
any figure can be regenerated from ``results/`` alone, identically.

Each figure has a ``plot_*`` function that draws it from a
:class:`~stellarnet.results.saved.SavedResults` and returns the
:class:`~matplotlib.figure.Figure` (no files, handy in a notebook or a test), and a
``*_figure`` function that takes a results folder (or the ``SavedResults``) and writes
``<name>.png`` and ``<name>.pdf`` into it. :func:`regenerate` writes every figure, table and
the report of one folder; ``stellarnet figures`` calls it for each run and sweep it finds.
This module is the one place to import them from; they are drawn in

* :mod:`stellarnet.viz.training`: ``loss``, ``parameters``, ``gradients``;
* :mod:`stellarnet.viz.prediction`: ``hr``, ``residuals``;
* :mod:`stellarnet.viz.galaxy`: ``fit``, ``loss_steps``;
* :mod:`stellarnet.viz.network`, :mod:`stellarnet.viz.landscape`, :mod:`stellarnet.viz.tables`
  and :mod:`stellarnet.viz.report`.

=====================  =====================================================  ===========
file                   what it shows                                          needs
=====================  =====================================================  ===========
``loss``               loss vs epoch, every learning rate on one axis         history
``hr``                 catalog log L vs log Teff + the network's curve        catalog
``residuals``          predicted - true target vs the input, per rate         catalog
``fit``                data + fitted curve, untransformed one-input nets      catalog
``loss_steps``         loss vs gradient-descent step, log scale (same nets)   history
``parameters``         every weight and bias vs epoch, per layer              history
``gradients``          every gradient vs epoch, per layer                     history
``network``            the network diagram at one epoch (``.gif``: animated)  history
``landscape``          loss contours on the PCA plane of the training path    catalog
``history.md/.tex``    the history table, rounded, in column groups           history
``report.md/.html``    all of the above with the run's provenance             all
=====================  =====================================================  ===========

Per-run figures (parameters, gradients, network, tables) are written in run folders; a sweep
folder gets the figures that compare learning rates (loss, hr, residuals, fit, loss_steps,
landscape).
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
from pathlib import Path

from stellarnet.errors import ConfigError
from stellarnet.results.saved import SavedResults, load_results
from stellarnet.viz.divergence import drawn_rates
from stellarnet.viz.freshness import FigureOptions, drawn_files, input_stats, record_drawing
from stellarnet.viz.galaxy import (
    fit_figure,
    fits_in_catalog_units,
    loss_steps_figure,
    plot_fit,
    plot_loss_steps,
)
from stellarnet.viz.landscape import compute_landscape, plot_landscape
from stellarnet.viz.network import network_animation, plot_network
from stellarnet.viz.prediction import (
    has_one_input_and_output,
    hr_figure,
    is_hr_relation,
    plot_hr,
    plot_residuals,
    residuals_figure,
)
from stellarnet.viz.report import write_report
from stellarnet.viz.style import install_caches, save_figure, style
from stellarnet.viz.tables import write_tables
from stellarnet.viz.training import (
    KINDS,
    loss_figure,
    plot_loss,
    plot_trajectories,
    trajectories_figure,
)

__all__ = [
    "fit_figure",
    "hr_figure",
    "is_hr_relation",
    "loss_figure",
    "loss_steps_figure",
    "plot_fit",
    "plot_hr",
    "plot_loss",
    "plot_loss_steps",
    "plot_residuals",
    "plot_trajectories",
    "regenerate",
    "residuals_figure",
    "trajectories_figure",
]

log = logging.getLogger(__name__)


def regenerate(
    folder: str | Path,
    *,
    epoch: int | None = None,
    digits: int = 4,
    log_scale: bool = False,
    stride: int | None = None,
    grid: int = 41,
    catalog: str | Path | None = None,
    gif: bool = True,
    explorer: bool = False,
) -> list[Path]:
    """Write every figure, table and the report of one run or sweep folder, all or nothing,
    and ``figures.json``, which records what they were drawn from and with
    (:mod:`stellarnet.viz.freshness`; ``stellarnet figures`` skips folders it shows fresh).

    The folder is checked completely first (``run.json``, the history table, ``epoch``, the
    catalog and the dataset rebuilt from it); every file is then drawn into a hidden staging
    folder inside it and moved in only once all of them were drawn. So a problem leaves the
    folder's files as they were.

    Parameters
    ----------
    folder : path
        A run folder (``results/<experiment>/lr=<lr>/``) or a sweep folder.
    epoch : int, optional
        The epoch of the network diagram and of the prediction curves (default: the last).
    digits : int
        Decimal places of the table exports.
    log_scale : bool
        Loss axes on a log scale; if False, each loss axis is logarithmic only when its
        loss spans more than two decades (:func:`stellarnet.viz.style.wants_log`).
    stride : int, optional
        Epochs between frames of the animated network (default: every epoch, thinned to at
        most 150 frames).
    grid : int
        Points per side of the loss-landscape grid.
    catalog : path, optional
        A copy of the run's catalog (checked against the recorded sha256).
    gif : bool
        Also write ``network.gif`` (run folders).
    explorer : bool
        Also write ``explorer.html`` (:mod:`stellarnet.viz.explorer`; the command does).

    Returns
    -------
    list of Path
        The files written (PNG, GIF, Markdown, LaTeX, HTML; each PNG has a PDF beside it).

    Raises
    ------
    StellarnetError
        If the folder is not a results folder, is damaged (``ResultsDamaged``, naming each
        problem and the fix), ``epoch`` was not recorded, or the catalog is missing or changed.
    """
    options = FigureOptions(
        epoch=epoch,
        digits=digits,
        log_scale=log_scale,
        stride=stride,
        grid=grid,
        catalog=None if catalog is None else str(catalog),
        gif=gif,
        explorer=explorer,
    )
    inputs = input_stats(folder)  # before reading: an input changed meanwhile stays stale
    install_caches()  # before the first figure (the GIF's frames are drawn, not saved)
    results = load_results(folder, catalog)
    results.check_epoch(epoch)
    if grid < 3:
        raise ConfigError(f"the landscape grid needs at least 3 points per side, got {grid}")
    results.dataset()  # the catalog and the rebuilt dataset: fail before drawing anything
    staging = Path(tempfile.mkdtemp(prefix=".figures-", dir=results.folder))
    try:
        with style():
            log_axis = True if log_scale else None  # None: log when the loss spans decades
            written = [save_figure(plot_loss(results, log_axis), staging, "loss")]
            if not results.is_sweep:
                written += _run_figures(results, staging, epoch, stride, log_axis, gif)
                written += write_tables(results, digits=digits, folder=staging)
            written += _prediction_figures(results, staging, epoch)
            landscape = None
            if drawn_rates(results):
                landscape = compute_landscape(results, grid=grid)
                written.append(
                    save_figure(plot_landscape(results, landscape), staging, "landscape")
                )
        written += write_report(results, digits=digits, folder=staging)
        if explorer:  # the landscape just computed, not a second one
            from stellarnet.viz.explorer import write_explorer

            written.append(write_explorer(results, grid, folder=staging, landscape=landscape))
        names = [name for path in written for name in _with_pdf(path)]
        for name in names:
            os.replace(staging / name, results.folder / name)
        for name in set(drawn_files(results.folder)) - set(names):  # e.g. a GIF, --no-gif
            (results.folder / name).unlink(missing_ok=True)  # drawn before, now out of date
        record_drawing(results.folder, options, names, inputs)
        return [results.folder / path.name for path in written]
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _with_pdf(path: Path) -> list[str]:
    """A written file's name, and its PDF's for a figure's PNG."""
    return [path.name, path.with_suffix(".pdf").name] if path.suffix == ".png" else [path.name]


def _run_figures(
    results: SavedResults,
    out: Path,
    epoch: int | None,
    stride: int | None,
    log_axis: bool | None,
    gif: bool,
) -> list[Path]:
    """The figures of one run's own training: trajectories and the network (still, and
    animated if ``gif``, its loss panel on a log axis if ``log_axis``, or by the automatic
    rule if None); for a run without a finite row, only the trajectories (empty, with the
    note)."""
    lr = results.learning_rates[0]
    written = [save_figure(plot_trajectories(results, lr, which), out, which) for which in KINDS]
    if results.weights_epoch(lr) is None:
        log.warning("%s: %s has no finite row; no network diagram", results.folder, lr)
        return written
    written.append(save_figure(plot_network(results, epoch=epoch), out, "network"))
    if gif:
        written.append(network_animation(results, stride=stride, log_scale=log_axis, folder=out))
    return written


def _prediction_figures(results: SavedResults, out: Path, epoch: int | None) -> list[Path]:
    """The figures that set the network's prediction against the data, for one-input nets:
    in catalog units if untransformed (the galaxy sizes), the HR diagram, the residuals."""
    if not has_one_input_and_output(results):
        log.info("%s: more than one input column; no HR and residual figures", results.folder)
        return []
    written = []
    if fits_in_catalog_units(results):
        written += [
            save_figure(plot_fit(results), out, "fit"),
            save_figure(plot_loss_steps(results), out, "loss_steps"),
        ]
    if is_hr_relation(results):
        written.append(save_figure(plot_hr(results, epoch), out, "hr"))
    written.append(save_figure(plot_residuals(results, epoch), out, "residuals"))
    return written

"""Figures drawn from saved results only (``history.parquet`` and ``run.json``, plus the
catalog named in ``run.json``, checked by its sha256), never from live training state, so
any figure can be regenerated from ``results/`` alone, identically.

Each figure has a ``plot_*`` function that draws it from a
:class:`~stellarnet.results.saved.SavedResults` and returns the
:class:`~matplotlib.figure.Figure` (no files, handy in a notebook or a test), and a
``*_figure`` function that takes a results folder (or the ``SavedResults``) and writes
``<name>.png`` and ``<name>.pdf`` into it. :func:`regenerate` writes every figure, table and
the report of one folder; ``stellarnet figures`` does the same for each run and sweep it
finds, in two parts per folder drawn side by side (:func:`stage`, :func:`draw_part`,
:func:`commit`; :mod:`stellarnet.viz.drawing`).
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
from dataclasses import dataclass
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


PARTS = ("figures", "pages")
"""A folder's drawing in two parts, which :mod:`stellarnet.viz.drawing` may draw in two
processes at once: its figures and tables; and its pages, the landscape (and the explorer,
which shows it) and the animated network."""


@dataclass(frozen=True)
class StagedFolder:
    """A folder being drawn (:func:`stage`): checked, with a hidden staging folder inside it
    that its parts are drawn into (:func:`draw_part`) and that :func:`commit` moves in."""

    folder: Path
    staging: Path
    options: FigureOptions
    inputs: dict[str, list[int]]
    """:func:`~stellarnet.viz.freshness.input_stats` before reading the folder."""


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
    staged, results = stage(folder, options)
    try:
        names = [name for part in PARTS for name in draw_part(staged, part, results)]
        return commit(staged, names, results)
    finally:
        discard(staged)


def stage(folder: str | Path, options: FigureOptions) -> tuple[StagedFolder, SavedResults]:
    """Check the folder completely (as :func:`regenerate` says) and make its staging folder;
    return it and the results read.

    Raises
    ------
    StellarnetError
        As :func:`regenerate`.
    """
    inputs = input_stats(folder)  # before reading: an input changed meanwhile stays stale
    results = load_results(folder, options.catalog)
    results.check_epoch(options.epoch)
    if options.grid < 3:
        raise ConfigError(
            f"the landscape grid needs at least 3 points per side, got {options.grid}"
        )
    results.dataset()  # the catalog and the rebuilt dataset: fail before drawing anything
    staging = Path(tempfile.mkdtemp(prefix=".figures-", dir=results.folder))
    return StagedFolder(results.folder, staging, options, inputs), results


def draw_part(staged: StagedFolder, part: str, results: SavedResults | None = None) -> list[str]:
    """Draw one of :data:`PARTS` of a staged folder into its staging folder; return the names
    of the files written (a PNG's PDF not listed). ``results``: the folder's, if already
    read in this process."""
    if part not in PARTS:
        raise ValueError(f"part must be one of {PARTS}, got {part!r}")
    install_caches()  # before the first figure (the GIF's frames are drawn, not saved)
    options, out = staged.options, staged.staging
    if results is None:
        results = load_results(staged.folder, options.catalog)
    log_axis = True if options.log_scale else None  # None: log when the loss spans decades
    with style():
        if part == "figures":
            written = [save_figure(plot_loss(results, log_axis), out, "loss")]
            if not results.is_sweep:
                written += _run_figures(results, out, options.epoch)
                written += write_tables(results, digits=options.digits, folder=out)
            written += _prediction_figures(results, out, options.epoch)
        else:
            written = _pages(results, out, options, log_axis)
    return [path.name for path in written]


def commit(
    staged: StagedFolder, names: list[str], results: SavedResults | None = None
) -> list[Path]:
    """Write the report of the staged files (its figures) and move them all into the folder;
    remove the files of an older drawing not drawn now; write ``figures.json``. Returns the
    files, as :func:`regenerate`. ``results``: the folder's, if already read."""
    if results is None:
        results = load_results(staged.folder, staged.options.catalog)
    report = write_report(results, digits=staged.options.digits, folder=staged.staging)
    names = [*names, *(path.name for path in report)]
    moved = [name for listed in names for name in _with_pdf(listed)]
    for name in moved:
        os.replace(staged.staging / name, staged.folder / name)
    for name in set(drawn_files(staged.folder)) - set(moved):  # e.g. a GIF, --no-gif
        (staged.folder / name).unlink(missing_ok=True)  # drawn before, now out of date
    record_drawing(staged.folder, staged.options, moved, staged.inputs)
    return [staged.folder / name for name in names]


def discard(staged: StagedFolder) -> None:
    """Remove the staging folder (and whatever was drawn into it and not moved in)."""
    shutil.rmtree(staged.staging, ignore_errors=True)


def _with_pdf(name: str) -> list[str]:
    """A written file's name, and its PDF's for a figure's PNG."""
    return [name, name[:-4] + ".pdf"] if name.endswith(".png") else [name]


def _run_figures(results: SavedResults, out: Path, epoch: int | None) -> list[Path]:
    """The figures of one run's own training: trajectories and the network; for a run
    without a finite row, only the trajectories (empty, with the note)."""
    lr = results.learning_rates[0]
    written = [save_figure(plot_trajectories(results, lr, which), out, which) for which in KINDS]
    if not _has_weights(results):
        log.warning("%s: %s has no finite row; no network diagram", results.folder, lr)
        return written
    written.append(save_figure(plot_network(results, epoch=epoch), out, "network"))
    return written


def _pages(
    results: SavedResults, out: Path, options: FigureOptions, log_axis: bool | None
) -> list[Path]:
    """The landscape (and the explorer, which shows it, if asked) and, for a run with a
    finite row, the animated network if asked (its loss panel as ``log_axis`` says)."""
    written = []
    landscape = None
    if drawn_rates(results):
        landscape = compute_landscape(results, grid=options.grid)
        written.append(save_figure(plot_landscape(results, landscape), out, "landscape"))
    if options.gif and not results.is_sweep and _has_weights(results):
        written.append(
            network_animation(results, stride=options.stride, log_scale=log_axis, folder=out)
        )
    if options.explorer:  # the landscape just computed, not a second one
        from stellarnet.viz.explorer import write_explorer

        written.append(write_explorer(results, options.grid, folder=out, landscape=landscape))
    return written


def _has_weights(results: SavedResults) -> bool:
    """Whether a run has a finite row (weights to draw the network with)."""
    return results.weights_epoch(results.learning_rates[0]) is not None


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

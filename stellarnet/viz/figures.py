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
from pathlib import Path

from stellarnet.results.saved import SavedResults, load_results
from stellarnet.viz.galaxy import (
    fit_figure,
    fits_in_catalog_units,
    loss_steps_figure,
    plot_fit,
    plot_loss_steps,
)
from stellarnet.viz.landscape import landscape_figure
from stellarnet.viz.network import network_animation, network_figure
from stellarnet.viz.prediction import (
    has_one_input_and_output,
    hr_figure,
    is_hr_relation,
    plot_hr,
    plot_residuals,
    residuals_figure,
)
from stellarnet.viz.report import write_report
from stellarnet.viz.style import save_figure, style
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
    results = load_results(folder, catalog)
    results.dataset()  # check the catalog first: fail before writing anything
    with style():
        written = [save_figure(plot_loss(results, log_scale), results.folder, "loss")]
        if not results.is_sweep:
            written += _run_figures(results, epoch, stride, log_scale)
            written += write_tables(results, digits=digits)
        written += _prediction_figures(results, epoch)
        written.append(landscape_figure(results, grid=grid))
    written += write_report(results, digits=digits)
    return written


def _run_figures(
    results: SavedResults, epoch: int | None, stride: int | None, log_scale: bool
) -> list[Path]:
    """The figures of one run's own training: trajectories and the network (still, animated)."""
    lr = results.learning_rates[0]
    written = [
        save_figure(plot_trajectories(results, lr, which), results.folder, which) for which in KINDS
    ]
    written.append(network_figure(results, epoch=epoch))
    written.append(network_animation(results, stride=stride, log_scale=True if log_scale else None))
    return written


def _prediction_figures(results: SavedResults, epoch: int | None) -> list[Path]:
    """The figures that set the network's prediction against the data, for one-input nets:
    in catalog units if untransformed (the galaxy sizes), the HR diagram, the residuals."""
    if not has_one_input_and_output(results):
        log.info("%s: more than one input column; no HR and residual figures", results.folder)
        return []
    written = []
    if fits_in_catalog_units(results):
        written += [fit_figure(results), loss_steps_figure(results)]
    if is_hr_relation(results):
        written.append(save_figure(plot_hr(results, epoch), results.folder, "hr"))
    written.append(save_figure(plot_residuals(results, epoch), results.folder, "residuals"))
    return written

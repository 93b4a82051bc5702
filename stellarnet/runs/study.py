"""Studies: learning rates x seeds (x hidden widths) in one command, the distribution instead
of one draw.

``run_study`` trains every member of the grid (:mod:`stellarnet.runs.study_grid`) in parts,
one stacked graph each (:mod:`stellarnet.runs.study_part`), here part after part or on Dask
workers (:mod:`stellarnet.runs.study_dask`), and writes
``results/<experiment>/study[-notebook]-lr=<rates>,seeds=<n>[,<tags>]/``:

``history/lr=<rate>/hidden=<width>/part-<n>.parquet``
    Every member's rows (:mod:`stellarnet.results.study_parts`), streamed part by part.
``members.csv``
    One row of statistics per member; ``summary.csv`` one row per grid cell
    (:mod:`stellarnet.results.study_summary`).
``run.json``, ``report.md``, figures
    The record (config, grid, catalog, parts, where it ran, wall time), the answer in words,
    and the figures (:mod:`stellarnet.viz.study`).

Like every result it is written to a staging folder and swapped in when complete; an
existing study is replaced only with ``force``.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from stellarnet.errors import ConfigError
from stellarnet.files import atomic_write, write_json
from stellarnet.results.folders import prepare_folder, result_folder, staged_result
from stellarnet.results.history import format_bytes
from stellarnet.results.names import DEFAULT_INIT, bounded, rates_text
from stellarnet.results.saved import RUN_JSON
from stellarnet.results.study_parts import HISTORY_DIR
from stellarnet.results.study_summary import MEMBER_COLUMNS, cell_summary
from stellarnet.runs.config import ExperimentConfig
from stellarnet.runs.experiment import load_data, run_record
from stellarnet.runs.naming import config_tags
from stellarnet.runs.study_grid import StudySpec, part_size, plan_parts
from stellarnet.runs.study_part import ENGINE, PartTask, check_studyable, study_data, train_part
from stellarnet.schema import HistorySchema

log = logging.getLogger(__name__)

STUDY = "study"
SUMMARY_CSV = "summary.csv"
MEMBERS_CSV = "members.csv"


@dataclass
class StudyResult:
    """What a study produced: its folder, the per-cell summary, the per-member statistics
    and its ``run.json`` record."""

    folder: Path
    summary: pd.DataFrame
    members: pd.DataFrame
    record: dict[str, Any]


def study_config(config: ExperimentConfig, spec: StudySpec) -> ExperimentConfig:
    """``config`` as the members train: the study's epochs, and only loss and output
    recorded with ``record = "loss"``."""
    record = () if spec.record == "loss" else None
    return config.with_overrides(epochs=spec.epochs, record=record)


def widths(config: ExperimentConfig, spec: StudySpec) -> tuple[int, ...]:
    """The hidden widths of the study; ConfigError for ``hidden`` on a deeper net."""
    if len(config.model.hidden) != 1:
        raise ConfigError(
            f"experiment {config.name!r} has {len(config.model.hidden)} hidden layers; a study "
            "varies the width of nets with one hidden layer"
            + (" (leave out --hidden to study its own net)" if spec.hidden else "")
        )
    return spec.hidden or config.model.hidden


def study_name(config: ExperimentConfig, spec: StudySpec, defaults: ExperimentConfig | None) -> str:
    """``study[-notebook]-lr=<rates>,seeds=<n>[,first_seed=<s>][,hidden=<w+w>][,record=loss]``
    and the tags of what ``config`` changes in ``defaults`` (epochs, catalog; as a run's)."""
    protocol = "" if spec.init == DEFAULT_INIT else f"-{spec.init}"
    tags = [f"seeds={spec.seeds}"]
    if spec.first_seed:
        tags.append(f"first_seed={spec.first_seed}")
    if spec.hidden is not None:
        tags.append("hidden=" + "+".join(str(w) for w in spec.hidden))
    if spec.record != "all":
        tags.append(f"record={spec.record}")
    trained = config.with_overrides(epochs=spec.epochs)
    tags += config_tags(trained, defaults)
    return bounded(",".join((f"{STUDY}{protocol}-lr={rates_text(spec.learning_rates)}", *tags)))


def study_folder(
    config: ExperimentConfig,
    spec: StudySpec,
    results_dir: str | Path = "results",
    defaults: ExperimentConfig | None = None,
) -> Path:
    """``results/<experiment>/<study_name>``, proven to lie inside ``results_dir``."""
    return result_folder(results_dir, config.name, study_name(config, spec, defaults))


def plan(config: ExperimentConfig, spec: StudySpec, workers: int | None = None) -> list[PartTask]:
    """The parts of the study as tasks (history folder still unset)."""
    cores = workers or os.cpu_count() or 1

    def size_of(width: int) -> int:
        schema = HistorySchema(
            (config.model.inputs, width, config.model.outputs), config.training.record
        )
        rows = config.training.epochs // config.training.record_every + 1
        return part_size(
            len(spec.learning_rates) * spec.seeds, rows, len(schema.columns) + 3, cores
        )

    parts = plan_parts(spec, widths(config, spec), size_of)
    return [PartTask(config, spec, part, Path()) for part in parts]


def run_study(
    config: ExperimentConfig,
    spec: StudySpec,
    results_dir: str | Path = "results",
    *,
    force: bool = False,
    defaults: ExperimentConfig | None = None,
    scheduler: str | None = None,
    dask_workers: int | None = None,
) -> StudyResult:
    """Train the study ``spec`` of ``config`` and write its folder (module docstring).

    Parameters
    ----------
    config : ExperimentConfig
        The experiment (command-line overrides applied).
    spec : StudySpec
        The grid.
    results_dir, force, defaults
        As for :func:`stellarnet.runs.experiment.run_experiment`.
    scheduler : str, optional
        A Dask scheduler's address (``tcp://host:port``): the parts run as its tasks.
    dask_workers : int, optional
        Start a local Dask cluster of this many worker processes instead.

    Raises
    ------
    ConfigError
        If the config cannot be studied (:func:`~stellarnet.runs.study_part.check_studyable`)
        or the grid is invalid.
    ResultsExist, ResultsFolderError
        As for a run, checked before training.
    """
    trained = study_config(config, spec)
    check_studyable(trained)
    tasks = plan(trained, spec, dask_workers)
    folder = study_folder(config, spec, results_dir, defaults)
    prepare_folder(folder, results_dir, force)
    started = time.perf_counter()
    catalog, dataset = load_data(dataclasses.replace(trained, shuffle=False))
    study_data(trained, dataset)  # the parts run here read it from memory
    members = len(spec.learning_rates) * spec.seeds * len(widths(trained, spec))
    columns = max(
        len(HistorySchema((1, w, 1), trained.training.record).columns)
        for w in widths(trained, spec)
    )
    rows = (trained.training.epochs // trained.training.record_every + 1) * members
    log.info(
        "study: %d members in %d parts; history %s rows x %d columns (%s on disk at most)",
        members,
        len(tasks),
        f"{rows:,}",
        columns + 3,
        format_bytes(rows * (columns + 3) * 8),
    )
    with staged_result(folder, results_dir, force) as staging:
        history = staging / HISTORY_DIR
        tasks = [dataclasses.replace(task, history=history) for task in tasks]
        if scheduler or dask_workers:
            from stellarnet.runs.study_dask import run_on_dask

            stats, where = run_on_dask(tasks, scheduler=scheduler, workers=dask_workers)
        else:
            stats, where = [], {"where": "local"}
            for number, task in enumerate(tasks, start=1):
                stats.append(train_part(task))
                log.info("part %d of %d trained", number, len(tasks))
        stats = pd.concat(stats, ignore_index=True)
        engines = stats.groupby("hidden")[ENGINE].agg(lambda used: "+".join(sorted(set(used))))
        stats = stats[list(MEMBER_COLUMNS)]
        summary = cell_summary(stats, spec.init)
        record = study_record(trained, spec, catalog, dataset, stats, len(tasks), where)
        record["engines"] = {str(hidden): engine for hidden, engine in engines.items()}
        record["wall_time_s"] = round(time.perf_counter() - started, 3)
        write_study_files(staging, summary, stats, record)
    return StudyResult(folder, summary, stats, record)


def study_record(
    config: ExperimentConfig,
    spec: StudySpec,
    catalog: Any,
    dataset: Any,
    stats: pd.DataFrame,
    parts: int,
    where: dict[str, Any],
) -> dict[str, Any]:
    """The study's ``run.json``: a run's record (config, catalog, versions) without its
    loss, and the grid, the parts, where they ran and how many members diverged."""
    first = pd.DataFrame({"loss": [stats["loss_first"].iloc[0]], "output": [0.0]})
    record = run_record(config, catalog, dataset, first, 0.0)
    for key in ("loss_first", "loss_last", "diverged_at", "history_convention"):
        record.pop(key, None)
    diverged = int(stats["diverged"].sum())
    return record | {
        "kind": STUDY,
        "seed": None,  # each member's own: study.first_seed .. + seeds - 1
        "status": "diverged" if diverged else "complete",
        "diverged_members": diverged,
        "study": spec.to_dict(),
        "members": len(stats),
        "parts": parts,
        "run_on": where,
    }


def write_study_files(
    folder: Path, summary: pd.DataFrame, stats: pd.DataFrame, record: dict[str, Any]
) -> None:
    """summary.csv, members.csv, run.json, the report and the figures."""
    from stellarnet.viz.study import study_figures, study_report

    atomic_write(folder / SUMMARY_CSV, lambda tmp: summary.to_csv(tmp, index=False))
    atomic_write(folder / MEMBERS_CSV, lambda tmp: stats.to_csv(tmp, index=False))
    write_json(folder / RUN_JSON, record)
    study_figures(folder)
    study_report(folder)

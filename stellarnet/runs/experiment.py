"""Run an experiment end to end and write its results folder.

``results/<experiment>/lr=<lr>/`` (with tags for the settings that differ from the config,
e.g. ``lr=0.3,epochs=300``: :mod:`stellarnet.runs.naming`) holds:

``history.parquet``, ``history.csv``
    The history table (:mod:`stellarnet.results.history`).
``run.json``
    The resolved config, seed, library versions, the catalog's path and sha256, the dataset
    summary, wall time and the first and last loss.
``loss.png``
    Loss vs epoch, drawn from the saved table.

A folder that already holds a run is never overwritten unless ``force=True`` (and then only
if it is a stellarnet result); the new run is written to a temporary folder beside it and
swapped in only when complete (:mod:`stellarnet.results.folders`). A run that diverges saves
its history up to the diverging epoch, with ``"status": "diverged"`` and ``"diverged_at"`` in
``run.json``, and then raises :class:`~stellarnet.errors.TrainingDiverged`.
"""

from __future__ import annotations

import logging
import sys
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from stellarnet import tfsettings
from stellarnet.data.datasets import Dataset, make_dataset
from stellarnet.data.loading import load_catalog, load_catalog_file
from stellarnet.data.registry import Catalog
from stellarnet.errors import CatalogError, ConfigError, TrainingDiverged
from stellarnet.files import json_number, sha256_file, write_json
from stellarnet.results.folders import (
    display_path,
    library_versions,
    prepare_folder,
    staged_result,
)
from stellarnet.results.history import (
    HISTORY_BUDGET_BYTES,
    format_bytes,
    history_bytes,
    save_history,
)
from stellarnet.results.run_catalog import ROWS_SHA256, rows_sha256
from stellarnet.results.saved import RUN_JSON
from stellarnet.results.status import run_status
from stellarnet.runs.config import ExperimentConfig
from stellarnet.runs.naming import run_folder
from stellarnet.schema import HistorySchema

log = logging.getLogger(__name__)

HISTORY_CONVENTION = (
    "row k: output, loss and gradients computed with the parameters before epoch k's update; "
    "w and b after it; row 0 holds the initial parameters"
)
MINI_BATCH_CONVENTION = (
    "row k: output, loss and gradients are means over epoch k's mini-batches, each computed "
    "before its batch's update; w and b at the end of epoch k; row 0 holds the initial "
    "parameters"
)
VALIDATION_CONVENTION = "; val_loss: the validation rows' loss with row k's w and b"


def history_convention(config: ExperimentConfig) -> str:
    """What a history row of ``config``'s runs holds, for ``run.json`` (full batch or
    mini-batches, and ``val_loss`` with a validation split)."""
    text = MINI_BATCH_CONVENTION if config.training.batch_size else HISTORY_CONVENTION
    return text + (VALIDATION_CONVENTION if config.split.validation else "")


@dataclass
class RunResult:
    """What a run produced: its folder, its history table and its ``run.json`` record."""

    folder: Path
    history: pd.DataFrame
    record: dict[str, Any]


def load_data(config: ExperimentConfig) -> tuple[Catalog, Dataset]:
    """Load the experiment's catalog (offline) and turn it into training arrays.

    A catalog that does not fit the config (a missing column, too few rows for the split)
    raises a CatalogError that names the config file first.
    """
    try:
        if config.catalog_path is not None:
            columns = [spec.column for spec in (*config.features, config.target)]
            catalog = load_catalog_file(config.catalog_path, columns)
        else:
            catalog = load_catalog(config.query, offline=True)
        frame = catalog.frame
        if config.rows is not None:
            frame = select_rows(frame, config.rows, catalog.path)
        dataset = make_dataset(
            frame,
            config.features,
            config.target,
            seed=config.seed if config.shuffle else None,
            source=str(catalog.path),
            split=config.split,
        )
    except CatalogError as err:
        raise type(err)(f"{config_origin(config)} [dataset]: {err}") from None
    return catalog, dataset


def select_rows(frame: pd.DataFrame, rows: tuple[int, ...], source: str | Path) -> pd.DataFrame:
    """The catalog data rows at 0-based positions ``rows`` (``[dataset] rows``), in that order."""
    outside = [r for r in rows if r >= len(frame)]
    if outside:
        raise ConfigError(
            f"[dataset] rows {outside} are past the end of {source} ({len(frame)} data rows, "
            f"numbered 0..{len(frame) - 1})"
        )
    return frame.iloc[list(rows)]


def config_origin(config: ExperimentConfig) -> str:
    """The config file of ``config`` (for messages), or its name if it was built in code."""
    return display_path(config.source) if config.source else f"experiment {config.name!r}"


def check_batch_size(config: ExperimentConfig, dataset: Dataset) -> None:
    """Raise ConfigError if ``[training] batch_size`` exceeds the training rows."""
    size, rows = config.training.batch_size, len(dataset.y)
    if size is not None and size > rows:
        raise ConfigError(
            f"{config_origin(config)}: [training] batch_size = {size} is larger than the {rows} "
            f"training rows ({dataset.rows} rows kept, train fraction {config.split.train:g}); "
            "lower it, or remove it to train on the full batch"
        )


def history_size(config: ExperimentConfig, members: int = 1, extra_columns: int = 0) -> str:
    """Say how large the history table of ``config`` will be (``members`` runs in one long
    table with ``extra_columns`` more, e.g. ``lr``) and return the log line; raise
    ConfigError, naming the fix, beyond :data:`~stellarnet.results.history.HISTORY_BUDGET_BYTES`.

    Called before training: a table too large for memory would fail only after hours.
    """
    spec = config.training
    schema = HistorySchema(
        config.model.layer_sizes, spec.record, validation=config.split.validation > 0
    )
    columns = len(schema.columns) + extra_columns
    rows = (spec.epochs // spec.record_every + 1) * members
    total = history_bytes(rows, columns)
    size = f"{rows:,} rows x {columns} columns x 8 bytes = {format_bytes(total)}"
    if total <= HISTORY_BUDGET_BYTES:
        line = f"history table: {size}" + (f" ({members} runs)" if members > 1 else "")
        log.info("%s", line)
        return line
    most_rows = HISTORY_BUDGET_BYTES // history_bytes(members, columns)  # per run, row 0 too
    every = spec.epochs // most_rows + 1  # the smallest N with epochs // N + 1 <= most_rows
    fix = (
        f"keep every N-th epoch with --record-every {every} (or [training] record_every = "
        f"{every}) or more, or train fewer epochs"
        if most_rows >= 2
        else "record fewer groups (record = [...]) or train fewer runs at once"
    )
    runs = f" of {members} runs" if members > 1 else ""
    raise ConfigError(
        f"{config_origin(config)}: the history table{runs} would hold {size} "
        f"({spec.epochs:,} epochs, record_every = {spec.record_every}), over the memory budget "
        f"of {format_bytes(HISTORY_BUDGET_BYTES)} (stellarnet.results.history."
        f"HISTORY_BUDGET_BYTES); {fix}"
    )


def run_record(
    config: ExperimentConfig,
    catalog: Catalog,
    dataset: Dataset,
    history: pd.DataFrame,
    wall_time: float,
) -> dict[str, Any]:
    """The ``run.json`` record of a run: everything needed to trace its table, and whether
    it completed (:func:`run_status`; for a single run's history)."""
    return {
        "experiment": config.name,
        **run_status(history),
        "created_utc": datetime.now(UTC).isoformat(timespec="seconds"),
        "command": " ".join(sys.argv),
        "config": config.to_dict(),
        "seed": config.seed,
        "catalog_path": display_path(catalog.path),
        "catalog_sha256": catalog.sha256,
        "catalog_origin": catalog.origin,
        "catalog_provenance": catalog.provenance,
        "dataset": dataset_record(catalog, dataset),
        "history_convention": history_convention(config),
        "loss_first": json_number(history["loss"].iloc[0]),
        "loss_last": json_number(history["loss"].iloc[-1]),
        "wall_time_s": round(wall_time, 3),
        "versions": library_versions(),
        "tensorflow_settings": tfsettings.current(),
    }


def dataset_record(catalog: Catalog, dataset: Dataset) -> dict[str, Any]:
    """``run.json``'s ``dataset`` entry: the dataset's summary, the catalog's row count
    (``rows_total`` counts the rows the dataset step saw, only those ``[dataset] rows``
    selected) and :func:`~stellarnet.results.run_catalog.rows_sha256`, with which a rebuild
    is checked bit for bit."""
    return dataset.summary() | {
        "catalog_rows": len(catalog.frame),
        ROWS_SHA256: rows_sha256(dataset),
    }


def write_run_files(folder: Path, history: pd.DataFrame, record: dict[str, Any]) -> None:
    """Write history.parquet, history.csv, run.json and loss.png into ``folder``."""
    from stellarnet.viz.figures import loss_figure

    folder.mkdir(parents=True, exist_ok=True)
    save_history(history, folder)
    write_json(folder / RUN_JSON, record)
    loss_figure(folder)


def train_config(
    config: ExperimentConfig,
    dataset: Dataset,
    progress: bool = False,
    model: Any = None,
    jit_compile: bool = False,
) -> pd.DataFrame:
    """Train ``model`` (default: the config's model, freshly built) on ``dataset``
    (``jit_compile``: with XLA, see :func:`stellarnet.train.recorder.train`).

    Returns the history; ``model`` (if given) is trained in place.
    """
    from stellarnet.train.loop import train
    from stellarnet.train.models import build_model
    from stellarnet.train.stopping import EarlyStopping

    spec = config.training
    check_batch_size(config, dataset)
    model = build_model(config.model, config.seed) if model is None else model
    return train(
        model,
        dataset.x,
        dataset.y,
        learning_rate=spec.learning_rate,
        epochs=spec.epochs,
        optimizer=spec.optimizer,
        loss=spec.loss,
        record=spec.record,
        record_every=spec.record_every,
        engine=spec.engine,
        jit_compile=jit_compile,
        progress=progress,
        batch_size=spec.batch_size,
        shuffle_seed=config.seed,
        validation=(dataset.x_val, dataset.y_val),
        early_stopping=None if spec.patience is None else EarlyStopping(spec.patience),
    )


def test_metrics(config: ExperimentConfig, dataset: Dataset, predicted: Any) -> dict[str, Any]:
    """The held-out metrics of ``predicted`` on the test rows, in the target's modelled units
    (scaling undone: :func:`stellarnet.data.datasets.unscaled`), of the config's metric set."""
    from stellarnet.data.datasets import unscaled
    from stellarnet.runs.metrics import held_out_metrics

    params = dataset.transform_params[dataset.target.column]
    truth, guess = (unscaled(np.asarray(v)[:, 0], params) for v in (dataset.y_test, predicted))
    return held_out_metrics(truth, guess, config.training.metrics)


def run_experiment(
    config: ExperimentConfig,
    results_dir: str | Path = "results",
    force: bool = False,
    progress: bool = False,
    init_from: str | Path | None = None,
    jit_compile: bool = False,
    defaults: ExperimentConfig | None = None,
) -> RunResult:
    """Load data, build the model, train with recording, and write the results folder.

    Parameters
    ----------
    config : ExperimentConfig
        The resolved experiment (overrides already applied).
    results_dir : path
        Parent of ``<experiment>/lr=<lr>[,<tags>]/``; nothing is written or deleted outside it.
    force : bool
        Replace an existing results folder (only a stellarnet result: one with run.json).
    progress : bool
        Show a progress bar on long runs.
    init_from : path, optional
        A history table (or one-row CSV) whose ``epoch = 0`` parameters start the run
        (:func:`stellarnet.params.read_initial_layers`); recorded with its sha256.
    jit_compile : bool
        Compile the epochs with XLA: faster long runs, other rounding (recorded in
        ``run.json``).
    defaults : ExperimentConfig, optional
        The config before the overrides: the folder name tags what ``config`` changes in it
        (:func:`stellarnet.runs.naming.run_folder`; ``init_from`` and ``jit_compile`` are
        tagged in any case).

    Raises
    ------
    ResultsExist, ResultsFolderError
        If the folder holds a run and ``force`` is False, holds something that is not a
        stellarnet result, lies outside ``results_dir`` or cannot be written (all checked
        before training).
    ConfigError
        If ``init_from`` does not hold exactly the model's parameters, or the history table
        would exceed the memory budget (:func:`history_size`).
    TrainingDiverged
        If the loss became NaN or infinite: raised after the rows up to that epoch are saved
        with ``"status": "diverged"`` (``err.folder`` says where).
    """
    from stellarnet.train.models import build_model, set_model_layers

    history_size(config)
    layers = None if init_from is None else read_init_from(init_from, config.model.layer_sizes)
    folder = run_folder(
        config, results_dir, defaults=defaults, init_from=init_from, jit_compile=jit_compile
    )
    prepare_folder(folder, results_dir, force)
    started = time.perf_counter()
    model, init_record = None, {}
    if layers is not None:
        model = set_model_layers(build_model(config.model, config.seed), layers)
        init_record = {
            "init_from": {"path": display_path(init_from), "sha256": sha256_file(init_from)}
        }
    catalog, dataset = load_data(config)
    model = build_model(config.model, config.seed) if model is None else model
    diverged = None
    try:
        history = train_config(config, dataset, progress, model=model, jit_compile=jit_compile)
    except TrainingDiverged as err:
        if err.history is None:
            raise
        history, diverged = err.history, err
    record = run_record(config, catalog, dataset, history, time.perf_counter() - started)
    record |= init_record | {"jit_compile": jit_compile} | history.attrs
    if len(dataset.y_test) and diverged is None:
        predicted = model(dataset.x_test, training=False).numpy()
        record["test_metrics"] = test_metrics(config, dataset, predicted)
    with staged_result(folder, results_dir, force) as staging:
        write_run_files(staging, history, record)
    log.debug("wrote %s", folder)  # the CLI prints it with the file list
    if diverged is not None:
        at = record["diverged_at"]
        error = TrainingDiverged(
            f"{diverged} Saved the {len(history)} rows up to epoch {at['epoch']} in {folder}/ "
            '(run.json: "status": "diverged")'
        ).with_history(history)
        error.folder = folder
        raise error from None
    return RunResult(folder, history, record)


def read_init_from(path: str | Path, layer_sizes: tuple[int, ...]) -> Any:
    """The initial layers of ``--init-from path`` (:func:`stellarnet.params.read_initial_layers`),
    with the file checked first: a folder, a missing or unreadable file is a ConfigError that
    names it and the fix."""
    from stellarnet.params import read_initial_layers
    from stellarnet.results.history import HISTORY_CSV

    path = Path(path)
    if path.is_dir():
        hint = path / HISTORY_CSV
        example = f" such as {hint}" if hint.is_file() else ""
        raise ConfigError(
            f"--init-from {path} is a folder; give a history table file{example} (its epoch = 0 "
            "row starts the run) or a one-row CSV of w^l_i, b^l_i columns"
        )
    if not path.exists():
        raise ConfigError(
            f"--init-from {path} does not exist; give a history table file such as "
            "results/<experiment>/lr=<rate>/history.csv"
        )
    try:
        return read_initial_layers(path, layer_sizes)
    except OSError as err:
        raise ConfigError(
            f"--init-from {path} cannot be read ({err.strerror or err}); give a readable CSV"
        ) from None

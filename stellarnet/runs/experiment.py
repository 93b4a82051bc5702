"""Run an experiment end to end and write its results folder.

``results/<experiment>/lr=<lr>/`` holds:

``history.parquet``, ``history.csv``
    The history table (:mod:`stellarnet.results.history`).
``run.json``
    The resolved config, seed, library versions, the catalog's path and sha256, the dataset
    summary, wall time and the first and last loss.
``loss.png``
    Loss vs epoch, drawn from the saved table.

A folder that already holds a run is never overwritten unless ``force=True``; the new run is
written to a temporary folder beside it and swapped in only when complete.
"""

from __future__ import annotations

import logging
import sys
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd

from stellarnet import tfsettings
from stellarnet.data.datasets import Dataset, make_dataset
from stellarnet.data.loading import load_catalog, load_catalog_file
from stellarnet.data.registry import Catalog
from stellarnet.errors import CatalogError, ConfigError
from stellarnet.files import sha256_file, staged_folder, write_json
from stellarnet.results.folders import (
    check_not_exists,
    check_replace,
    display_path,
    library_versions,
    rate_label,
)
from stellarnet.results.history import save_history
from stellarnet.results.saved import RUN_JSON
from stellarnet.runs.config import ExperimentConfig

log = logging.getLogger(__name__)

HISTORY_CONVENTION = (
    "row k: output, loss and gradients computed with the parameters before epoch k's update; "
    "w and b after it; row 0 holds the initial parameters"
)


@dataclass
class RunResult:
    """What a run produced: its folder, its history table and its ``run.json`` record."""

    folder: Path
    history: pd.DataFrame
    record: dict[str, Any]


def run_folder(config: ExperimentConfig, results_dir: str | Path = "results") -> Path:
    """``results/<experiment>/lr=<lr>`` for ``config``."""
    return Path(results_dir) / config.name / f"lr={rate_label(config.training.learning_rate)}"


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


def run_record(
    config: ExperimentConfig,
    catalog: Catalog,
    dataset: Dataset,
    history: pd.DataFrame,
    wall_time: float,
) -> dict[str, Any]:
    """The ``run.json`` record of a finished run: everything needed to trace its table."""
    return {
        "experiment": config.name,
        "created_utc": datetime.now(UTC).isoformat(timespec="seconds"),
        "command": " ".join(sys.argv),
        "config": config.to_dict(),
        "seed": config.seed,
        "catalog_path": display_path(catalog.path),
        "catalog_sha256": catalog.sha256,
        "catalog_origin": catalog.origin,
        "catalog_provenance": catalog.provenance,
        "dataset": dataset.summary(),
        "history_convention": HISTORY_CONVENTION,
        "loss_first": float(history["loss"].iloc[0]),
        "loss_last": float(history["loss"].iloc[-1]),
        "wall_time_s": round(wall_time, 3),
        "versions": library_versions(),
        "tensorflow_settings": tfsettings.current(),
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
    )


def run_experiment(
    config: ExperimentConfig,
    results_dir: str | Path = "results",
    force: bool = False,
    progress: bool = False,
    init_from: str | Path | None = None,
    jit_compile: bool = False,
) -> RunResult:
    """Load data, build the model, train with recording, and write the results folder.

    Parameters
    ----------
    config : ExperimentConfig
        The resolved experiment (overrides already applied).
    results_dir : path
        Parent of ``<experiment>/lr=<lr>/``.
    force : bool
        Replace an existing results folder.
    progress : bool
        Show a progress bar on long runs.
    init_from : path, optional
        A history table (or one-row CSV) whose ``epoch = 0`` parameters start the run
        (:func:`stellarnet.params.read_initial_layers`); recorded with its sha256.
    jit_compile : bool
        Compile the epochs with XLA: faster long runs, other rounding (recorded in
        ``run.json``).

    Raises
    ------
    ResultsExist
        If the folder holds a run and ``force`` is False (checked before training).
    ConfigError
        If ``init_from`` does not hold exactly the model's parameters.
    """
    from stellarnet.params import read_initial_layers
    from stellarnet.runs.metrics import regression_metrics
    from stellarnet.train.models import build_model, set_model_layers

    folder = run_folder(config, results_dir)
    check_not_exists(folder, force)
    started = time.perf_counter()
    model, init_record = None, {}
    if init_from is not None:
        layers = read_initial_layers(init_from, config.model.layer_sizes)
        model = set_model_layers(build_model(config.model, config.seed), layers)
        init_record = {
            "init_from": {"path": display_path(init_from), "sha256": sha256_file(init_from)}
        }
    catalog, dataset = load_data(config)
    model = build_model(config.model, config.seed) if model is None else model
    history = train_config(config, dataset, progress, model=model, jit_compile=jit_compile)
    record = run_record(config, catalog, dataset, history, time.perf_counter() - started)
    record |= init_record | {"jit_compile": jit_compile}
    if len(dataset.y_test):
        predicted = model(dataset.x_test, training=False).numpy()
        record["test_metrics"] = regression_metrics(dataset.y_test, predicted)
    with staged_folder(folder, ready=lambda: check_replace(folder, force)) as staging:
        write_run_files(staging, history, record)
    log.debug("wrote %s", folder)  # the CLI prints it with the file list
    return RunResult(folder, history, record)

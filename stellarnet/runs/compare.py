"""Compare the network with scikit-learn baselines (and a committee) on the same test rows.

``stellarnet compare <experiment>`` trains the config's network exactly as
``stellarnet experiment`` does, fits the baselines on the same training rows, optionally
trains a committee (:mod:`stellarnet.runs.committee`), and scores every model on the config's
test rows, in the units of the transformed target (e.g. log10 Teff):

``network``
    The config's network (the same numbers as ``stellarnet experiment``).
``committee``
    With ``committee >= 2``: the mean of N networks trained on bootstrap samples; its
    spread (std over members) is saved as ``committee_std``.
``linear``, ``knn``, ``mean``
    The scikit-learn baselines of :mod:`stellarnet.runs.baselines` (least squares, nearest
    neighbours with k chosen on validation rows, the training mean).

Results, in ``results/<experiment>/compare/``:

``metrics.csv``, ``metrics.md``
    One row per model: model, detail, rows, mse, rmse, mae, r2 (test rows).
``predictions.csv``
    One row per test row: ``y_true``, each model's prediction, ``committee_std``.
``pred_vs_true_<model>.png``
    Predicted vs true per model, drawn from ``predictions.csv`` and ``metrics.csv`` alone.
``compare.json``
    The run record (:func:`stellarnet.runs.experiment.run_record`: config, seed, catalog checksum,
    versions) plus the comparison: metrics per model, the choice of k, the committee.
``network/``
    The network's run folder, as ``stellarnet experiment`` writes it.
``committee/``
    With a committee: its long history (``history.parquet``/``.csv``, a ``member`` column).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from stellarnet.data.datasets import Dataset
from stellarnet.errors import ConfigError
from stellarnet.results.folders import prepare_folder, result_folder, staged_result
from stellarnet.results.history import save_history
from stellarnet.runs.baselines import baseline_details, fit_baselines
from stellarnet.runs.committee import MIN_MEMBERS, Committee, train_committee
from stellarnet.runs.compare_report import (
    COMPARE_JSON,
    metrics_table,
    predictions_frame,
    write_comparison,
)
from stellarnet.runs.config import ExperimentConfig
from stellarnet.runs.experiment import (
    RunResult,
    config_origin,
    history_size,
    load_data,
    run_record,
    train_config,
    write_run_files,
)
from stellarnet.runs.metrics import regression_metrics

log = logging.getLogger(__name__)

COMPARE_FOLDER = "compare"


@dataclass
class ModelPredictions:
    """Every model's predictions on the test rows, and what training them left behind.

    Attributes
    ----------
    values : dict of str to ndarray
        Predictions per model, in table order (network, committee, linear, knn, mean).
    details : dict of str to str
        How each model was made (the metrics table's ``detail`` column).
    history : DataFrame
        The network's history table.
    knn : dict
        How the nearest-neighbours baseline chose k.
    committee : Committee or None
        The trained committee, if one was asked for.
    spread : ndarray or None
        The committee members' standard deviation per test row.
    """

    values: dict[str, np.ndarray]
    details: dict[str, str]
    history: pd.DataFrame
    knn: dict[str, Any]
    committee: Committee | None = None
    spread: np.ndarray | None = None


def compare_folder(config: ExperimentConfig, results_dir: str | Path = "results") -> Path:
    """``results/<experiment>/compare``, proven to lie inside ``results_dir``."""
    return result_folder(results_dir, config.name, COMPARE_FOLDER)


def network_detail(config: ExperimentConfig) -> str:
    """``"4-16-16-1 relu, adam lr 0.01, batch 64, 300 epochs"``."""
    model, spec = config.model, config.training
    extras = [f"dropout {model.dropout:g}"] if model.dropout else []
    extras += [f"L2 {model.l2:g}"] if model.l2 else []
    batch = f"batch {spec.batch_size}" if spec.batch_size else "full batch"
    return ", ".join(
        [
            f"{'-'.join(map(str, model.layer_sizes))} {model.activation}",
            f"{spec.optimizer} lr {spec.learning_rate:g}",
            batch,
            f"{spec.epochs} epochs",
            *extras,
        ]
    )


def run_compare(
    config: ExperimentConfig,
    results_dir: str | Path = "results",
    *,
    force: bool = False,
    committee: int = 0,
    progress: bool = False,
) -> RunResult:
    """Train the network (and a committee), fit the baselines, score all on the test rows,
    and write ``results/<experiment>/compare/``.

    Parameters
    ----------
    config : ExperimentConfig
        The experiment; it needs a test split (``[dataset] split``).
    results_dir : path
        Parent of ``<experiment>/compare/``.
    force : bool
        Replace an existing comparison.
    committee : int
        Number of committee members (0: no committee; else at least 2).
    progress : bool
        Show progress bars while training.

    Returns
    -------
    RunResult
        The folder, the network's history and the ``compare.json`` record (its
        ``"compare"`` entry holds the metrics table as ``metrics``).

    Raises
    ------
    ConfigError
        If the config has no test split or ``committee`` is 1 or negative.
    ResultsExist, ResultsFolderError
        If the folder holds results and ``force`` is False, holds something that is not a
        stellarnet comparison (no compare.json), lies outside ``results_dir`` or cannot be
        written (all checked before training).
    """
    if committee and committee < MIN_MEMBERS:
        raise ConfigError(f"a committee needs at least {MIN_MEMBERS} members, got {committee}")
    folder = compare_folder(config, results_dir)
    history_size(config)
    if committee:
        history_size(config, members=committee, extra_columns=1)
    prepare_folder(folder, results_dir, force, marker=COMPARE_JSON)
    started = time.perf_counter()
    catalog, dataset = load_data(config)
    if not len(dataset.y_test):
        raise ConfigError(
            f"{config_origin(config)}: compare scores models on test rows, and the config has "
            "none; add e.g. `split = { train = 0.8, validation = 0.0, test = 0.2 }` to [dataset]"
        )
    predicted = predict_test_rows(config, dataset, committee, progress)
    table = metrics_table(dataset.y_test, predicted.values, predicted.details)
    network_record = run_record(
        config, catalog, dataset, predicted.history, time.perf_counter() - started
    ) | {"test_metrics": regression_metrics(dataset.y_test, predicted.values["network"])}
    record = network_record | {
        "compare": comparison_record(network_record, dataset, table, predicted)
    }
    with staged_result(folder, results_dir, force, marker=COMPARE_JSON) as staging:
        write_run_files(staging / "network", predicted.history, network_record)
        if predicted.committee is not None:
            save_history(predicted.committee.history, staging / "committee")
        frame = predictions_frame(dataset.y_test, predicted.values, predicted.spread)
        write_comparison(staging, table, frame, record)
    log.debug("wrote %s", folder)  # the CLI prints it with the file list
    return RunResult(folder, predicted.history, record)


def predict_test_rows(
    config: ExperimentConfig, dataset: Dataset, committee: int, progress: bool
) -> ModelPredictions:
    """Train the network exactly as ``stellarnet experiment`` does (and a committee of
    ``committee`` networks, if >= 2), fit the baselines, and predict the test rows."""
    from stellarnet.train.models import build_model

    model = build_model(config.model, config.seed)
    history = train_config(config, dataset, progress, model=model)
    values = {"network": model(dataset.x_test, training=False).numpy().ravel()}
    details = {"network": network_detail(config)}
    members, spread = None, None
    if committee:
        members = train_committee(config, dataset, committee, progress=progress)
        mean, spread = members.predict(dataset.x_test)
        values["committee"] = mean.ravel()
        details["committee"] = (
            f"mean of {committee} networks on bootstrap samples ({members.engine})"
        )
    baselines, knn = fit_baselines(dataset, config.seed)
    return ModelPredictions(
        values | baselines, details | baseline_details(knn), history, knn, members, spread
    )


def comparison_record(
    network_record: dict[str, Any],
    dataset: Dataset,
    table: pd.DataFrame,
    predicted: ModelPredictions,
) -> dict[str, Any]:
    """The ``compare`` entry of ``compare.json``: the metrics per model, how k was chosen
    and the committee."""
    return {
        "test_rows": len(dataset.y_test),
        "target": network_record["dataset"]["target"],
        "metrics": {row["model"]: row for row in table.to_dict(orient="records")},
        "knn": predicted.knn,
        "committee": predicted.committee.summary() if predicted.committee is not None else None,
    }

"""Compare the network with scikit-learn baselines (and a committee) on the same test rows.

``stellarnet compare <experiment>`` trains the config's network exactly as
``stellarnet experiment`` does, fits the baselines on the same training rows, optionally
trains a committee (:mod:`stellarnet.runs.committee`), and scores every model on the config's
test rows exactly as ``run.json``'s ``test_metrics`` is computed
(:func:`stellarnet.runs.experiment.test_metrics`): in the units the target is modelled in
(trailing scalings undone, e.g. log10 Teff, or redshift for a standardised ``zs``), with the
config's metric set (``[training] metrics``; ``"photoz"`` adds bias, sigma_NMAD and the
outlier fraction):

``network``
    The config's network (the same numbers as ``stellarnet experiment``).
``committee``
    With ``committee >= 2``: the mean of N networks trained on bootstrap samples; its
    spread (std over members) is saved as ``committee_std``.
``linear``, ``knn``, ``random_forest``, ``mean``
    The scikit-learn baselines of :mod:`stellarnet.runs.baselines` (least squares, nearest
    neighbours with k chosen on validation rows, a seeded random forest for photo-z configs
    only, the training mean).

Results, in ``results/<experiment>/compare/``:

``metrics.csv``, ``metrics.md``
    One row per model: model, detail, rows, mse, rmse, mae, r2 (and bias, sigma_nmad,
    outlier_fraction for photo-z) on the test rows. ``metrics.md`` adds, for configs that
    clip features, the metrics without the test rows whose inputs were clipped.
``predictions.csv``
    One row per test row, in the target's modelled units: ``y_true``, each model's
    prediction, ``committee_std``, and ``clipped_input`` for configs that clip features.
``pred_vs_true_<model>.png`` (regression) or ``zphot_vs_zspec.png``, ``dz_vs_zspec.png`` (photo-z)
    Drawn from ``predictions.csv``, ``metrics.csv`` and ``compare.json`` alone.
``compare.json``
    The run record (:func:`stellarnet.runs.experiment.run_record`: config, seed, catalog checksum,
    versions) plus the comparison: metrics per model, the choice of k, the committee, the
    clipped test rows and the metrics without them (``robustness``).
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

from stellarnet.data.datasets import CLIP_LIMIT, Dataset, unscaled
from stellarnet.errors import ConfigError
from stellarnet.results.folders import prepare_folder, result_folder, staged_result
from stellarnet.results.history import save_history
from stellarnet.runs.baselines import baseline_details, fit_baselines
from stellarnet.runs.committee import MIN_MEMBERS, Committee, train_committee
from stellarnet.runs.compare_report import (
    COMPARE_JSON,
    NOT_MODELS,
    metrics_table,
    predictions_frame,
    target_label,
    write_comparison,
)
from stellarnet.runs.config import ExperimentConfig
from stellarnet.runs.experiment import (
    RunResult,
    config_origin,
    history_size,
    load_data,
    run_record,
    test_metrics,
    train_config,
    write_run_files,
)
from stellarnet.runs.metrics import held_out_metrics

log = logging.getLogger(__name__)

COMPARE_FOLDER = "compare"


@dataclass
class ModelPredictions:
    """Every model's predictions on the test rows, and what training them left behind.

    Attributes
    ----------
    values : dict of str to ndarray
        Predictions per model, in table order (network, committee, linear, knn,
        random_forest, mean), in the target's modelled units (scaling undone).
    scores : dict of str to dict
        Each model's test metrics, as :func:`~stellarnet.runs.experiment.test_metrics`
        computes ``run.json``'s.
    details : dict of str to str
        How each model was made (the metrics table's ``detail`` column).
    history : DataFrame
        The network's history table.
    knn : dict
        How the nearest-neighbours baseline chose k.
    committee : Committee or None
        The trained committee, if one was asked for.
    spread : ndarray or None
        The committee members' standard deviation per test row, in the modelled units.
    """

    values: dict[str, np.ndarray]
    scores: dict[str, dict[str, float]]
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
            f"{spec.epochs} epochs"
            if spec.patience is None
            else f"at most {spec.epochs} epochs, early stopping (patience {spec.patience})",
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
    table = metrics_table(predicted.scores, predicted.details)
    network_record = (
        run_record(config, catalog, dataset, predicted.history, time.perf_counter() - started)
        | predicted.history.attrs
    )  # early stopping, as in run.json
    network_record["test_metrics"] = predicted.scores["network"]
    frame, robustness = held_out_frame(config, dataset, predicted)
    record = network_record | {
        "compare": comparison_record(config, dataset, table, predicted, robustness)
    }
    with staged_result(folder, results_dir, force, marker=COMPARE_JSON) as staging:
        write_run_files(staging / "network", predicted.history, network_record)
        if predicted.committee is not None:
            save_history(predicted.committee.history, staging / "committee")
        write_comparison(staging, table, frame, record)
    log.debug("wrote %s", folder)  # the CLI prints it with the file list
    return RunResult(folder, predicted.history, record)


def target_units(dataset: Dataset, values: np.ndarray) -> np.ndarray:
    """``values`` of the transformed target (any shape; a trailing axis of 1 is dropped) in
    the units the target is modelled in: :func:`~stellarnet.data.datasets.unscaled`, as for
    ``run.json``'s test metrics (float64)."""
    values = np.asarray(values)
    if values.ndim > 1 and values.shape[-1] == 1:
        values = values[..., 0]
    return unscaled(values, dataset.transform_params[dataset.target.column])


def predict_test_rows(
    config: ExperimentConfig, dataset: Dataset, committee: int, progress: bool
) -> ModelPredictions:
    """Train the network exactly as ``stellarnet experiment`` does (and a committee of
    ``committee`` networks, if >= 2), fit the baselines, predict the test rows and score
    each model as :func:`~stellarnet.runs.experiment.test_metrics` does."""
    from stellarnet.train.models import build_model

    model = build_model(config.model, config.seed)
    history = train_config(config, dataset, progress, model=model)
    raw = {"network": model(dataset.x_test, training=False).numpy().ravel()}
    details = {"network": network_detail(config)}
    members, spread = None, None
    if committee:
        members = train_committee(config, dataset, committee, progress=progress)
        outputs = members.member_predictions(dataset.x_test)  # (N, n, 1), float64
        raw["committee"] = outputs.mean(axis=0).ravel()
        spread = target_units(dataset, outputs).std(axis=0, ddof=1)
        details["committee"] = (
            f"mean of {committee} networks on bootstrap samples ({members.engine})"
        )
    forest = config.training.metrics == "photoz"
    baselines, knn = fit_baselines(dataset, config.seed, forest=forest)
    raw |= baselines
    scores = {
        name: test_metrics(config, dataset, np.reshape(values, (-1, 1)))
        for name, values in raw.items()
    }
    values = {name: target_units(dataset, predicted) for name, predicted in raw.items()}
    return ModelPredictions(
        values, scores, details | baseline_details(knn), history, knn, members, spread
    )


def held_out_frame(
    config: ExperimentConfig, dataset: Dataset, predicted: ModelPredictions
) -> tuple[pd.DataFrame, dict[str, Any] | None]:
    """The predictions table (``predictions.csv``) in the target's modelled units, and the
    robustness record (:func:`robustness_record`)."""
    clipped = clipped_test_rows(dataset)
    frame = predictions_frame(
        target_units(dataset, dataset.y_test), predicted.values, predicted.spread, clipped
    )
    return frame, robustness_record(config, dataset, frame, clipped)


def clipped_test_rows(dataset: Dataset) -> np.ndarray | None:
    """Which test rows had an input clipped: a feature with the ``clip`` transform held at
    its limit (:data:`~stellarnet.data.datasets.CLIP_LIMIT` training sigmas). None when no
    feature is clipped."""
    held = []
    for column, spec in enumerate(dataset.features):
        for step in dataset.transform_params[spec.column]:
            if step["transform"] == "clip":
                held.append(np.abs(dataset.x_test[:, column]) >= np.float32(step["limit"]))
    return np.any(held, axis=0) if held else None


def robustness_record(
    config: ExperimentConfig, dataset: Dataset, frame: pd.DataFrame, clipped: np.ndarray | None
) -> dict[str, Any] | None:
    """How many test rows had clipped inputs, and every model's metrics without them
    (computed from the predictions table, in the same units and metric set); None when the
    config clips no feature."""
    if clipped is None:
        return None
    clips = {
        spec.column: step["clipped"]
        for spec in dataset.features
        for step in dataset.transform_params[spec.column]
        if step["transform"] == "clip"
    }
    kept = frame.loc[~clipped]
    models = [column for column in frame.columns if column not in NOT_MODELS]
    without = {
        name: held_out_metrics(kept["y_true"], kept[name], config.training.metrics)
        for name in models
    }
    return {
        "rule": "a test row has a clipped input if any feature with the clip transform is "
        f"held at its limit ({CLIP_LIMIT:g} training-row sigmas); the row stays in the test set",
        "clipped_values_all_rows": clips,
        "test_rows": len(frame),
        "test_rows_clipped": int(clipped.sum()),
        "clipped_rows": [int(i) for i in np.flatnonzero(clipped)],
        "metrics_without_clipped": without if clipped.any() else {},
    }


def comparison_record(
    config: ExperimentConfig,
    dataset: Dataset,
    table: pd.DataFrame,
    predicted: ModelPredictions,
    robustness: dict[str, Any] | None,
) -> dict[str, Any]:
    """The ``compare`` entry of ``compare.json``: the metrics per model (their set and
    units), how k was chosen, the committee and the clipped test rows."""
    target = dataset.summary()["target"]
    return {
        "test_rows": len(dataset.y_test),
        "target": target,
        "metric_set": config.training.metrics,
        "units": f"{target_label(target)}: the target as modelled, scaling transforms undone "
        "(as run.json's test_metrics)",
        "metrics": {row["model"]: row for row in table.to_dict(orient="records")},
        "knn": predicted.knn,
        "committee": predicted.committee.summary() if predicted.committee is not None else None,
        "robustness": robustness,
    }

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
``linear``
    ``sklearn.linear_model.LinearRegression`` (least squares).
``knn``
    ``sklearn.neighbors.KNeighborsRegressor``, k chosen from :data:`KNN_GRID` by validation
    MSE, then refitted on all training rows. The validation rows are the config's
    validation split; without one, :data:`CARVE_FRACTION` of the training rows, picked with
    ``numpy.random.default_rng(config.seed)`` (the record says which).
``mean``
    ``sklearn.dummy.DummyRegressor``: the training mean for every row (R^2 about 0), the
    floor any model should beat.

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

import json
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from stellarnet.data.datasets import Dataset
from stellarnet.errors import ConfigError
from stellarnet.files import atomic_write, staged_folder, write_json
from stellarnet.runs.config import ExperimentConfig
from stellarnet.runs.experiment import (
    RunResult,
    check_not_exists,
    check_replace,
    config_origin,
    load_data,
    run_record,
    train_config,
    write_run_files,
)
from stellarnet.runs.metrics import regression_metrics

log = logging.getLogger(__name__)

COMPARE_FOLDER = "compare"
COMPARE_JSON = "compare.json"
METRICS_CSV = "metrics.csv"
METRICS_MD = "metrics.md"
PREDICTIONS_CSV = "predictions.csv"
KNN_GRID = (1, 2, 3, 5, 8, 13, 21, 34, 55)
"""Candidate k of the nearest-neighbours baseline (values above the fitting rows are skipped)."""
CARVE_FRACTION = 0.2
"""Share of the training rows held out to choose k when the config has no validation split."""
METRIC_COLUMNS = ("rows", "mse", "rmse", "mae", "r2")


@dataclass
class ValidationRows:
    """Rows to choose k on: fit on ``x_fit``, score on ``x_val``; ``source`` says where from."""

    x_fit: np.ndarray
    y_fit: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray
    source: str


def compare_folder(config: ExperimentConfig, results_dir: str | Path = "results") -> Path:
    """``results/<experiment>/compare``."""
    return Path(results_dir) / config.name / COMPARE_FOLDER


def validation_rows(dataset: Dataset, seed: int) -> ValidationRows:
    """The config's validation split, or :data:`CARVE_FRACTION` of the training rows.

    Carved rows are the first ``round(CARVE_FRACTION * n)`` (at least 1) of
    ``numpy.random.default_rng(seed).permutation(n)``; the rest are fitted.
    """
    if len(dataset.y_val):
        return ValidationRows(
            dataset.x,
            dataset.y,
            dataset.x_val,
            dataset.y_val,
            f"the config's validation split ({len(dataset.y_val)} rows)",
        )
    rows = len(dataset.y)
    if rows < 2:
        raise ConfigError(f"{rows} training row(s) are too few to choose k on validation rows")
    n_val = max(1, round(CARVE_FRACTION * rows))
    order = np.random.default_rng(seed).permutation(rows)
    held, kept = order[:n_val], order[n_val:]
    return ValidationRows(
        dataset.x[kept],
        dataset.y[kept],
        dataset.x[held],
        dataset.y[held],
        f"no validation split in the config: {n_val} of the {rows} training rows "
        f"({CARVE_FRACTION:.0%}) carved out with numpy.random.default_rng({seed})",
    )


def choose_k(
    rows: ValidationRows, grid: tuple[int, ...] = KNN_GRID
) -> tuple[int, dict[int, float]]:
    """The k of ``grid`` with the lowest validation MSE (ties: the smaller k), and every
    candidate's validation MSE."""
    from sklearn.metrics import mean_squared_error
    from sklearn.neighbors import KNeighborsRegressor

    scores = {}
    for k in (k for k in grid if k <= len(rows.y_fit)):
        model = KNeighborsRegressor(n_neighbors=k).fit(rows.x_fit, rows.y_fit.ravel())
        scores[k] = float(mean_squared_error(rows.y_val.ravel(), model.predict(rows.x_val)))
    best = min(scores, key=lambda k: (scores[k], k))
    return best, scores


def fit_baselines(dataset: Dataset, seed: int) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """Fit the scikit-learn baselines on the training rows; predict the test rows.

    Returns the predictions (``linear``, ``knn``, ``mean``; each ``(n_test,)``) and a record
    of how k was chosen.
    """
    from sklearn.dummy import DummyRegressor
    from sklearn.linear_model import LinearRegression
    from sklearn.neighbors import KNeighborsRegressor

    x, y = dataset.x, dataset.y.ravel()
    rows = validation_rows(dataset, seed)
    k, scores = choose_k(rows)
    predictions = {
        "linear": LinearRegression().fit(x, y).predict(dataset.x_test),
        "knn": KNeighborsRegressor(n_neighbors=k).fit(x, y).predict(dataset.x_test),
        "mean": DummyRegressor(strategy="mean").fit(x, y).predict(dataset.x_test),
    }
    knn = {
        "k": k,
        "validation": rows.source,
        "validation_mse_by_k": {str(key): value for key, value in scores.items()},
        "refit": f"on all {len(y)} training rows",
    }
    return predictions, knn


def metrics_table(
    y_true: np.ndarray, predictions: dict[str, np.ndarray], details: dict[str, str]
) -> pd.DataFrame:
    """One row per model: model, detail, rows, mse, rmse, mae, r2 on ``y_true``."""
    rows = [
        {"model": name, "detail": details.get(name, "")} | regression_metrics(y_true, predicted)
        for name, predicted in predictions.items()
    ]
    return pd.DataFrame(rows, columns=["model", "detail", *METRIC_COLUMNS])


def markdown_table(table: pd.DataFrame, title: str = "") -> str:
    """The metrics table as GitHub Markdown (4 significant digits)."""
    header = ["model", "MSE", "RMSE", "MAE", "R^2", "rows", "detail"]
    lines = [f"# {title}", ""] if title else []
    lines += ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for row in table.itertuples(index=False):
        cells = [
            row.model,
            *(f"{getattr(row, m):.4g}" for m in ("mse", "rmse", "mae", "r2")),
            str(row.rows),
            row.detail,
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def text_table(table: pd.DataFrame) -> list[str]:
    """The metrics table as aligned text lines for the terminal."""
    lines = [f"{'model':<10} {'MSE':>9} {'RMSE':>9} {'MAE':>9} {'R^2':>8}  detail"]
    for row in table.itertuples(index=False):
        lines.append(
            f"{row.model:<10} {row.mse:>9.4g} {row.rmse:>9.4g} {row.mae:>9.4g} {row.r2:>8.4g}  "
            f"{row.detail}"
        )
    return lines


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
    ResultsExist
        If the folder holds results and ``force`` is False (checked before training).
    """
    from stellarnet.results.history import save_history
    from stellarnet.runs.committee import MIN_MEMBERS, train_committee
    from stellarnet.train.models import build_model

    if committee and committee < MIN_MEMBERS:
        raise ConfigError(f"a committee needs at least {MIN_MEMBERS} members, got {committee}")
    folder = compare_folder(config, results_dir)
    check_not_exists(folder, force)
    started = time.perf_counter()
    catalog, dataset = load_data(config)
    if not len(dataset.y_test):
        raise ConfigError(
            f"{config_origin(config)}: compare scores models on test rows, and the config has "
            "none; add e.g. `split = { train = 0.8, validation = 0.0, test = 0.2 }` to [dataset]"
        )
    model = build_model(config.model, config.seed)
    history = train_config(config, dataset, progress, model=model)
    predictions = {"network": model(dataset.x_test, training=False).numpy().ravel()}
    details = {"network": network_detail(config)}
    spread, members = None, None
    if committee:
        members = train_committee(config, dataset, committee, progress=progress)
        mean, spread = members.predict(dataset.x_test)
        predictions["committee"] = mean.ravel()
        details["committee"] = (
            f"mean of {committee} networks on bootstrap samples ({members.engine})"
        )
    baselines, knn = fit_baselines(dataset, config.seed)
    predictions |= baselines
    details |= {
        "linear": "sklearn LinearRegression",
        "knn": f"sklearn KNeighborsRegressor, k={knn['k']} chosen on validation",
        "mean": "sklearn DummyRegressor (training mean)",
    }
    table = metrics_table(dataset.y_test, predictions, details)
    network_record = run_record(
        config, catalog, dataset, history, time.perf_counter() - started
    ) | {"test_metrics": regression_metrics(dataset.y_test, predictions["network"])}
    record = network_record | {
        "compare": {
            "test_rows": len(dataset.y_test),
            "target": network_record["dataset"]["target"],
            "metrics": {row["model"]: row for row in table.to_dict(orient="records")},
            "knn": knn,
            "committee": members.summary() if members is not None else None,
        }
    }
    with staged_folder(folder, ready=lambda: check_replace(folder, force)) as staging:
        write_run_files(staging / "network", history, network_record)
        if members is not None:
            save_history(members.history, staging / "committee")
        write_comparison(
            staging, table, predictions_frame(dataset.y_test, predictions, spread), record
        )
    log.debug("wrote %s", folder)  # the CLI prints it with the file list
    return RunResult(folder, history, record)


def predictions_frame(
    y_true: np.ndarray, predictions: dict[str, np.ndarray], spread: np.ndarray | None = None
) -> pd.DataFrame:
    """One row per test row: ``y_true``, each model's prediction, and ``committee_std``
    (if ``spread`` is given), in float64."""
    frame = pd.DataFrame({"y_true": np.ravel(y_true).astype(np.float64)})
    for name, predicted in predictions.items():
        frame[name] = np.ravel(predicted).astype(np.float64)
    if spread is not None:
        frame["committee_std"] = np.ravel(spread)
    return frame


def write_comparison(
    folder: Path, table: pd.DataFrame, predictions: pd.DataFrame, record: dict[str, Any]
) -> None:
    """Write metrics.csv/.md, predictions.csv, compare.json and the figures into ``folder``."""
    synthetic = bool(record.get("catalog_provenance", {}).get("synthetic"))
    title = f"{record['experiment']}: test metrics ({len(predictions)} rows)"
    title += ", SYNTHETIC data" if synthetic else ""
    markdown = markdown_table(table, title)
    labelled = table.assign(data="SYNTHETIC" if synthetic else "catalog")
    atomic_write(folder / PREDICTIONS_CSV, lambda tmp: predictions.to_csv(tmp, index=False))
    atomic_write(folder / METRICS_CSV, lambda tmp: labelled.to_csv(tmp, index=False))
    atomic_write(folder / METRICS_MD, lambda tmp: tmp.write_text(markdown, encoding="utf-8"))
    write_json(folder / COMPARE_JSON, record)
    prediction_figures(folder)


def prediction_figures(folder: str | Path) -> list[Path]:
    """Draw ``pred_vs_true_<model>.png`` for every model of a compare folder, from its saved
    ``predictions.csv``, ``metrics.csv`` and ``compare.json`` alone; return the paths."""
    from stellarnet.viz.style import new_figure, save_figure, style

    folder = Path(folder)
    frame = pd.read_csv(folder / PREDICTIONS_CSV)
    table = pd.read_csv(folder / METRICS_CSV, keep_default_na=False)
    record = json.loads((folder / COMPARE_JSON).read_text(encoding="utf-8"))
    label = record["experiment"]
    if record.get("catalog_provenance", {}).get("synthetic"):
        label += " (SYNTHETIC data)"
    target = record["compare"]["target"]
    name = target["column"]
    for transform in target["transforms"]:
        name = f"{transform}({name})"
    values = frame.drop(columns="committee_std", errors="ignore").to_numpy()
    low, high = values.min(), values.max()
    paths = []
    for row in table.itertuples(index=False):
        with style():
            fig = new_figure(figsize=(4.5, 4.5))
            ax = fig.add_subplot()
            ax.plot([low, high], [low, high], color="0.5", lw=1, label="predicted = true")
            if row.model == "committee" and "committee_std" in frame:
                ax.errorbar(
                    frame["y_true"],
                    frame[row.model],
                    yerr=frame["committee_std"],
                    fmt="o",
                    ms=3,
                    alpha=0.6,
                    elinewidth=0.8,
                    label="members' mean \u00b1 std",
                )
            else:
                ax.plot(frame["y_true"], frame[row.model], "o", ms=3, alpha=0.6, label=row.model)
            ax.set_xlabel(f"true {name} (test rows)")
            ax.set_ylabel(f"{name} predicted by {row.model}")
            ax.set_title(f"{label}\n{row.model}: MSE {row.mse:.4g}, R^2 {row.r2:.4g}", fontsize=9)
            ax.set_aspect("equal")
            ax.legend(loc="upper left", fontsize=8)
            paths.append(save_figure(fig, folder, f"pred_vs_true_{row.model}"))
    return paths


def report_lines(result: RunResult) -> list[str]:
    """What ``stellarnet compare`` prints: the table, the data label and where it wrote."""
    record = result.record
    compare = record["compare"]
    table = pd.DataFrame(list(compare["metrics"].values()))
    lines = [
        f"{record['experiment']} compare on {compare['test_rows']} test rows "
        f"in {record['wall_time_s']:.1f} s"
    ]
    if record.get("catalog_provenance", {}).get("synthetic"):
        lines.append(f"  data: SYNTHETIC ({record['catalog_path']}), not a measurement")
    lines += ["  " + line for line in text_table(table)]
    lines.append(f"  kNN: k={compare['knn']['k']}, validation rows: {compare['knn']['validation']}")
    if compare["committee"]:
        info = compare["committee"]
        how = (
            "all members in one full-batch graph"
            if info["engine"] == "stacked"
            else "members one after another, with the config's training settings"
        )
        lines.append(f"  committee: {info['members']} members, bootstrap samples, {how}")
    lines.append(
        f"  wrote {result.folder}/ (metrics.csv, metrics.md, predictions.csv, "
        "pred_vs_true_*.png, compare.json, network/"
        + (", committee/" if compare["committee"] else "")
        + ")"
    )
    return lines

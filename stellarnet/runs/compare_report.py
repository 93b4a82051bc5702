"""What ``stellarnet compare`` writes and prints: the metrics table (CSV, Markdown and the
terminal's text), the predictions table, the predicted-vs-true figures and the report lines.

The figures are drawn from the saved files alone (``predictions.csv``, ``metrics.csv``,
``compare.json``), so that they can be redrawn without training.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from stellarnet.files import atomic_write, write_json
from stellarnet.runs.experiment import RunResult
from stellarnet.runs.metrics import regression_metrics

COMPARE_JSON = "compare.json"
METRICS_CSV = "metrics.csv"
METRICS_MD = "metrics.md"
PREDICTIONS_CSV = "predictions.csv"
METRIC_COLUMNS = ("rows", "mse", "rmse", "mae", "r2")


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

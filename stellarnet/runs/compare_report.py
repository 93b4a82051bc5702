"""What ``stellarnet compare`` writes and prints: the metrics table (CSV, Markdown and the
terminal's text), the predictions table, the figures and the report lines.

The figures are drawn from the saved files alone (``predictions.csv``, ``metrics.csv``,
``compare.json``), so that they can be redrawn without training: predicted vs true per model
(``pred_vs_true_<model>.png``) for regression metric sets, and for photo-z comparisons
``zphot_vs_zspec.png`` (z_phot vs z_spec, one panel per model, with the 1:1 line and the
|dz| = 0.15 lines) and ``dz_vs_zspec.png`` (dz = (z_phot - z_spec)/(1 + z_spec) vs z_spec).
Test rows with a clipped input are marked in both.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from stellarnet.data.datasets import SCALINGS
from stellarnet.files import atomic_write, write_json
from stellarnet.runs.experiment import RunResult
from stellarnet.runs.metrics import OUTLIER_DZ

COMPARE_JSON = "compare.json"
METRICS_CSV = "metrics.csv"
METRICS_MD = "metrics.md"
PREDICTIONS_CSV = "predictions.csv"
METRIC_COLUMNS = ("rows", "mse", "rmse", "mae", "r2")
PHOTOZ_COLUMNS = ("bias", "sigma_nmad", "outlier_fraction")
"""The photo-z metrics' columns (``[training] metrics = "photoz"``), after the regression's."""
NOT_MODELS = ("y_true", "committee_std", "clipped_input")
"""The predictions table's columns that are not a model's prediction."""
PHOTOZ_FIGURES = ("zphot_vs_zspec", "dz_vs_zspec")
PHOTOZ_NOTE = (
    "dz = (z_phot - z_spec) / (1 + z_spec); bias: mean dz; sigma_NMAD: 1.4826 x median "
    f"abs(dz - median dz); outliers: share of rows with abs(dz) > {OUTLIER_DZ:g}. All metrics "
    "in redshift units (the target's scaling undone)."
)


def target_label(target: dict[str, Any]) -> str:
    """The target as its metrics are computed: the column inside the transforms that stay
    once the trailing scalings are undone (``zs``; ``log10(Teff)``)."""
    transforms = list(target["transforms"])
    while transforms and transforms[-1] in SCALINGS:
        transforms.pop()
    name = target["column"]
    for transform in transforms:
        name = f"{transform}({name})"
    return name


def metrics_table(scores: dict[str, dict[str, float]], details: dict[str, str]) -> pd.DataFrame:
    """One row per model: model, detail, rows, mse, rmse, mae, r2 (and, for the photo-z
    metric set, bias, sigma_nmad, outlier_fraction) from each model's test metrics."""
    photoz = any("sigma_nmad" in metrics for metrics in scores.values())
    columns = [*METRIC_COLUMNS, *(PHOTOZ_COLUMNS if photoz else ())]
    rows = [
        {"model": name, "detail": details.get(name, "")} | metrics
        for name, metrics in scores.items()
    ]
    return pd.DataFrame(rows, columns=["model", "detail", *columns])


def _cells(row: Any) -> tuple[list[str], list[str]]:
    """Header and cells of one table row: the regression metrics (4 significant digits), and
    bias, sigma_NMAD and the outlier percentage when the row has them."""
    header = ["MSE", "RMSE", "MAE", "R^2"]
    cells = [f"{getattr(row, m):.4g}" for m in ("mse", "rmse", "mae", "r2")]
    if hasattr(row, "sigma_nmad"):
        header += ["bias", "sigma_NMAD", "outliers"]
        cells += [f"{row.bias:.4g}", f"{row.sigma_nmad:.4g}", f"{row.outlier_fraction:.2%}"]
    return header, cells


def markdown_table(table: pd.DataFrame, title: str = "", note: bool = True) -> str:
    """The metrics table as GitHub Markdown (4 significant digits); for photo-z metrics
    followed by what they are (``note``)."""
    lines = [f"# {title}", ""] if title else []
    for number, row in enumerate(table.itertuples(index=False)):
        header, cells = _cells(row)
        if number == 0:
            header = ["model", *header, "rows", "detail"]
            lines += ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        lines.append("| " + " | ".join([row.model, *cells, str(row.rows), row.detail]) + " |")
    if note and "sigma_nmad" in table.columns:
        lines += ["", PHOTOZ_NOTE]
    return "\n".join(lines) + "\n"


def text_table(table: pd.DataFrame) -> list[str]:
    """The metrics table as aligned text lines for the terminal."""
    photoz = "sigma_nmad" in table.columns
    width = max(10, *map(len, table["model"]))
    head = f"{'model':<{width}} {'MSE':>9} {'RMSE':>9} {'MAE':>9} {'R^2':>8}"
    head += f" {'bias':>10} {'sigma_NMAD':>10} {'outliers':>8}" if photoz else ""
    lines = [head + "  detail"]
    for row in table.itertuples(index=False):
        line = (
            f"{row.model:<{width}} {row.mse:>9.4g} {row.rmse:>9.4g} {row.mae:>9.4g} {row.r2:>8.4g}"
        )
        if photoz:
            line += f" {row.bias:>10.4g} {row.sigma_nmad:>10.4g} {row.outlier_fraction:>8.2%}"
        lines.append(f"{line}  {row.detail}")
    return lines


def robustness_table(record: dict[str, Any], table: pd.DataFrame) -> pd.DataFrame | None:
    """The metrics table without the test rows whose inputs were clipped (from
    ``compare.json``'s ``robustness``), or None when none was clipped or nothing clips."""
    robustness = record["compare"].get("robustness")
    if not robustness or not robustness["metrics_without_clipped"]:
        return None
    without = robustness["metrics_without_clipped"]
    details = dict(zip(table["model"], table["detail"], strict=True))
    return metrics_table(without, details)


def robustness_markdown(record: dict[str, Any], table: pd.DataFrame) -> str:
    """The Markdown section on clipped test inputs ('' when the config clips nothing)."""
    robustness = record["compare"].get("robustness")
    if not robustness:
        return ""
    count, rows = robustness["test_rows_clipped"], robustness["test_rows"]
    clips = robustness["clipped_values_all_rows"].items()
    per_feature = ", ".join(f"{column} {n}" for column, n in clips if n) or "none"
    text = (
        f"\n## Clipped inputs\n\n{count} of the {rows} test rows had an input clipped "
        f"({robustness['rule']}; column `clipped_input` of predictions.csv). Values clipped "
        f"in all rows (training, validation, test), per feature: {per_feature}.\n"
    )
    without = robustness_table(record, table)
    if without is None:
        return text
    return (
        text
        + f"\nThe metrics without the clipped test rows ({count}):\n\n"
        + markdown_table(without, note=False)
    )


def predictions_frame(
    y_true: np.ndarray,
    predictions: dict[str, np.ndarray],
    spread: np.ndarray | None = None,
    clipped: np.ndarray | None = None,
) -> pd.DataFrame:
    """One row per test row: ``y_true``, each model's prediction, and ``committee_std``
    (if ``spread`` is given), in float64, and ``clipped_input`` (if ``clipped`` is given)."""
    frame = pd.DataFrame({"y_true": np.ravel(y_true).astype(np.float64)})
    for name, predicted in predictions.items():
        frame[name] = np.ravel(predicted).astype(np.float64)
    if spread is not None:
        frame["committee_std"] = np.ravel(spread)
    if clipped is not None:
        frame["clipped_input"] = np.asarray(clipped, dtype=bool)
    return frame


def write_comparison(
    folder: Path, table: pd.DataFrame, predictions: pd.DataFrame, record: dict[str, Any]
) -> None:
    """Write metrics.csv/.md, predictions.csv, compare.json and the figures into ``folder``."""
    synthetic = bool(record.get("catalog_provenance", {}).get("synthetic"))
    title = f"{record['experiment']}: test metrics ({len(predictions)} rows)"
    title += ", SYNTHETIC data" if synthetic else ""
    markdown = markdown_table(table, title) + robustness_markdown(record, table)
    labelled = table.assign(data="SYNTHETIC" if synthetic else "catalog")
    atomic_write(folder / PREDICTIONS_CSV, lambda tmp: predictions.to_csv(tmp, index=False))
    atomic_write(folder / METRICS_CSV, lambda tmp: labelled.to_csv(tmp, index=False))
    atomic_write(folder / METRICS_MD, lambda tmp: tmp.write_text(markdown, encoding="utf-8"))
    write_json(folder / COMPARE_JSON, record)
    prediction_figures(folder)


def _saved(folder: Path) -> tuple[pd.DataFrame, pd.DataFrame, dict[str, Any], str]:
    """A compare folder's predictions, metrics table, record and data label."""
    frame = pd.read_csv(folder / PREDICTIONS_CSV)
    table = pd.read_csv(folder / METRICS_CSV, keep_default_na=False)
    record = json.loads((folder / COMPARE_JSON).read_text(encoding="utf-8"))
    label = record["experiment"]
    if record.get("catalog_provenance", {}).get("synthetic"):
        label += " (SYNTHETIC data)"
    return frame, table, record, label


def prediction_figures(folder: str | Path) -> list[Path]:
    """Draw the figures of a compare folder from its saved ``predictions.csv``,
    ``metrics.csv`` and ``compare.json`` alone; return the PNG paths: ``zphot_vs_zspec`` and
    ``dz_vs_zspec`` for photo-z metrics, else ``pred_vs_true_<model>`` per model."""
    folder = Path(folder)
    frame, table, record, label = _saved(folder)
    if "sigma_nmad" in table.columns:
        return [photoz_figure(folder, kind) for kind in PHOTOZ_FIGURES]
    from stellarnet.viz.style import new_figure, number, save_figure, style

    name = target_label(record["compare"]["target"])
    values = frame.drop(columns=list(NOT_MODELS[1:]), errors="ignore").to_numpy()
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
            ax.set_title(
                f"{label}\n{row.model}: MSE {number(row.mse)}, R^2 {number(row.r2)}", fontsize=9
            )
            ax.set_aspect("equal")
            ax.legend(loc="upper left", fontsize=8)
            paths.append(save_figure(fig, folder, f"pred_vs_true_{row.model}"))
    return paths


def photoz_figure(folder: str | Path, kind: str) -> Path:
    """``zphot_vs_zspec`` or ``dz_vs_zspec`` (:data:`PHOTOZ_FIGURES`) of a photo-z compare
    folder, one panel per model, drawn from the saved files alone; return the PNG path."""
    from stellarnet.viz.style import new_figure, number, save_figure, style

    folder = Path(folder)
    frame, table, record, label = _saved(folder)
    z_spec = frame["y_true"].to_numpy()
    clipped = frame.get("clipped_input", pd.Series(False, index=frame.index)).to_numpy(bool)
    models = list(table["model"])
    phot = frame[models].to_numpy()
    if kind == "zphot_vs_zspec":
        low, high = min(0.0, z_spec.min(), phot.min()), max(z_spec.max(), phot.max()) * 1.03
        limits = (low, high), (low, high)
    else:
        dz = (phot - z_spec[:, None]) / (1.0 + z_spec[:, None])
        reach = max(0.2, 1.05 * float(np.abs(dz).max()))
        limits = (min(0.0, z_spec.min()), z_spec.max() * 1.03), (-reach, reach)
    columns = min(3, len(models))
    with style():
        fig = new_figure(figsize=(3.3 * columns, 3.2 * math.ceil(len(models) / columns) + 0.4))
        grid = fig.subplots(math.ceil(len(models) / columns), columns, squeeze=False)
        for ax, row in zip(grid.ravel(), table.itertuples(index=False), strict=False):
            _photoz_panel(ax, kind, z_spec, frame[row.model].to_numpy(), clipped, limits)
            ax.set_title(
                f"{row.model}: \u03c3_NMAD {number(row.sigma_nmad)}, "
                f"outliers {number(100 * row.outlier_fraction)}%, R\u00b2 {number(row.r2)}",
                fontsize=7.5,
            )
        for ax in grid.ravel()[len(models) :]:
            ax.set_visible(False)
        grid.ravel()[0].legend(loc="upper left", fontsize=6.5)
        what = "z_phot vs z_spec" if kind == "zphot_vs_zspec" else "dz vs z_spec"
        fig.suptitle(f"{label}: {what}, {len(frame)} test rows", fontsize=9)
        return save_figure(fig, folder, kind)


def _photoz_panel(
    ax: Any,
    kind: str,
    z_spec: np.ndarray,
    z_phot: np.ndarray,
    clipped: np.ndarray,
    limits: tuple[tuple[float, float], tuple[float, float]],
) -> None:
    """One model's panel: the test rows (clipped ones marked), the 1:1 (or dz = 0) line and
    the |dz| = 0.15 lines."""
    line = np.linspace(*limits[0], 50)
    if kind == "zphot_vs_zspec":
        y = z_phot
        ax.plot(line, line, color="0.2", lw=0.9, label="z_phot = z_spec")
        for sign in (1, -1):
            edge = line + sign * OUTLIER_DZ * (1 + line)
            ax.plot(
                line,
                edge,
                color="0.45",
                lw=0.8,
                ls="--",
                label=None if sign < 0 else f"|dz| = {OUTLIER_DZ:g}",
            )
        ax.set_ylabel("z_phot")
    else:
        y = (z_phot - z_spec) / (1.0 + z_spec)
        ax.axhline(0.0, color="0.2", lw=0.9, label="dz = 0")
        for sign in (1, -1):
            ax.axhline(
                sign * OUTLIER_DZ,
                color="0.45",
                lw=0.8,
                ls="--",
                label=None if sign < 0 else f"|dz| = {OUTLIER_DZ:g}",
            )
        ax.set_ylabel("dz = (z_phot - z_spec) / (1 + z_spec)", fontsize=7)
    ax.scatter(
        z_spec[~clipped], y[~clipped], s=3, alpha=0.35, lw=0, color="#2166ac", label="test rows"
    )
    if clipped.any():
        ax.scatter(
            z_spec[clipped],
            y[clipped],
            s=22,
            marker="x",
            lw=1,
            color="#b2182b",
            label="clipped input",
        )
    ax.set_xlim(*limits[0])
    ax.set_ylim(*limits[1])
    ax.set_xlabel("z_spec")


def report_lines(result: RunResult) -> list[str]:
    """What ``stellarnet compare`` prints: the table, the data label, the clipped test rows
    and where it wrote."""
    record = result.record
    compare = record["compare"]
    table = pd.DataFrame(list(compare["metrics"].values()))
    lines = [
        f"{record['experiment']} compare on {compare['test_rows']} test rows "
        f"in {record['wall_time_s']:.1f} s"
    ]
    if compare["target"]["transforms"][-1:] in (["minmax"], ["standardize"]):
        lines[0] += f", metrics in {target_label(compare['target'])} (scaling undone)"
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
    lines += _robustness_lines(record, table)
    figures = (
        "zphot_vs_zspec.png, dz_vs_zspec.png"
        if "sigma_nmad" in table.columns
        else "pred_vs_true_*.png"
    )
    lines.append(
        f"  wrote {result.folder}/ (metrics.csv, metrics.md, predictions.csv, {figures}, "
        "compare.json, network/" + (", committee/" if compare["committee"] else "") + ")"
    )
    return lines


def _robustness_lines(record: dict[str, Any], table: pd.DataFrame) -> list[str]:
    """The report's lines on clipped test inputs (none when the config clips nothing)."""
    robustness = record["compare"].get("robustness")
    if not robustness:
        return []
    count = robustness["test_rows_clipped"]
    lines = [f"  clipped inputs: {count} of {robustness['test_rows']} test rows"]
    without = robustness_table(record, table)
    if without is not None:
        lines[0] += "; without them (metrics.md, compare.json):"
        lines += ["  " + line for line in text_table(without)]
    return lines

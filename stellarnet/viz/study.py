"""A study's figures and report, drawn from its saved files alone (``members.csv``,
``run.json`` and the ``history/`` dataset's epoch and loss columns).

``loss_bands``
    Per hidden width, each rate's median loss vs epoch and the band its members' losses
    span from the 10th to the 90th percentile.
``final_loss``
    Histogram of the members' final loss, one outline per rate.
``monotone``
    The fraction of members whose loss falls at every epoch, per rate, with 95 % Wilson
    score intervals (binomial).
``report.md``
    The answer in words: how many seeds fall at every epoch at each rate, and for how many
    the contrast of the first two rates holds (the first falls at every epoch, the second
    does not).
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

from stellarnet.files import atomic_write
from stellarnet.results.study_parts import HISTORY_DIR, loss_matrix
from stellarnet.results.study_summary import wilson_interval
from stellarnet.viz.style import (
    WIDE,
    new_figure,
    rate_colorbar,
    rate_colors,
    save_figure,
    style,
    uses_colorbar,
    wants_log,
)

FIGURES = ("loss_bands", "final_loss", "monotone")
REPORT_MD = "report.md"
BANDS = (10, 90)
"""Percentiles of a loss band."""


def _members(folder: Path) -> tuple[pd.DataFrame, dict]:
    record = json.loads((folder / "run.json").read_text(encoding="utf-8"))
    return pd.read_csv(folder / "members.csv"), record


def _rates(record: dict) -> list[float]:
    return [float(lr) for lr in record["study"]["learning_rates"]]


def _widths(members: pd.DataFrame) -> list[int]:
    return list(dict.fromkeys(int(w) for w in members["hidden"]))


def _legend_or_bar(fig, axes, rates: list[float]) -> None:
    if uses_colorbar(rates):
        rate_colorbar(fig, axes, rates)
    else:
        axes[0].legend(loc="best")


def plot_loss_bands(folder: Path, members: pd.DataFrame, record: dict):
    """Median and 10-90 % band of the loss vs epoch, per rate, one panel per width."""
    rates, widths = _rates(record), _widths(members)
    colors = rate_colors(rates)
    fig = new_figure(WIDE if len(widths) > 1 else None)
    axes = np.atleast_1d(fig.subplots(1, len(widths), sharey=True, squeeze=False)[0])
    every = []
    for ax, width in zip(axes, widths, strict=True):
        for lr in rates:
            epochs, losses = loss_matrix(folder / HISTORY_DIR, lr, width)
            with warnings.catch_warnings():  # a cell whose members all diverged at an epoch
                warnings.simplefilter("ignore", RuntimeWarning)
                losses = np.where(np.isfinite(losses), losses, np.nan)
                low, mid, high = np.nanpercentile(losses, [BANDS[0], 50, BANDS[1]], axis=0)
            every.append(losses)
            alpha = 0.2 if len(rates) <= 3 else 0.1  # many bands overlap
            ax.fill_between(epochs, low, high, color=colors[lr], alpha=alpha, linewidth=0)
            ax.plot(epochs, mid, color=colors[lr], linewidth=1.4, label=f"LR={lr:g}")
        ax.set_xlabel("epoch")
        ax.set_title(
            f"hidden {width}, {int((members['hidden'] == width).sum() / len(rates))} seeds"
        )
    values = np.concatenate([v.ravel() for v in every])
    if wants_log(values):
        axes[0].set_yscale("log")
    axes[0].set_ylabel(f"loss (median, {BANDS[0]}-{BANDS[1]} %)")
    _legend_or_bar(fig, list(axes), rates)
    return fig


def plot_final_loss(members: pd.DataFrame, record: dict):
    """Histogram of the members' final loss, one outline per rate (all widths together)."""
    rates = _rates(record)
    colors = rate_colors(rates)
    finals = members["loss_final"].to_numpy(dtype=float)
    finals = finals[np.isfinite(finals)]
    fig = new_figure()
    ax = fig.subplots()
    log = wants_log(finals) and (finals > 0).all()
    if finals.size:
        low, high = finals.min(), finals.max()
        bins = (
            np.geomspace(low, high, 31)
            if log
            else np.linspace(low, high if high > low else low + 1, 31)
        )
        for lr in rates:
            values = members.loc[members["lr"] == lr, "loss_final"].to_numpy(dtype=float)
            values = values[np.isfinite(values)]
            ax.hist(
                values,
                bins=bins,
                histtype="step",
                color=colors[lr],
                linewidth=1.4,
                label=f"LR={lr:g}",
            )
    if log:
        ax.set_xscale("log")
    diverged = int(members["diverged"].sum())
    ax.set_xlabel("final loss" + (f" ({diverged} diverged members left out)" if diverged else ""))
    ax.set_ylabel("members")
    ax.set_title(f"final loss, {len(members)} members")
    _legend_or_bar(fig, [ax], rates)
    return fig


def plot_monotone(members: pd.DataFrame, record: dict):
    """Fraction of members whose loss falls at every epoch, per rate (one series per width),
    with 95 % Wilson intervals."""
    rates, widths = _rates(record), _widths(members)
    fig = new_figure()
    ax = fig.subplots()
    markers = "osD^v<>"
    spread = np.linspace(-0.12, 0.12, len(widths)) if len(widths) > 1 else [0.0]
    positions = np.arange(len(rates), dtype=float)
    for width, shift, marker in zip(widths, spread, markers * 8, strict=False):
        cell = members[members["hidden"] == width].groupby("lr", sort=False)["monotone"]
        k = np.array([cell.get_group(lr).sum() for lr in rates], float)
        n = np.array([cell.get_group(lr).size for lr in rates], float)
        bounds = wilson_interval(k, n)
        fraction = k / n
        ax.errorbar(
            positions + shift,
            fraction,
            yerr=[fraction - bounds[0], bounds[1] - fraction],
            fmt=marker,
            capsize=3,
            label=f"hidden {width}",
        )
        if len(rates) * len(widths) <= 12:  # the counts, where they fit
            for x, top, count, total in zip(positions + shift, bounds[1], k, n, strict=True):
                ax.annotate(
                    f"{count:.0f}/{total:.0f}",
                    (x, min(top + 0.02, 0.93)),
                    ha="center",
                    va="bottom",
                    fontsize=7,
                )
    ax.set_xticks(positions, [f"{lr:g}" for lr in rates], rotation=45 if len(rates) > 6 else 0)
    ax.set_xlim(-0.5, len(rates) - 0.5)
    ax.set_ylim(-0.02, 1.02)
    ax.set_xlabel("learning rate")
    ax.set_ylabel("fraction falling at every epoch")
    ax.set_title("monotone descent (95 % Wilson intervals)")
    if len(widths) > 1:
        ax.legend(loc="best")
    return fig


def study_figures(folder: str | Path) -> list[Path]:
    """Draw :data:`FIGURES` into ``folder`` (PNG and PDF); return the PNG paths."""
    folder = Path(folder)
    members, record = _members(folder)
    with style():
        figures = {
            "loss_bands": plot_loss_bands(folder, members, record),
            "final_loss": plot_final_loss(members, record),
            "monotone": plot_monotone(members, record),
        }
    return [save_figure(fig, folder, name) for name, fig in figures.items()]


def answer(members: pd.DataFrame, rates: list[float], width: int) -> str:
    """The study's answer for one width in one sentence: how many seeds fall at every epoch
    at each rate, and for how many the first rate does and the second does not."""
    cell = members[members["hidden"] == width]
    table = cell.pivot(index="seed", columns="lr", values="monotone").astype(bool)
    seeds = len(table)
    counts = [f"{int(table[lr].sum())}/{seeds}" for lr in rates]
    text = f"LR {rates[0]:g} falls at every epoch for {counts[0]} seeds"
    if len(rates) > 1:
        text += "".join(f", LR {lr:g} for {c}" for lr, c in zip(rates[1:], counts[1:], strict=True))
        contrast = int((table[rates[0]] & ~table[rates[1]]).sum())
        text += (
            f"; the contrast (LR {rates[0]:g} falls at every epoch, LR {rates[1]:g} does not) "
            f"holds for {contrast}/{seeds}"
        )
    return text + "."


def study_report(folder: str | Path) -> Path:
    """Write ``report.md``: the grid, the answer per width, and the summary table."""
    folder = Path(folder)
    members, record = _members(folder)
    study, rates = record["study"], _rates(record)
    epochs = record["config"]["training"]["epochs"]
    summary = pd.read_csv(folder / "summary.csv")
    lines = [
        f"# Study of {record['experiment']}: {len(rates)} rates x {study['seeds']} seeds",
        "",
        f"init `{study['init']}`, {epochs} epochs, "
        f"optimizer {record['config']['training']['optimizer']}, "
        f"{record['members']} members; a member is `stellarnet experiment {record['experiment']} "
        "--seed S --lr R` (bit for bit).",
        "",
    ]
    for width in _widths(members):
        lines.append(f"- hidden {width}: {answer(members, rates, width)}")
    diverged = int(members["diverged"].sum())
    if diverged:
        lines += ["", f"{diverged} members diverged (their rows end at the first non-finite loss)."]
    lines += ["", *markdown_table(summary)]
    lines += ["", *(f"![{name}]({name}.png)" for name in FIGURES), ""]
    text = "\n".join(lines)
    return atomic_write(folder / REPORT_MD, lambda tmp: tmp.write_text(text, encoding="utf-8"))


def markdown_table(frame: pd.DataFrame) -> list[str]:
    """``frame`` as the lines of a Markdown table (numbers to 4 significant figures)."""

    def cell(value: object) -> str:
        return f"{value:.4g}" if isinstance(value, float) else str(value)

    rows = [" | ".join(map(str, frame.columns)), " | ".join("---" for _ in frame.columns)]
    rows += [" | ".join(cell(v) for v in row) for row in frame.itertuples(index=False)]
    return [f"| {row} |" for row in rows]

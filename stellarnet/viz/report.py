"""``report.md`` and ``report.html`` for a run or sweep folder: the run's provenance, a summary
of each learning rate, the figures and the history tables, ready to hand in or share.

The report is built as a list of blocks (heading, paragraph, list, table, figure) and rendered
to Markdown and to a self-contained HTML page (figures linked by relative path, so keep the
folder together). It holds no time of its own making, so regenerating it gives the same bytes.
"""

from __future__ import annotations

import html
import math
import re
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from stellarnet.results.analysis import dead_units, describe_dead, network_losses
from stellarnet.results.saved import SavedResults, lr_label
from stellarnet.viz.provenance import provenance_items, summary_note
from stellarnet.viz.style import number
from stellarnet.viz.tables import (
    MAX_COLUMNS,
    Table,
    history_tables,
    markdown_table,
    numeric_columns,
    write_texts,
)

REPORT_ROWS = 50
"""Longer histories are shown in the report every k-th epoch (the exports hold every row)."""

FIGURES = (
    ("loss", "Training loss vs epoch (on a log axis when it spans more than two decades)."),
    (
        "hr",
        "The catalog as an HR diagram (log L vs log Teff, Teff decreasing to the right, "
        "colour BP-RP) with the trained network's prediction.",
    ),
    ("residuals", "Predicted minus true target vs the input, with the binned median."),
    (
        "fit",
        "The data in catalog units with each learning rate's fitted network (after the last "
        "step) and the initial one.",
    ),
    (
        "loss_steps",
        "Loss before each gradient-descent step (on a log axis when it spans more than two "
        "decades).",
    ),
    (
        "landscape",
        "Loss on the plane of the two principal directions of the training path "
        "(PCA of the per-epoch parameter vectors), with each path projected on it.",
    ),
    ("parameters", "Every weight and bias vs epoch; dead units dashed grey or crossed."),
    ("gradients", "Every gradient vs epoch."),
    (
        "network",
        "The network diagram: edge width |w|, colour its sign (red > 0, blue < 0), "
        "node colour the bias, dead units grey.",
    ),
)
"""Figure files (stem) a report shows when present, with their captions."""

RUN_FIGURES = ("parameters", "gradients", "network")
"""The figures of each run that a sweep's report shows from the run's subfolder."""


@dataclass
class Heading:
    level: int
    text: str


@dataclass
class Paragraph:
    text: str


@dataclass
class Items:
    items: list[str]


@dataclass
class TableBlock:
    table: Table


@dataclass
class Picture:
    source: str
    caption: str
    pdf: str | None = None


Block = Heading | Paragraph | Items | TableBlock | Picture


def _final_loss(results: SavedResults, lr: float) -> list[str]:
    """The loss of the final weights on each part of the run's rows (train; with a split
    also validation and test); for a diverged run, of its last finite weights."""
    shown = results.weights_epoch(lr)
    if shown is None:
        return ["no finite weights"] * len(results.parts())
    losses = [number(v) for v in network_losses(results, results.layers(lr, shown)).values()]
    if results.divergence(lr) is not None:
        losses[0] += f" (last finite: epoch {shown})"
    return losses


def summary_table(results: SavedResults) -> Table:
    """Per learning rate: epochs (and whether it diverged), initial, last and lowest recorded
    loss, the loss of the final weights on the training rows (and, for a run with a split, on
    its validation and test rows), and the dead hidden units."""
    rows = []
    for lr, history in results.histories.items():
        finite = results.finite_history(lr)
        trained = finite[finite["epoch"] >= 1]
        best = trained.loc[trained["loss"].idxmin()] if not trained.empty else history.iloc[0]
        divergence = results.divergence(lr)
        epochs = str(int(history["epoch"].max()))
        rows.append(
            [
                f"{lr:g}",
                epochs if divergence is None else f"{epochs} (diverged)",
                number(float(history["loss"].iloc[0])),
                number(float(history["loss"].iloc[-1])),
                f"{number(float(best['loss']))} (epoch {int(best['epoch'])})",
                *_final_loss(results, lr),
                describe_dead(dead_units(finite, results.layer_sizes)),
            ]
        )
    final = []
    for part, (_, y) in results.parts().items():
        rows_used = f"{len(y)} {part} row{'s' if len(y) != 1 else ''}"
        final.append(f"loss of final weights ({rows_used})")
    header = [
        "learning rate",
        "epochs",
        "initial loss",
        "last recorded loss",
        "lowest loss",
        *final,
        "dead hidden units",
    ]
    return header, rows


def _figure_blocks(results: SavedResults, staged: Path | None = None) -> list[Block]:
    """The figures present in the folder (or just drawn into ``staged``, to be moved there)."""
    folder = results.folder
    blocks: list[Block] = []

    def present(name: str) -> bool:
        return (folder / name).is_file() or (staged is not None and (staged / name).is_file())

    places = [("", "", [stem for stem, _ in FIGURES])]
    if results.is_sweep:
        places += [
            (f"lr={lr:g}/", f" ({lr_label(lr)})", RUN_FIGURES) for lr in results.learning_rates
        ]
    captions = dict(FIGURES)
    for prefix, note, stems in places:
        for stem in stems:
            caption = captions[stem]
            if present(f"{prefix}{stem}.png"):
                pdf = f"{prefix}{stem}.pdf" if present(f"{prefix}{stem}.pdf") else None
                blocks.append(Picture(f"{prefix}{stem}.png", caption + note, pdf))
        if present(f"{prefix}network.gif"):
            blocks.append(
                Picture(
                    f"{prefix}network.gif",
                    "The network through training beside its loss curve." + note,
                )
            )
    return blocks


def _thinned(history: pd.DataFrame) -> tuple[pd.DataFrame, int]:
    step = max(1, math.ceil(len(history) / REPORT_ROWS))
    if step == 1:
        return history, 1
    keep = history.iloc[::step]
    if keep.index[-1] != history.index[-1]:
        keep = pd.concat([keep, history.iloc[[-1]]])
    return keep, step


def report_blocks(
    results: SavedResults,
    digits: int = 4,
    max_columns: int = MAX_COLUMNS,
    staged: Path | None = None,
) -> list[Block]:
    """The report's content, rendered by :func:`render_markdown` and :func:`render_html`;
    it shows the figures in the results folder or in ``staged``."""
    description = results.config.get("description", "")
    kind = "sweep" if results.is_sweep else "run"
    blocks: list[Block] = [
        Heading(1, f"{results.experiment}: {kind} report"),
        Paragraph(
            (f"{description}. " if description else "")
            + f"Regenerated by `stellarnet figures` from `{results.folder.name}/`: every number "
            "and figure here comes from the saved history table, `run.json` and the catalog "
            "named there (checked by its sha256), not from a live session."
        ),
        Heading(2, "Provenance"),
        Items(provenance_items(results)),
        Heading(2, "Results"),
        TableBlock(summary_table(results)),
        Paragraph(summary_note(results)),
        Heading(2, "Figures"),
        *_figure_blocks(results, staged),
        Heading(2, "History tables"),
    ]
    for lr, history in results.histories.items():
        shown, step = _thinned(history)
        blocks.append(Heading(3, lr_label(lr)))
        note = f"Rounded to {digits} decimals; "
        note += f"every {step}th epoch shown, " if step > 1 else ""
        suffix = f"_lr={lr:g}" if results.is_sweep else ""
        note += f"all rows in `history{suffix}.md` and `history{suffix}.tex`."
        blocks.append(Paragraph(note))
        blocks += [TableBlock(t) for t in history_tables(shown, digits, max_columns)]
    return blocks


def render_markdown(blocks: list[Block]) -> str:
    """The report as Markdown."""
    parts = []
    for block in blocks:
        if isinstance(block, Heading):
            parts.append(f"{'#' * block.level} {block.text}")
        elif isinstance(block, Paragraph):
            parts.append(block.text)
        elif isinstance(block, Items):
            parts.append("\n".join(f"- {item}" for item in block.items))
        elif isinstance(block, TableBlock):
            parts.append(markdown_table(block.table).rstrip("\n"))
        elif isinstance(block, Picture):
            text = f"![{Path(block.source).stem}]({block.source})\n\n*{block.caption}*"
            if block.pdf:
                text += f" ([PDF]({block.pdf}))"
            parts.append(text)
    return "\n\n".join(parts) + "\n"


def _inline(text: str) -> str:
    """Escape for HTML and turn `code` spans into <code>."""
    return re.sub(r"`([^`]*)`", r"<code>\1</code>", html.escape(text, quote=False))


CSS = """body { font-family: "DejaVu Sans", sans-serif; max-width: 60em; margin: 2em auto;
       padding: 0 1em; line-height: 1.45; }
table { border-collapse: collapse; margin: 0.8em 0; font-size: 0.85em; }
th, td { padding: 0.15em 0.6em; border-bottom: 1px solid #ccc; }
th { border-bottom: 2px solid #444; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
figure { margin: 1.2em 0; }
img { max-width: 100%; }
figcaption { font-size: 0.9em; color: #333; }
code { font-size: 0.9em; }"""


def render_html(blocks: list[Block], title: str) -> str:
    """The report as a self-contained HTML page (figures linked by relative path)."""
    body = []
    for block in blocks:
        if isinstance(block, Heading):
            body.append(f"<h{block.level}>{_inline(block.text)}</h{block.level}>")
        elif isinstance(block, Paragraph):
            body.append(f"<p>{_inline(block.text)}</p>")
        elif isinstance(block, Items):
            body.append(
                "<ul>\n" + "\n".join(f"<li>{_inline(i)}</li>" for i in block.items) + "\n</ul>"
            )
        elif isinstance(block, TableBlock):
            header, rows = block.table
            numeric = numeric_columns(block.table)
            lines = [
                "<table>",
                "<tr>" + "".join(f"<th>{html.escape(h)}</th>" for h in header) + "</tr>",
            ]
            lines += [
                "<tr>"
                + "".join(
                    f'<td class="num">{html.escape(c)}</td>'
                    if numeric[i]
                    else f"<td>{html.escape(c)}</td>"
                    for i, c in enumerate(row)
                )
                + "</tr>"
                for row in rows
            ]
            body.append("\n".join(lines + ["</table>"]))
        elif isinstance(block, Picture):
            pdf = f' (<a href="{html.escape(block.pdf)}">PDF</a>)' if block.pdf else ""
            source, alt = html.escape(block.source), html.escape(block.caption)
            body.append(
                f'<figure><img src="{source}" alt="{alt}">'
                f"<figcaption>{_inline(block.caption)}{pdf}</figcaption></figure>"
            )
    return (
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        f"<title>{html.escape(title)}</title>\n<style>\n{CSS}\n</style>\n</head>\n<body>\n"
        + "\n".join(body)
        + "\n</body>\n</html>\n"
    )


def write_report(
    results: SavedResults,
    digits: int = 4,
    max_columns: int = MAX_COLUMNS,
    folder: Path | None = None,
) -> list[Path]:
    """Write ``report.md`` and ``report.html`` into ``folder`` (default: the results folder),
    after the figures, so that it shows those present there or in the results folder."""
    blocks = report_blocks(results, digits, max_columns, folder)
    title = f"{results.experiment}: {'sweep' if results.is_sweep else 'run'} report"
    texts = {"report.md": render_markdown(blocks), "report.html": render_html(blocks, title)}
    return write_texts(results.folder if folder is None else folder, texts)

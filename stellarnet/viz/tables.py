"""The history table as the assignment prints it: Markdown and LaTeX (booktabs) exports,
rounded to a chosen number of decimals and split into column groups that fit a page.

Each group repeats the ``epoch`` column and holds at most ``max_columns`` others, keeping a
layer's kernel, bias and gradient columns together where they fit (``output, loss``, then
``w^1_*``, ``b^1_*``, ``w^2_*`` ..., then the gradients ``g^1_*``, ``gb^1_*`` ...). Missing
values (the gradients of epoch 0, which has no update) are left blank.

The exports are plain text built here (no tabulate or jinja2 needed) and are byte for byte
the same every time they are made from the same table.
"""

from __future__ import annotations

import math
import re
from itertools import groupby
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd

from stellarnet.files import atomic_write
from stellarnet.schema import parse_column
from stellarnet.viz.style import math_name

if TYPE_CHECKING:
    from stellarnet.results.saved import SavedResults

_NUMBER = re.compile(r"-?(?:[0-9]*\.?[0-9]*|inf|nan)")

MAX_COLUMNS = 8
"""Columns per group besides ``epoch``: nine numeric columns of 4 decimals fit the text width
of an A4 or letter page at LaTeX's ``\\small`` size."""

Table = tuple[list[str], list[list[str]]]
"""(column names, rows of formatted cells)."""


def format_value(value: float, digits: int, nan: str = "") -> str:
    """``value`` rounded to ``digits`` decimals; ``nan`` for NaN (blank: not recorded);
    ``inf``, ``-inf`` for infinities; never ``-0.0000``."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return nan
    if math.isinf(value):
        return "inf" if value > 0 else "-inf"
    text = f"{float(value):.{digits}f}"
    if text.startswith("-") and float(text) == 0:
        text = text[1:]
    return text


def column_groups(columns: list[str], max_columns: int = MAX_COLUMNS) -> list[list[str]]:
    """Split the history's columns (without ``epoch``) into page-wide groups.

    Natural blocks (``output``/``loss``; one kind of one layer, e.g. ``w^1_*``) are cut into
    pieces of at most ``max_columns``, and consecutive pieces are packed into one group while
    they fit.
    """
    if max_columns < 1:
        raise ValueError(f"max_columns must be >= 1, got {max_columns}")

    def block(name: str) -> tuple[str, int]:
        parsed = parse_column(name)
        return ("", 0) if parsed is None else (parsed[0], parsed[1])

    pieces = []
    for _, members in groupby([c for c in columns if c != "epoch"], key=block):
        members = list(members)
        pieces += [members[i : i + max_columns] for i in range(0, len(members), max_columns)]
    groups: list[list[str]] = []
    for piece in pieces:
        if groups and len(groups[-1]) + len(piece) <= max_columns:
            groups[-1] += piece
        else:
            groups.append(list(piece))
    return groups


def history_tables(
    history: pd.DataFrame, digits: int = 4, max_columns: int = MAX_COLUMNS
) -> list[Table]:
    """The history as formatted column groups, each led by ``epoch``. Row 0's empty cells
    (no gradient before the first update) are blank; a NaN in a later row (a run that
    diverged) is written ``nan``."""
    tables = []
    epochs = [str(int(e)) for e in history["epoch"]]
    for group in column_groups(list(history.columns), max_columns):
        rows = [
            [epoch, *(format_value(v, digits, "" if epoch == "0" else "nan") for v in values)]
            for epoch, values in zip(epochs, history[group].itertuples(index=False), strict=True)
        ]
        tables.append((["epoch", *group], rows))
    return tables


def numeric_columns(table: Table) -> list[bool]:
    """Per column, whether every cell is a number (or blank): those are right-aligned."""
    header, rows = table
    return [all(_NUMBER.fullmatch(row[i]) for row in rows) for i in range(len(header))]


def markdown_header(name: str) -> str:
    """``w^1_3`` -> ``w^1\\_3`` (so that Markdown does not read ``_`` as emphasis)."""
    return name.replace("_", "\\_")


def latex_header(name: str) -> str:
    """``w^1_3`` -> ``$w^{1}_{3}$`` (see :func:`stellarnet.viz.style.math_name`); ``loss``
    stays ``loss``."""
    return math_name(name) if parse_column(name) else name.replace("_", "\\_")


def markdown_table(table: Table) -> str:
    """A GitHub-flavoured Markdown pipe table, numeric columns right-aligned."""
    header, rows = table
    lines = [
        "| " + " | ".join(markdown_header(h) for h in header) + " |",
        "|" + "|".join("---:" if numeric else "---" for numeric in numeric_columns(table)) + "|",
    ]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def latex_table(table: Table) -> str:
    """A booktabs ``tabular`` (needs ``\\usepackage{booktabs}``)."""
    header, rows = table

    def cell(text: str) -> str:
        return f"$-${text[1:]}" if text.startswith("-") else text

    lines = [
        "\\begin{tabular}{" + "r" * len(header) + "}",
        "\\toprule",
        " & ".join(latex_header(h) for h in header) + " \\\\",
        "\\midrule",
    ]
    lines += [" & ".join(cell(c) for c in row) + " \\\\" for row in rows]
    lines += ["\\bottomrule", "\\end{tabular}"]
    return "\n".join(lines) + "\n"


def to_markdown(history: pd.DataFrame, digits: int = 4, max_columns: int = MAX_COLUMNS) -> str:
    """The whole history as Markdown tables, one per column group, separated by a blank line."""
    return "\n".join(markdown_table(t) for t in history_tables(history, digits, max_columns))


def to_latex(
    history: pd.DataFrame, digits: int = 4, max_columns: int = MAX_COLUMNS, caption: str = ""
) -> str:
    """The whole history as LaTeX booktabs tabulars, one per column group, for ``\\input``.

    Weights, biases and gradients are typeset as in the assignment (``$w^{1}_{3}$``), bias
    gradients as ``${g_b}^{1}_{3}$``.
    """
    head = [
        "% stellarnet history table; needs \\usepackage{booktabs}",
        f"% {caption}" if caption else "",
        f"% values rounded to {digits} decimals; blank: not recorded (epoch 0 has no gradient)",
        "\\begingroup\\small",
    ]
    tables = history_tables(history, digits, max_columns)
    body = "\\par\\medskip\n".join(latex_table(t) for t in tables)
    return "\n".join(line for line in head if line) + "\n" + body + "\\endgroup\n"


def write_tables(
    results: SavedResults,
    digits: int = 4,
    max_columns: int = MAX_COLUMNS,
    folder: str | Path | None = None,
) -> list[Path]:
    """Write ``history.md`` and ``history.tex`` for each run of ``results``.

    A single run writes them into its folder; for a sweep the file names carry the learning
    rate (``history_lr=0.1.md``).
    """
    from stellarnet.results.saved import lr_label

    folder = Path(results.folder if folder is None else folder)
    texts = {}
    for lr, history in results.histories.items():
        suffix = f"_lr={lr:g}" if results.is_sweep else ""
        caption = f"{results.experiment}, {lr_label(lr)}"
        texts[f"history{suffix}.md"] = to_markdown(history, digits, max_columns)
        texts[f"history{suffix}.tex"] = to_latex(history, digits, max_columns, caption)
    return write_texts(folder, texts)


def write_texts(folder: str | Path, texts: dict[str, str]) -> list[Path]:
    """Write each ``{file name: text}`` into ``folder`` as UTF-8, atomically (a reader never
    sees half a table or report); return the paths in order."""
    return [
        atomic_write(Path(folder) / name, lambda tmp, t=text: tmp.write_text(t, encoding="utf-8"))
        for name, text in texts.items()
    ]

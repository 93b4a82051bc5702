"""Reading and checking catalog tables: the CSV, its columns, the query's filters.

:func:`read_verified` is how every catalog with a provenance JSON is read: checksum first,
then the CSV, then a summary (rows, NaNs, rows that break the query's filters, usable rows) in
the log. :func:`check_answer` is the stricter test a VizieR answer passes before it is cached.
"""

from __future__ import annotations

import csv
import logging
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from stellarnet.data.provenance import REFRESH_HINT, repair_advice, same_query, verified_sha256
from stellarnet.data.registry import Catalog, CatalogQuery
from stellarnet.errors import CatalogError, FetchError

log = logging.getLogger(__name__)

_COMPARISON = re.compile(r"^\s*(>=|<=|>|<|=|==|!=)\s*([-+0-9.eE]+)\s*$")


def read_catalog_csv(path: str | Path, columns: Sequence[str]) -> pd.DataFrame:
    """Read a catalog CSV and check that ``columns`` are present and numeric.

    Raises
    ------
    CatalogError
        If the file is missing, unreadable or empty, has a header but no rows, names one of
        ``columns`` twice, or a column is missing or not numeric.
    """
    path = Path(path)
    if not path.is_file():
        raise CatalogError(f"catalog file {path} does not exist")
    try:
        frame = pd.read_csv(path)
    except pd.errors.EmptyDataError:
        raise CatalogError(f"catalog file {path} is empty: no header, no rows") from None
    except (pd.errors.ParserError, UnicodeDecodeError) as err:
        raise CatalogError(f"catalog file {path} cannot be read as CSV: {err}") from None
    except OSError as err:
        raise CatalogError(f"catalog file {path} cannot be read ({err.strerror or err})") from None
    check_unique_header(path, columns)
    if frame.empty:
        raise CatalogError(
            f"catalog file {path} has no rows: only the header {list(frame.columns)}"
        )
    check_columns(frame, columns, source=str(path))
    return frame


def check_unique_header(path: Path, columns: Sequence[str]) -> None:
    """Refuse a CSV whose header names one of ``columns`` twice (pandas would silently read
    the first and call the second ``NAME.1``); other repeated names are logged."""
    with open(path, encoding="utf-8-sig", newline="") as handle:
        header = next((row for row in csv.reader(handle) if row), [])
    repeated = sorted({name for name in header if header.count(name) > 1})
    needed = [name for name in repeated if name in columns]
    if needed:
        where = {
            name: [i + 1 for i, other in enumerate(header) if other == name] for name in needed
        }
        raise CatalogError(
            f"catalog file {path} names column(s) {needed} more than once (at header "
            f"positions {where}); stellarnet cannot tell which one to use. Rename or remove "
            "the extra column(s)."
        )
    if repeated:
        log.warning("%s: column(s) %s appear more than once (not used)", path, repeated)


def check_columns(frame: pd.DataFrame, columns: Sequence[str], source: str) -> None:
    """Raise CatalogError unless every name in ``columns`` is a numeric column of ``frame``."""
    missing = [name for name in columns if name not in frame.columns]
    if missing:
        raise CatalogError(
            f"{source} is missing column(s) {missing}; it has {list(frame.columns)}. "
            "Give a catalog with those columns, or change the experiment's columns."
        )
    not_numeric = [name for name in columns if not pd.api.types.is_numeric_dtype(frame[name])]
    if not_numeric:
        raise CatalogError(f"{source}: column(s) {not_numeric} are not numeric")


def filter_mask(values: pd.Series, expression: str) -> pd.Series | None:
    """Evaluate a simple VizieR constraint such as ``"> 0"`` on ``values``.

    Returns a boolean mask, or None when the expression is not a single numeric
    comparison (VizieR knows more forms; those are left to the server).
    """
    match = _COMPARISON.match(expression)
    if match is None:
        return None
    op, number = match.group(1), float(match.group(2))
    ops = {
        ">": np.greater,
        ">=": np.greater_equal,
        "<": np.less,
        "<=": np.less_equal,
        "=": np.equal,
        "==": np.equal,
        "!=": np.not_equal,
    }
    numbers = values.to_numpy(dtype=float, na_value=np.nan)
    return pd.Series(ops[op](numbers, number), index=values.index)


def summarize(frame: pd.DataFrame, query: CatalogQuery, source: str) -> dict[str, Any]:
    """Validate ``frame`` against ``query`` and describe it: rows, NaNs and filter violations.

    Missing columns raise CatalogError; NaNs and rows that break a filter are counted and
    logged (the dataset step drops them), not raised. ``rows_with_null`` counts rows with a
    null in any of the query's columns, ``rows_breaking_filters`` rows (with values) that break
    a filter, and ``usable_rows`` the rows with neither.
    """
    check_columns(frame, query.columns, source)
    columns = list(query.columns)
    nulls = frame[columns].isna()
    nan_counts = {name: int(nulls[name].sum()) for name in columns}
    violations: dict[str, int] = {}
    breaking = pd.Series(False, index=frame.index)
    for name, expression in query.column_filters:
        if name not in frame.columns:
            continue
        mask = filter_mask(frame[name], expression)
        if mask is not None:
            broken = ~mask & frame[name].notna()
            violations[name] = int(broken.sum())
            breaking |= broken
    with_null = nulls.any(axis=1)
    summary = {
        "rows": len(frame),
        "nan": nan_counts,
        "filter_violations": violations,
        "rows_with_null": int(with_null.sum()),
        "rows_breaking_filters": int(breaking.sum()),
        "usable_rows": int((~with_null & ~breaking).sum()),
    }
    log.info("%s: %d rows, columns %s", source, len(frame), ", ".join(query.columns))
    if any(nan_counts.values()):
        log.warning("%s: NaN counts %s", source, nan_counts)
    if any(violations.values()):
        log.warning("%s: rows breaking the query filters %s", source, violations)
    return summary


def read_verified(path: Path, query: CatalogQuery, origin: str) -> Catalog:
    """Read the catalog CSV ``path`` for ``query`` after checking it against its provenance.

    ``origin`` is ``"cache"`` or ``"snapshot"`` (a shipped catalog); it chooses the fix a
    refusal gives. A file fetched for another query is used, with a warning that says how to
    fetch this one.
    """
    kind = "shipped" if origin == "snapshot" else "cache"
    sha, provenance = verified_sha256(path, kind, query)
    try:
        frame = read_catalog_csv(path, query.columns)
    except CatalogError as err:  # it matches its checksum, so it was written so: no hint in it
        raise CatalogError(f"{err}. {repair_advice(path, kind, query)}.") from None
    summarize(frame, query, source=str(path))
    if not same_query(provenance, query):
        log.warning(
            "%s was fetched for the query %s, not for %s; %s with the query you want.",
            path,
            provenance["query"],
            query.to_dict(),
            REFRESH_HINT,
        )
    return Catalog(frame, path, sha, origin, provenance)


NOTHING_CACHED = "Nothing was cached; an existing cache is left as it was."


def check_answer(frame: pd.DataFrame, query: CatalogQuery, source: str) -> dict[str, Any]:
    """Check a VizieR answer to ``query`` before it is cached; return its summary.

    Refused (FetchError): more rows than the row limit (the server ignored it), a missing or
    non-numeric column, a column that is null in every row, a row that breaks a filter (the
    server ignored the filters), and an answer with no usable row. Rows with a null are kept
    as VizieR sent them and counted (``rows_with_null``); a result shorter than the row limit
    is logged and recorded (``fewer_rows_than_limit``).
    """
    if frame.empty:
        raise FetchError(f"{source}: the answer has no rows. {NOTHING_CACHED}")
    if len(frame) > query.row_limit:
        raise FetchError(
            f"{source}: the answer has {len(frame)} rows, more than the {query.row_limit} asked "
            f"for (-out.max={query.row_limit}); the server did not apply the row limit, so "
            f"these are not the query's rows. {NOTHING_CACHED} Try again later or another "
            "mirror with --server."
        )
    try:
        summary = summarize(frame, query, source)
    except CatalogError as err:
        raise FetchError(f"{err} {NOTHING_CACHED}") from None
    empty = [name for name, count in summary["nan"].items() if count == len(frame)]
    if empty:
        raise FetchError(
            f"{source}: column(s) {empty} are null in all {len(frame)} rows, so the answer "
            f"cannot be used. {NOTHING_CACHED} Check the query's columns against the VizieR "
            "table, or try another mirror with --server."
        )
    broken = {name: count for name, count in summary["filter_violations"].items() if count}
    if broken:
        raise FetchError(
            f"{source}: rows that break the query filters {query.filters}: {broken}. The server "
            f"did not apply the filters; {NOTHING_CACHED}"
        )
    if summary["usable_rows"] == 0:
        raise FetchError(
            f"{source}: none of the {len(frame)} rows is usable: every row has a null in one "
            f"of the columns {list(query.columns)} (nulls per column: {summary['nan']}). "
            f"{NOTHING_CACHED} Check the query's columns and filters."
        )
    summary["fewer_rows_than_limit"] = summary["rows"] < query.row_limit
    if summary["fewer_rows_than_limit"]:
        log.warning(
            "%s returned %d rows, fewer than the row limit %d: that is all VizieR has for "
            "these filters, or the answer was cut short. Recorded in the provenance.",
            source,
            summary["rows"],
            query.row_limit,
        )
    return summary

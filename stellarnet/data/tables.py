"""Reading and checking catalog tables: the CSV, its columns, the query's filters.

:func:`read_verified` is how every catalog with a provenance JSON is read: checksum first,
then the CSV, then a summary (rows, NaNs, rows that break the query's filters) in the log.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from stellarnet.data.provenance import REFRESH_HINT, same_query, verified_sha256
from stellarnet.data.registry import Catalog, CatalogQuery
from stellarnet.errors import CatalogError

log = logging.getLogger(__name__)

_COMPARISON = re.compile(r"^\s*(>=|<=|>|<|=|==|!=)\s*([-+0-9.eE]+)\s*$")


def read_catalog_csv(path: str | Path, columns: Sequence[str]) -> pd.DataFrame:
    """Read a catalog CSV and check that ``columns`` are present and numeric.

    Raises
    ------
    CatalogError
        If the file is missing or unreadable, or a column is missing or not numeric.
    """
    path = Path(path)
    if not path.is_file():
        raise CatalogError(f"catalog file {path} does not exist")
    try:
        frame = pd.read_csv(path)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as err:
        raise CatalogError(f"catalog file {path} cannot be read as CSV: {err}") from None
    check_columns(frame, columns, source=str(path))
    return frame


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
    return pd.Series(ops[op](values.to_numpy(dtype=float), number), index=values.index)


def summarize(frame: pd.DataFrame, query: CatalogQuery, source: str) -> dict[str, Any]:
    """Validate ``frame`` against ``query`` and describe it: rows, NaNs and filter violations.

    Missing columns raise CatalogError; NaNs and rows that break a filter are counted and
    logged (the dataset step drops them), not raised.
    """
    check_columns(frame, query.columns, source)
    nan_counts = {name: int(frame[name].isna().sum()) for name in query.columns}
    violations: dict[str, int] = {}
    for name, expression in query.column_filters:
        if name not in frame.columns:
            continue
        mask = filter_mask(frame[name], expression)
        if mask is not None:
            violations[name] = int((~mask & frame[name].notna()).sum())
    summary = {"rows": len(frame), "nan": nan_counts, "filter_violations": violations}
    log.info("%s: %d rows, columns %s", source, len(frame), ", ".join(query.columns))
    if any(nan_counts.values()):
        log.warning("%s: NaN counts %s", source, nan_counts)
    if any(violations.values()):
        log.warning("%s: rows breaking the query filters %s", source, violations)
    return summary


def read_verified(path: Path, query: CatalogQuery, origin: str) -> Catalog:
    """Read the catalog CSV ``path`` for ``query`` after checking it against its provenance.

    A file fetched for another query is used, with a warning that says how to fetch this one.
    """
    sha, provenance = verified_sha256(path)
    frame = read_catalog_csv(path, query.columns)
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

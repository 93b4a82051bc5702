"""Stellar catalogs: what to ask VizieR, where the answer is cached, and how it is loaded.

A catalog on disk is a CSV file with a provenance JSON beside it (``<name>.csv`` and
``<name>.json``). The JSON records where the table came from and the sha256 of the CSV; a
CSV whose checksum does not match its JSON is refused, never silently used.

:func:`fetch_catalog` asks VizieR through :mod:`astroquery.vizier` and writes both files
atomically. Loading order for a :class:`CatalogQuery` (:func:`load_catalog`):

1. the local cache ``catalogs/<name>.csv`` if present (checksum verified);
2. otherwise, unless offline, a fresh fetch from VizieR;
3. otherwise (offline, or the fetch failed) the snapshot shipped with stellarnet for that
   query, if there is one, with a warning when a fetch failed.
"""

from __future__ import annotations

import contextlib
import json
import logging
import platform
import re
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from stellarnet.errors import CatalogError, FetchError
from stellarnet.files import atomic_path, json_text, sha256_file

if TYPE_CHECKING:  # astroquery is imported only when a fetch happens
    from astropy.table import Table
    from astroquery.utils import TableList
    from astroquery.vizier import VizierClass

log = logging.getLogger(__name__)

PROJECT_ROOT = Path(__file__).resolve().parents[2]
CATALOG_DIR = PROJECT_ROOT / "catalogs"
"""Folder of cached catalogs and shipped snapshots (``catalogs/`` in the project)."""

DEFAULT_TIMEOUT = 60.0
"""Seconds to wait for VizieR to connect and to answer (astroquery's default too)."""

REFRESH_HINT = "run `stellarnet fetch --refresh` to download the catalog again"


@dataclass(frozen=True)
class CatalogQuery:
    """A VizieR query: which table, which columns, which rows, and the cache file name.

    Parameters
    ----------
    catalog : str
        VizieR catalog or table id, e.g. ``"I/345/gaia2"``.
    columns : sequence of str
        Columns to retrieve, in order.
    column_filters : mapping of str to str
        VizieR constraints per column, e.g. ``{"Lum": "> 0"}``.
    row_limit : int
        Maximum number of rows VizieR returns.
    name : str
        Base name of the cache files, ``<name>.csv`` and ``<name>.json``.
    snapshot : str or None
        File name (in ``catalogs/``) of a shipped snapshot that stands in for this query when
        there is no cache and no network.
    """

    catalog: str
    columns: tuple[str, ...]
    column_filters: tuple[tuple[str, str], ...] = ()
    row_limit: int = 10000
    name: str = "catalog"
    snapshot: str | None = None

    def __init__(
        self,
        catalog: str,
        columns: Sequence[str],
        column_filters: Mapping[str, str] | Sequence[tuple[str, str]] = (),
        row_limit: int = 10000,
        name: str = "catalog",
        snapshot: str | None = None,
    ) -> None:
        filters = dict(column_filters)
        if not columns:
            raise CatalogError("CatalogQuery needs at least one column")
        if isinstance(row_limit, bool) or not isinstance(row_limit, int) or row_limit < 1:
            raise CatalogError(f"row_limit must be a positive integer, got {row_limit!r}")
        if not re.fullmatch(r"[A-Za-z0-9_.-]+", name):
            raise CatalogError(f"catalog name {name!r} must be a plain file name (A-Z, 0-9, _.-)")
        object.__setattr__(self, "catalog", catalog)
        object.__setattr__(self, "columns", tuple(columns))
        object.__setattr__(self, "column_filters", tuple(filters.items()))
        object.__setattr__(self, "row_limit", row_limit)
        object.__setattr__(self, "name", name)
        object.__setattr__(self, "snapshot", snapshot)

    @property
    def filters(self) -> dict[str, str]:
        """The column filters as a dict."""
        return dict(self.column_filters)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready description of the query (for provenance and run records)."""
        return {
            "catalog": self.catalog,
            "columns": list(self.columns),
            "column_filters": self.filters,
            "row_limit": self.row_limit,
            "name": self.name,
        }


GAIA_DR2_HR = CatalogQuery(
    catalog="I/345/gaia2",
    columns=("Lum", "BP-RP", "Teff"),
    column_filters={"Lum": "> 0", "Teff": "> 0"},
    row_limit=10000,
    name="gaia_dr2_hr",
    snapshot="gaia_dr2_50pc_snapshot.csv",
)
"""The assignment's query: Gaia DR2 luminosity, colour and temperature from VizieR I/345."""

QUERIES: dict[str, CatalogQuery] = {GAIA_DR2_HR.name: GAIA_DR2_HR}
"""Named queries that experiment configs can refer to by name."""


@dataclass
class Catalog:
    """A loaded catalog table and where it came from.

    Attributes
    ----------
    frame : pandas.DataFrame
        The table.
    path : Path
        The CSV file it was read from.
    sha256 : str
        Checksum of that file.
    origin : str
        ``"cache"``, ``"snapshot"``, ``"fetched"`` or ``"file"`` (a user's own CSV).
    provenance : dict
        The provenance record beside the CSV (empty for a user's own file without one).
    """

    frame: pd.DataFrame
    path: Path
    sha256: str
    origin: str
    provenance: dict[str, Any] = field(default_factory=dict)


def provenance_path(csv_path: str | Path) -> Path:
    """The provenance JSON that belongs beside ``csv_path``."""
    return Path(csv_path).with_suffix(".json")


def read_provenance(csv_path: str | Path) -> dict[str, Any]:
    """Read the provenance JSON beside ``csv_path``; raise CatalogError if missing or corrupt."""
    json_path = provenance_path(csv_path)
    fix = REFRESH_HINT
    try:
        record = json.loads(json_path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise CatalogError(
            f"{csv_path} has no provenance file {json_path}; it cannot be checked. {fix}."
        ) from None
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise CatalogError(
            f"provenance file {json_path} of {csv_path} is corrupt ({err}); {fix}."
        ) from None
    if not isinstance(record, dict) or "sha256" not in record:
        raise CatalogError(
            f"provenance file {json_path} of {csv_path} has no 'sha256' entry; {fix}."
        )
    return record


def verified_sha256(csv_path: str | Path) -> tuple[str, dict[str, Any]]:
    """Check ``csv_path`` against its provenance JSON; return (sha256, provenance)."""
    record = read_provenance(csv_path)
    actual = sha256_file(csv_path)
    if actual != record["sha256"]:
        raise CatalogError(
            f"{csv_path} does not match its provenance {provenance_path(csv_path)} "
            f"(sha256 {actual[:12]}... != recorded {str(record['sha256'])[:12]}...): the file "
            "was changed or cut short. Run `stellarnet fetch --refresh` to download it again "
            "(or delete both files to use the shipped snapshot)."
        )
    return actual, record


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


_COMPARISON = re.compile(r"^\s*(>=|<=|>|<|=|==|!=)\s*([-+0-9.eE]+)\s*$")


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


def snapshot_path(query: CatalogQuery, catalog_dir: str | Path = CATALOG_DIR) -> Path | None:
    """The shipped snapshot file that stands in for ``query``, or None."""
    return Path(catalog_dir) / query.snapshot if query.snapshot else None


def cache_path(query: CatalogQuery, cache_dir: str | Path = CATALOG_DIR) -> Path:
    """The cache CSV for ``query``: ``<cache_dir>/<query.name>.csv``."""
    return Path(cache_dir) / f"{query.name}.csv"


def load_catalog(
    query: CatalogQuery = GAIA_DR2_HR,
    cache_dir: str | Path = CATALOG_DIR,
    offline: bool = False,
    *,
    server: str | None = None,
    timeout: float = DEFAULT_TIMEOUT,
) -> Catalog:
    """Load the catalog for ``query``: the verified cache, else a fetch, else the snapshot.

    Parameters
    ----------
    query : CatalogQuery
        What to load; ``query.name`` names the cache files.
    cache_dir : path
        Folder of the cache (``<name>.csv`` + ``<name>.json``).
    offline : bool
        Never touch the network: use the cache or, without one, the shipped snapshot.
    server : str or None
        VizieR mirror for the fetch (host name); None for astroquery's configured server.
    timeout : float
        Seconds to wait for VizieR.

    Returns
    -------
    Catalog
        The table with its path, checksum, origin (``"cache"``, ``"fetched"`` or
        ``"snapshot"``) and provenance.

    Raises
    ------
    CatalogError
        If the cache fails its checksum or its provenance is missing or corrupt (it is never
        silently replaced), the cache folder cannot be written, or there is neither a
        catalog to fetch nor a snapshot.
    FetchError
        If the fetch fails and there is no shipped snapshot to fall back on.
    """
    cache = cache_path(query, cache_dir)
    if cache.exists():
        return _load_verified(cache, query, origin="cache")
    snapshot = snapshot_path(query)
    has_snapshot = snapshot is not None and snapshot.exists()
    if not offline:
        try:
            return fetch_catalog(query, cache_dir, timeout=timeout, server=server)
        except FetchError as err:
            if not has_snapshot:
                raise
            log.warning(
                "%s Using the shipped snapshot %s instead (a stand-in, not the VizieR query); "
                "run `stellarnet fetch` when VizieR is reachable to cache the real catalog "
                "(`--refresh` downloads it again).",
                err,
                snapshot,
            )
            return _load_verified(snapshot, query, origin="snapshot")
    if has_snapshot:
        log.info("no cache at %s; using the shipped snapshot %s", cache, snapshot)
        return _load_verified(snapshot, query, origin="snapshot")
    raise CatalogError(
        f"no catalog for {query.catalog!r}: no cache at {cache} and no shipped snapshot. "
        "Run `stellarnet fetch` on a machine with internet."
    )


def describe_catalog(catalog: Catalog, query: CatalogQuery) -> str:
    """A few lines for people: origin, rows, each column's unit, range and NaNs, the files.

    Examples
    --------
    >>> print(describe_catalog(load_catalog(offline=True), GAIA_DR2_HR))  # doctest: +SKIP
    gaia_dr2_hr: 2242 rows from the shipped snapshot (a stand-in for VizieR I/345/gaia2)
    ...
    """
    provenance = catalog.provenance
    origin = {
        "fetched": f"fetched from VizieR {query.catalog} at "
        f"{provenance.get('source', {}).get('server')}",
        "cache": f"from the cache of VizieR {query.catalog} (fetched "
        f"{provenance.get('retrieved_utc', 'at an unknown time')})",
        "snapshot": f"from the shipped snapshot (a stand-in for VizieR {query.catalog})",
    }.get(catalog.origin, f"from {catalog.origin}")
    frame = catalog.frame[list(query.columns)]
    units = {
        name: (provenance.get("columns", {}).get(name) or {}).get("unit") or ""
        for name in query.columns
    }
    table = pd.DataFrame(
        {"unit": units, "min": frame.min(), "max": frame.max(), "NaN": frame.isna().sum()}
    )
    table.index.name = "column"
    return "\n".join(
        [
            f"{query.name}: {len(catalog.frame)} rows {origin}",
            table.to_string(float_format="{:.6g}".format),
            f"{'wrote' if catalog.origin == 'fetched' else 'file'} {catalog.path} "
            f"(sha256 {catalog.sha256[:12]}...) and {provenance_path(catalog.path)}",
        ]
    )


def load_catalog_file(path: str | Path, columns: Sequence[str]) -> Catalog:
    """Load a user's own catalog CSV (e.g. their Gaia pull) that has ``columns``.

    A provenance JSON beside it is used if present and checked; without one, the file's
    sha256 is still recorded so that runs say exactly which file they used.
    """
    path = Path(path)
    frame = read_catalog_csv(path, columns)
    if provenance_path(path).exists():
        sha, provenance = verified_sha256(path)
    else:
        sha, provenance = sha256_file(path), {}
    # catalogs/ holds the shipped files and the VizieR caches; anything else is the user's
    where = "catalogs/" if path.resolve().parent == CATALOG_DIR else "your file"
    log.info("loaded %s: %d rows (%s)", path, len(frame), where)
    return Catalog(frame, path, sha, "file", provenance)


def _load_verified(path: Path, query: CatalogQuery, origin: str) -> Catalog:
    sha, provenance = verified_sha256(path)
    frame = read_catalog_csv(path, query.columns)
    summarize(frame, query, source=str(path))
    if not _same_query(provenance, query):
        log.warning(
            "%s was fetched for the query %s, not for %s; %s with the query you want.",
            path,
            provenance["query"],
            query.to_dict(),
            REFRESH_HINT,
        )
    return Catalog(frame, path, sha, origin, provenance)


def _same_query(provenance: Mapping[str, Any], query: CatalogQuery) -> bool:
    """False if ``provenance`` records a query that differs from ``query`` (True if none)."""
    recorded = provenance.get("query")
    return recorded is None or recorded == query.to_dict()


# --- fetching from VizieR -------------------------------------------------------------------

VIZIER_ACKNOWLEDGEMENT = (
    "This research has made use of the VizieR catalogue access tool, CDS, Strasbourg, France "
    "(Ochsenbein, Bauer & Marcout 2000, A&AS 143, 23)."
)


def default_server() -> str:
    """The VizieR mirror astroquery is configured to use (``astroquery.vizier.conf.server``)."""
    from astroquery.vizier import conf

    return conf.server


def build_vizier(
    query: CatalogQuery, server: str | None = None, timeout: float = DEFAULT_TIMEOUT
) -> VizierClass:
    """A fresh :class:`astroquery.vizier.VizierClass` that asks exactly ``query``.

    Columns, filters and the row limit go to the constructor: a ``Vizier.ROW_LIMIT`` set on
    astroquery's shared default object is not passed on to ``Vizier(...)`` instances, which
    otherwise return astroquery's default of 50 rows.
    """
    from astroquery.vizier import Vizier

    return Vizier(
        columns=list(query.columns),
        column_filters=query.filters,
        row_limit=query.row_limit,
        vizier_server=server or default_server(),
        timeout=timeout,
    )


def query_payload(query: CatalogQuery, vizier: VizierClass | None = None) -> str:
    """The request body astroquery sends VizieR for ``query`` (no network).

    Raises
    ------
    FetchError
        If the payload does not carry ``query.row_limit`` as ``-out.max`` (VizieR would then
        cut the result at astroquery's default of 50 rows).
    """
    vizier = vizier if vizier is not None else build_vizier(query)
    payload = vizier.get_catalogs(query.catalog, get_query_payload=True)
    if f"-out.max={query.row_limit}" not in payload.splitlines():
        raise FetchError(
            f"the VizieR request for {query.catalog} does not carry the row limit "
            f"{query.row_limit} (payload {payload!r}); astroquery would return its default "
            "number of rows. Report this with your astroquery version."
        )
    return payload


def fetch_catalog(
    query: CatalogQuery = GAIA_DR2_HR,
    cache_dir: str | Path = CATALOG_DIR,
    refresh: bool = False,
    timeout: float = DEFAULT_TIMEOUT,
    server: str | None = None,
    progress: bool = False,
) -> Catalog:
    """Download ``query`` from VizieR and cache it as ``<name>.csv`` + ``<name>.json``.

    A verified cache for the same query is returned as it is unless ``refresh`` is given.
    The answer is validated before anything is written (a table, not empty, the query's
    columns present and numeric, its filters holding); NaNs are counted and a result shorter
    than the row limit is logged and recorded. The CSV and its provenance JSON are written
    to temporary files in ``cache_dir``, fsynced and renamed into place, so an interrupted
    fetch leaves the previous cache (or none), never half a file. astroquery's own HTTP
    cache is bypassed: it would keep an error or empty answer and serve it again.

    Parameters
    ----------
    query : CatalogQuery
        What to ask VizieR; ``query.name`` names the cache files.
    cache_dir : path
        Folder of the cache.
    refresh : bool
        Download even if a valid cache for the same query exists.
    timeout : float
        Seconds to wait for VizieR to connect and to answer.
    server : str or None
        VizieR mirror (``host`` or ``host:port``); None for astroquery's configured server.
    progress : bool
        Show the elapsed time on standard error while waiting for VizieR (terminals only).

    Returns
    -------
    Catalog
        The cached table with origin ``"fetched"`` (or ``"cache"`` if it was reused).

    Raises
    ------
    FetchError
        If VizieR cannot be reached, times out, answers with an HTTP error or something that
        is not a VOTable, or the table is empty or fails validation. Nothing is written.
    CatalogError
        If an existing cache fails its checksum (and ``refresh`` is not given), or the cache
        folder cannot be written.
    """
    cache = cache_path(query, cache_dir)
    if cache.exists() and not refresh:
        _, provenance = verified_sha256(cache)  # a damaged cache is refused, not replaced
        if _same_query(provenance, query):
            log.info("using the cache %s (refresh to download it again)", cache)
            return _load_verified(cache, query, origin="cache")
        log.info(
            "%s was fetched for the query %s; downloading %s",
            cache,
            provenance["query"],
            query.to_dict(),
        )
    server = server or default_server()
    vizier = build_vizier(query, server=server, timeout=timeout)
    payload = query_payload(query, vizier)
    table = _download(vizier, query, server, progress)
    frame = table.to_pandas()
    summary = _validate_fetched(frame, query, source=f"VizieR {query.catalog} from {server}")
    record = _provenance(query, table, server, payload, summary)
    _write_cache(frame, record, cache)
    log.info("wrote %s and %s", cache, provenance_path(cache))
    return _load_verified(cache, query, origin="fetched")


def _download(vizier: VizierClass, query: CatalogQuery, server: str, progress: bool) -> Table:
    """Ask VizieR for ``query`` with astroquery's HTTP cache off; return the result table."""
    import requests
    from astroquery import cache_conf
    from astroquery.exceptions import TableParseError

    where = f"VizieR at {server}"
    log.info(
        "querying %s for %s (%s; up to %d rows)...",
        where,
        query.catalog,
        ", ".join(query.columns),
        query.row_limit,
    )
    start = time.perf_counter()
    try:
        with cache_conf.set_temp("cache_active", False), _elapsed(f"waiting for {where}", progress):
            tables = vizier.get_catalogs(query.catalog)
    except requests.exceptions.SSLError as err:
        raise FetchError(f"secure connection to {where} failed: {_reason(err)}.") from err
    except requests.exceptions.Timeout as err:
        raise FetchError(
            f"{where} did not answer within {vizier.TIMEOUT:g} s; try again later, a larger "
            "--timeout, or another mirror with --server."
        ) from err
    except requests.exceptions.ConnectionError as err:
        raise FetchError(f"could not connect to {where}: {_reason(err)}.") from err
    except requests.exceptions.HTTPError as err:
        response = err.response
        raise FetchError(
            f"{where} answered HTTP {response.status_code} {response.reason}; try again later "
            "or another mirror with --server."
        ) from err
    except requests.exceptions.RequestException as err:
        raise FetchError(f"request to {where} failed: {err}.") from err
    except TableParseError as err:
        detail = str(getattr(vizier, "table_parse_error", err)).splitlines()[0]
        raise FetchError(f"{where} answered with a VOTable that cannot be read: {detail}.") from err
    log.info("VizieR answered in %.1f s", time.perf_counter() - start)
    return _pick_table(tables, query, where)


def _pick_table(tables: TableList | None, query: CatalogQuery, where: str) -> Table:
    """The result table for ``query.catalog`` out of astroquery's parsed answer."""
    if tables is None:  # astroquery returns None when the body is not XML, TSV or FITS
        raise FetchError(
            f"{where} did not answer with a VOTable (an error page?); nothing was cached."
        )
    if len(tables) == 0:  # astroquery drops tables without rows
        raise FetchError(
            f"{where} returned no rows for {query.catalog} with filters {query.filters}; "
            "nothing was cached. Check the catalog id and the filters."
        )
    names = list(tables.keys())
    if query.catalog in names:
        return tables[query.catalog]
    if len(names) == 1:
        return tables[0]
    raise FetchError(
        f"{query.catalog} matched several VizieR tables {names}; give one of them as the catalog."
    )


def _validate_fetched(frame: pd.DataFrame, query: CatalogQuery, source: str) -> dict[str, Any]:
    """Check a fetched table against ``query``; return its summary (rows, NaNs, violations)."""
    try:
        summary = summarize(frame, query, source)
    except CatalogError as err:
        raise FetchError(f"{err} Nothing was cached.") from None
    broken = {name: count for name, count in summary["filter_violations"].items() if count}
    if broken:
        raise FetchError(
            f"{source}: rows that break the query filters {query.filters}: {broken}. The server "
            "did not apply the filters; nothing was cached."
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


def _provenance(
    query: CatalogQuery, table: Table, server: str, payload: str, summary: dict[str, Any]
) -> dict[str, Any]:
    """The provenance record of a fetched table (everything but the CSV's sha256)."""
    import astropy
    import astroquery

    from stellarnet import __version__

    columns = {
        column.name: {
            "unit": str(column.unit) if column.unit is not None else None,
            "description": column.description,
            "ucd": column.meta.get("ucd"),
        }
        for column in table.itercols()
    }
    return {
        "name": query.name,
        "description": f"VizieR {query.catalog} ({', '.join(query.columns)}), fetched by "
        "stellarnet",
        "sha256": None,
        "rows": len(table),
        "columns": columns,
        "query": query.to_dict(),
        "source": {
            "service": "VizieR (CDS, Strasbourg)",
            "server": server,
            "table": table.meta.get("name", query.catalog),
            "table_description": table.meta.get("description"),
            "request": payload,
        },
        "retrieved_utc": datetime.now(UTC).isoformat(timespec="seconds"),
        "validation": summary,
        "versions": {
            "stellarnet": __version__,
            "astroquery": astroquery.__version__,
            "astropy": astropy.__version__,
            "python": platform.python_version(),
        },
        "acknowledgement": VIZIER_ACKNOWLEDGEMENT,
    }


def _write_cache(frame: pd.DataFrame, record: dict[str, Any], cache: Path) -> None:
    """Write the CSV and its provenance JSON; both are in place, or neither changed.

    Both go to temporary files first; the JSON is renamed before the CSV, so an interruption
    between the two renames leaves a checksum mismatch (refused, with the fix) or a JSON
    without a CSV (ignored), never a silently wrong cache.
    """
    json_path = provenance_path(cache)
    try:
        with atomic_path(cache) as tmp_csv, atomic_path(json_path) as tmp_json:
            frame.to_csv(tmp_csv, index=False)
            record["sha256"] = sha256_file(tmp_csv)
            tmp_json.write_text(json_text(record), encoding="utf-8")
    except OSError as err:
        raise CatalogError(
            f"cannot write the catalog cache {cache} ({err.strerror or err}); nothing was "
            f"written. Make {cache.parent} a writable folder or choose another one with "
            "`stellarnet fetch --cache-dir DIR`."
        ) from err


def _reason(err: Exception) -> str:
    """The operating system's reason inside a requests error, e.g. 'Connection refused'."""
    text = str(err)
    match = re.search(r"\[Errno -?\d+\] ([^'\")\]]+)", text)
    if match:
        return match.group(1).strip()
    match = re.search(r"\[SSL: [^\]]+\] ([^'\")(]+)", text)
    return match.group(1).strip() if match else text


@contextlib.contextmanager
def _elapsed(description: str, enabled: bool) -> Iterator[None]:
    """Show ``description`` and the elapsed seconds on standard error while the block runs.

    astroquery reads VizieR's answer in one piece, so there is no byte count to show; the
    line appears on terminals only and is removed when the block ends.
    """
    if not enabled:
        yield
        return
    from tqdm.auto import tqdm

    done = threading.Event()
    with tqdm(desc=description, bar_format="{desc} {elapsed}", leave=False, disable=None) as bar:

        def tick() -> None:
            while not done.wait(0.5):
                bar.refresh()

        ticker = threading.Thread(target=tick, daemon=True)
        ticker.start()
        try:
            yield
        finally:
            done.set()
            ticker.join()

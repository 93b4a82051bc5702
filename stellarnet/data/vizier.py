"""Fetching a catalog from VizieR (through :mod:`astroquery.vizier`) into the cache.

:func:`fetch_catalog` asks VizieR exactly the :class:`~stellarnet.data.registry.CatalogQuery`,
validates the answer before anything is written (a table, not empty, the query's columns
present and numeric, its filters holding; NaNs are counted, and a result shorter than the row
limit is logged and recorded), then writes the CSV and its provenance JSON to temporary files
in the cache folder, fsynced and renamed into place, so an interrupted fetch leaves the
previous cache (or none), never half a file. astroquery's own HTTP cache is bypassed: it would
keep an error or empty answer and serve it again. astroquery is imported only when a fetch
happens.
"""

from __future__ import annotations

import contextlib
import logging
import platform
import re
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from stellarnet.data.provenance import provenance_path, same_query, verified_sha256
from stellarnet.data.registry import CACHE_DIR, GAIA_DR2_HR, Catalog, CatalogQuery, cache_path
from stellarnet.data.tables import read_verified, summarize
from stellarnet.errors import CatalogError, FetchError
from stellarnet.files import atomic_path, json_text, sha256_file

if TYPE_CHECKING:  # astroquery is imported only when a fetch happens
    from astropy.table import Table
    from astroquery.utils import TableList
    from astroquery.vizier import VizierClass

log = logging.getLogger(__name__)

DEFAULT_TIMEOUT = 60.0
"""Seconds to wait for VizieR to connect and to answer (astroquery's default too)."""

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
    cache_dir: str | Path = CACHE_DIR,
    refresh: bool = False,
    timeout: float = DEFAULT_TIMEOUT,
    server: str | None = None,
    progress: bool = False,
) -> Catalog:
    """Download ``query`` from VizieR and cache it as ``<name>.csv`` + ``<name>.json``.

    A verified cache for the same query is returned as it is unless ``refresh`` is given.
    Otherwise the answer is validated, then written atomically (see the module docstring).

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
        cached = _cache_for(cache, query)
        if cached is not None:
            return cached
    server = server or default_server()
    vizier = build_vizier(query, server=server, timeout=timeout)
    payload = query_payload(query, vizier)
    table = _download(vizier, query, server, progress)
    frame = table.to_pandas()
    summary = _validate_fetched(frame, query, source=f"VizieR {query.catalog} from {server}")
    record = _provenance(query, table, server, payload, summary)
    _write_cache(frame, record, cache)
    log.info("wrote %s and %s", cache, provenance_path(cache))
    return read_verified(cache, query, origin="fetched")


def _cache_for(cache: Path, query: CatalogQuery) -> Catalog | None:
    """The verified cache ``cache`` if it was fetched for ``query``, else None.

    A damaged cache raises CatalogError: it is refused, never silently replaced.
    """
    _, provenance = verified_sha256(cache)
    if same_query(provenance, query):
        log.info("using the cache %s (refresh to download it again)", cache)
        return read_verified(cache, query, origin="cache")
    log.info(
        "%s was fetched for the query %s; downloading %s",
        cache,
        provenance["query"],
        query.to_dict(),
    )
    return None


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

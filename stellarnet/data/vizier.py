"""Fetching a catalog from VizieR (through :mod:`astroquery.vizier`) into the cache.

:func:`fetch_catalog` asks VizieR exactly the :class:`~stellarnet.data.registry.CatalogQuery`,
within one deadline for the whole answer (:mod:`stellarnet.data.deadline`), validates the
answer before anything is written (:func:`~stellarnet.data.tables.check_answer`: a table, no
more rows than asked, the query's columns present, numeric and not null throughout, its
filters holding, at least one usable row; NaNs are counted, and a result shorter than the row
limit is logged and recorded), then writes the CSV and its provenance JSON to temporary files
in the cache folder, fsynced and renamed into place, so an interrupted fetch leaves the
previous cache (or none), never half a file. astroquery's own HTTP cache is bypassed: it would
keep an error or empty answer and serve it again. astroquery is imported only when a fetch
happens.
"""

from __future__ import annotations

import logging
import math
import platform
import re
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import pandas as pd

from stellarnet.data.provenance import provenance_path, same_query, verified_sha256
from stellarnet.data.registry import CACHE_DIR, GAIA_DR2_HR, Catalog, CatalogQuery, cache_path
from stellarnet.data.tables import check_answer, read_verified
from stellarnet.errors import CatalogError, ConfigError, FetchError
from stellarnet.files import atomic_path, json_text, sha256_file

if TYPE_CHECKING:  # astroquery is imported only when a fetch happens
    from astropy.table import Table
    from astroquery.utils import TableList
    from astroquery.vizier import VizierClass

log = logging.getLogger(__name__)

DEFAULT_TIMEOUT = 60.0
"""Seconds VizieR has to connect and send its whole answer (astroquery's default too)."""

_HOST = re.compile(
    r"(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)*[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}"
    r"[A-Za-z0-9])?|\[[0-9A-Fa-f:.]+\]"
)

VIZIER_ACKNOWLEDGEMENT = (
    "This research has made use of the VizieR catalogue access tool, CDS, Strasbourg, France "
    "(Ochsenbein, Bauer & Marcout 2000, A&AS 143, 23)."
)


def check_server(server: str | None) -> str | None:
    """``server`` if it is a host name (or ``host:port``) to ask VizieR at; None stays None.

    astroquery builds ``https://<server>/viz-bin/votable`` itself, so a URL would become a
    host name that does not exist, and an empty name would silently ask the default mirror.

    Raises
    ------
    ConfigError
        If ``server`` is empty, a URL, or not a host name.
    """
    if server is None:
        return None
    example = "e.g. vizier.cds.unistra.fr or vizier.cfa.harvard.edu"
    if not isinstance(server, str) or not server.strip():
        raise ConfigError(
            f"the VizieR server (--server) is empty ({server!r}): give a mirror's host name, "
            f"{example}, or leave --server out to use astroquery's configured server"
        )
    if "://" in server or "/" in server:
        host = urlsplit(server if "://" in server else f"//{server}").netloc
        suggestion = f" --server {host}" if host and _is_host(host) else f" a host name, {example}"
        raise ConfigError(
            f"the VizieR server (--server) must be a host name, not a URL or path: {server!r}. "
            f"astroquery builds the URL itself; give{suggestion}"
        )
    if not _is_host(server):
        raise ConfigError(
            f"the VizieR server (--server) {server!r} is not a host name (host or host:port), "
            f"{example}"
        )
    return server


def _is_host(text: str) -> bool:
    """True for ``host``, ``host:port``, ``[IPv6]`` or ``[IPv6]:port``."""
    match = re.fullmatch(r"(?P<host>\[[0-9A-Fa-f:.]+\]|[^:\[\]]+)(?::(?P<port>\d{1,5}))?", text)
    if match is None or (match["port"] is not None and not 0 < int(match["port"]) < 65536):
        return False
    return _HOST.fullmatch(match["host"]) is not None


def check_timeout(timeout: float) -> float:
    """``timeout`` if it is a finite number of seconds > 0; else ConfigError."""
    if isinstance(timeout, bool) or not isinstance(timeout, int | float):
        raise ConfigError(f"the timeout must be a number of seconds, got {timeout!r}")
    if not math.isfinite(timeout) or timeout <= 0:
        raise ConfigError(f"the timeout must be finite and > 0 seconds, got {timeout!r}")
    return float(timeout)


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
        Seconds VizieR has for the whole answer: connecting, the first byte and the last.
    server : str or None
        VizieR mirror (``host`` or ``host:port``, not a URL); None for astroquery's
        configured server.
    progress : bool
        Show the elapsed time on standard error while waiting for VizieR (terminals only).

    Returns
    -------
    Catalog
        The cached table with origin ``"fetched"`` (or ``"cache"`` if it was reused).

    Raises
    ------
    FetchError
        If VizieR cannot be reached, does not send its whole answer within ``timeout``,
        answers with an HTTP error or something that is not a VOTable, or the table is
        refused by :func:`~stellarnet.data.tables.check_answer`. Nothing is written.
    CatalogError
        If an existing cache fails its checksum (and ``refresh`` is not given), or the cache
        folder cannot be written.
    ConfigError
        If ``server`` is not a host name or ``timeout`` is not a positive number.
    """
    server = check_server(server)
    timeout = check_timeout(timeout)
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
    summary = check_answer(frame, query, source=f"VizieR {query.catalog} from {server}")
    record = _provenance(query, table, server, payload, summary)
    _write_cache(frame, record, cache)
    log.info("wrote %s and %s", cache, provenance_path(cache))
    return read_verified(cache, query, origin="fetched")


def _cache_for(cache: Path, query: CatalogQuery) -> Catalog | None:
    """The verified cache ``cache`` if it was fetched for ``query``, else None.

    A damaged cache raises CatalogError: it is refused, never silently replaced.
    """
    _, provenance = verified_sha256(cache, "cache", query)
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

    from stellarnet.data.transport import elapsed, mount_deadline, reason

    where = f"VizieR at {server}"
    log.info(
        "querying %s for %s (%s; up to %d rows)...",
        where,
        query.catalog,
        ", ".join(query.columns),
        query.row_limit,
    )
    start = time.perf_counter()
    session = getattr(vizier, "_session", None)  # the requests session astroquery sends through
    if session is not None:
        mount_deadline(session, vizier.TIMEOUT)
    else:  # an astroquery without it: requests' timeout bounds each wait on the socket only
        log.warning("cannot bound the whole answer by --timeout with this astroquery version")
    try:
        with cache_conf.set_temp("cache_active", False), elapsed(f"waiting for {where}", progress):
            tables = vizier.get_catalogs(query.catalog)
    except requests.exceptions.SSLError as err:
        raise FetchError(f"secure connection to {where} failed: {reason(err)}.") from err
    except requests.exceptions.Timeout as err:
        raise FetchError(
            f"{where} did not answer within {vizier.TIMEOUT:g} s (--timeout bounds connecting, "
            "the first byte and the whole answer); nothing was cached. Try again later, a "
            "larger --timeout, or another mirror with --server."
        ) from err
    except requests.exceptions.ConnectionError as err:
        raise FetchError(f"could not connect to {where}: {reason(err)}.") from err
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

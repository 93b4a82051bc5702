"""Loading a catalog for an experiment: which file, checked, and described for people.

Loading order for a :class:`~stellarnet.data.registry.CatalogQuery` (:func:`load_catalog`):

1. the cache ``catalogs/<name>.csv`` of the working directory if present (checksum verified);
2. otherwise, unless offline, a fresh fetch from VizieR (:mod:`stellarnet.data.vizier`);
3. otherwise (offline, or the fetch failed) the snapshot shipped with stellarnet for that
   query, if there is one, with a warning when a fetch failed.

:func:`load_catalog_file` loads a catalog CSV named by path (an experiment's
``[catalog] path`` or ``--catalog``).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from stellarnet.data.provenance import provenance_path, verified_sha256
from stellarnet.data.registry import (
    CACHE_DIR,
    GAIA_DR2_HR,
    Catalog,
    CatalogQuery,
    cache_path,
    shipped_catalog,
    snapshot_path,
    where_catalog_is,
)
from stellarnet.data.tables import read_catalog_csv, read_verified
from stellarnet.data.vizier import DEFAULT_TIMEOUT, check_server, check_timeout, fetch_catalog
from stellarnet.errors import CatalogError, FetchError
from stellarnet.files import sha256_file

log = logging.getLogger(__name__)


def load_catalog(
    query: CatalogQuery = GAIA_DR2_HR,
    cache_dir: str | Path = CACHE_DIR,
    offline: bool = False,
    *,
    server: str | None = None,
    timeout: float = DEFAULT_TIMEOUT,
) -> Catalog:
    """Load the catalog for ``query``: the verified cache, else a fetch, else the snapshot.

    ``cache_dir`` holds the cache (``<query.name>.csv`` + ``.json``); ``offline`` never
    touches the network; ``server`` (a VizieR host, None for astroquery's configured one) and
    ``timeout`` (seconds) are passed to the fetch. The returned catalog's origin is
    ``"cache"``, ``"fetched"`` or ``"snapshot"``.

    Raises
    ------
    CatalogError
        If the cache fails its checksum or its provenance is missing or corrupt (it is never
        silently replaced), the cache folder cannot be written, or there is neither a
        catalog to fetch nor a snapshot.
    FetchError
        If the fetch fails and there is no shipped snapshot to fall back on.
    ConfigError
        If ``server`` is not a host name or ``timeout`` is not a positive number (a mistake
        to fix, not a network fault: no fallback).
    """
    check_server(server)
    check_timeout(timeout)
    cache = cache_path(query, cache_dir)
    if cache.exists():
        return read_verified(cache, query, origin="cache")
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
            return read_verified(snapshot, query, origin="snapshot")
    if has_snapshot:
        log.info("no cache at %s; using the shipped snapshot %s", cache, snapshot)
        return read_verified(snapshot, query, origin="snapshot")
    raise CatalogError(
        f"no catalog for {query.catalog!r}: no cache at {cache} and no shipped snapshot. "
        "Run `stellarnet fetch` on a machine with internet."
    )


def load_catalog_file(path: str | Path, columns: Sequence[str]) -> Catalog:
    """Load a catalog CSV named by path (e.g. the user's Gaia pull) that has ``columns``.

    A provenance JSON beside it is used if present and checked; without one, the file's
    sha256 is still recorded so that runs say exactly which file they used. A file that fails
    its check gets the fix that fits where it came from (shipped, a VizieR cache, or the
    user's own file, which stellarnet never tells you to delete or re-download). A path that
    does not exist but names a shipped catalog (``../catalogs/<name>.csv`` in a copy of a
    built-in experiment config) loads the shipped one.
    """
    path = Path(path)
    shipped = shipped_catalog(path.name)
    if not path.exists() and shipped is not None:
        log.info("%s does not exist; using the shipped catalog %s", path, shipped)
        path = shipped
    frame = read_catalog_csv(path, columns)
    if provenance_path(path).exists():
        sha, provenance = verified_sha256(path, kind=None)
    else:
        sha, provenance = sha256_file(path), {}
    log.info("loaded %s: %d rows (%s)", path, len(frame), where_catalog_is(path))
    return Catalog(frame, path, sha, "file", provenance)


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

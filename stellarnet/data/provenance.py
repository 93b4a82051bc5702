"""Provenance records: the JSON beside every catalog CSV, and the checksum test against it.

A catalog on disk is ``<name>.csv`` with ``<name>.json`` beside it. The JSON records where
the table came from and the sha256 of the CSV; a CSV whose checksum does not match its JSON
is refused, never silently used. The fix the error gives depends on where the file came from
(:data:`KINDS`): a VizieR cache is downloaded again, a shipped catalog is reinstalled, and a
user's own file is never to be deleted or replaced by stellarnet.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from stellarnet.data.registry import CACHE_DIR, QUERIES, CatalogQuery, where_catalog_is
from stellarnet.errors import CatalogError
from stellarnet.files import sha256_file

REFRESH_HINT = "run `stellarnet fetch --refresh` to download the catalog again"

KINDS = ("cache", "shipped", "file")
"""Where a catalog file came from: a VizieR cache written by ``stellarnet fetch``, a catalog
shipped with stellarnet, or the user's own file (with a provenance JSON of its own)."""


def provenance_path(csv_path: str | Path) -> Path:
    """The provenance JSON that belongs beside ``csv_path``."""
    return Path(csv_path).with_suffix(".json")


def fetch_command(name: str, row_limit: int | None, cache_dir: str | Path) -> str:
    """The ``stellarnet fetch --refresh ...`` command that rewrites the cache ``name``."""
    words = ["stellarnet fetch --refresh"]
    named = QUERIES.get(name)
    if named is None:
        return f"fetch_catalog(<the query {name!r}>, {str(cache_dir)!r}, refresh=True)"
    if name != "gaia_dr2_hr":
        words.append(f"--query {name}")
    if row_limit is not None and row_limit != named.row_limit:
        words.append(f"--rows {row_limit}")
    if Path(cache_dir).resolve() != CACHE_DIR.resolve():
        words.append(f"--cache-dir {cache_dir}")
    return " ".join(words)


def repair_advice(
    csv_path: str | Path,
    kind: str,
    query: CatalogQuery | None = None,
    actual_sha256: str | None = None,
) -> str:
    """What to do about a catalog file that fails its check, for a file of ``kind``."""
    csv_path = Path(csv_path)
    json_path = provenance_path(csv_path)
    if kind == "shipped":
        return (
            f"{csv_path} is shipped with stellarnet and the installed copy was changed: "
            "reinstall stellarnet the way you installed it (`pip install --force-reinstall "
            "--no-deps <the wheel or folder>`; in a source checkout, `git checkout -- catalogs/`)"
        )
    if kind == "file":
        sha = f" (the CSV's sha256 is now {actual_sha256})" if actual_sha256 else ""
        return (
            f"{csv_path} is your file: stellarnet did not write it and changes neither file. "
            "Restore the CSV its provenance describes, or, if you changed the CSV on purpose, "
            f"correct the 'sha256' in {json_path}{sha}"
        )
    if query is None:
        query = QUERIES.get(csv_path.stem)
    name = query.name if query is not None else csv_path.stem
    rows = query.row_limit if query is not None else None
    in_use = csv_path.parent.resolve() == CACHE_DIR.resolve()  # where experiments look
    snapshot = query is not None and query.snapshot and in_use
    delete = " (experiments then use the shipped snapshot)" if snapshot else ""
    return (
        f"It is a VizieR cache written by `stellarnet fetch`: run "
        f"`{fetch_command(name, rows, csv_path.parent)}` to download it again (this replaces "
        f"both files), or delete both {csv_path} and {json_path}{delete}"
    )


def kind_of(csv_path: str | Path, provenance: Mapping[str, Any] | None = None) -> str:
    """Where a catalog file named by path came from (see :data:`KINDS`).

    Shipped if it lies among the shipped catalogs; a cache if its provenance says
    ``stellarnet fetch`` wrote it for a query of its name (or, without a readable provenance,
    if it lies in the cache folder under a known query's name); otherwise the user's file.
    """
    where = where_catalog_is(csv_path)
    if where == "shipped":
        return "shipped"
    stem = Path(csv_path).stem
    if provenance is None:
        return "cache" if where == "cache" and stem in QUERIES else "file"
    query = provenance.get("query")
    source = provenance.get("source")
    fetched = (
        isinstance(query, Mapping)
        and query.get("name") == stem
        and isinstance(source, Mapping)
        and str(source.get("service", "")).startswith("VizieR")
    )
    return "cache" if fetched else "file"


def read_provenance(
    csv_path: str | Path, kind: str = "cache", query: CatalogQuery | None = None
) -> dict[str, Any]:
    """Read the provenance JSON beside ``csv_path``; raise CatalogError if missing or corrupt.

    ``kind`` (see :data:`KINDS`) and ``query`` choose the fix the error gives.
    """
    json_path = provenance_path(csv_path)
    if kind == "file":
        fix = (
            f"stellarnet does not change your files: fix {json_path} (JSON with the CSV's "
            f"'sha256'), or move it away to load {csv_path} without a provenance check"
        )
    else:
        fix = repair_advice(csv_path, kind, query)
    try:
        record = json.loads(json_path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise CatalogError(
            f"{csv_path} has no provenance file {json_path}; it cannot be checked. {fix}."
        ) from None
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise CatalogError(
            f"provenance file {json_path} of {csv_path} is corrupt (not JSON: {err}). {fix}."
        ) from None
    except OSError as err:
        raise CatalogError(
            f"provenance file {json_path} of {csv_path} cannot be read "
            f"({err.strerror or err}). {fix}."
        ) from None
    if not isinstance(record, dict) or "sha256" not in record:
        raise CatalogError(
            f"provenance file {json_path} of {csv_path} has no 'sha256' entry. {fix}."
        )
    return record


def verified_sha256(
    csv_path: str | Path, kind: str | None = "cache", query: CatalogQuery | None = None
) -> tuple[str, dict[str, Any]]:
    """Check ``csv_path`` against its provenance JSON; return (sha256, provenance).

    ``kind`` (see :data:`KINDS`; None to tell it from the file's place and provenance, as
    :func:`kind_of` does) and ``query`` choose the fix a refusal gives.
    """
    csv_path = Path(csv_path)
    if kind is None:
        record = read_provenance(csv_path, kind_of(csv_path), query)
        kind = kind_of(csv_path, record)
        if kind == "cache" and query is None:
            query = _recorded_query(record)
    else:
        record = read_provenance(csv_path, kind, query)
    try:
        actual = sha256_file(csv_path)
    except OSError as err:
        raise CatalogError(
            f"catalog file {csv_path} cannot be read ({err.strerror or err}). "
            f"{repair_advice(csv_path, kind, query)}."
        ) from None
    if actual != record["sha256"]:
        raise CatalogError(
            f"{csv_path} does not match its provenance {provenance_path(csv_path)} "
            f"(sha256 {actual[:12]}... != recorded {str(record['sha256'])[:12]}...): the file "
            f"was changed or cut short. Nothing was used or changed. "
            f"{repair_advice(csv_path, kind, query, actual)}."
        )
    return actual, record


def _recorded_query(record: Mapping[str, Any]) -> CatalogQuery | None:
    """The query a cache's provenance records, or None if it cannot be rebuilt."""
    try:
        query = CatalogQuery(**record["query"])
    except (TypeError, KeyError, CatalogError):
        return None
    named = QUERIES.get(query.name)
    return dataclasses.replace(query, snapshot=named.snapshot) if named else query


def same_query(provenance: Mapping[str, Any], query: CatalogQuery) -> bool:
    """False if ``provenance`` records a query that differs from ``query`` (True if none)."""
    recorded = provenance.get("query")
    return recorded is None or recorded == query.to_dict()

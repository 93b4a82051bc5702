"""Provenance records: the JSON beside every catalog CSV, and the checksum test against it.

A catalog on disk is ``<name>.csv`` with ``<name>.json`` beside it. The JSON records where
the table came from and the sha256 of the CSV; a CSV whose checksum does not match its JSON
is refused, never silently used.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from stellarnet.data.registry import CatalogQuery
from stellarnet.errors import CatalogError
from stellarnet.files import sha256_file

REFRESH_HINT = "run `stellarnet fetch --refresh` to download the catalog again"


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


def same_query(provenance: Mapping[str, Any], query: CatalogQuery) -> bool:
    """False if ``provenance`` records a query that differs from ``query`` (True if none)."""
    recorded = provenance.get("query")
    return recorded is None or recorded == query.to_dict()

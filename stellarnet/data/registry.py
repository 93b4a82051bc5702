"""Which catalogs stellarnet knows, and where their files live.

:class:`CatalogQuery` is a VizieR query; :data:`QUERIES` holds the named ones that experiment
configs refer to. :class:`Catalog` is a loaded table with its file, checksum and provenance.

Catalog files live in two places:

* the **shipped** catalogs, installed with stellarnet and read-only: the top-level
  ``catalogs/`` folder of the source tree, which the package build maps to the package
  ``stellarnet.catalogs`` (found with :mod:`importlib.resources`, so an editable install and
  a wheel both work);
* the **cache** of VizieR answers, ``catalogs/`` in the working directory
  (:data:`CACHE_DIR`), never inside the installed package.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import pandas as pd

from stellarnet.errors import CatalogError
from stellarnet.files import sha256_file

PROJECT_ROOT = Path.cwd().resolve()
"""The user's project folder: the working directory stellarnet was started in.

``results/``, the VizieR cache ``catalogs/`` and local ``experiments/`` are relative to it,
and ``run.json`` records a catalog path relative to it when the file lies inside it."""

CACHE_DIR = Path("catalogs")
"""Where ``stellarnet fetch`` caches VizieR answers: ``catalogs/`` of the working directory."""

SHIPPED_CATALOG_DIR = Path(str(resources.files("stellarnet.catalogs")))
"""The catalogs shipped with stellarnet (``catalogs/`` of the source tree); read-only."""


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
        File name (among the shipped catalogs) of a snapshot that stands in for this query
        when there is no cache and no network.
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


def snapshot_path(
    query: CatalogQuery, catalog_dir: str | Path = SHIPPED_CATALOG_DIR
) -> Path | None:
    """The shipped snapshot file that stands in for ``query``, or None."""
    return Path(catalog_dir) / query.snapshot if query.snapshot else None


def cache_path(query: CatalogQuery, cache_dir: str | Path = CACHE_DIR) -> Path:
    """The cache CSV for ``query``: ``<cache_dir>/<query.name>.csv``."""
    return Path(cache_dir) / f"{query.name}.csv"


def shipped_catalog(file_name: str) -> Path | None:
    """The shipped catalog called ``file_name`` (e.g. ``"hst_jwst_sizes.csv"``), or None."""
    path = SHIPPED_CATALOG_DIR / file_name
    return path if path.is_file() else None


def where_catalog_is(path: str | Path) -> str:
    """``"shipped"``, ``"cache"`` (``catalogs/`` of the working directory) or ``"your file"``."""
    folder = Path(path).resolve().parent
    if folder == SHIPPED_CATALOG_DIR.resolve():
        return "shipped"
    return "cache" if folder == CACHE_DIR.resolve() else "your file"


def recorded_catalog(recorded: str | Path, sha256: str | None = None) -> Path:
    """The file of a catalog path recorded in ``run.json``.

    A relative path is relative to the project folder (:data:`PROJECT_ROOT`; runs made
    before stellarnet was installable recorded ``catalogs/<name>.csv`` of the source tree).
    If that file is gone but a shipped catalog of the same name has the recorded ``sha256``
    (a run on a shipped catalog made from another folder or another installation), the
    shipped one is returned. Otherwise the recorded path is, whether or not it exists.
    """
    path = Path(recorded)
    path = path if path.is_absolute() else PROJECT_ROOT / path
    if not path.is_file() and sha256:
        shipped = shipped_catalog(path.name)
        if shipped is not None and sha256_file(shipped) == sha256:
            return shipped
    return path

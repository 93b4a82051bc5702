"""The SDSS Main Galaxy Sample photo-z catalog: MLZ's ``SDSS_MGS.train`` as a CSV with its
provenance.

The source (MLZ, Carrasco Kind & Brunner 2013; University of Illinois/NCSA Open Source
License) is whitespace-separated text whose one ``#`` header line lists 18 names for 19
columns: it omits ``eu``, the u-band error. :func:`read_mlz` names the columns right
(:data:`PHOTOZ_COLUMNS`, as MLZ's own ``SDSS_MGS.test`` header does) and keeps every value as
the text it is, so the CSV holds the source's numbers unchanged.
``python -m stellarnet.data.sdss_mgs SOURCE [FOLDER]`` writes ``sdss_mgs_photoz.csv``, its
provenance JSON and the licence into ``FOLDER`` (default ``catalogs/``).
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pandas as pd

from stellarnet.data.registry import CACHE_DIR
from stellarnet.errors import CatalogError
from stellarnet.files import atomic_write, sha256_file, write_json

NAME = "sdss_mgs_photoz"
PHOTOZ_COLUMNS = (
    *("zs", "u", "g", "r", "i", "z", "u-g", "g-r", "r-i", "i-z"),
    *("eu", "eg", "er", "ei", "ez", "eu-g", "eg-r", "er-i", "ei-z"),
)
"""Spectroscopic redshift; dereddened model magnitudes u..z; colours; their 1-sigma errors."""
LICENCE_FILE = "MLZ_LICENSE.txt"
SDSS_ACKNOWLEDGEMENT = (
    "Funding for the SDSS and SDSS-II has been provided by the Alfred P. Sloan Foundation, the "
    "Participating Institutions, the National Science Foundation, the U.S. Department of "
    "Energy, the National Aeronautics and Space Administration, the Japanese Monbukagakusho, "
    "the Max Planck Society, and the Higher Education Funding Council for England. The SDSS "
    "Web Site is http://www.sdss.org/."
)


def read_mlz(path: str | Path) -> pd.DataFrame:
    """The MLZ photo-z file as a table of strings, columns :data:`PHOTOZ_COLUMNS`.

    Raises
    ------
    CatalogError
        If a data row does not hold 19 values, or a value is not a number.
    """
    path = Path(path)
    rows = [line.split() for line in path.read_text().splitlines()]
    rows = [row for row in rows if row and not row[0].startswith("#")]
    short = [i for i, row in enumerate(rows) if len(row) != len(PHOTOZ_COLUMNS)]
    if short:
        raise CatalogError(
            f"{path}: data row {short[0]} has {len(rows[short[0]])} values, not "
            f"{len(PHOTOZ_COLUMNS)} ({', '.join(PHOTOZ_COLUMNS)})"
        )
    table = pd.DataFrame(rows, columns=list(PHOTOZ_COLUMNS), dtype=str)
    if table.apply(pd.to_numeric, errors="coerce").isna().any().any():
        raise CatalogError(f"{path}: some values are not numbers")
    return table


def write_photoz_catalog(source: str | Path, folder: str | Path = CACHE_DIR) -> Path:
    """Write ``sdss_mgs_photoz.csv`` (the source's values, unchanged), its provenance JSON
    and MLZ's licence (from beside ``source``) into ``folder``; return the CSV path."""
    source = Path(source)
    licence = source.parent / LICENCE_FILE
    if not licence.is_file():
        raise CatalogError(f"{licence} is missing: the MLZ licence must travel with its data")
    table = read_mlz(source)
    path = Path(folder) / f"{NAME}.csv"
    atomic_write(path, lambda tmp: table.to_csv(tmp, index=False))
    atomic_write(path.parent / LICENCE_FILE, lambda tmp: shutil.copyfile(licence, tmp))
    write_json(path.with_suffix(".json"), _provenance(source, path, len(table)))
    return path


def _provenance(source: Path, path: Path, rows: int) -> dict:
    units = {"zs": ""} | {c: "mag" for c in PHOTOZ_COLUMNS[1:]}
    return {
        "name": NAME,
        "description": (
            "SDSS Main Galaxy Sample: 5000 galaxies with spectroscopic redshift and dereddened "
            "model magnitudes, colours and errors in u, g, r, i, z (a random MGS subset shipped "
            "with MLZ). Values unchanged; columns named as MLZ's SDSS_MGS.test names them."
        ),
        "sha256": sha256_file(path),
        "rows": rows,
        "columns": {c: {"unit": units[c], "description": _describe(c)} for c in PHOTOZ_COLUMNS},
        "source": {
            "origin": "MLZ (Machine Learning for photo-Z), M. Carrasco Kind and R. Brunner",
            "repository": "https://github.com/mgckind/MLZ",
            "path": "mlz/test/SDSS_MGS.train",
            "commit": "c3d6d0031592eee26e0c965b302e56964bd4fd35",
            "git_blob": "4751fc201a7295387046d7807e02431c8bb7f3ad",
            "source_file_sha256": sha256_file(source),
            "derivation": (
                "whitespace-separated text to CSV; the header's 18 names replaced by the 19 "
                "right ones (it omits eu); every value kept as the source's text"
            ),
        },
        "caveats": [
            "Data release and selection SQL are not stated (DR7-era MGS, not verified).",
            "Data row 3001 (zs 0.0473) has a bad i-band value (r-i = -2.47, i-z = +2.88).",
        ],
        "licence": f"University of Illinois/NCSA Open Source License ({LICENCE_FILE}, beside)",
        "acknowledgement": SDSS_ACKNOWLEDGEMENT,
        "citation": ["Carrasco Kind & Brunner 2013, MNRAS 432, 1483"],
    }


def _describe(column: str) -> str:
    if column == "zs":
        return "spectroscopic redshift"
    error = column.startswith("e")
    quantity = column[1:] if error else column
    kind = "colour" if "-" in quantity else "dereddened model magnitude"
    return f"1-sigma error of the {quantity} {kind}" if error else f"{quantity} {kind}"


if __name__ == "__main__":
    print(write_photoz_catalog(*sys.argv[1:3]))

"""The catalog a saved run was trained on, and the (x, y) it built from it.

Read from the path recorded in ``run.json`` (or a copy given with ``--catalog``) and used only
if its sha256 is the one recorded there; the dataset is rebuilt exactly as the run built it
and checked against the row count and transform parameters ``run.json`` records.
:class:`stellarnet.results.saved.SavedResults` reads a run's catalog and dataset through here.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from stellarnet.data.datasets import ColumnSpec, Dataset, Split, invert_transforms, make_dataset
from stellarnet.data.registry import recorded_catalog
from stellarnet.data.tables import read_catalog_csv
from stellarnet.errors import CatalogError
from stellarnet.files import sha256_file


def column_spec(entry: Mapping[str, Any] | str) -> ColumnSpec:
    """A ``run.json`` column entry (``{"column": ..., "transforms": [...]}``, or a bare name)
    as a :class:`~stellarnet.data.datasets.ColumnSpec`."""
    if isinstance(entry, str):
        return ColumnSpec(entry)
    return ColumnSpec(str(entry["column"]), tuple(entry.get("transforms", ())))


def catalog_path(record: Mapping[str, Any], override: str | Path | None = None) -> Path:
    """The catalog file of a run: ``override``, else ``run.json``'s ``catalog_path`` (relative
    paths are relative to the working directory; a shipped catalog with the recorded sha256
    stands in for one that is gone, see :func:`stellarnet.data.registry.recorded_catalog`)."""
    if override is not None:
        return Path(override)
    if "catalog_path" not in record:
        raise CatalogError("run.json records no catalog_path; pass the run's catalog (--catalog)")
    return recorded_catalog(record["catalog_path"], record.get("catalog_sha256"))


def load_run_catalog(
    record: Mapping[str, Any], columns: Sequence[str], override: str | Path | None = None
) -> pd.DataFrame:
    """Read the catalog a run was trained on, refusing it unless its sha256 is the recorded one.

    Raises
    ------
    CatalogError
        If the file is missing, has changed since the run, or lacks ``columns``.
    """
    path = catalog_path(record, override)
    expected = str(record.get("catalog_sha256", ""))
    fix = f"Restore the original file, or pass --catalog with a copy whose sha256 is {expected}"
    if not path.is_file():
        raise CatalogError(f"the run's catalog {path} does not exist. {fix}.")
    actual = sha256_file(path)
    if actual != expected:
        raise CatalogError(
            f"the run's catalog {path} has changed since the run (sha256 {actual[:12]}... != "
            f"{expected[:12]}... recorded in run.json), so it is not the data the network was "
            f"trained on. {fix}."
        )
    return read_catalog_csv(path, columns)


def rebuild_dataset(
    record: Mapping[str, Any], frame: pd.DataFrame, record_path: str | Path = "run.json"
) -> Dataset:
    """Rebuild the run's arrays as :func:`stellarnet.runs.experiment.load_data` built them.

    The same steps on the same settings of ``record["config"]``: its ``[dataset] rows`` (0-based
    catalog data rows, in that order), the row shuffle seeded with the config's seed (none if
    ``shuffle = false``), its split (scalings fitted on the training rows) and column specs.
    The rebuilt row counts and fitted transform parameters are then checked against those
    ``run.json`` records.

    Parameters
    ----------
    record : mapping
        The run's ``run.json``.
    frame : DataFrame
        The run's catalog, already checked against the recorded sha256
        (:func:`load_run_catalog`): a mismatch found here is then run.json's, not the catalog's.
    record_path : path
        Where ``record`` was read from, for messages.

    Raises
    ------
    CatalogError
        If the settings in ``record`` do not rebuild the rows it records.
    """
    config = record["config"]
    spec = config["dataset"]
    rows = spec.get("rows")
    if rows is not None:
        if max(rows, default=-1) >= len(frame):
            raise CatalogError(
                f"{record_path} records [dataset] rows {list(rows)}, but the run's catalog has "
                f"{len(frame)} data rows: {record_path} was edited, or belongs to another "
                f"catalog. {_RETRAIN}"
            )
        frame = frame.iloc[list(rows)]
    dataset = make_dataset(
        frame,
        [column_spec(entry) for entry in spec["features"]],
        column_spec(spec["target"]),
        seed=config.get("seed") if spec.get("shuffle", True) else None,
        source="run catalog",
        split=Split(**spec["split"]) if spec.get("split") else None,
    )
    recorded = record.get("dataset", {})
    counts = {
        "rows_kept": dataset.rows,
        "rows_train": len(dataset.y),
        "rows_validation": len(dataset.y_val),
        "rows_test": len(dataset.y_test),
    }
    wrong = {key: (recorded[key], n) for key, n in counts.items() if recorded.get(key, n) != n}
    params = recorded.get("transform_params")
    if params is not None and not _same_params(params, dataset.transform_params):
        wrong["transform_params"] = (params, dataset.transform_params)
    digest = recorded.get(ROWS_SHA256)
    if digest is not None and digest != rows_sha256(dataset):
        wrong[ROWS_SHA256] = (digest, rows_sha256(dataset))
    if wrong:
        found = "; ".join(
            f"{key}: recorded {was}, rebuilt {now}" for key, (was, now) in wrong.items()
        )
        raise CatalogError(
            f"the run's catalog matches the sha256 in {record_path}, but the dataset rebuilt "
            f"from it with the [dataset] settings and seed recorded there differs from the one "
            f"recorded ({found}). {record_path} was edited, or was written by a stellarnet "
            f"that built datasets differently. {_RETRAIN}"
        )
    return dataset


ROWS_SHA256 = "rows_sha256"
"""The key of :func:`rows_sha256` in ``run.json``'s ``dataset`` entry (checked if present)."""


def rows_sha256(dataset: Dataset) -> str:
    """The sha256 of the float32 bytes of every part's rows (x, y of train, validation and
    test, in that order): equal for two builds of a dataset exactly when they hold the same
    rows in the same order, so a rebuild can be checked bit for bit, not only by its counts
    and transform parameters (which other rows can share)."""
    digest = hashlib.sha256()
    for array in (
        dataset.x,
        dataset.y,
        dataset.x_val,
        dataset.y_val,
        dataset.x_test,
        dataset.y_test,
    ):
        digest.update(np.ascontiguousarray(array, dtype=np.float32).tobytes())
        digest.update(str(array.shape).encode())
    return digest.hexdigest()


_RETRAIN = (
    "Restore run.json from a backup, or train the run again with --force to get figures of "
    "the data it trains on"
)


def _same_params(recorded: Any, rebuilt: Any) -> bool:
    if isinstance(recorded, Mapping) and isinstance(rebuilt, Mapping):
        return recorded.keys() == rebuilt.keys() and all(
            _same_params(recorded[key], rebuilt[key]) for key in recorded
        )
    if isinstance(recorded, list) and isinstance(rebuilt, list):
        return len(recorded) == len(rebuilt) and all(
            _same_params(a, b) for a, b in zip(recorded, rebuilt, strict=True)
        )
    if isinstance(recorded, int | float) and isinstance(rebuilt, int | float):
        return math.isclose(recorded, rebuilt, rel_tol=1e-12, abs_tol=1e-12)
    return recorded == rebuilt


def log_space(values: np.ndarray, params: Sequence[Mapping[str, Any]]) -> tuple[np.ndarray, bool]:
    """Undo the transforms applied after the last ``log10`` (e.g. min-max scaling), giving the
    values in log10 units; with no ``log10``, undo them all. Returns (values, is_log)."""
    steps = [step["transform"] for step in params]
    start = len(steps) - steps[::-1].index("log10") if "log10" in steps else 0
    return invert_transforms(values, list(params[start:])), start > 0

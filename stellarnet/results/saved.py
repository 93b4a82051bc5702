"""Saved results read back: run and sweep folders, their catalog (checked), their dataset.

Everything a figure or a table needs comes through here, from ``results/`` alone:

* a **run folder** (``results/<experiment>/lr=<lr>/``) holds ``run.json`` and a history table;
* a **sweep folder** (``results/<experiment>/sweep/``) holds ``run.json`` (with a
  ``learning_rates`` list) and one long history table whose first column is ``lr``.

:func:`load_results` turns either into a :class:`SavedResults`, one history per learning rate.
The catalog a run was trained on is read from the path recorded in ``run.json`` and used only
if its sha256 is the one recorded there.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from stellarnet.data.datasets import ColumnSpec, Dataset, Split, invert_transforms, make_dataset
from stellarnet.data.registry import recorded_catalog
from stellarnet.data.tables import read_catalog_csv
from stellarnet.errors import CatalogError, StellarnetError
from stellarnet.files import sha256_file
from stellarnet.params import Layers, forward, layers_from_row
from stellarnet.results.history import HISTORY_CSV, HISTORY_PARQUET, load_history

RUN_JSON = "run.json"
"""The record file of every run and sweep folder. Defined here, below :mod:`stellarnet.runs`
(which writes it), so that reading results never needs the layer that trains."""


@dataclass
class SavedResults:
    """One results folder read back: its ``run.json`` and one history per learning rate.

    Attributes
    ----------
    folder : Path
        The run or sweep folder.
    record : dict
        Its ``run.json``.
    histories : dict of float to DataFrame
        History table per learning rate, in sweep order (one entry for a single run).
    catalog_override : Path or None
        A copy of the run's catalog to use instead of the recorded path (still checked
        against the recorded sha256).
    """

    folder: Path
    record: dict[str, Any]
    histories: dict[float, pd.DataFrame]
    catalog_override: Path | None = None
    _catalog: pd.DataFrame | None = field(default=None, repr=False)
    _dataset: Dataset | None = field(default=None, repr=False)

    @property
    def experiment(self) -> str:
        """The experiment's name."""
        return str(self.record.get("experiment", self.config.get("name", self.folder.name)))

    @property
    def config(self) -> dict[str, Any]:
        """The resolved experiment config recorded in ``run.json``."""
        return self.record["config"]

    @property
    def is_sweep(self) -> bool:
        """True for a sweep folder (a history with an ``lr`` column)."""
        return "learning_rates" in self.record or len(self.histories) > 1

    @property
    def learning_rates(self) -> list[float]:
        """The learning rates, in sweep order."""
        return list(self.histories)

    @property
    def layer_sizes(self) -> tuple[int, ...]:
        """Layer widths, inputs first, e.g. (1, 6, 1)."""
        model = self.config["model"]
        return (int(model["inputs"]), *map(int, model["hidden"]), int(model.get("outputs", 1)))

    @property
    def activation(self) -> str:
        """Activation of the hidden layers."""
        return str(self.config["model"]["activation"])

    @property
    def output_activation(self) -> str:
        """Activation of the output layer."""
        return str(self.config["model"].get("output_activation", "linear"))

    @property
    def loss_name(self) -> str:
        """The loss the runs minimised (``"mse"`` or ``"half_mse"``)."""
        return str(self.config["training"]["loss"])

    @property
    def features(self) -> tuple[ColumnSpec, ...]:
        """Input columns and their transforms."""
        return tuple(_column_spec(entry) for entry in self.config["dataset"]["features"])

    @property
    def target(self) -> ColumnSpec:
        """Output column and its transforms."""
        return _column_spec(self.config["dataset"]["target"])

    def unit(self, column: str) -> str | None:
        """The unit of a catalog column from the catalog's provenance, if recorded."""
        columns = self.record.get("catalog_provenance", {}).get("columns", {})
        entry = columns.get(column, {})
        return entry.get("unit") if isinstance(entry, Mapping) else None

    def layers(self, lr: float, epoch: int | None = None) -> Layers:
        """Kernels and biases of run ``lr`` after ``epoch`` (default: the last epoch)."""
        return layers_from_row(history_row(self.histories[lr], epoch), self.layer_sizes)

    def catalog(self) -> pd.DataFrame:
        """The run's catalog table, verified against the sha256 in ``run.json`` (cached)."""
        if self._catalog is None:
            columns = [spec.column for spec in (*self.features, self.target)]
            self._catalog = load_run_catalog(self.record, columns, self.catalog_override)
        return self._catalog

    def dataset(self) -> Dataset:
        """The training arrays, rebuilt from the catalog exactly as the run built them."""
        if self._dataset is None:
            self._dataset = rebuild_dataset(self.record, self.catalog())
        return self._dataset

    def predict(self, layers: Layers, x: np.ndarray) -> np.ndarray:
        """The output, shape (rows, outputs), of the network ``layers`` (e.g. :meth:`layers`)
        with this run's activations on inputs ``x`` (rows, features), in float64."""
        return forward(layers, x, self.activation, self.output_activation)[0]


def _column_spec(entry: Mapping[str, Any]) -> ColumnSpec:
    return ColumnSpec(str(entry["column"]), tuple(entry.get("transforms", ())))


def lr_label(lr: float) -> str:
    """``0.1`` -> ``"LR=0.1"``."""
    return f"LR={lr:g}"


def as_results(source: str | Path | SavedResults) -> SavedResults:
    """``source`` itself if already read, else :func:`load_results` of that folder: so that
    every figure takes either, and a folder read once serves many figures."""
    return source if isinstance(source, SavedResults) else load_results(source)


def load_results(folder: str | Path, catalog: str | Path | None = None) -> SavedResults:
    """Read a run or sweep folder.

    Parameters
    ----------
    folder : path
        A folder holding ``run.json`` and ``history.parquet`` (or ``history.csv``).
    catalog : path, optional
        Use this copy of the run's catalog instead of the path recorded in ``run.json``; it
        must have the recorded sha256.

    Raises
    ------
    StellarnetError
        If the folder, its ``run.json`` or its history table is missing or unreadable.
    """
    folder = Path(folder)
    run_json = folder / RUN_JSON
    if not run_json.is_file():
        raise StellarnetError(
            f"{folder} holds no {RUN_JSON}: not a results folder. Give a folder written by "
            "`stellarnet experiment` or `stellarnet sweep` (results/<experiment>/lr=<lr>/)."
        )
    try:
        record = json.loads(run_json.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise StellarnetError(f"{run_json} is not valid JSON ({err})") from None
    for name in (HISTORY_PARQUET, HISTORY_CSV):
        if (folder / name).is_file():
            history = load_history(folder / name)
            break
    else:
        raise StellarnetError(f"{folder} has {RUN_JSON} but no {HISTORY_PARQUET} or {HISTORY_CSV}")
    return SavedResults(
        folder,
        record,
        split_by_lr(history, record),
        catalog_override=Path(catalog) if catalog is not None else None,
    )


def split_by_lr(history: pd.DataFrame, record: Mapping[str, Any]) -> dict[float, pd.DataFrame]:
    """One history per learning rate: split a sweep's long table on ``lr``, or wrap a run's."""
    if "lr" not in history.columns:
        return {float(record["config"]["training"]["learning_rate"]): history}
    order = [float(lr) for lr in record.get("learning_rates", [])]
    order += [float(lr) for lr in history["lr"].unique() if float(lr) not in order]
    return {
        lr: history[history["lr"] == lr].drop(columns="lr").reset_index(drop=True)
        for lr in order
        if (history["lr"] == lr).any()
    }


def find_results(target: str | Path, results_dir: str | Path = "results") -> list[Path]:
    """Every run and sweep folder under ``target`` (a folder, or an experiment name looked up
    in ``results_dir``), deepest first so that a sweep's runs come before the sweep.

    Raises
    ------
    StellarnetError
        If ``target`` is neither a folder nor an experiment with saved results.
    """
    root = Path(target)
    if not root.is_dir():
        root = Path(results_dir) / str(target)
    if not root.is_dir():
        raise StellarnetError(
            f"no results folder {target!r} (looked for {Path(target)} and {root}); run "
            f"`stellarnet experiment {target}` first, or give a results folder"
        )
    folders = [
        path.parent
        for path in root.rglob(RUN_JSON)
        if not any(part.startswith(".") for part in path.relative_to(root).parts)
    ]
    if not folders:
        raise StellarnetError(f"no saved runs under {root}; run `stellarnet experiment` first")
    return sorted(folders, key=lambda p: (-len(p.parts), str(p)))


def history_row(history: pd.DataFrame, epoch: int | None = None) -> pd.Series:
    """The row of ``epoch`` (default: the last), with a clear error if it was not recorded."""
    if epoch is None:
        return history.iloc[-1]
    rows = history[history["epoch"] == epoch]
    if rows.empty:
        raise StellarnetError(
            f"epoch {epoch} is not in the history (epochs {history['epoch'].min()} to "
            f"{history['epoch'].max()}); pick one of those"
        )
    return rows.iloc[0]


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


def rebuild_dataset(record: Mapping[str, Any], frame: pd.DataFrame) -> Dataset:
    """Rebuild the run's (x, y) as the run built them: its ``[dataset] rows``, its shuffle
    seed (none if ``shuffle = false``), its split and column specs; then check the row count
    and the fitted transform parameters against those recorded in ``run.json``."""
    config = record["config"]
    spec = config["dataset"]
    rows = spec.get("rows")
    if rows is not None:
        if max(rows, default=-1) >= len(frame):
            raise CatalogError(
                f"the run used catalog rows {rows}, but the catalog has {len(frame)} rows"
            )
        frame = frame.iloc[list(rows)]
    dataset = make_dataset(
        frame,
        [_column_spec(entry) for entry in spec["features"]],
        _column_spec(spec["target"]),
        seed=config.get("seed") if spec.get("shuffle", True) else None,
        source="run catalog",
        split=Split(**spec["split"]) if "split" in spec else None,
    )
    recorded = record.get("dataset", {})
    if recorded.get("rows_kept", dataset.rows) != dataset.rows:
        raise CatalogError(
            f"the catalog gives {dataset.rows} usable rows where run.json records "
            f"{recorded['rows_kept']}; the run cannot be reproduced from it"
        )
    params = recorded.get("transform_params")
    if params is not None and not _same_params(params, dataset.transform_params):
        raise CatalogError(
            "the catalog gives transform parameters different from run.json's "
            f"({dataset.transform_params} != {params}); the run cannot be reproduced from it"
        )
    return dataset


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

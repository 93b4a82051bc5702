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
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from stellarnet.data.datasets import ColumnSpec, Dataset
from stellarnet.errors import ResultsDamaged, StellarnetError
from stellarnet.params import Layers, forward, layers_from_row
from stellarnet.results.history import HISTORY_CSV, HISTORY_PARQUET, load_history
from stellarnet.results.run_catalog import column_spec, load_run_catalog, rebuild_dataset
from stellarnet.results.status import COMPLETE, Divergence, divergences
from stellarnet.results.verify import (
    RECORD_FIX,
    damaged,
    history_fix,
    history_problems,
    record_problems,
)

RUN_JSON = "run.json"
"""The record file of every run and sweep folder. Defined here, below :mod:`stellarnet.runs`
(which writes it), so that reading results never needs the layer that trains."""

PARTS = ("train", "validation", "test")
"""The parts of a run's rows, in the order :func:`stellarnet.data.datasets.make_dataset` cuts
them after the shuffle. Only ``"train"`` is trained on; ``val_loss`` scores ``"validation"``."""


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
        return tuple(column_spec(entry) for entry in self.config["dataset"]["features"])

    @property
    def target(self) -> ColumnSpec:
        """Output column and its transforms."""
        return column_spec(self.config["dataset"]["target"])

    def unit(self, column: str) -> str | None:
        """The unit of a catalog column from the catalog's provenance, if recorded."""
        columns = self.record.get("catalog_provenance", {}).get("columns", {})
        entry = columns.get(column, {})
        return entry.get("unit") if isinstance(entry, Mapping) else None

    @property
    def status(self) -> str:
        """``run.json``'s status: ``"complete"`` (also for older runs, which record none) or
        ``"diverged"`` (a sweep: some of its rates diverged)."""
        return str(self.record.get("status", COMPLETE))

    def divergence(self, lr: float) -> Divergence | None:
        """Where run ``lr`` diverged (its last history row), or None if it trained to the end."""
        return divergences(self.record).get(lr)

    def finite_history(self, lr: float) -> pd.DataFrame:
        """Run ``lr``'s history without the non-finite row a diverged run ends with."""
        history = self.histories[lr]
        return history.iloc[:-1] if self.divergence(lr) is not None else history

    def weights_epoch(self, lr: float, epoch: int | None = None) -> int | None:
        """The epoch whose weights a figure draws for ``epoch`` (default: the last): that
        epoch itself, or for a diverged run the last finite row's if ``epoch`` lies beyond it
        (None if even row 0 is not finite)."""
        finite = self.finite_history(lr)
        if finite.empty:
            return None
        last = int(finite["epoch"].iloc[-1])
        if epoch is None or (self.divergence(lr) is not None and epoch > last):
            return last
        return int(epoch)

    def kept_epoch(self, lr: float) -> int | None:
        """The epoch whose weights run ``lr`` ended with (:meth:`weights_epoch` of the last),
        except for early stopping: the best epoch, whose weights the model keeps and run.json's
        ``test_metrics`` are computed with (``early_stopping`` in run.json)."""
        best = self.record.get("early_stopping", {}).get("best_epoch") if not self.is_sweep else 0
        return int(best) if best else self.weights_epoch(lr)

    def check_epoch(self, epoch: int | None) -> None:
        """Raise StellarnetError unless every rate can be drawn at ``epoch`` (None: the last):
        a recorded epoch, or for a diverged rate any epoch the run was to train after its
        last finite row (which is drawn instead)."""
        if epoch is None:
            return
        total = int(self.config["training"]["epochs"])
        for lr, history in self.histories.items():
            last = self.weights_epoch(lr)
            beyond = self.divergence(lr) is not None and last is not None and epoch > last
            if (beyond and epoch <= total) or (not beyond and epoch in set(history["epoch"])):
                continue
            epochs = history["epoch"]
            raise StellarnetError(
                f"--epoch {epoch} is not a recorded epoch of {self.folder} ({lr_label(lr)}: "
                f"epochs {epochs.min()} to {epochs.max()}"
                + (f", every {epochs.iloc[1] - epochs.iloc[0]}" if len(epochs) > 2 else "")
                + "); pick one of those, or leave --epoch out to draw the last"
            )

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
        """The run's arrays, rebuilt from the catalog exactly as the run built them: its
        ``[dataset] rows``, shuffle and split; ``x`` and ``y`` are the training rows only."""
        if self._dataset is None:
            self._dataset = rebuild_dataset(
                self.record, self.catalog(), record_path=self.folder / RUN_JSON
            )
        return self._dataset

    def part(self, name: str = "train") -> tuple[np.ndarray, np.ndarray]:
        """The rows ``(x, y)`` of part ``name`` of :data:`PARTS`, float32 as the run had them
        (empty, shape (0, n), for a part the run's split does not have).

        Raises
        ------
        StellarnetError
            If ``name`` is not one of :data:`PARTS`.
        """
        dataset = self.dataset()
        arrays = {
            "train": (dataset.x, dataset.y),
            "validation": (dataset.x_val, dataset.y_val),
            "test": (dataset.x_test, dataset.y_test),
        }
        if name not in arrays:
            raise StellarnetError(f"no part {name!r} of a run's rows; the parts are {PARTS}")
        return arrays[name]

    def parts(self) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        """The parts the run has, in :data:`PARTS` order: ``{"train": (x, y)}`` without a
        split; with one, also ``"validation"`` and/or ``"test"`` (those with rows)."""
        return {name: self.part(name) for name in PARTS if len(self.part(name)[1])}

    @property
    def has_split(self) -> bool:
        """True if some rows were held out from training (validation or test)."""
        return len(self.parts()) > 1

    def predict(self, layers: Layers, x: np.ndarray) -> np.ndarray:
        """The output, shape (rows, outputs), of the network ``layers`` (e.g. :meth:`layers`)
        with this run's activations on inputs ``x`` (rows, features), in float64."""
        return forward(layers, x, self.activation, self.output_activation)[0]


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
        If the folder is not a results folder.
    ResultsDamaged
        If its ``run.json`` or its history table is missing, unreadable, or inconsistent
        (:mod:`stellarnet.results.verify`); the message lists every problem and the fix.
    """
    folder = Path(folder)
    record = read_record(folder)
    history, path = read_history(folder)
    problems = history_problems(history, record)
    if problems:
        raise damaged(path, problems, history_fix(path))
    return SavedResults(
        folder,
        record,
        split_by_lr(history, record),
        catalog_override=Path(catalog) if catalog is not None else None,
    )


def read_record(folder: Path) -> dict[str, Any]:
    """``folder/run.json``, checked by :func:`stellarnet.results.verify.record_problems`."""
    run_json = folder / RUN_JSON
    tables = [name for name in (HISTORY_PARQUET, HISTORY_CSV) if (folder / name).is_file()]
    if not run_json.is_file() and tables:
        raise ResultsDamaged(
            f"{folder} holds {tables[0]} but no {RUN_JSON}, which records the run's config, "
            f"catalog and status: nothing can be drawn without it. {RECORD_FIX}"
        )
    if not run_json.is_file():
        raise StellarnetError(
            f"{folder} holds no {RUN_JSON}: not a results folder. Give a folder written by "
            "`stellarnet experiment` or `stellarnet sweep` (results/<experiment>/lr=<lr>/)."
        )
    try:
        record = json.loads(run_json.read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:  # ValueError: JSONDecodeError, UnicodeDecodeError
        raise damaged(run_json, [f"it is not valid JSON ({err})"], RECORD_FIX) from None
    problems = record_problems(record)
    if problems:
        raise damaged(run_json, problems, RECORD_FIX)
    return record


def read_history(folder: Path) -> tuple[pd.DataFrame, Path]:
    """The history table of a results folder (Parquet, else CSV) and the file it came from."""
    for name in (HISTORY_PARQUET, HISTORY_CSV):
        path = folder / name
        if path.is_file():
            try:
                return load_history(path), path
            except Exception as err:  # noqa: BLE001 - pyarrow and pandas raise many kinds
                reason = f"{type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}"
                kind = "Parquet" if path.suffix == ".parquet" else "CSV"
                problem = f"it cannot be read as a {kind} table ({reason.rstrip(': ')})"
                raise damaged(path, [problem], history_fix(path)) from None
    raise ResultsDamaged(
        f"{folder} has {RUN_JSON} but no {HISTORY_PARQUET} or {HISTORY_CSV}: the history the "
        "figures are drawn from is gone. Restore it from a backup or version control, or train "
        "the run again (`stellarnet experiment` or `stellarnet sweep` with --force)."
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

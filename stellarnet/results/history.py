"""The training history table: names, long view, save and load.

One row per epoch. Columns, in order:

``epoch``
    0 for the initial model, then 1..E.
``output``, ``loss``
    Mean network output over the batch and the loss, computed in epoch k with the
    parameters *before* epoch k's update (row 0: the initial model).
``w^{l}_{i}``, ``b^{l}_{i}``
    Kernel and bias entries of Dense layer l (1-based), i the 1-based index in the row-major
    flattening (``v.numpy().ravel()``); the values *after* epoch k's update (row 0: initial).
    For the 1-6-1 net, ``w^1_i`` is the weight from the input to hidden unit i and
    ``w^2_i`` the weight from hidden unit i to the output.
``g^{l}_{i}``, ``gb^{l}_{i}``
    d loss / d w and d loss / d b computed in epoch k (empty, NaN, in row 0).

Values are stored as float64 (exact copies of the float32 numbers TensorFlow computed), so
CSV and Parquet round-trip bit for bit.
"""

from __future__ import annotations

import re
from pathlib import Path

import pandas as pd

from stellarnet.files import atomic_write

PARAMETER_KINDS = {"w": "g", "b": "gb"}
"""Parameter kind -> the kind of its gradient column."""

_NAME = re.compile(r"^(w|b|g|gb|a)\^(\d+)_(\d+)$")

HISTORY_PARQUET = "history.parquet"
HISTORY_CSV = "history.csv"


def column_name(kind: str, layer: int, index: int) -> str:
    """History column name, e.g. ``column_name("w", 1, 3) == "w^1_3"``."""
    return f"{kind}^{layer}_{index}"


def parse_column(name: str) -> tuple[str, int, int] | None:
    """``"gb^2_1"`` -> ``("gb", 2, 1)``; None for ``epoch``, ``output``, ``loss`` etc."""
    match = _NAME.match(name)
    if match is None:
        return None
    return match.group(1), int(match.group(2)), int(match.group(3))


def parameter_columns(frame: pd.DataFrame, kinds: tuple[str, ...] = ("w", "b")) -> list[str]:
    """The history's columns of the given kinds, in table order."""
    return [c for c in frame.columns if (p := parse_column(c)) is not None and p[0] in kinds]


def to_long(frame: pd.DataFrame) -> pd.DataFrame:
    """Tidy view: one row per (epoch, parameter) with columns epoch, layer, kind, index, value.

    ``kind`` is ``w``, ``b``, ``g``, ``gb`` (or ``a`` for recorded activations). Handy for
    ``seaborn.relplot(data=long, x="epoch", y="value", hue="index", col="layer", row="kind")``.
    """
    names = [c for c in frame.columns if parse_column(c) is not None]
    id_columns = [c for c in ("lr", "epoch") if c in frame.columns]
    long = frame.melt(id_vars=id_columns, value_vars=names, var_name="name", value_name="value")
    parts = long["name"].map(parse_column)
    long["kind"] = parts.map(lambda p: p[0])
    long["layer"] = parts.map(lambda p: p[1])
    long["index"] = parts.map(lambda p: p[2])
    return long[[*id_columns, "layer", "kind", "index", "value"]]


def save_history(frame: pd.DataFrame, folder: str | Path) -> tuple[Path, Path]:
    """Write ``history.parquet`` and ``history.csv`` into ``folder``, each atomically."""
    folder = Path(folder)
    parquet = atomic_write(folder / HISTORY_PARQUET, lambda tmp: frame.to_parquet(tmp, index=False))
    csv = atomic_write(folder / HISTORY_CSV, lambda tmp: frame.to_csv(tmp, index=False))
    return parquet, csv


def load_history(path: str | Path) -> pd.DataFrame:
    """Read a history table from a run folder, a ``.parquet`` or a ``.csv`` file."""
    path = Path(path)
    if path.is_dir():
        path = path / HISTORY_PARQUET
    if path.suffix == ".csv":
        return pd.read_csv(path)
    return pd.read_parquet(path)

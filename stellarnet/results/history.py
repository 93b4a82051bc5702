"""The history table on disk: save and load (Parquet and CSV, bit for bit), and the long view.

The columns are described in :mod:`stellarnet.schema`. Values are stored as float64 (exact
copies of the float32 numbers TensorFlow computed), so CSV and Parquet round-trip bit for bit.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from stellarnet.files import atomic_write
from stellarnet.schema import parse_column

HISTORY_PARQUET = "history.parquet"
HISTORY_CSV = "history.csv"


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

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
HISTORY_BUDGET_BYTES = 2 * 1024**3
"""The largest history table (rows x columns x 8 bytes) a run builds: 2 GiB. The table is
held in memory while training (and copied while it is saved), so a run beyond it is refused
before training; ``record_every`` keeps fewer rows."""


def history_bytes(rows: int, columns: int) -> int:
    """Size of a history table of float64 values in memory: rows x columns x 8 bytes."""
    return rows * columns * 8


def format_bytes(size: float) -> str:
    """``"2.0 GiB"``, ``"27.4 MiB"``, ``"216 B"``."""
    for unit in ("B", "KiB", "MiB", "GiB", "TiB", "PiB"):
        if size < 1024 or unit == "PiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    raise AssertionError("unreachable")


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

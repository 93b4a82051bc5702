"""A study's history: a Parquet dataset partitioned by learning rate and hidden width, written
one part file at a time and never held whole in memory.

Layout (Hive partitioning, readable by pyarrow, pandas, Spark, DuckDB)::

    history/lr=0.1/hidden=6/part-00000.parquet
    history/lr=0.1/hidden=6/part-00001.parquet
    history/lr=0.3/hidden=6/part-00000.parquet
    ...

A part file holds the ``seed`` column and the single-run columns (``epoch`` 0 included) of
the members of one part (:mod:`stellarnet.runs.study_grid`) at that rate and width; ``lr`` and
``hidden`` are in the folder names. :func:`read_history` gives them back as the first
columns: ``lr, hidden, seed, epoch, output, loss, ...``.

A part file is written to a temporary file beside it and renamed over its name, which is the
part's own: a part trained twice (a Dask task retried after its worker died) replaces its
file with the same rows, so nothing is written twice and nothing half.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from stellarnet.errors import ResultsFolderError
from stellarnet.files import atomic_write
from stellarnet.results.names import rate_label

HISTORY_DIR = "history"
"""The dataset's folder inside a study folder."""
KEYS = ("lr", "hidden", "seed")
"""The columns before a single run's: which member a row belongs to."""
DICTIONARY_COLUMNS = ["seed", "epoch"]
"""The columns a part file dictionary-encodes: few distinct values. (The float columns have
almost as many values as rows; trying a dictionary on them doubled a part's write time.)"""


def partition_folder(history: str | Path, lr: float, hidden: int) -> Path:
    """``history/lr=<label>/hidden=<width>`` (the rate's shortest exact label)."""
    return Path(history) / f"lr={rate_label(lr)}" / f"hidden={int(hidden)}"


def write_part(history: str | Path, name: str, frame: pd.DataFrame) -> list[Path]:
    """Write the rows of ``frame`` (columns ``lr, hidden, seed``, then a single run's) as part
    file ``name`` of each of its (lr, hidden) partitions, each atomically; return the files."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    written = []
    for (lr, hidden), rows in frame.groupby(["lr", "hidden"], sort=False):
        table = pa.Table.from_pandas(rows.drop(columns=["lr", "hidden"]), preserve_index=False)
        path = partition_folder(history, lr, hidden) / name
        write = functools.partial(pq.write_table, table, use_dictionary=DICTIONARY_COLUMNS)
        written.append(atomic_write(path, write))
    return written


def history_dataset(history: str | Path, hidden: int | None = None):
    """The study's history (of width ``hidden``, or all) as a ``pyarrow.dataset.Dataset``
    (lr float64 and hidden int64 from the folder names; the widths' columns unified, a
    width's own in order); ResultsFolderError if there is none."""
    import pyarrow as pa
    import pyarrow.dataset as ds
    import pyarrow.parquet as pq

    history = Path(history)
    pattern = f"lr=*/hidden={'*' if hidden is None else int(hidden)}/part-*.parquet"
    files = sorted(history.glob(pattern)) if history.is_dir() else []
    if not files:
        raise ResultsFolderError(f"{history} holds no study history ({pattern})")
    first_of_width = {path.parent.name: path for path in reversed(files)}
    keys = pa.schema([("lr", pa.float64()), ("hidden", pa.int64())])
    schema = pa.unify_schemas([pq.read_schema(path) for path in first_of_width.values()])
    schema = pa.unify_schemas([schema, keys])
    partitioning = ds.partitioning(keys, flavor="hive")
    return ds.dataset(
        [str(path) for path in files],
        schema=schema,
        format="parquet",
        partitioning=partitioning,
        partition_base_dir=str(history),
    )


def read_history(
    history: str | Path,
    columns: Sequence[str] | None = None,
    lr: float | None = None,
    hidden: int | None = None,
) -> pd.DataFrame:
    """The study's history (or its ``columns``, with ``lr, hidden, seed`` first), optionally
    of one rate and/or width, sorted by hidden, lr (in the order of the folders), seed and
    epoch."""
    import pyarrow.dataset as ds

    dataset = history_dataset(history, hidden)
    names = [n for n in dataset.schema.names if n not in KEYS]
    wanted = names if columns is None else [c for c in columns if c not in KEYS]
    condition = None
    for key, value in (("lr", lr), ("hidden", hidden)):
        if value is not None:
            term = ds.field(key) == value
            condition = term if condition is None else condition & term
    table = dataset.to_table(columns=[*KEYS, *wanted], filter=condition)
    frame = table.to_pandas()
    return frame.sort_values(["hidden", "lr", "seed", "epoch"], kind="stable").reset_index(
        drop=True
    )


def member_frames(frame: pd.DataFrame) -> Iterable[tuple[tuple, pd.DataFrame]]:
    """``((lr, hidden, seed), rows)`` for each member of a history frame."""
    return frame.groupby(list(KEYS), sort=False)


def loss_matrix(history: str | Path, lr: float, hidden: int) -> tuple[np.ndarray, np.ndarray]:
    """``(epochs, losses [members, epochs])`` of one grid cell, read from the dataset (only
    its epoch, loss and seed columns; a diverged member's missing rows are NaN)."""
    frame = read_history(history, ["epoch", "loss"], lr=lr, hidden=hidden)
    table = frame.pivot(index="seed", columns="epoch", values="loss")  # NaN after divergence
    return table.columns.to_numpy(), table.to_numpy(dtype=float)

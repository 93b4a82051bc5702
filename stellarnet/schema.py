"""The history table's schema, in one place: column names, the record row's layout, and how
a stacked graph's rows map back to each member's.

One row per epoch. Columns, in order:

``epoch``
    0 for the initial model, then 1..E.
``output``, ``loss``
    Mean network output over the batch and the loss, computed in epoch k with the
    parameters *before* epoch k's update (row 0: the initial model).
``val_loss``
    (with validation rows) the loss on them with the parameters *after* epoch k's update.
``w^{l}_{i}``, ``b^{l}_{i}``
    Kernel and bias entries of Dense layer l (1-based), i the 1-based index in the row-major
    flattening (``v.numpy().ravel()``); the values *after* epoch k's update (row 0: initial).
    For the 1-6-1 net, ``w^1_i`` is the weight from the input to hidden unit i and
    ``w^2_i`` the weight from hidden unit i to the output.
``g^{l}_{i}``, ``gb^{l}_{i}``
    d loss / d w and d loss / d b computed in epoch k (empty, NaN, in row 0).
``a^{l}_{i}``
    (``record`` with ``"activations"``) batch-mean activation of hidden unit i of layer l.

The recorders (:mod:`stellarnet.train`) write rows in this layout, the results reader and
``--init-from`` read parameters back by these names. The module needs numpy and pandas only.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from stellarnet.errors import ConfigError

RECORD_GROUPS = ("kernels", "biases", "gradients", "activations")
"""What a row may hold besides epoch, output and loss."""
DEFAULT_RECORD = ("kernels", "biases", "gradients")

PARAMETER_KINDS = {"w": "g", "b": "gb"}
"""Parameter kind -> the kind of its gradient column."""
_RECORD_KINDS = {"w": "kernels", "b": "biases"}

_NAME = re.compile(r"^(w|b|g|gb|a)\^(\d+)_(\d+)$")


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


def check_record(record: Iterable[str]) -> tuple[str, ...]:
    """Return the record groups as a tuple, or raise ConfigError naming an unknown one."""
    record = tuple(record)
    unknown = [name for name in record if name not in RECORD_GROUPS]
    if unknown:
        raise ConfigError(f"unknown record group(s) {unknown}; known: {list(RECORD_GROUPS)}")
    return record


def parameter_names(layer_sizes: Sequence[int], kind: str = "w") -> list[str]:
    """Column names of all kernels (``kind="w"``) or biases (``"b"``), or of their gradients
    (``"g"``, ``"gb"``), of a net with ``layer_sizes`` (inputs first)."""
    return HistorySchema(tuple(layer_sizes)).parameter_names(kind)


@dataclass(frozen=True)
class ParameterBlock:
    """One Dense layer's kernel or bias in a net's flat parameter vector (history order:
    w^1, b^1, w^2, b^2, ...)."""

    layer: int
    kind: str
    start: int
    size: int

    def names(self, kind: str | None = None) -> list[str]:
        """Column names of the block's entries (of their gradients: ``kind="g"`` or "gb")."""
        return [column_name(kind or self.kind, self.layer, i) for i in range(1, self.size + 1)]


@dataclass(frozen=True)
class HistorySchema:
    """The columns and record-row layout of the history of a chain of Dense layers.

    Parameters
    ----------
    layer_sizes : sequence of int
        Widths, inputs first: ``(1, 6, 1)`` for the assignment's net.
    record : tuple of str
        Record groups (:data:`RECORD_GROUPS`).
    validation : bool
        Whether rows hold ``val_loss``.
    biases : tuple of bool, optional
        Whether each Dense layer has a bias (default: all do).
    """

    layer_sizes: tuple[int, ...]
    record: tuple[str, ...] = DEFAULT_RECORD
    validation: bool = False
    biases: tuple[bool, ...] | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "layer_sizes", tuple(int(n) for n in self.layer_sizes))
        object.__setattr__(self, "record", check_record(self.record))
        layers = len(self.layer_sizes) - 1
        biases = (True,) * layers if self.biases is None else tuple(self.biases)
        if len(biases) != layers:
            raise ConfigError(f"{layers} Dense layers but {len(biases)} bias flags")
        object.__setattr__(self, "biases", biases)

    @property
    def blocks(self) -> list[ParameterBlock]:
        """Every kernel and bias, in history order, with its place in the flat vector."""
        blocks, start = [], 0
        pairs = zip(self.layer_sizes[:-1], self.layer_sizes[1:], self.biases, strict=True)
        for layer, (n_in, n_out, bias) in enumerate(pairs, start=1):
            blocks.append(ParameterBlock(layer, "w", start, n_in * n_out))
            start += n_in * n_out
            if bias:
                blocks.append(ParameterBlock(layer, "b", start, n_out))
                start += n_out
        return blocks

    @property
    def parameter_count(self) -> int:
        """Entries in the flat parameter vector of one net."""
        return sum(block.size for block in self.blocks)

    @property
    def recorded_blocks(self) -> list[ParameterBlock]:
        """The kernels and biases the rows hold."""
        return [block for block in self.blocks if _RECORD_KINDS[block.kind] in self.record]

    @property
    def recorded_positions(self) -> np.ndarray:
        """Positions in the flat parameter vector of the recorded entries, in column order."""
        ranges = [np.arange(b.start, b.start + b.size) for b in self.recorded_blocks]
        return np.concatenate(ranges).astype(np.int32) if ranges else np.zeros(0, np.int32)

    @property
    def hidden_units(self) -> int:
        """Hidden units of all hidden layers (one ``a^{l}_{i}`` column each, if recorded)."""
        return sum(self.layer_sizes[1:-1])

    @property
    def columns(self) -> list[str]:
        """Column names, ``epoch`` first."""
        blocks = self.recorded_blocks
        activations = [
            column_name("a", layer, i)
            for layer, width in enumerate(self.layer_sizes[1:-1], start=1)
            for i in range(1, width + 1)
        ]
        return [
            "epoch",
            "output",
            "loss",
            *(["val_loss"] if self.validation else []),
            *(name for block in blocks for name in block.names()),
            *(
                name
                for block in blocks
                for name in block.names(PARAMETER_KINDS[block.kind])
                if "gradients" in self.record
            ),
            *(activations if "activations" in self.record else []),
        ]

    def parameter_names(self, kind: str = "w") -> list[str]:
        """Names of all kernels (``kind="w"``) or biases (``"b"``), or of their gradients
        (``"g"``, ``"gb"``), recorded or not."""
        own = {"g": "w", "gb": "b"}.get(kind, kind)
        return [name for b in self.blocks if b.kind == own for name in b.names(kind)]

    def stacked_row_index(self, order: np.ndarray, members: int) -> np.ndarray:
        """Where each member's history row lies in a stacked graph's flat record row.

        The graph's row holds the outputs (one per member), the losses, the recorded
        parameters in graph order (``order[j]``: the index in the ``[members, P]`` array of
        member rows of the graph's j-th parameter), their gradients in the same order, and
        the hidden-unit means member by member. Returns ``index`` ``[members, columns - 1]``:
        member k's column c + 1 is ``row[index[k, c]]``.
        """
        count = self.parameter_count
        recorded = self.recorded_positions
        positions = self.stacked_positions(order, members)
        graph_position = np.argsort(order).reshape(members, count)[:, recorded]
        columns = np.searchsorted(positions, graph_position)
        member = np.arange(members)[:, None]
        index = [member, members + member, 2 * members + columns]
        if "gradients" in self.record:
            index.append(2 * members + len(positions) + columns)
        if "activations" in self.record:
            units = self.hidden_units
            start = 2 * members + len(positions) * (1 + ("gradients" in self.record))
            index.append(start + member * units + np.arange(units)[None, :])
        return np.concatenate(index, axis=1)

    def stacked_positions(self, order: np.ndarray, members: int) -> np.ndarray:
        """Positions in the stacked flat parameter vector (graph order) of the recorded
        entries, in graph order."""
        wanted = np.zeros((members, self.parameter_count), bool)
        wanted[:, self.recorded_positions] = True
        return np.flatnonzero(wanted.ravel()[order])


def history_frame(
    rows: Sequence[np.ndarray] | np.ndarray,
    epoch_numbers: Sequence[int] | np.ndarray,
    columns: list[str],
) -> pd.DataFrame:
    """The history table from record rows ``[n, columns - 1]`` (or ``[n, K, columns - 1]``:
    K members' rows, member after member) and their epoch numbers.

    The values are copied to float64 once, column by column as pandas keeps a frame's values,
    and pandas takes that copy as it is (a long run's history is the largest array training
    makes).
    """
    values = np.asarray(rows)
    values = values.reshape(len(values), -1, len(columns) - 1)  # [n, members, columns - 1]
    by_column = np.empty((values.shape[2], values.shape[1] * values.shape[0]))
    by_column.reshape(values.shape[::-1])[...] = values.T
    frame = pd.DataFrame(by_column.T, columns=columns[1:], copy=False)
    frame.insert(0, "epoch", np.asarray(epoch_numbers, dtype=np.int64))
    return frame


def first_divergence(frame: pd.DataFrame) -> tuple[int, float] | None:
    """The first row whose ``output`` or ``loss`` is NaN or infinite, as ``(epoch, loss)``;
    None if every row is finite. (For a history of several members, ask per member.)"""
    bad = ~np.isfinite(frame[["output", "loss"]].to_numpy()).all(axis=1)
    if not bad.any():
        return None
    row = frame.iloc[int(np.argmax(bad))]
    return int(row["epoch"]), float(row["loss"])

"""Many small nets of the HR shape (1 input, 2-7 ReLU units, 1 linear output) trained by one
compiled loop per core: the study's engine when it applies.

The stacked TensorFlow graph (:mod:`stellarnet.train.stacked`) makes about twenty passes over
``[rows, units x members]`` arrays per epoch, one op each; this loop makes one pass over the
rows per epoch, computing each row's forward and backward pass for all members at once (a
member is a SIMD lane, :mod:`stellarnet.train.fused_kernel`). It performs TensorFlow's float32
operations in the order TensorFlow's kernels sum them, so each member's history equals its run
alone, bit for bit, as the stacked graph's does; the tests hold it to the stacked graph and
to single runs.

It applies (:func:`applies`) to full-batch training of those nets with the MSE loss (or half
of it), Adam or plain gradient descent, equal sample weights, on x86-64 with TensorFlow's
oneDNN kernels off and one thread per op (the settings ``stellarnet.tfsettings.apply`` makes
for a single run), since those fix the order it copies. It does not need TensorFlow. Anything
else trains stacked.
"""

from __future__ import annotations

import functools
import importlib.util
import os
import platform
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pandas as pd

from stellarnet.errors import ConfigError
from stellarnet.params import Layers
from stellarnet.schema import DEFAULT_RECORD, RECORD_GROUPS, HistorySchema, history_frame
from stellarnet.tfsettings import SETTINGS
from stellarnet.train.analytic import LOSS_FACTORS
from stellarnet.train.grouping import WIDE_MAX_UNITS, group_bounds
from stellarnet.train.optimizers import ADAM_BETA_1, ADAM_BETA_2
from stellarnet.train.stacked import member_rows

LANES = 16
"""A thread's members are padded to a multiple of this many (zeros: a net of zeros stays
finite and zero), so that the loop's SIMD code has no scalar remainder (43 members took as
long as 48)."""


def applies(
    layer_sizes: Sequence[int],
    activation: str,
    output_activation: str,
    optimizer: str,
    loss: str,
) -> bool:
    """Whether :func:`train_fused` trains this net with a single run's numbers: a 1-W-1 net
    (2 <= W <= 7) of ReLU units and a linear output, Adam or SGD, the MSE loss or half of
    it, on x86-64, in a process with stellarnet's TensorFlow settings
    (:data:`stellarnet.tfsettings.SETTINGS`: oneDNN off, one thread per op), under which a
    single run computes the numbers this loop copies."""
    return (
        len(layer_sizes) == 3
        and layer_sizes[0] == layer_sizes[2] == 1
        and 2 <= layer_sizes[1] <= WIDE_MAX_UNITS
        and (activation, output_activation) == ("relu", "linear")
        and optimizer in ("adam", "sgd")
        and loss in LOSS_FACTORS
        and importlib.util.find_spec("numba") is not None
        and platform.machine() in ("x86_64", "AMD64")
        and all(os.environ.get(name) == value for name, value in SETTINGS.items())
    )


@functools.cache
def adam_terms(epochs: int) -> np.ndarray:
    """``[epochs, 2]``: each update's ``sqrt(1 - beta_2^t)`` and ``1 - beta_1^t`` (t = 1..)
    in float32, as the optimizer's TensorFlow ops compute them on scalars: their ``pow`` is
    the C library's ``powf``, which numpy's float32 scalars call too (the tests hold the two
    to each other; TensorFlow's ``pow`` of a vector rounds differently)."""
    steps = np.empty((epochs, 2), np.float32)
    beta_1, beta_2, one = np.float32(ADAM_BETA_1), np.float32(ADAM_BETA_2), np.float32(1)
    for t in range(1, epochs + 1):
        step = np.float32(t)
        steps[t - 1] = np.sqrt(one - beta_2**step), one - beta_1**step
    return steps


def train_fused(
    members: Sequence[Layers],
    x: np.ndarray,
    y: np.ndarray,
    learning_rates: Sequence[float],
    *,
    epochs: int,
    optimizer: str = "adam",
    loss: str = "mse",
    record: tuple[str, ...] = DEFAULT_RECORD,
    record_every: int = 1,
    row_orders: np.ndarray | None = None,
    threads: int | None = None,
) -> tuple[list[Layers], pd.DataFrame]:
    """Train ``members`` (initial layers of one 1-W-1 net, see :func:`applies`), member k at
    ``learning_rates[k]`` on ``x[row_orders[k]]``, ``y[row_orders[k]]``, for ``epochs``
    full-batch epochs, in ``threads`` threads (default: one per core this process may use).

    Returns each member's final layers and the long history with a ``member`` column, as
    :func:`~stellarnet.train.stacked.train_stacked` with ``stop_on_divergence=False``.
    Raises ConfigError for data or layers of other shapes.
    """
    from stellarnet.train.fused_kernel import train_lanes

    theta = member_rows(members, learning_rates).T.astype(np.float32)  # [P, K], unit-major
    size, width = theta.shape[1], members[0][0][1].shape[0]
    rows = len(y)
    orders = np.tile(np.arange(rows), (size, 1)) if row_orders is None else row_orders
    _check_shapes(members[0], x, y, orders, size)
    inputs = np.asarray(x, np.float32)[:, 0][orders].T  # [n, K]: column k is member k's
    targets = np.asarray(y, np.float32)[:, 0][orders].T
    rates = np.asarray(learning_rates, np.float32)
    terms = adam_terms(epochs) if optimizer == "adam" else np.ones((epochs, 2), np.float32)
    scale = np.float32(LOSS_FACTORS[loss])
    weight = scale / np.float32(rows)
    every_column = HistorySchema((1, width, 1), RECORD_GROUPS).columns
    names = HistorySchema((1, width, 1), record).columns
    columns = np.array([every_column.index(name) - 1 for name in names[1:]], np.int64)

    def train(part: slice) -> np.ndarray:
        count = part.stop - part.start
        lanes = -(-count // LANES) * LANES
        own, x_own, y_own, rates_own = (
            padded(a[..., part], lanes) for a in (theta, inputs, targets, rates)
        )
        kept = np.empty((epochs // record_every + 1, lanes, len(columns)), np.float32)
        options = (optimizer == "adam", terms, weight, scale, record_every, columns, kept)
        train_lanes(x_own, y_own, own, rates_own, *options)
        theta[:, part] = own[:, :count]
        return kept[:, :count]

    with ThreadPoolExecutor(len(parts := _split(size, threads))) as pool:
        recorded = np.concatenate(list(pool.map(train, parts)), axis=1)  # the loop drops the GIL
    epoch_numbers = np.arange(0, epochs + 1, record_every)
    frame = history_frame(recorded, np.tile(epoch_numbers, size), names)
    frame.insert(0, "member", np.repeat(np.arange(size), len(epoch_numbers)))
    return [_layers(column, width) for column in theta.T], frame


def _check_shapes(
    layers: Layers, x: np.ndarray, y: np.ndarray, orders: np.ndarray, members: int
) -> None:
    """ConfigError unless ``layers`` are a 1-W-1 net's, ``x`` and ``y`` one column of the same
    n > 0 rows, and ``orders`` n row numbers for each of the ``members``."""
    shapes = [array.shape for pair in layers for array in pair]
    width = shapes[1][0] if len(shapes) == 4 else 0
    if shapes != [(1, width), (width,), (width, 1), (1,)]:
        raise ConfigError(f"the fused loop trains 1-W-1 nets, got layer shapes {shapes}")
    rows = len(y)
    if rows == 0 or np.shape(x) != (rows, 1) or np.shape(y) != (rows, 1):
        raise ConfigError(
            f"the fused loop needs x and y of shape (n, 1), n > 0; got {np.shape(x)}, {np.shape(y)}"
        )
    if orders.shape != (members, rows) or orders.min() < 0 or orders.max() >= rows:
        raise ConfigError(
            f"row_orders must hold {rows} row numbers (0..{rows - 1}) per member; got an "
            f"array of shape {orders.shape}"
        )


def _split(members: int, threads: int | None) -> list[slice]:
    """The members of each thread: ``threads`` (default: the cores this process may use)
    contiguous groups (:func:`~stellarnet.train.grouping.group_bounds`)."""
    usable = os.sched_getaffinity(0) if hasattr(os, "sched_getaffinity") else None  # Linux
    count = threads or (len(usable) if usable else os.cpu_count() or 1)
    return [slice(lo, hi) for lo, hi in group_bounds(members, min(members, count), (), 0)]


def padded(values: np.ndarray, lanes: int) -> np.ndarray:
    """``values`` with its last axis padded with zeros to ``lanes``, contiguous."""
    extra = [(0, 0)] * (values.ndim - 1) + [(0, lanes - values.shape[-1])]
    return np.ascontiguousarray(np.pad(values, extra))


def _layers(flat: np.ndarray, width: int) -> Layers:
    """A member's (kernel, bias) arrays from its unit-major parameters (w1, b1, w2, b2)."""
    w1, b1, w2, b2 = np.split(flat, [width, 2 * width, 3 * width])
    return [(w1.reshape(1, width), b1), (w2.reshape(width, 1), b2)]

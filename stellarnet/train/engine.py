"""The engine: runs any epoch recorder's epochs eagerly, traced or compiled with XLA, and
collects the record rows.

Every recorder (one net, :class:`~stellarnet.train.recorder.Recorder`; K stacked nets,
:class:`~stellarnet.train.stacked.StackedRecorder`) provides the same few methods,
:class:`EpochRecorder`; how its epochs run is an :class:`ExecutionPolicy`:

``"eager"``
    One Python iteration per epoch and one device-to-host transfer of the whole record row.
    Best for short runs (no tracing cost).
``"graph"``
    The epochs run inside one ``tf.function`` (a ``tf.while_loop`` that carries the
    optimizer's state and writes a ``tf.TensorArray``), called once per chunk of epochs. It
    is traced on a run's first call; for plain Dense nets, later runs of the same shapes in
    the process reuse it (:func:`traced_epochs`). The numbers are the eager engine's, bit
    for bit on CPU without XLA (full batch; mini-batch epochs agree to about 1e-7).
    ``jit_compile=True`` (XLA) rounds differently and is opt-in.

``"auto"`` (default) picks eager for short runs (below ``graph_min_epochs``), where tracing
would cost more than it saves, and graph above.
"""

from __future__ import annotations

import contextlib
import time
from collections import OrderedDict
from collections.abc import Callable, Hashable, Iterator
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np
import pandas as pd

from stellarnet.checks import check_positive_int
from stellarnet.errors import ConfigError, TrainingDiverged
from stellarnet.tfsettings import check_onednn
from stellarnet.train.policy import ExecutionPolicy

if TYPE_CHECKING:
    from stellarnet.train.stopping import EarlyStopping


TRACED_RUNS_KEPT = 8
"""Traced graph runs kept for reuse (see :func:`traced_epochs`), most recently used first."""
_traced_runs: OrderedDict[Hashable, Any] = OrderedDict()


class EpochRecorder(Protocol):
    """What the engine needs of a recorder: its state, one epoch, one record row."""

    data: Any
    """What an epoch reads besides the state (a traced run takes it as an argument)."""
    default_policy: ExecutionPolicy
    """The policy its epochs run fastest under."""

    @property
    def columns(self) -> list[str]:
        """History column names, ``epoch`` first."""

    @property
    def row_shape(self) -> list[int]:
        """Shape of the record row one epoch returns."""

    @property
    def signature(self) -> Hashable | None:
        """All a traced run depends on besides its arguments (None: never reused)."""

    def state(self) -> Any:
        """The current state (an optimizer state), read from the variables."""

    def store(self, state: Any) -> None:
        """Write ``state`` to the variables."""

    def initial(self, state: Any, data: Any) -> Any:
        """The record row of ``state`` without an update (row 0)."""

    def advance(self, state: Any, data: Any) -> tuple[Any, Any]:
        """One epoch: the new state and the epoch's record row."""

    def host_rows(self, block: np.ndarray) -> np.ndarray:
        """Record rows as the graph returns them, as history rows."""

    def frame(self, rows: list[np.ndarray], epoch_numbers: list[int]) -> pd.DataFrame:
        """The history table of these history rows."""


def run_epochs(
    recorder: EpochRecorder,
    epochs: int,
    policy: ExecutionPolicy | None = None,
    *,
    record_every: int = 1,
    progress: bool = False,
    context: str = "",
    stop_on_divergence: bool = True,
    early_stopping: EarlyStopping | None = None,
) -> tuple[list[np.ndarray], list[int]]:
    """Run ``epochs`` epochs of ``recorder`` under ``policy`` (default: the recorder's); return
    the history rows (row 0 first) and their epoch numbers. The variables end at the last
    state reached. Raises TrainingDiverged at the first epoch whose output or loss is not
    finite; its ``history`` holds the rows up to and including that epoch. With
    ``stop_on_divergence=False`` the epochs run on and every recorded row is returned, NaN or
    not: stacked members are independent, so one member's divergence leaves the others'
    numbers as they are (see :func:`stellarnet.schema.first_divergence`). With
    ``early_stopping``, the rows end at the epoch it stops after."""
    check_positive_int(record_every, "record_every")
    policy = recorder.default_policy if policy is None else policy
    watched = _watched_column(recorder, record_every) if early_stopping else None
    check_onednn()
    rows: list[np.ndarray] = []
    epoch_numbers: list[int] = []

    def keep(numbers: list[int], block: np.ndarray) -> bool:
        """Keep these rows, up to and including the first whose output or loss is not finite
        (then raise) or the one early stopping stops after (then return True)."""
        if not len(block):  # a chunk shorter than record_every may record nothing
            return False
        if not stop_on_divergence:
            rows.extend(block)
            epoch_numbers.extend(numbers)
            return False
        finite = np.isfinite(block[:, ..., :2]).reshape(len(block), -1).all(axis=1)
        end = len(block) if finite.all() else int(np.argmin(finite)) + 1
        stop = False
        if early_stopping is not None:
            for i in range(end):
                if early_stopping.update(numbers[i], float(block[i][watched])):
                    end, stop = i + 1, True
                    break
        rows.extend(block[:end])
        epoch_numbers.extend(numbers[:end])
        if finite[end - 1]:
            return stop
        raise TrainingDiverged(
            f"training diverged at epoch {numbers[end - 1]}: the loss became "
            f"{block[end - 1][..., 1]} ({context}). Lower the learning rate (--lr) or "
            "normalise the inputs."
        ).with_history(recorder.frame(rows, epoch_numbers))

    state = recorder.state()
    # Row 0 eagerly: cheaper than tracing it into the graph.
    rows.extend(recorder.host_rows(recorder.initial(state, recorder.data).numpy()[None]))
    epoch_numbers.append(0)
    try:
        with _progress_bar(epochs, progress) as bar:
            if policy.engine_for(epochs) == "eager":
                for epoch in range(1, epochs + 1):
                    state, row = recorder.advance(state, recorder.data)
                    block = recorder.host_rows(row.numpy()[None])
                    finite = np.all(np.isfinite(block[..., :2]))
                    kept = epoch % record_every == 0 or (stop_on_divergence and not finite)
                    bar.update(1)
                    if kept and keep([epoch], block):
                        break
            else:
                chunks = _graph_chunks(recorder, state, epochs, record_every, policy)
                # Each chunk's state is stored below (finally), even if a row diverged.
                for state, count, numbers, block in chunks:  # noqa: B007
                    bar.update(count)
                    if keep(numbers, block):
                        break
    finally:
        recorder.store(state)
    return rows, epoch_numbers


def _watched_column(recorder: EpochRecorder, record_every: int) -> int:
    """Where ``val_loss`` is in a record row, for early stopping (which watches every epoch)."""
    if "val_loss" not in recorder.columns or record_every != 1:
        raise ConfigError(
            "early stopping watches val_loss every epoch: it needs validation rows (a "
            "[dataset] split with validation) and record_every = 1"
        )
    return recorder.columns.index("val_loss") - 1


def compile_epochs(
    recorder: EpochRecorder, record_every: int, policy: ExecutionPolicy
) -> Callable[[Any, Any, Any, Any, Any], Any]:
    """A ``tf.function`` ``run(state, data, start, count, n_rows)`` that runs ``count``
    epochs of ``recorder`` from ``state`` on ``data``. It returns the new state and the rows
    of the epochs (numbered from ``start + 1``) that are multiples of ``record_every``,
    stacked: the first ``n_rows`` rows returned (more follow with ``record_every`` > 1, and
    under XLA, whose calls all return the rows of a full chunk).

    It is traced once and reused for every chunk of a run (and, through
    :func:`traced_epochs`, by later runs). The loop is an explicit ``tf.while_loop`` (no
    autograph, which halves the tracing time) whose loop variables carry the optimizer's
    state: the parameters are not read or written as variables inside the loop (only
    layers with state of their own, such as dropout's seed, use theirs).
    """
    import tensorflow as tf

    @tf.function(autograph=False, jit_compile=policy.jit_compile, reduce_retracing=True)
    def run(state: Any, data: Any, start: Any, count: Any, n_rows: Any) -> Any:
        def body(i: Any, written: Any, state: Any, rows: Any) -> tuple[Any, Any, Any, Any]:
            state, row = recorder.advance(state, data)
            rows = rows.write(written, row)
            if record_every == 1:
                return i + 1, written + 1, state, rows
            # Every epoch writes its row to the next free slot, and only a kept row moves on
            # to the next: no branch (a conditional write copies the whole buffer under XLA).
            keep = tf.equal((start + i + 1) % record_every, 0)
            return i + 1, written + tf.cast(keep, tf.int32), state, rows

        size = policy.xla_chunk_rows(record_every) if policy.jit_compile else n_rows
        size += int(record_every > 1)  # the slot the epochs after the last kept one write to
        rows = tf.TensorArray(tf.float32, size=size, element_shape=recorder.row_shape)
        _, _, state, rows = tf.while_loop(
            lambda i, *_: i < count, body, (tf.constant(0), tf.constant(0), state, rows)
        )
        return state, rows.stack()

    return run


def traced_epochs(
    recorder: EpochRecorder, state: Any, record_every: int, policy: ExecutionPolicy
) -> Any:
    """:func:`compile_epochs` of ``recorder``, traced for ``state`` and ``recorder.data``.

    Tracing costs as much as many epochs of a small net. A graph that captures nothing (it
    reads only its arguments) and whose recorder has a ``signature`` is kept and reused by
    later runs with an equal signature, e.g. the runs of a sequential sweep or repeated runs
    in a notebook (the :data:`TRACED_RUNS_KEPT` most recent). The captures check sees tensors
    and variables only: the signature must name every Python value the graph was traced
    with. (Reuse saves the tracing; the graph set-up is paid again after
    ``keras.utils.set_random_seed``, which clears TensorFlow's caches.)
    """
    import tensorflow as tf

    signature = recorder.signature
    key = None if signature is None else (signature, record_every, policy.jit_compile)
    if key in _traced_runs:
        _traced_runs.move_to_end(key)
        return _traced_runs[key]
    scalar = tf.constant(0)
    run = compile_epochs(recorder, record_every, policy)
    traced = run.get_concrete_function(state, recorder.data, scalar, scalar, scalar)
    if key is not None and not traced.captured_inputs:
        _traced_runs[key] = traced
        while len(_traced_runs) > TRACED_RUNS_KEPT:
            _traced_runs.popitem(last=False)
    return traced


def _graph_chunks(
    recorder: EpochRecorder, state: Any, epochs: int, record_every: int, policy: ExecutionPolicy
) -> Iterator[tuple[Any, int, list[int], np.ndarray]]:
    """Run the compiled graph from ``state`` in chunks of epochs; yield, per chunk, the new
    state, its number of epochs, and the numbers and rows of its recorded epochs."""
    import tensorflow as tf

    # Traced under the executor it runs on: for the single-threaded one, TensorFlow keeps the
    # loop a functional While op (the default executor gets it lowered to low-level control
    # flow, which the single-threaded one refuses, as it refuses XLA's graphs).
    with policy.call_options():
        run = traced_epochs(recorder, state, record_every, policy)
    done, chunk = 0, record_every * max(1, 64 // record_every)
    if policy.jit_compile:  # fixed-size chunks: one XLA compilation for the whole run
        chunk = record_every * policy.xla_chunk_rows(record_every)
    while done < epochs:
        count = min(chunk, epochs - done)
        n_rows = (done + count) // record_every - done // record_every
        started = time.perf_counter()
        chunk_args = (tf.constant(done), tf.constant(count), tf.constant(n_rows))
        with policy.call_options():
            state, block = run(state, recorder.data, *chunk_args)
        block = recorder.host_rows(block.numpy()[:n_rows])
        elapsed = time.perf_counter() - started
        recorded = [e for e in range(done + 1, done + count + 1) if e % record_every == 0]
        yield state, count, recorded, block
        # Grow the chunk towards chunk_seconds of work: few calls, yet a live progress bar.
        # The first call's time may be mostly tracing, so it only says "grow".
        target = 8 * chunk if done == 0 else int(policy.chunk_seconds / max(elapsed / count, 1e-7))
        if not policy.jit_compile:
            chunk = max(record_every, min(target, 8 * chunk) // record_every * record_every)
        done += count


def _progress_bar(total: int, enabled: bool) -> Any:
    """A tqdm progress bar of ``total`` epochs on standard error, shown after 2 s (disabled:
    a null context whose ``update`` does nothing, without tqdm's import)."""
    if not enabled:
        return contextlib.nullcontext(_NoBar())
    from tqdm.auto import tqdm

    return tqdm(total=total, desc="training", unit="epoch", delay=2, leave=False)


class _NoBar:
    def update(self, n: int = 1) -> None:
        pass

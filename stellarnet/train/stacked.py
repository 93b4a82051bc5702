"""K networks of one architecture trained side by side as stacked tensors in one graph.

Member k has its own parameters, learning rate and (optionally) sample weights; the
parameters of all members are one flat vector in the order the graph reads them
(:func:`~stellarnet.train.grouping.graph_order`), so a K-rate sweep costs about as many graph
ops as one run. The same machinery trains a committee of K networks that differ in initial
weights (seeds) or bootstrap sample (``sample_weight`` rows of bootstrap counts).

Every sum is taken in the order Keras' Dense layers take it and the optimizer is the same
:class:`~stellarnet.train.optimizers.Optimizer` (with one learning rate per member), so each
member's numbers equal a separate :func:`~stellarnet.train.loop.train` run (bit for bit on
CPU for ReLU and linear units; tanh and sigmoid may differ in the last bit). The epoch's
maths is :mod:`stellarnet.train.stacked_nets`; in the wide formulation the parameters stay in
its unit-major layout from epoch to epoch (Adam is elementwise), so an epoch starts with one
split and ends with one concat, and the host puts the recorded rows back in member order
(:meth:`StackedRecorder.host_rows`).

The members train in groups side by side (:mod:`stellarnet.train.grouping`). Each group
updates its own parameters (Adam, or SGD, on its slice), so the groups share no op in an
epoch and one may run an epoch or two ahead of another.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from stellarnet.checks import check_choice
from stellarnet.errors import ConfigError
from stellarnet.params import Layers
from stellarnet.schema import DEFAULT_RECORD, HistorySchema, history_frame
from stellarnet.train.engine import run_epochs
from stellarnet.train.grouping import graph_order, group_bounds
from stellarnet.train.optimizers import Optimizer, OptimizerState
from stellarnet.train.policy import STACKED_POLICY
from stellarnet.train.stacked_nets import StackedNets
from stellarnet.vocabulary import ACTIVATIONS, LOSSES


class StackedRecorder:
    """A :class:`~stellarnet.train.recorder.Recorder` for K stacked members.

    The graph records one flat row per epoch; :meth:`host_rows` turns rows into history rows
    of shape ``[K, n_columns - 1]`` and :meth:`frame` those into the long history table with
    a ``member`` column.

    Parameters
    ----------
    members : sequence of Layers
        Initial (kernel, bias) arrays of each member, all of one architecture.
    x, y : ndarray
        The full batch, shared by all members.
    learning_rates : sequence of float
        One per member.
    activation, output_activation : str
        Hidden and output activations (``relu``, ``linear``, ``tanh``, ``sigmoid``).
    optimizer : {"adam", "sgd"}
    loss : {"mse", "half_mse"}
    sample_weight : ndarray, shape (K, n), optional
        Per-member weights of the samples in the loss (e.g. bootstrap counts); the loss is
        the weighted mean. None: every sample once.
    record : tuple of str
        Record groups, as for :func:`~stellarnet.train.loop.train`.
    groups : int, optional
        Number of independent sub-graphs the members are split into (contiguous, sizes
        differing by at most one). Default:
        :func:`~stellarnet.train.grouping.default_groups` (for the HR net on 2 cores: 2
        groups up to 96 members, 4 up to 192). The numbers do not depend on it.
    row_orders : ndarray, shape (K, n), optional
        Member k trains on ``x[row_orders[k]]``, ``y[row_orders[k]]`` (its own order of the
        rows, e.g. its seed's shuffle): its numbers are then those of a run alone on that
        order (:class:`~stellarnet.train.stacked_nets.StackedNets`). None: ``(x, y)`` as given.
    """

    default_policy = STACKED_POLICY
    signature = None
    """Stacked graphs capture their data as constants: never shared between runs."""

    def __init__(
        self,
        members: Sequence[Layers],
        x: np.ndarray,
        y: np.ndarray,
        learning_rates: Sequence[float],
        activation: str = "relu",
        output_activation: str = "linear",
        optimizer: str = "adam",
        loss: str = "mse",
        sample_weight: np.ndarray | None = None,
        record: tuple[str, ...] = DEFAULT_RECORD,
        groups: int | None = None,
        row_orders: np.ndarray | None = None,
    ) -> None:
        import tensorflow as tf

        by_member = member_rows(members, learning_rates)
        check_choice(loss, "loss", LOSSES)
        self.size = len(members)
        self.layer_sizes = [members[0][0][0].shape[0]] + [b.shape[0] for _, b in members[0]]
        self.schema = HistorySchema(self.layer_sizes, record)
        self.parameter_count = self.schema.parameter_count
        for name in (activation, output_activation):
            check_choice(name, "activation", ACTIVATIONS)
        n = len(y)
        weights = np.ones((self.size, n)) if sample_weight is None else np.asarray(sample_weight)
        if weights.shape != (self.size, n):
            raise ConfigError(
                f"sample_weight must have shape {(self.size, n)}, got {weights.shape}"
            )
        self.groups = group_bounds(self.size, groups, self.layer_sizes, n)
        # Each group's share of the flat parameter vector.
        self.group_sizes = [(hi - lo) * self.parameter_count for lo, hi in self.groups]
        activations = (activation, output_activation)
        uniform = sample_weight is None
        self.nets = StackedNets(
            x, y, self.schema, activations, loss, self.groups, uniform, row_orders
        )
        self.is_wide = self.nets.is_wide
        # All parameters in one flat vector, in the order the graph reads them, so the
        # optimizer and the record are a handful of ops whatever K and the depth.
        self.order = graph_order(self.groups, self.parameter_count, self.is_wide)
        self.theta = tf.Variable(by_member.ravel()[self.order].astype(np.float32))
        # The loss of member k is sum_n w_kn (y_n - yhat_kn)^2 / sum_n w_kn.
        weights = (weights / weights.sum(axis=1, keepdims=True)).astype(np.float32)
        self.group_weights = [
            self.nets.group_data(lo, hi, tf.constant(weights[lo:hi])) for lo, hi in self.groups
        ]
        # Each parameter's member's rate: Adam is elementwise, so each member's numbers are
        # those of a run alone.
        rates = np.repeat(np.asarray(learning_rates, np.float32), self.parameter_count)
        rates = rates[self.order]
        self.optimizer = Optimizer(optimizer, [self.theta], tf.constant(rates))
        parts = np.split(rates, np.cumsum(self.group_sizes)[:-1])
        self.group_rates = [tf.constant(part) for part in parts]
        self.record = record
        self.data = ()  # the inputs are constants of the graph (see Recorder.data)
        self._layout_rows()

    def _layout_rows(self) -> None:
        """Lay out the graph's flat record row (:meth:`HistorySchema.stacked_row_index`)."""
        import tensorflow as tf

        positions = self.schema.stacked_positions(self.order, self.size)
        self.record_all = len(positions) == self.size * self.parameter_count  # no gather
        self.recorded = tf.constant(positions, tf.int32)
        self.row_index = self.schema.stacked_row_index(self.order, self.size)
        self.row_length = int(self.row_index.max()) + 1

    @property
    def columns(self) -> list[str]:
        """History column names (as a single run's), ``epoch`` first."""
        return self.schema.columns

    def host_rows(self, block: np.ndarray) -> np.ndarray:
        """Graph record rows ``[n, row_length]`` as history rows ``[n, K, columns - 1]``."""
        return block[:, self.row_index]

    def frame(self, rows: list[np.ndarray], epoch_numbers: list[int]) -> pd.DataFrame:
        """The long history table: a ``member`` column (0..K-1), then a single run's columns,
        from history rows (:meth:`host_rows`)."""
        frame = history_frame(rows, np.tile(epoch_numbers, self.size), self.columns)
        frame.insert(0, "member", np.repeat(np.arange(self.size), len(rows)))
        return frame

    def final_layers(self) -> list[Layers]:
        """Each member's current (kernel, bias) arrays."""
        flat = np.empty(self.size * self.parameter_count, np.float32)
        flat[self.order] = self.theta.numpy()
        return [
            [
                (
                    row[s : s + n_in * n_out].reshape(n_in, n_out),
                    row[s + n_in * n_out : s + n_in * n_out + n_out],
                )
                for s, n_in, n_out in self.nets.slices
            ]
            for row in flat.reshape(self.size, -1)
        ]

    def evaluate(self, thetas: Sequence[Any], gradients: bool) -> tuple[list[Any], ...]:
        """Per group: the output means, losses, gradients (graph order; None without
        ``gradients``) and hidden-unit means (None unless recorded) with the groups'
        parameters ``thetas`` (graph order)."""
        results = [
            self.nets(theta, weights, gradients)
            for theta, weights in zip(thetas, self.group_weights, strict=True)
        ]
        return tuple(list(column) for column in zip(*results, strict=True))

    @functools.cached_property
    def traced_step(self) -> Any:
        """:meth:`group_epoch` as a ``tf.function``, which a traced epoch calls once per
        group: groups of one size share one trace, which TensorFlow inlines into the epoch's
        graph, which halves the tracing of several groups."""
        import tensorflow as tf

        return tf.function(self.group_epoch, autograph=False)

    def row(
        self,
        outputs: Sequence[Any],
        losses: Sequence[Any],
        grads: Sequence[Any],
        unit_means: Sequence[Any],
        thetas: Sequence[Any],
    ) -> Any:
        """Every member's record as one flat float32 row, laid out as ``row_index`` says,
        from the groups' pieces (one concat, when everything is recorded)."""
        import tensorflow as tf

        def recorded(pieces: Sequence[Any]) -> list[Any]:
            if self.record_all:
                return list(pieces)
            return [tf.gather(self.joined(pieces), self.recorded)]

        parts = [*outputs, *losses, *recorded(thetas)]
        if "gradients" in self.record:
            if grads[0] is None:
                parts.append(tf.fill([len(self.recorded)], np.float32(np.nan)))
            else:
                parts += recorded(grads)
        if "activations" in self.record:
            parts += [tf.reshape(means, [-1]) for means in unit_means]
        return tf.concat(parts, axis=0)

    @staticmethod
    def joined(parts: Sequence[Any]) -> Any:
        """The groups' flat pieces as one vector (graph order)."""
        import tensorflow as tf

        return tf.concat(parts, axis=0) if len(parts) > 1 else parts[0]

    def state(self) -> OptimizerState:
        """The optimizer's state with the parameters and moments split by group: ``theta`` a
        tuple of one tensor per group, ``moments`` a tuple of such tuples. Each group then
        updates its own parameters, and a group can run ahead of the others in the traced
        loop instead of waiting for them every epoch."""
        import tensorflow as tf

        iterations, theta, moments = self.optimizer.state()
        split = lambda vector: tuple(tf.split(vector, self.group_sizes))  # noqa: E731
        return OptimizerState(iterations, split(theta), tuple(split(m) for m in moments))

    def store(self, state: OptimizerState) -> None:
        """Write ``state`` to the variables (:meth:`final_layers` reads them)."""
        moments = tuple(self.joined(parts) for parts in state.moments)
        self.optimizer.store(OptimizerState(state.iterations, self.joined(state.theta), moments))

    def initial(self, state: OptimizerState, data: tuple = ()) -> Any:
        """The rows of ``state`` (row 0: the initial one), no gradients (NaN)."""
        thetas = state.theta
        outputs, losses, grads, unit_means = self.evaluate(thetas, gradients=False)
        return self.row(outputs, losses, grads, unit_means, thetas)

    def advance(self, state: OptimizerState, data: tuple = ()) -> tuple[OptimizerState, Any]:
        """One full-batch epoch of every member from ``state``: forward, loss, gradient,
        update, record. Returns the new state and the rows. (The data are constants of the
        recorder: ``data`` is empty.)"""
        import tensorflow as tf

        traced = not tf.executing_eagerly()  # in a traced epoch, not the eager engine
        step = self.traced_step if traced else self.group_epoch
        iterations = state.iterations
        results = [
            step(iterations, weights, rates, *parts)
            for weights, rates, *parts in zip(
                self.group_weights, self.group_rates, state.theta, *state.moments, strict=True
            )
        ]
        outputs, losses, grads, unit_means, thetas, *moments = zip(*results, strict=True)
        new = OptimizerState(iterations + 1, thetas, tuple(moments))
        return new, self.row(outputs, losses, grads, unit_means, thetas)

    def group_epoch(
        self, iterations: Any, weights: Any, rates: Any, theta: Any, *moments: Any
    ) -> tuple:
        """One epoch of one group from its parameters and moments (graph order): output
        means, losses, gradient, hidden-unit means, new parameters and moments."""
        outputs, losses, grad, unit_means = self.nets(theta, weights, gradients=True)
        state = OptimizerState(iterations, theta, moments)
        _, new = self.optimizer.update(state, [grad], rates)
        return outputs, losses, grad, unit_means, new.theta, *new.moments

    @property
    def row_shape(self) -> list[int]:
        """Shape of one record row (graph layout, see :meth:`host_rows`)."""
        return [self.row_length]


def member_rows(members: Sequence[Layers], learning_rates: Sequence[float]) -> np.ndarray:
    """``[K, P]``: member k's parameters in one row, in history order (w^1, b^1, w^2, ...);
    ConfigError unless there is one rate per member and they share one architecture."""
    if len(members) != len(learning_rates) or not members:
        raise ConfigError(f"{len(members)} member(s) but {len(learning_rates)} learning rate(s)")
    shapes = [[(k.shape, b.shape) for k, b in member] for member in members]
    if any(shape != shapes[0] for shape in shapes):
        raise ConfigError("stacked members must share one architecture")
    return np.stack([np.concatenate([a.ravel() for pair in m for a in pair]) for m in members])


def train_stacked(
    members: Sequence[Layers],
    x: np.ndarray,
    y: np.ndarray,
    learning_rates: Sequence[float],
    *,
    epochs: int,
    activation: str = "relu",
    output_activation: str = "linear",
    optimizer: str = "adam",
    loss: str = "mse",
    record: tuple[str, ...] = DEFAULT_RECORD,
    record_every: int = 1,
    sample_weight: np.ndarray | None = None,
    jit_compile: bool = False,
    progress: bool = False,
    context: str = "",
    stop_on_divergence: bool = True,
    row_orders: np.ndarray | None = None,
    groups: int | None = None,
) -> tuple[StackedRecorder, pd.DataFrame]:
    """Train ``members`` (initial layers of one architecture) together in one compiled graph,
    member k at ``learning_rates[k]``, for ``epochs`` full-batch epochs.

    Returns the :class:`StackedRecorder` (for the trained layers, :meth:`final_layers`) and
    the long history with a ``member`` column. ``sample_weight`` ``[K, n]``: e.g. bootstrap
    counts; ``row_orders`` ``[K, n]``: each member's own order of the rows; ``groups``: how
    many groups (default :func:`~stellarnet.train.grouping.default_groups`).
    ``stop_on_divergence=False``: members whose loss becomes NaN or infinite train on
    (their rows are NaN from then on) without stopping the others. The other arguments are
    those of :class:`StackedRecorder` and :func:`~stellarnet.train.engine.run_epochs`.
    """
    recorder = StackedRecorder(
        members,
        x,
        y,
        learning_rates,
        activation,
        output_activation,
        optimizer,
        loss,
        sample_weight=sample_weight,
        record=record,
        groups=groups,
        row_orders=row_orders,
    )
    policy = dataclasses.replace(STACKED_POLICY, jit_compile=jit_compile)
    rows, epoch_numbers = run_epochs(
        recorder,
        epochs,
        policy,
        record_every=record_every,
        progress=progress,
        context=context,
        stop_on_divergence=stop_on_divergence,
    )
    return recorder, recorder.frame(rows, epoch_numbers)

"""K networks of one architecture trained side by side as stacked tensors in one graph.

Member k has its own parameters, learning rate and (optionally) sample weights; the
parameters of all members are one flat vector (:meth:`StackedRecorder.graph_order`), so a
K-rate sweep costs about as many graph ops as one run. The same machinery trains
a committee of K networks that differ in initial weights (seeds) or bootstrap sample
(``sample_weight`` rows of bootstrap counts).

Every sum is taken in the order Keras' Dense layers take it and the optimizer is the same
:class:`stellarnet.train.optimizers.Optimizer` (with one learning rate per member), so each
member's numbers equal a separate :func:`stellarnet.train.recorder.train` run (bit for bit
on the 2-core CPU we measured, for ReLU and linear units; tanh and sigmoid may differ in the last bit).

Two formulations, chosen by the architecture:

*wide* (one input, one hidden layer of at most 7 units, one output: the HR net, the galaxy
nets)
    The hidden layer of all members is one ``[n, width * K]`` matrix (column ``j * K + k``
    is unit j of member k), so its forward pass is one fused matmul + bias + activation and
    its gradients are a column sum and one matmul, TensorFlow's fastest kernels. The
    per-member output sum is taken in the order of Keras' matmul (:func:`unit_sums`) and the
    backward pass is written out with the ops TensorFlow's gradients use (the loss gradient
    too, as :mod:`stellarnet.train.backprop`, except for bootstrap weights). A member's output
    gradient is spread over its units' columns by a matmul with one non-zero term per sum
    (exact; :meth:`StackedRecorder.spread`). No ``tf.tile`` and no ``[K, n, width]``
    broadcasting, which cost several times more. The parameters stay in this unit-major
    layout from epoch to epoch (Adam is elementwise), so an epoch starts with one split and
    ends with one concat, and the host puts the recorded rows back in member order: without
    the per-epoch transposes, a 2000-epoch sweep of 8 rates took 0.56-0.63 s instead of
    0.66-0.68 s, 2 rates 0.44-0.46 s instead of 0.48-0.55 s.
*batched* (any other depth)
    ``[K, n, width]`` activations, batched matmuls and ``tf.GradientTape``.

The members are split into ``groups`` of independent sub-graphs, which TensorFlow's executor
runs side by side, one per core: with one thread per op (``TF_NUM_INTRAOP_THREADS=1``, which
the ``stellarnet`` command sets) this is the fastest way to use two cores for these small ops,
even for two members (2000 epochs: 0.35-0.38 s in two groups, 0.38-0.42 s in one; three
members 0.40-0.50 s against 0.47-0.56 s). Groups whose hidden layer outgrows
:data:`GROUP_BYTES` are split further (:func:`default_groups`). Each group also updates its own
parameters (Adam, or SGD, on its slice), so the groups share no op in an epoch and one may run
an epoch or two ahead of another: 8 members took 158-171 us per epoch at steady state instead
of 190-204 us with one update of all parameters, 32 members 443-455 instead of 464-517 us.
"""

from __future__ import annotations

import functools
import math
import os
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from stellarnet.errors import ConfigError
from stellarnet.params import Layers
from stellarnet.results.history import column_name
from stellarnet.train.backprop import ACTIVATIONS, activate, activation_gradient, mse_gradient
from stellarnet.train.optimizers import Optimizer
from stellarnet.train.recorder import DEFAULT_RECORD, history_frame, run_epochs

GROUP_BYTES = 512 * 1024
"""Largest hidden-layer array (``[n, width * k]`` float32) of a group by default, a quarter of
a core's 2 MiB L2 cache: a group's epoch works through about four arrays of that size at once.
For the HR net on the 2242-row catalog that is 9 members. Measured (2000 epochs, end to end,
4 runs each, 2 cores): 32 members in 2 groups 1.19-1.35 s, in 4 groups 1.13-1.30 s, in 8
groups 1.48-1.64 s; 48 members in 4 groups 1.63-1.85 s, in 6 groups 1.48-1.76 s; 64 members
in 6 groups 2.38-2.92 s, in 8 groups 1.86-2.25 s. The bound costs 24 members about 5%: 4
groups of 6 took 1.13-1.31 s, 2 groups of 12 1.08-1.17 s."""


def default_groups(members: int, member_floats: int, cores: int) -> int:
    """The default number of groups of ``members`` members whose widest hidden layer holds
    ``member_floats`` values each: one per core (or per member, if fewer); then, while a
    group's layer exceeds :data:`GROUP_BYTES`, one more per core."""
    count = min(members, cores)
    while count < members and math.ceil(members / count) * member_floats * 4 > GROUP_BYTES:
        count += cores
    return min(count, members)


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
        Record groups, as for :func:`~stellarnet.train.recorder.train`.
    groups : int, optional
        Number of independent sub-graphs the members are split into (contiguous, sizes
        differing by at most one). Default: :func:`default_groups` (for the HR net on 2
        cores: 2 groups up to 18 members, 4 up to 36, 6 up to 54). The numbers do not depend
        on it.
    """

    executor = ""
    """TensorFlow's default executor, which runs the member groups side by side (the single-
    threaded one of :attr:`stellarnet.train.recorder.Recorder.executor` made 8 members 1.6x
    slower)."""

    grappler_iterations = 1
    """Grappler rewrites the stacked graph: on the default executor it pays (unlike a single
    run's, :attr:`stellarnet.train.recorder.Recorder.grappler_iterations`). Without it, measured
    (2000 epochs, 2 x 3 runs): 8 members 0.85-0.90 s instead of 0.80 s, 32 members
    2.17-2.28 s instead of 1.80-1.89 s. One round of its passes does as well as TensorFlow's
    two at steady state and costs less at the first call (4 runs each): 8 members 37-42 ms
    instead of 49-51 ms, 32 members 51-58 ms instead of 67-72 ms."""

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
    ) -> None:
        import tensorflow as tf

        if len(members) != len(learning_rates) or not members:
            raise ConfigError(
                f"{len(members)} member(s) but {len(learning_rates)} learning rate(s)"
            )
        shapes = [[(k.shape, b.shape) for k, b in member] for member in members]
        if any(shape != shapes[0] for shape in shapes):
            raise ConfigError("stacked members must share one architecture")
        if loss not in ("mse", "half_mse"):
            raise ConfigError(f"unsupported loss {loss!r}")
        self.size = len(members)
        self.layer_sizes = [members[0][0][0].shape[0]] + [b.shape[0] for _, b in members[0]]
        # Member k's parameters in one row, in history order (w^1, b^1, w^2, ...).
        by_member = np.stack(
            [np.concatenate([a.ravel() for pair in m for a in pair]) for m in members]
        )
        self.parameter_count = by_member.shape[1]
        self.slices = []  # (start, n_in, n_out) of each layer's kernel; its bias follows
        start = 0
        for n_in, n_out in zip(self.layer_sizes[:-1], self.layer_sizes[1:], strict=True):
            self.slices.append((start, n_in, n_out))
            start += n_in * n_out + n_out
        self.activations = [activation] * (len(members[0]) - 1) + [output_activation]
        unknown = {a for a in self.activations if a not in ACTIVATIONS}
        if unknown:
            raise ConfigError(f"unsupported activation(s) {sorted(unknown)}")
        # Wider layers are summed in other orders by Keras' matmul (unit_sums): batched.
        self.is_wide = (
            len(self.slices) == 2
            and self.layer_sizes[0] == self.layer_sizes[-1] == 1
            and self.layer_sizes[1] < 8
        )
        self.formulation = self.wide if self.is_wide else self.batched
        self.x = tf.constant(x, dtype=tf.float32)
        n = len(y)
        self.ones = tf.ones([n, 1])
        weights = np.ones((self.size, n)) if sample_weight is None else np.asarray(sample_weight)
        if weights.shape != (self.size, n):
            raise ConfigError(
                f"sample_weight must have shape {(self.size, n)}, got {weights.shape}"
            )
        self.uniform = sample_weight is None
        widest = n * max(self.layer_sizes[1:-1], default=1)
        default = default_groups(self.size, widest, os.cpu_count() or 1)
        count = default if groups is None else groups
        if isinstance(count, bool) or not isinstance(count, int) or not 1 <= count <= self.size:
            raise ConfigError(f"groups must be an integer from 1 to {self.size}, got {groups!r}")
        bounds = np.linspace(0, self.size, count + 1).round().astype(int)
        self.groups = list(zip(bounds[:-1].tolist(), bounds[1:].tolist(), strict=True))
        # Each group's share of the flat parameter vector.
        self.group_sizes = [(hi - lo) * self.parameter_count for lo, hi in self.groups]
        # All parameters in one flat vector, in the order the graph reads them (graph_order),
        # so the optimizer and the record are a handful of ops whatever K and the depth.
        self.order = self.graph_order()
        self.theta = tf.Variable(by_member.ravel()[self.order].astype(np.float32))
        # The loss of member k is sum_n w_kn (y_n - yhat_kn)^2 / sum_n w_kn: each group's
        # weights, and the targets once per member (no broadcasting) for each group size, as
        # [k, n] and as [n, k].
        weights = (weights / weights.sum(axis=1, keepdims=True)).astype(np.float32)
        self.group_weights = [tf.constant(weights[lo:hi]) for lo, hi in self.groups]
        targets = np.asarray(y, np.float32)[:, 0]
        tiled = {hi - lo: np.tile(targets, (hi - lo, 1)) for lo, hi in self.groups}
        self.targets = {k: tf.constant(t) for k, t in tiled.items()}
        self.targets_by_row = {k: tf.constant(t.T) for k, t in tiled.items()}
        self.loss_scale = 0.5 if loss == "half_mse" else 1.0
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

    def graph_order(self) -> np.ndarray:
        """Where each entry of the flat parameter vector comes from: its index in the
        ``[K, P]`` array of member rows (flattened).

        The groups follow each other. In the wide formulation a group of k members is
        parameter-major (entry ``p * k + m`` is parameter p of member m), so its w1, b1, w2
        and b2 are four contiguous blocks in the unit-major layout :meth:`wide` computes in,
        one ``tf.split`` away. Otherwise it is member-major, one row per member.
        """
        count = self.parameter_count
        parameters = np.arange(count)
        blocks = []
        for lo, hi in self.groups:
            members = np.arange(lo, hi) * count
            if self.is_wide:
                blocks.append((parameters[:, None] + members[None, :]).ravel())
            else:
                blocks.append((members[:, None] + parameters[None, :]).ravel())
        return np.concatenate(blocks)

    def _layout_rows(self) -> None:
        """Lay out the graph's flat record row: the outputs (K), losses (K), recorded
        parameters (in graph order), their gradients and the hidden-unit means (member by
        member). ``row_index[k, c]`` is where member k's history column c + 1 is."""
        import tensorflow as tf

        size, count = self.size, self.parameter_count
        wanted = np.zeros((size, count), bool)
        wanted[:, self._recorded_indices()] = True
        positions = np.flatnonzero(wanted.ravel()[self.order])  # recorded, in graph order
        self.record_all = len(positions) == size * count  # no gather needed
        self.recorded = tf.constant(positions, tf.int32)
        # Graph position of each member's recorded parameters, in history column order.
        graph_position = np.argsort(self.order).reshape(size, count)[:, self._recorded_indices()]
        columns = np.searchsorted(positions, graph_position)
        members = np.arange(size)[:, None]
        index = [members, size + members, 2 * size + columns]
        if "gradients" in self.record:
            index.append(2 * size + len(positions) + columns)
        if "activations" in self.record:
            units = sum(self.layer_sizes[1:-1])
            start = 2 * size + len(positions) * (1 + ("gradients" in self.record))
            index.append(start + members * units + np.arange(units)[None, :])
        self.row_index = np.concatenate(index, axis=1)
        self.row_length = int(self.row_index.max()) + 1

    def _recorded_indices(self) -> list[int]:
        """Positions in a member's parameter row of the recorded kernels and biases."""
        indices = []
        for start, n_in, n_out in self.slices:
            if "kernels" in self.record:
                indices += range(start, start + n_in * n_out)
            if "biases" in self.record:
                indices += range(start + n_in * n_out, start + n_in * n_out + n_out)
        return indices

    @property
    def columns(self) -> list[str]:
        """History column names (as a single run's), ``epoch`` first."""
        values, grads = [], []
        for layer, (_, n_in, n_out) in enumerate(self.slices, start=1):
            for kind, grad, size, group in (
                ("w", "g", n_in * n_out, "kernels"),
                ("b", "gb", n_out, "biases"),
            ):
                if group in self.record:
                    values += [column_name(kind, layer, i) for i in range(1, size + 1)]
                    grads += [column_name(grad, layer, i) for i in range(1, size + 1)]
        activations = [
            column_name("a", layer, i)
            for layer, (_, _, n_out) in enumerate(self.slices[:-1], start=1)
            for i in range(1, n_out + 1)
        ]
        return [
            "epoch",
            "output",
            "loss",
            *values,
            *(grads if "gradients" in self.record else []),
            *(activations if "activations" in self.record else []),
        ]

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
                for s, n_in, n_out in self.slices
            ]
            for row in flat.reshape(self.size, -1)
        ]

    def losses(self, yhat: Any, weights: Any) -> Any:
        """Loss ``[k]`` of each of k members from its outputs ``[k, n]`` and its samples'
        weights ``[k, n]`` (used unless :attr:`uniform`)."""
        import tensorflow as tf

        squared = tf.square(self.targets[yhat.shape[0]] - yhat)
        if self.uniform:
            losses = tf.reduce_mean(squared, axis=1)
        else:
            losses = tf.reduce_sum(weights * squared, axis=1)
        return losses if self.loss_scale == 1.0 else self.loss_scale * losses

    def wide(self, theta: Any, weights: Any, gradients: bool) -> tuple[Any, Any, Any, Any]:
        """A 1-input net with one hidden layer and one output: the output means, losses,
        gradient (graph order, or None) and hidden-unit means ``[k, width]`` (or None) of
        a group of k members, from their parameters ``theta`` (graph order) and sample
        ``weights`` ``[k, n]``."""
        import tensorflow as tf

        members, width = weights.shape[0], self.layer_sizes[1]
        hidden_activation, output_activation = self.activations
        # Unit-major (graph_order): entry j * k + m of w1, b1 and w2 is unit j of member m.
        w1, b1, w2, b2 = tf.split(theta, [width * members] * 3 + [members])
        # MatMul + BiasAdd + activation: grappler fuses them into one kernel, as for Keras' Dense.
        hidden = activate(hidden_activation, tf.nn.bias_add(tf.matmul(self.x, w1[None]), b1))
        z = tf.nn.bias_add(unit_sums(hidden * w2, width, members), b2)
        output = activate(output_activation, z)  # [n, k]
        yhat = tf.transpose(output)  # [k, n]: a member's sums run along a row, as alone
        with tf.GradientTape() as tape:  # differentiates weighted (bootstrap) losses only
            tape.watch(yhat)
            losses = self.losses(yhat, weights)
        outputs = tf.reduce_mean(yhat, axis=1)
        unit_means = None
        if "activations" in self.record:  # member-major, so the mean sums in a single run's order
            per_member = tf.transpose(tf.reshape(hidden, [-1, width, members]), [2, 0, 1])
            unit_means = tf.reduce_mean(per_member, axis=1)
        if not gradients:
            return outputs, losses, None, unit_means
        # Backpropagation with the ops TensorFlow's gradients of Keras' Dense layers use.
        if self.uniform:  # d loss/d yhat as the tape computes it, in [n, k] layout
            weight = np.float32(self.loss_scale) / np.float32(self.x.shape[0])
            dz = mse_gradient(self.targets_by_row[members] - output, weight)
        else:
            dz = tf.transpose(tape.gradient(tf.reduce_sum(losses), yhat))
        dz = activation_gradient(output_activation, dz, output)
        db2 = tf.reduce_sum(tf.transpose(dz), axis=1)  # along rows: in a single run's order
        # Finite losses imply a finite dz and w2 (a non-finite one makes the outputs so).
        finite = tf.reduce_all(tf.math.is_finite(losses))
        spread, spread_w2 = self.spread(dz, w2, width, finite)  # dz, dz * w2 over unit columns
        dw2 = tf.matmul(self.ones, hidden * spread, transpose_a=True)[0]
        dz = activation_gradient(hidden_activation, spread_w2, hidden)
        db1 = tf.raw_ops.BiasAddGrad(out_backprop=dz)
        dw1 = tf.matmul(self.x, dz, transpose_a=True)[0]
        return outputs, losses, tf.concat([dw1, db1, dw2, db2], axis=0), unit_means

    @staticmethod
    def spread(dz: Any, w2: Any, width: int, finite: Any) -> tuple[Any, Any]:
        """Each member's ``dz`` ``[n, k]`` spread over its units' columns, ``[n, width * k]``
        (column ``j * k + m``: ``dz[:, m]``), and the same times ``w2``.

        A matmul with a 0/1 block matrix, one non-zero term per sum (exact), is several times
        cheaper than ``tf.tile`` and broadcasting, but 0 * NaN = NaN would leak a diverging
        member's values into the others: unless ``finite`` (every value of ``dz`` and ``w2``
        is), the tile is used.
        """
        import tensorflow as tf

        members = dz.shape[1]
        blocks = tf.constant(np.tile(np.eye(members, dtype=np.float32), (width, 1)))

        def by_matmul() -> tuple[Any, Any]:
            return (
                tf.matmul(dz, blocks, transpose_b=True),
                tf.matmul(dz, w2[:, None] * blocks, transpose_b=True),
            )

        def by_tile() -> tuple[Any, Any]:
            tiled = tf.tile(dz, [1, width])
            return tiled, tiled * w2

        return tf.cond(finite, by_matmul, by_tile)

    def batched(self, theta: Any, weights: Any, gradients: bool) -> tuple[Any, Any, Any, Any]:
        """Any depth, ``[k, n, width]`` activations and a tape; returns as :meth:`wide`."""
        import tensorflow as tf

        theta = tf.reshape(theta, [weights.shape[0], self.parameter_count])  # member-major
        with tf.GradientTape() as tape:
            tape.watch(theta)
            values, hidden = self.x[None], []
            for (start, n_in, n_out), name in zip(self.slices, self.activations, strict=True):
                kernel = tf.reshape(theta[:, start : start + n_in * n_out], [-1, n_in, n_out])
                bias = theta[:, None, start + n_in * n_out : start + n_in * n_out + n_out]
                # A batched matmul, even for one input: it sums in the order Keras' Dense does.
                values = activate(name, tf.matmul(values, kernel) + bias)
                hidden.append(values)
            yhat = tf.reshape(values, [theta.shape[0], -1])
            losses = self.losses(yhat, weights)
            total = tf.reduce_sum(losses)  # members are independent: d total/d theta_k = dL_k
        grad = tf.reshape(tape.gradient(total, theta), [-1]) if gradients else None
        unit_means = [tf.reduce_mean(a, axis=1) for a in hidden[:-1]]
        unit_means = tf.concat(unit_means, axis=1) if unit_means else None
        return tf.reduce_mean(yhat, axis=1), losses, grad, unit_means

    def evaluate(self, thetas: Sequence[Any], gradients: bool) -> tuple[list[Any], ...]:
        """Per group: the output means, losses, gradients (graph order; None without
        ``gradients``) and hidden-unit means (None unless recorded) with the groups'
        parameters ``thetas`` (graph order)."""
        results = [
            self.formulation(theta, weights, gradients)
            for theta, weights in zip(thetas, self.group_weights, strict=True)
        ]
        return tuple(list(column) for column in zip(*results, strict=True))

    @functools.cached_property
    def traced_step(self) -> Any:
        """:meth:`group_epoch` as a ``tf.function``, which a traced epoch calls once per
        group: groups of one size share one trace, which TensorFlow inlines into the epoch's
        graph. (4 groups: tracing 0.05 s instead of 0.10 s.)"""
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

    def state(self) -> tuple[Any, ...]:
        """The optimizer's state (see :class:`~stellarnet.train.optimizers.Optimizer`) with the
        parameters and moments split by group: ``(iterations, thetas, *moments)``, tuples of
        one tensor per group. Each group then updates its own parameters, and a group can run
        ahead of the others in the traced loop instead of waiting for them every epoch."""
        import tensorflow as tf

        iterations, *vectors = self.optimizer.state()
        return (iterations, *(tuple(tf.split(vector, self.group_sizes)) for vector in vectors))

    def store(self, state: tuple[Any, ...]) -> None:
        """Write ``state`` to the variables (:meth:`final_layers` reads them)."""
        iterations, *by_group = state
        self.optimizer.store((iterations, *(self.joined(parts) for parts in by_group)))

    def initial(self, state: tuple[Any, ...], data: tuple = ()) -> Any:
        """The rows of ``state`` (row 0: the initial one), no gradients (NaN)."""
        thetas = state[1]
        outputs, losses, grads, unit_means = self.evaluate(thetas, gradients=False)
        return self.row(outputs, losses, grads, unit_means, thetas)

    def advance(self, state: tuple[Any, ...], data: tuple = ()) -> tuple[tuple[Any, ...], Any]:
        """One full-batch epoch of every member from ``state``: forward, loss, gradient,
        update, record. Returns the new state and the rows. (The data are constants of the
        recorder: ``data`` is empty.)"""
        import tensorflow as tf

        traced = not tf.executing_eagerly()  # in a traced epoch, not the eager engine
        step = self.traced_step if traced else self.group_epoch
        iterations, *by_group = state
        results = [
            step(iterations, weights, rates, *parts)
            for weights, rates, *parts in zip(
                self.group_weights, self.group_rates, *by_group, strict=True
            )
        ]
        outputs, losses, grads, unit_means, *new = zip(*results, strict=True)
        return (iterations + 1, *new), self.row(outputs, losses, grads, unit_means, new[0])

    def group_epoch(self, iterations: Any, weights: Any, rates: Any, *state: Any) -> tuple:
        """One epoch of one group from its ``state`` (parameters and moments, graph order):
        output means, losses, gradient, hidden-unit means, new parameters and moments."""
        outputs, losses, grad, unit_means = self.formulation(state[0], weights, gradients=True)
        _, (_, *new) = self.optimizer.update((iterations, *state), [grad], rates)
        return outputs, losses, grad, unit_means, *new

    @property
    def row_shape(self) -> list[int]:
        """Shape of one record row (graph layout, see :meth:`host_rows`)."""
        return [self.row_length]


def unit_sums(products: Any, width: int, members: int) -> Any:
    """``[n, members]`` sums over the hidden units of ``products`` ``[n, width * members]``
    (column ``j * members + k``: unit j of member k), in the order Keras' ``Dense(1)`` sums
    fewer than 8 units: one after the other. A sum over a middle axis runs in that order (a
    chain of adds would not: grappler rewrites it into one AddN).
    """
    import tensorflow as tf

    return tf.reduce_sum(tf.reshape(products, [-1, width, members]), axis=1)


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
) -> tuple[StackedRecorder, pd.DataFrame]:
    """Train ``members`` (initial layers of one architecture) together in one compiled graph,
    member k at ``learning_rates[k]``, for ``epochs`` full-batch epochs.

    Returns the :class:`StackedRecorder` (for the trained layers, :meth:`final_layers`) and
    the long history with a ``member`` column. ``sample_weight`` ``[K, n]``: e.g. bootstrap
    counts. The other arguments are those of :class:`StackedRecorder` and
    :func:`~stellarnet.train.engine.run_epochs`.
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
    )
    rows, epoch_numbers = run_epochs(
        recorder,
        epochs,
        engine="graph",
        record_every=record_every,
        jit_compile=jit_compile,
        progress=progress,
        context=context,
    )
    return recorder, recorder.frame(rows, epoch_numbers)

"""The maths of K stacked members' full-batch epoch: outputs, losses, gradients and hidden-unit
means of a group of members from their parameters, in one of two formulations.

*wide* (one input, one hidden layer of at most 7 units, one output: the HR net, the galaxy
nets)
    The hidden layer of all members is one ``[n, width * K]`` matrix (column ``j * K + k``
    is unit j of member k), so its forward pass is one fused matmul + bias + activation and
    its gradients are a column sum and one matmul, TensorFlow's fastest kernels. Sums run in
    the order of Keras' matmul and the backward pass is written out with the ops
    TensorFlow's gradients use (:mod:`stellarnet.train.backprop`: ``unit_sums``, ``spread``),
    so each member's numbers are those of a run alone.
*batched* (any other depth)
    ``[K, n, width]`` activations, batched matmuls and ``tf.GradientTape``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, NamedTuple

import numpy as np

from stellarnet.schema import HistorySchema
from stellarnet.train.backprop import (
    activate,
    activation_gradient,
    mse_gradient,
    spread,
    unit_sums,
)
from stellarnet.train.grouping import is_wide


class GroupData(NamedTuple):
    """What a group's epoch reads besides its parameters (an argument of its traced step,
    so that groups of one size share one trace)."""

    weights: Any
    """``[k, n]`` sample weights of the group's k members."""
    x: Any = None
    """The members' own inputs (with ``row_orders``): ``[n, width * k]`` (wide, column
    ``j * k + m`` is member m's) or ``[k, n, inputs]`` (batched); None: the shared ``x``."""
    targets: Any = None
    """The members' own targets ``[k, n]`` (with ``row_orders``); None: the shared ones."""
    targets_by_row: Any = None
    """The same as ``[n, k]``."""


class StackedNets:
    """Members of one architecture on one full batch ``(x, y)``.

    Parameters
    ----------
    x, y : ndarray
        The full batch, shared by all members.
    schema : HistorySchema
        The members' layer sizes and what is recorded.
    activations : (str, str)
        Hidden and output activations.
    loss : {"mse", "half_mse"}
    groups : sequence of (int, int)
        The groups' member ranges: the targets are tiled once per group size.
    uniform : bool
        Every sample weighs the same (no bootstrap weights): the loss gradient is written
        out; otherwise the tape differentiates the weighted loss.
    row_orders : ndarray, shape (K, n), optional
        Member k trains on the rows ``x[row_orders[k]]``, ``y[row_orders[k]]``: the same
        rows in its own order (e.g. each seed's shuffle of a study), so that its sums run in
        the order of a run alone on that order. None: every member on ``(x, y)`` as given.
    """

    def __init__(
        self,
        x: np.ndarray,
        y: np.ndarray,
        schema: HistorySchema,
        activations: tuple[str, str],
        loss: str,
        groups: Sequence[tuple[int, int]],
        uniform: bool,
        row_orders: np.ndarray | None = None,
    ) -> None:
        import tensorflow as tf

        self.layer_sizes = schema.layer_sizes
        self.parameter_count = schema.parameter_count
        # (start, n_in, n_out) of each layer's kernel; its bias follows.
        self.slices = [
            (block.start, n_in, n_out)
            for block, n_in, n_out in zip(
                schema.blocks[::2], self.layer_sizes[:-1], self.layer_sizes[1:], strict=True
            )
        ]
        hidden, output = activations
        self.activations = [hidden] * (len(self.slices) - 1) + [output]
        self.record_activations = "activations" in schema.record
        self.is_wide = is_wide(self.layer_sizes)
        self.x = tf.constant(x, dtype=tf.float32)
        self.ones = tf.ones([len(y), 1])
        self.uniform = uniform
        self.loss_scale = 0.5 if loss == "half_mse" else 1.0
        # The targets once per member (no broadcasting) for each group size, as [k, n] and as
        # [n, k].
        targets = np.asarray(y, np.float32)[:, 0]
        tiled = {hi - lo: np.tile(targets, (hi - lo, 1)) for lo, hi in groups}
        self.targets = {k: tf.constant(t) for k, t in tiled.items()}
        self.targets_by_row = {k: tf.constant(t.T) for k, t in tiled.items()}
        self.row_orders = None if row_orders is None else np.asarray(row_orders)
        self._x, self._y = np.asarray(x, np.float32), targets

    def group_data(self, lo: int, hi: int, weights: Any) -> GroupData:
        """The :class:`GroupData` of members ``lo..hi-1`` with sample ``weights`` ``[k, n]``."""
        import tensorflow as tf

        if self.row_orders is None:
            return GroupData(weights)
        orders = self.row_orders[lo:hi]
        targets = self._y[orders]  # [k, n]
        if self.is_wide:  # each member's input once per hidden unit, unit-major
            x = np.tile(self._x[orders, 0].T, (1, self.layer_sizes[1]))
        else:
            x = self._x[orders]
        return GroupData(
            weights,
            tf.constant(x),
            tf.constant(targets),
            tf.constant(np.ascontiguousarray(targets.T)),
        )

    def __call__(self, theta: Any, data: GroupData, gradients: bool) -> tuple[Any, Any, Any, Any]:
        """:meth:`wide` or :meth:`batched`, whichever computes these members."""
        if self.is_wide:
            return self.wide(theta, data, gradients)
        return self.batched(theta, data, gradients)

    def losses(self, yhat: Any, data: GroupData) -> Any:
        """Loss ``[k]`` of each of k members from its outputs ``[k, n]`` and its samples'
        weights ``[k, n]`` (used unless :attr:`uniform`)."""
        import tensorflow as tf

        targets = self.targets[yhat.shape[0]] if data.targets is None else data.targets
        weights = data.weights
        squared = tf.square(targets - yhat)
        if self.uniform:
            losses = tf.reduce_mean(squared, axis=1)
        else:
            losses = tf.reduce_sum(weights * squared, axis=1)
        return losses if self.loss_scale == 1.0 else self.loss_scale * losses

    def wide(self, theta: Any, data: GroupData, gradients: bool) -> tuple[Any, Any, Any, Any]:
        """A 1-input net with one hidden layer and one output: the output means, losses,
        gradient (graph order, or None) and hidden-unit means ``[k, width]`` (or None) of
        a group of k members, from their parameters ``theta`` (graph order) and sample
        ``weights`` ``[k, n]``."""
        import tensorflow as tf

        weights = data.weights
        members, width = weights.shape[0], self.layer_sizes[1]
        hidden_activation, output_activation = self.activations
        # Unit-major (graph_order): entry j * k + m of w1, b1 and w2 is unit j of member m.
        w1, b1, w2, b2 = tf.split(theta, [width * members] * 3 + [members])
        # MatMul + BiasAdd + activation: grappler fuses them into one kernel, as for Keras' Dense.
        # Members' own inputs: a 1-term matmul is one product, as this elementwise one.
        z1 = tf.matmul(self.x, w1[None]) if data.x is None else data.x * w1
        hidden = activate(hidden_activation, tf.nn.bias_add(z1, b1))
        z = tf.nn.bias_add(unit_sums(hidden * w2, width, members), b2)
        output = activate(output_activation, z)  # [n, k]
        yhat = tf.transpose(output)  # [k, n]: a member's sums run along a row, as alone
        with tf.GradientTape() as tape:  # differentiates weighted (bootstrap) losses only
            tape.watch(yhat)
            losses = self.losses(yhat, data)
        outputs = tf.reduce_mean(yhat, axis=1)
        unit_means = None
        if self.record_activations:  # member-major: the mean sums in a single run's order
            per_member = tf.transpose(tf.reshape(hidden, [-1, width, members]), [2, 0, 1])
            unit_means = tf.reduce_mean(per_member, axis=1)
        if not gradients:
            return outputs, losses, None, unit_means
        # Backpropagation with the ops TensorFlow's gradients of Keras' Dense layers use.
        if self.uniform:  # d loss/d yhat as the tape computes it, in [n, k] layout
            weight = np.float32(self.loss_scale) / np.float32(self.x.shape[0])
            targets = self.targets_by_row[members] if data.x is None else data.targets_by_row
            dz = mse_gradient(targets - output, weight)
        else:
            dz = tf.transpose(tape.gradient(tf.reduce_sum(losses), yhat))
        dz = activation_gradient(output_activation, dz, output)
        db2 = tf.reduce_sum(tf.transpose(dz), axis=1)  # along rows: in a single run's order
        # Finite losses imply a finite dz and w2 (a non-finite one makes the outputs so).
        finite = tf.reduce_all(tf.math.is_finite(losses))
        dz_units, dz_w2 = spread(dz, w2, width, finite)  # dz, dz * w2 over unit columns
        dw2 = tf.matmul(self.ones, hidden * dz_units, transpose_a=True)[0]
        dz = activation_gradient(hidden_activation, dz_w2, hidden)
        db1 = tf.raw_ops.BiasAddGrad(out_backprop=dz)
        if data.x is None:
            dw1 = tf.matmul(self.x, dz, transpose_a=True)[0]
        else:  # sums of the products x * dz down the rows, as the matmul takes them
            dw1 = tf.matmul(self.ones, data.x * dz, transpose_a=True)[0]
        return outputs, losses, tf.concat([dw1, db1, dw2, db2], axis=0), unit_means

    def batched(self, theta: Any, data: GroupData, gradients: bool) -> tuple[Any, Any, Any, Any]:
        """Any depth, ``[k, n, width]`` activations and a tape; returns as :meth:`wide`."""
        import tensorflow as tf

        weights = data.weights
        theta = tf.reshape(theta, [weights.shape[0], self.parameter_count])  # member-major
        with tf.GradientTape() as tape:
            tape.watch(theta)
            values, hidden = (self.x[None] if data.x is None else data.x), []
            for (start, n_in, n_out), name in zip(self.slices, self.activations, strict=True):
                kernel = tf.reshape(theta[:, start : start + n_in * n_out], [-1, n_in, n_out])
                bias = theta[:, None, start + n_in * n_out : start + n_in * n_out + n_out]
                # A batched matmul, even for one input: it sums in the order Keras' Dense does.
                values = activate(name, tf.matmul(values, kernel) + bias)
                hidden.append(values)
            yhat = tf.reshape(values, [theta.shape[0], -1])
            losses = self.losses(yhat, data)
            total = tf.reduce_sum(losses)  # members are independent: d total/d theta_k = dL_k
        grad = tf.reshape(tape.gradient(total, theta), [-1]) if gradients else None
        unit_means = [tf.reduce_mean(a, axis=1) for a in hidden[:-1]]
        unit_means = tf.concat(unit_means, axis=1) if unit_means else None
        return tf.reduce_mean(yhat, axis=1), losses, grad, unit_means

"""Backpropagation written out with the ops ``tf.GradientTape`` records, for plain Dense nets.

For a net of Dense layers with ReLU, tanh, sigmoid or linear units and the Keras MSE loss,
the gradients ``tf.GradientTape`` computes are a short, fixed chain of TensorFlow ops: per
layer a ``ReluGrad`` (or ``TanhGrad``, ``SigmoidGrad``), a column ``Sum`` for the bias and two
``MatMul`` for the kernel and the layer below. Calling those ops directly gives the tape's
numbers bit for bit (the tests hold them to it) with a fifth fewer ops in a traced epoch and
none of the tape's bookkeeping.

Anything else (dropout, regularisation penalties, other activations) keeps the tape. The
stacked nets' wide formulation (:mod:`stellarnet.train.stacked`) adds two ops of its own:
:func:`unit_sums` and :func:`spread`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from stellarnet.checks import check_choice
from stellarnet.vocabulary import ACTIVATIONS, LOSSES


def activation_name(function: Any) -> str | None:
    """The name in :data:`ACTIVATIONS` of a Keras activation function, or None."""
    import keras

    for name in ACTIVATIONS:
        if function is keras.activations.get(name):
            return name
    return None


def activate(name: str, z: Any) -> Any:
    """The activation ``name`` applied to ``z`` (the TensorFlow ops Keras' activations call)."""
    import tensorflow as tf

    if name == "linear":
        return z
    return {"relu": tf.nn.relu, "tanh": tf.nn.tanh, "sigmoid": tf.nn.sigmoid}[name](z)


def activation_gradient(name: str, grad: Any, output: Any) -> Any:
    """d loss/d z from d loss/d a, a = activation(z), with the op TensorFlow's gradient uses."""
    import tensorflow as tf

    if name == "relu":
        return tf.raw_ops.ReluGrad(gradients=grad, features=output)
    if name == "tanh":
        return tf.raw_ops.TanhGrad(y=output, dy=grad)
    if name == "sigmoid":
        return tf.raw_ops.SigmoidGrad(y=output, dy=grad)
    return grad


def mse_and_gradient(y: Any, yhat: Any, scale: float = 1.0) -> tuple[Any, Any]:
    """``scale`` times Keras' MeanSquaredError of ``yhat`` ``[n, m]``, and its gradient
    d loss/d yhat in the tape's ops and order.

    The loss is ``divide_no_nan(sum(mean((y - yhat)^2, axis=-1)), n)`` (as
    :func:`make_loss`); the tape differentiates it as
    ``-((divide_no_nan(scale, n) / m) * ((y - yhat) * 2))``.
    """
    import tensorflow as tf

    error = y - yhat
    loss, count = keras_mse(error)
    per_row = tf.math.divide_no_nan(tf.constant(scale, tf.float32), count)
    grad = mse_gradient(error, per_row / float(yhat.shape[-1]))
    return (loss if scale == 1.0 else scale * loss), grad


def keras_mse(error: Any) -> tuple[Any, Any]:
    """``keras.losses.MeanSquaredError`` of ``error = y - yhat``, operation for operation (the
    mean over the last axis, the sum, ``divide_no_nan`` by the count), and the count."""
    import tensorflow as tf

    values = tf.reduce_mean(tf.square(error), axis=-1)
    count = tf.cast(tf.size(values), tf.float32)
    return tf.math.divide_no_nan(tf.reduce_sum(values), count), count


def mse_gradient(error: Any, weight: Any) -> Any:
    """d loss/d yhat of ``loss = sum(weight * error^2)``, ``error = y - yhat``, with a scalar
    ``weight`` (float32), in the tape's order: ``-(weight * (error * 2))``."""
    return -(weight * (error * 2.0))


def dense_gradients(
    layers: Sequence[tuple[Any, Any]],
    activations: Sequence[str],
    inputs: Sequence[Any],
    outputs: Sequence[Any],
    grad: Any,
) -> list[Any]:
    """Gradients of every kernel and bias of a net of Dense layers (first layer first, kernel
    before bias), given each layer's ``(kernel, bias)`` (bias None: none), its activation's
    name, its input and output, and d loss/d (last output).

    Each layer computes ``a = activation(z)``, ``z = matmul(x, kernel) + bias``; from
    ``da = d loss/d a`` the gradients are ``dz = activation'(z) * da``, ``dkernel = x^T dz``,
    ``dbias = sum over rows of dz`` and ``dx = dz kernel^T``, with the ops (and operand
    orders) of TensorFlow's own gradients.
    """
    import tensorflow as tf

    grads: list[Any] = []
    for index in range(len(layers) - 1, -1, -1):
        kernel, bias = layers[index]
        dz = activation_gradient(activations[index], grad, outputs[index])
        layer_grads = [tf.matmul(inputs[index], dz, transpose_a=True)]
        if bias is not None:
            layer_grads.append(tf.reduce_sum(dz, axis=0))
        grads = layer_grads + grads
        if index:
            grad = tf.matmul(dz, kernel, transpose_b=True)
    return grads


def make_loss(name: str) -> Callable[[Any, Any], Any]:
    """``"mse"``: mean((y - yhat)^2); ``"half_mse"``: 0.5 * mean((y - yhat)^2).

    ``"mse"`` is ``keras.losses.MeanSquaredError`` operation for operation (the mean over the
    last axis, the sum, ``divide_no_nan`` by the count), without Keras' loss machinery (about
    twice the ops in a traced epoch); the tests hold it to Keras' numbers bit for bit.
    """
    check_choice(name, "loss", LOSSES)

    def mse(y: Any, yhat: Any) -> Any:
        return keras_mse(y - yhat)[0]

    if name == "half_mse":
        return lambda y, yhat: 0.5 * mse(y, yhat)
    return mse


def unit_sums(products: Any, width: int, members: int) -> Any:
    """``[n, members]`` sums over the hidden units of ``products`` ``[n, width * members]``
    (column ``j * members + k``: unit j of member k), in the order Keras' ``Dense(1)`` sums
    fewer than 8 units (Eigen's row-major matrix-vector product): one after the other, except
    the last of an odd number of rows (:func:`last_row_by_half_packet`). A sum over a middle
    axis runs in that order (a chain of adds would not: grappler rewrites it into one AddN).
    """
    import tensorflow as tf

    sums = tf.reduce_sum(tf.reshape(products, [-1, width, members]), axis=1)
    if products.shape[0] is None:  # the order of the last row depends on the row count
        raise ValueError("unit_sums needs the number of rows when the graph is traced")
    if not last_row_by_half_packet(products.shape[0], width):
        return sums
    # (t0 + t2) + (t1 + t3), then t4, t5, ... in turn: sums over axes of 2 and of the rest
    last = tf.reshape(products[-1], [width, members])
    pairs = tf.reduce_sum(tf.reshape(tf.gather(last, [0, 2, 1, 3]), [2, 2, members]), axis=1)
    halves = tf.reduce_sum(pairs, axis=0, keepdims=True)
    row = tf.reduce_sum(tf.concat([halves, last[4:]], axis=0), axis=0)
    return tf.concat([sums[:-1], row[None]], axis=0)


def last_row_by_half_packet(rows: int, width: int) -> bool:
    """Whether Eigen's row-major matrix-vector product (Keras' ``Dense(1)`` on ``rows`` rows
    of ``width`` < 8 units) sums the last row's first four products as a half packet,
    ``(t0 + t2) + (t1 + t3)``: for an odd number of rows, at least 4 units, and
    ``rows + width + 1 >= 20`` (below that Eigen multiplies coefficient by coefficient)."""
    return rows % 2 == 1 and width >= 4 and rows + width + 1 >= 20


SPREAD_BY_MATMUL = 8
"""Groups of up to this many members spread ``dz`` by a block matmul (:func:`spread`); larger
ones by concatenation, as the matmul's cost grows with the square of the group."""


def spread(dz: Any, w2: Any, width: int, finite: Any) -> tuple[Any, Any]:
    """Each member's ``dz`` ``[n, k]`` spread over its units' columns, ``[n, width * k]``
    (column ``j * k + m``: ``dz[:, m]``), and the same times ``w2``.

    Up to :data:`SPREAD_BY_MATMUL` members, a matmul with a 0/1 block matrix, one non-zero
    term per sum (exact), is several times cheaper than ``tf.tile`` and broadcasting, but
    0 * NaN = NaN would leak a diverging member's values into the others: unless ``finite``
    (every value of ``dz`` and ``w2`` is), the tile is used. Larger groups: ``width`` copies
    of ``dz`` side by side (one concat): as fast at 9 members, faster beyond (measured on the
    HR net).
    """
    import tensorflow as tf

    members = dz.shape[1]
    if members > SPREAD_BY_MATMUL:
        spread_dz = tf.concat([dz] * width, axis=1)
        return spread_dz, spread_dz * w2
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

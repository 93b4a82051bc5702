"""The compiled loop of :mod:`stellarnet.train.fused`: every epoch of a slice of 1-W-1 ReLU
members in one pass over the rows per epoch (numba), with TensorFlow's float32 operations in
TensorFlow's order.

A member is a lane: arrays are ``[rows, members]`` or ``[parameters, members]``, and every
loop over the members is a SIMD loop. A member's sums over the rows are taken in the order
the single run's TensorFlow kernels take them (on this machine's TensorFlow, with one
thread per op), which is what makes its numbers equal a run alone bit for bit:

``inner`` (``tf.reduce_sum`` of a vector: the loss, the mean output, ``d loss/d b2``)
    Eigen's ``InnerMostDimReducer``: leaves of up to 8192 values, split in halves on packet
    boundaries (:func:`reduction_tree`); in a leaf, four 8-lane packets take rows 32 at a
    time, then fold into the first (p0 += p1, += p2, += p3), which takes the remaining whole
    packets; the last rows are summed one by one from zero, and the lanes are folded in
    pairs (lane i + lane i+4, then 0+2 and 1+3, then those two) and added to that sum.
``blocks`` (``x^T dz``, ``h^T dz``: Eigen's matrix-vector product)
    Sums of 16 rows at a time from zero, added in turn to a total from zero (one block for
    fewer than 128 rows).
``rows`` (``BiasAddGrad``, the hidden units' means)
    One row after the other from zero.
``units`` (the output ``h w2``: Eigen's row-major matrix-vector product)
    The units one after the other from zero; but the last of an odd number of rows (with 4
    units or more: :func:`stellarnet.train.backprop.last_row_by_half_packet`) takes units 0-3
    as a half packet, ``(t0 + t2) + (t1 + t3)``, then the others in turn.

TensorFlow flushes denormal numbers to zero (FTZ and DAZ) in its kernels; :func:`train_lanes`
sets the same modes for the loop and restores the caller's afterwards, even on an error.
``tests/test_fused.py`` holds all of it to TensorFlow.
"""

from __future__ import annotations

import numpy as np
from llvmlite import ir
from numba import njit, types
from numba.core import cgutils
from numba.extending import intrinsic

from stellarnet.train.backprop import last_row_by_half_packet
from stellarnet.train.optimizers import ADAM_BETA_1, ADAM_BETA_2, ADAM_EPSILON

LEAF_VALUES = 8 * 1024
"""Values in a leaf of Eigen's tree reduction (its ``LeafSize`` of 1024 packets of 8 floats)."""
PACKET = 8
GEMV_BLOCK = 16
"""Rows per partial sum of Eigen's column-major matrix-vector product (128 rows or more)."""
FLUSH_DENORMALS = 0x8040
"""MXCSR's flush-to-zero (bit 15) and denormals-are-zero (bit 6) flags."""

_F32 = np.float32
_ZERO, _ONE, _TWO = _F32(0.0), _F32(1.0), _F32(2.0)


def _compiled(function):  # noqa: ANN001, ANN202
    """``function`` compiled without the GIL, its machine code cached on disk where numba finds
    a place to write (beside this module, or its user cache folder); else compiled anew in each
    process (about 5 s) rather than not at all."""
    try:
        return njit(nogil=True, cache=True)(function)
    except RuntimeError:  # "cannot cache function ...: no locator available"
        return njit(nogil=True)(function)


def _mxcsr_call(builder, name, slot):
    """Call LLVM's ``llvm.x86.sse.<name>`` (``stmxcsr``, ``ldmxcsr``) on the i32 ``slot``."""
    byte_pointer = ir.IntType(8).as_pointer()
    function = ir.FunctionType(ir.VoidType(), [byte_pointer])
    callee = cgutils.get_or_insert_function(builder.module, function, f"llvm.x86.sse.{name}")
    builder.call(callee, [builder.bitcast(slot, byte_pointer)])


@intrinsic
def _get_mxcsr(typingctx):  # noqa: ARG001
    """The SSE control and status register."""

    def codegen(context, builder, signature, args):  # noqa: ARG001
        slot = cgutils.alloca_once(builder, ir.IntType(32))
        _mxcsr_call(builder, "stmxcsr", slot)
        return builder.load(slot)

    return types.uint32(), codegen


@intrinsic
def _set_mxcsr(typingctx, value):  # noqa: ARG001
    """Set the SSE control and status register to ``value``."""

    def codegen(context, builder, signature, args):  # noqa: ARG001
        _mxcsr_call(builder, "ldmxcsr", cgutils.alloca_once_value(builder, args[0]))
        return context.get_dummy_value()

    return types.void(types.uint32), codegen


@_compiled
def _flush_denormals():  # pragma: no cover - compiled
    """Turn on FTZ and DAZ in this thread; return the register's previous value."""
    previous = _get_mxcsr()
    _set_mxcsr(previous | np.uint32(FLUSH_DENORMALS))
    return previous


@_compiled
def _restore(previous):  # pragma: no cover - compiled
    """Put the register back as :func:`_flush_denormals` found it."""
    _set_mxcsr(previous)


def reduction_tree(rows: int) -> tuple[np.ndarray, np.ndarray]:
    """Eigen's tree of a sum of ``rows`` values from index 0: the leaves ``[L, 2]`` (first
    row, count) in row order, and the nodes ``[N, 3]`` in post-order (leaf number or -1,
    left node, right node or -1); the last node is the root."""
    leaves: list[tuple[int, int]] = []
    nodes: list[tuple[int, int, int]] = []

    def build(first: int, count: int) -> int:
        if count > LEAF_VALUES:
            split = PACKET * -(-(first + -(-count // 2)) // PACKET)
            left_count = min(split - first, count)
            left = build(first, left_count)
            right = build(split, count - left_count) if left_count < count else -1
            nodes.append((-1, left, right))
        else:
            leaves.append((first, count))
            nodes.append((len(leaves) - 1, -1, -1))
        return len(nodes) - 1

    build(0, rows)
    return np.array(leaves, np.int64), np.array(nodes, np.int64)


@_compiled
def _pass(x, y, theta, weight, half_last, leaves, nodes, sums, grad):  # pragma: no cover
    """One forward and backward pass at ``theta``: ``sums`` ``[3 + W, members]`` gets the
    sums of the squared errors, the outputs and d loss/d output (``inner``) and of the
    hidden units (``rows``); ``grad`` ``[P, members]`` the gradient. ``half_last``: the last
    row's output sums its first 4 units as a half packet (``units``)."""
    n, members = x.shape
    width = (theta.shape[0] - 1) // 3
    w1, b1, w2, b2 = 0, width, 2 * width, 3 * width
    hidden = np.empty((width, members), _F32)
    total = np.empty(members, _F32)  # a row's output before the bias
    dz = np.empty(members, _F32)  # a row's d loss/d output
    packets = np.empty((3, 4 * PACKET, members), _F32)
    results = np.empty((leaves.shape[0], 3, members), _F32)
    block = np.zeros((2, width, members), _F32)
    column_sums = np.zeros((2, width, members), _F32)
    block_rows = n if n < 128 else GEMV_BLOCK
    in_block = 0  # rows in the current block (blocks run on across the leaves)
    grad[:] = _ZERO
    sums[:] = _ZERO
    for leaf in range(leaves.shape[0]):
        first, count = leaves[leaf, 0], leaves[leaf, 1]
        by_four = (count // (4 * PACKET)) * (4 * PACKET)
        by_one = (count // PACKET) * PACKET
        packets[:] = _ZERO
        tail = results[leaf]
        tail[:] = _ZERO
        for r in range(count):
            i = first + r
            # forward: z = x w1 + b1, h = relu(z), out = sum_j h_j w2_j (in unit order) + b2
            total[:] = _ZERO
            for j in range(width):
                for m in range(members):
                    z = x[i, m] * theta[w1 + j, m] + theta[b1 + j, m]
                    h = _ZERO if z < _ZERO else z  # max(z, 0): NaN stays NaN, -0 stays -0
                    hidden[j, m] = h
                    total[m] = total[m] + h * theta[w2 + j, m]
            if i == n - 1 and half_last:  # Eigen's last row: a half packet of 4 units
                for m in range(members):
                    t0, t1 = hidden[0, m] * theta[w2, m], hidden[1, m] * theta[w2 + 1, m]
                    t2, t3 = hidden[2, m] * theta[w2 + 2, m], hidden[3, m] * theta[w2 + 3, m]
                    total[m] = (t0 + t2) + (t1 + t3)
                    for j in range(4, width):
                        total[m] = total[m] + hidden[j, m] * theta[w2 + j, m]
            if r < by_one:  # into a packet's lane, else into the scalar tail
                into = packets[:, r % (4 * PACKET) if r < by_four else r % PACKET]
            else:
                into = tail[:, :]
            for m in range(members):
                out = total[m] + theta[b2, m]
                error = y[i, m] - out
                dz[m] = -(weight * (error * _TWO))
                into[0, m] += error * error  # the loss, the output, d loss/d b2
                into[1, m] += out
                into[2, m] += dz[m]
            # backward: dw2 = h^T dz, dz1 = relu'(h) dz w2, db1 = sum dz1, dw1 = x^T dz1
            for j in range(width):
                for m in range(members):
                    h = hidden[j, m]
                    dz1 = (dz[m] * theta[w2 + j, m]) * (_ONE if h > _ZERO else _ZERO)
                    block[0, j, m] += h * dz[m]
                    block[1, j, m] += x[i, m] * dz1
                    grad[b1 + j, m] += dz1
                    sums[3 + j, m] += h
            in_block += 1
            if in_block == block_rows or i == n - 1:
                in_block = 0
                for j in range(width):
                    for m in range(members):
                        column_sums[0, j, m] += block[0, j, m]
                        column_sums[1, j, m] += block[1, j, m]
                        block[0, j, m] = _ZERO
                        block[1, j, m] = _ZERO
            if r + 1 == by_four:  # p0 += p1, p0 += p2, p0 += p3
                for k in range(1, 4):
                    for q in range(3):
                        for lane in range(PACKET):
                            for m in range(members):
                                packets[q, lane, m] += packets[q, k * PACKET + lane, m]
        for q in range(3):  # the tail plus the lanes folded in pairs (Eigen's predux)
            for m in range(members):
                p = packets[q]
                folded = (p[0, m] + p[4, m]) + (p[2, m] + p[6, m])
                folded_odd = (p[1, m] + p[5, m]) + (p[3, m] + p[7, m])
                tail[q, m] = tail[q, m] + (folded + folded_odd)
    _tree(nodes, results, sums)
    for j in range(width):
        for m in range(members):
            grad[w2 + j, m] = column_sums[0, j, m]
            grad[w1 + j, m] = column_sums[1, j, m]
    for m in range(members):
        grad[b2, m] = sums[2, m]


@_compiled
def _tree(nodes, results, sums):  # pragma: no cover - compiled
    """The root of Eigen's tree over the leaves' ``results`` ``[L, 3, members]`` into
    ``sums[:3]``: a node is ``(0 + left) + right``, a leaf its result."""
    values = np.empty((nodes.shape[0], 3, results.shape[2]), _F32)
    for k in range(nodes.shape[0]):
        leaf, left, right = nodes[k, 0], nodes[k, 1], nodes[k, 2]
        for q in range(3):
            for m in range(results.shape[2]):
                if leaf >= 0:
                    values[k, q, m] = results[leaf, q, m]
                else:
                    value = _ZERO + values[left, q, m]
                    values[k, q, m] = value + values[right, q, m] if right >= 0 else value
    for q in range(3):
        for m in range(results.shape[2]):
            sums[q, m] = values[nodes.shape[0] - 1, q, m]


def train_lanes(
    x: np.ndarray,
    y: np.ndarray,
    theta: np.ndarray,
    rates: np.ndarray,
    adam: bool,
    adam_terms: np.ndarray,
    weight: np.float32,
    scale: np.float32,
    every: int,
    columns: np.ndarray,
    record: np.ndarray,
) -> None:
    """Train members ``theta`` ``[P, members]`` (unit-major: w1, b1, w2, b2; updated in
    place) on their rows ``x``, ``y`` ``[n, members]``, for ``len(adam_terms)`` epochs.

    Record row k of ``record`` ``[R, members, len(columns)]`` is epoch ``k * every``: the
    entries ``columns`` of the full row (output, loss, the parameters, the gradient (NaN in
    row 0), the hidden-unit means). ``rates`` ``[members]``; ``adam``: Adam (else plain
    gradient descent); ``adam_terms`` ``[E, 2]``: each update's ``sqrt(1 - beta_2^t)`` and
    ``1 - beta_1^t`` (:func:`stellarnet.train.fused.adam_terms`); ``weight``: ``scale / n``
    (d loss/d output is ``-(weight * (error * 2))``); ``scale``: the loss's factor.
    """
    leaves, nodes = reduction_tree(len(x))
    half_last = last_row_by_half_packet(len(x), (len(theta) - 1) // 3)
    constants = np.array([1 - ADAM_BETA_1, 1 - ADAM_BETA_2, ADAM_EPSILON], np.float32)
    previous = _flush_denormals()
    try:
        _train(x, y, theta, rates, adam, adam_terms, constants, weight, scale, half_last,
               leaves, nodes, every, columns, record)  # fmt: skip
    finally:
        _restore(previous)


@_compiled
def _train(
    x, y, theta, rates, adam, adam_terms, constants, weight, scale, half_last, leaves, nodes,
    every, columns, record,
):  # pragma: no cover - compiled  # fmt: skip
    """:func:`train_lanes`' loop (``constants``: Adam's ``1 - beta_1``, ``1 - beta_2`` and
    epsilon in float32)."""
    n, members = x.shape
    count, width = theta.shape[0], (theta.shape[0] - 1) // 3
    rows = _F32(n)
    c1, c2, epsilon = constants[0], constants[1], constants[2]
    sums = np.empty((3 + width, members), _F32)
    grad = np.empty((count, members), _F32)
    first = np.zeros((count, members), _F32)
    second = np.zeros((count, members), _F32)
    alpha = np.empty(members, _F32)
    full = np.empty(2 + 2 * count + width, _F32)
    for epoch in range(len(adam_terms) + 1):
        _pass(x, y, theta, weight, half_last, leaves, nodes, sums, grad)
        if epoch and adam:
            for m in range(members):
                alpha[m] = (rates[m] * adam_terms[epoch - 1, 0]) / adam_terms[epoch - 1, 1]
            for p in range(count):
                for m in range(members):
                    g = grad[p, m]
                    first[p, m] = first[p, m] + (g - first[p, m]) * c1
                    second[p, m] = second[p, m] + (g * g - second[p, m]) * c2
                    step = first[p, m] * alpha[m]
                    theta[p, m] = theta[p, m] - step / (np.sqrt(second[p, m]) + epsilon)
        elif epoch:
            for p in range(count):
                for m in range(members):
                    theta[p, m] = theta[p, m] - grad[p, m] * rates[m]
        if epoch % every:
            continue
        row = record[epoch // every]
        for m in range(members):
            loss = sums[0, m] / rows
            full[0] = sums[1, m] / rows
            full[1] = loss if scale == _ONE else scale * loss
            for p in range(count):
                full[2 + p] = theta[p, m]
                full[2 + count + p] = grad[p, m] if epoch else np.float32(np.nan)
            for j in range(width):
                full[2 + 2 * count + j] = sums[3 + j, m] / rows
            for c in range(columns.shape[0]):
                row[m, c] = full[columns[c]]

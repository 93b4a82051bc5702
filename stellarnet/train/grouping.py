"""How K stacked members are laid out: in groups that train side by side, one flat parameter
vector in the order the graph reads it.

The members are split into groups of independent sub-graphs, which TensorFlow's executor runs
side by side, one per core: with one thread per op (``TF_NUM_INTRAOP_THREADS=1``, which the
``stellarnet`` command sets) this is the fastest way to use several cores for these small ops.
Groups whose hidden layer outgrows :data:`GROUP_BYTES` are split further
(:func:`default_groups`). The numbers do not depend on the grouping.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence

import numpy as np

from stellarnet.checks import check_int

GROUP_BYTES = 5 * 2**19
"""Largest hidden-layer array (``[n, width * k]`` float32) of a group by default: 2.5 MiB,
measured fastest (``benchmarks/bench_study.py``; 2-core AMD EPYC, 1 MiB of L2 cache a core).
For the HR net on the 2242-row catalog that is 48 members: larger groups spend fewer ops per
member, until their arrays outgrow the caches (86 members a group cost 20% more per
member-epoch than 43, and 9 members 40% more)."""

WIDE_MAX_UNITS = 7
"""Keras' matmul sums up to this many hidden units one after the other, as the wide
formulation does (:func:`is_wide`); wider layers it sums in other orders."""


def default_groups(members: int, member_floats: int, cores: int) -> int:
    """The default number of groups of ``members`` members whose widest hidden layer holds
    ``member_floats`` values each: one per core (or per member, if fewer); then, while a
    group's layer exceeds :data:`GROUP_BYTES`, one more per core."""
    count = min(members, cores)
    while count < members and math.ceil(members / count) * member_floats * 4 > GROUP_BYTES:
        count += cores
    return min(count, members)


def group_bounds(
    members: int, groups: int | None, layer_sizes: Sequence[int], rows: int
) -> list[tuple[int, int]]:
    """``(first, end)`` member of each group: ``groups`` contiguous groups whose sizes differ
    by at most one (None: :func:`default_groups` for this machine's cores)."""
    if groups is None:
        widest = rows * max(layer_sizes[1:-1], default=1)
        groups = default_groups(members, widest, os.cpu_count() or 1)
    check_int(groups, "groups", minimum=1, maximum=members)
    bounds = np.linspace(0, members, groups + 1).round().astype(int)
    return list(zip(bounds[:-1].tolist(), bounds[1:].tolist(), strict=True))


def is_wide(layer_sizes: Sequence[int]) -> bool:
    """Whether the wide formulation computes this net: one input, one hidden layer of at most
    :data:`WIDE_MAX_UNITS` units, one output (the HR and galaxy nets)."""
    return (
        len(layer_sizes) == 3
        and layer_sizes[0] == layer_sizes[-1] == 1
        and layer_sizes[1] <= WIDE_MAX_UNITS
    )


def graph_order(groups: Sequence[tuple[int, int]], parameter_count: int, wide: bool) -> np.ndarray:
    """Where each entry of the stacked flat parameter vector comes from: its index in the
    ``[K, P]`` array of member rows (flattened).

    The groups follow each other. In the wide formulation a group of k members is
    parameter-major (entry ``p * k + m`` is parameter p of member m), so its w1, b1, w2 and b2
    are four contiguous blocks in the unit-major layout it computes in, one ``tf.split`` away.
    Otherwise it is member-major, one row per member.
    """
    parameters = np.arange(parameter_count)
    blocks = []
    for lo, hi in groups:
        members = np.arange(lo, hi) * parameter_count
        if wide:
            blocks.append((parameters[:, None] + members[None, :]).ravel())
        else:
            blocks.append((members[:, None] + parameters[None, :]).ravel())
    return np.concatenate(blocks)

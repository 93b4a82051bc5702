"""The initial weights :func:`~stellarnet.train.models.build_model` draws for many seeds at
once, without building a Keras model per seed.

How Keras 3 (TensorFlow backend) draws them: ``keras.utils.set_random_seed(seed)`` seeds
Python's ``random``; each Dense layer's ``glorot_uniform`` kernel initializer, created with
no seed, takes ``random.randint(1, 10**9)`` as its own seed (``make_default_seed``), one per
initializer in the order the layers are made (``clone_model`` makes new ones, continuing the
stream); a call then draws ``tf.random.stateless_uniform(shape, seed=[s, 0], minval=-limit,
maxval=limit)`` with ``limit = sqrt(6 / (fan_in + fan_out))``. That op scrambles the seed
into a Philox-4x32-10 key and counter and fills the kernel (row-major) with
``(bits & 0x7fffff | 0x3f800000) as float - 1``, four values per counter step, then
``u * (maxval - minval) + minval`` in float32. Biases (``zeros``) draw nothing.

:func:`initial_layers` does all of that in numpy, vectorised over seeds; the tests hold it
to ``build_model`` bit for bit. Other initializers fall back to building the models.
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence

import numpy as np

from stellarnet.checks import check_choice, check_seed
from stellarnet.params import Layers
from stellarnet.train.models import ModelSpec
from stellarnet.vocabulary import INIT_PROTOCOLS

PHILOX_M = (np.uint64(0xD2511F53), np.uint64(0xCD9E8D57))
PHILOX_W = (np.uint32(0x9E3779B9), np.uint32(0xBB67AE85))
SCRAMBLE_KEY = (0x3EC8F720, 0x02461E29)
"""The fixed key TensorFlow's StatelessRandomGetKeyCounter mixes a seed with."""
_LOW32 = np.uint64(0xFFFFFFFF)


def drawable(spec: ModelSpec) -> bool:
    """Whether :func:`initial_layers` reproduces ``spec``'s initial weights (Glorot-uniform
    kernels, zero biases); other specs are built with Keras."""
    return spec.kernel_initializer == "glorot_uniform" and spec.bias_initializer == "zeros"


def philox(counter: np.ndarray, key: np.ndarray) -> np.ndarray:
    """Philox-4x32-10 of ``counter`` ``[..., 4]`` under ``key`` ``[..., 2]`` (uint32), as
    TensorFlow's ``random::PhiloxRandom`` computes one block."""
    counter = counter.astype(np.uint32)
    key = key.astype(np.uint32).copy()
    with np.errstate(over="ignore"):
        for round_ in range(10):
            product0 = PHILOX_M[0] * counter[..., 0].astype(np.uint64)
            product1 = PHILOX_M[1] * counter[..., 2].astype(np.uint64)
            hi0, lo0 = (product0 >> np.uint64(32)).astype(np.uint32), (product0 & _LOW32)
            hi1, lo1 = (product1 >> np.uint64(32)).astype(np.uint32), (product1 & _LOW32)
            counter = np.stack(
                [
                    hi1 ^ counter[..., 1] ^ key[..., 0],
                    lo1.astype(np.uint32),
                    hi0 ^ counter[..., 3] ^ key[..., 1],
                    lo0.astype(np.uint32),
                ],
                axis=-1,
            )
            if round_ < 9:
                key = key + np.asarray(PHILOX_W, np.uint32)
    return counter


def stateless_uniform_bits(seeds: np.ndarray, size: int) -> np.ndarray:
    """``[len(seeds), size]`` uint32 draws of ``tf.random.stateless_uniform`` with seed
    ``[s, 0]`` (int32), before their conversion to floats."""
    seeds = np.asarray(seeds, np.int64)
    count = len(seeds)
    low = seeds.astype(np.uint64) & _LOW32  # int32 seed, sign-extended, then to uint64
    high = np.where(seeds < 0, np.uint64(0xFFFFFFFF), np.uint64(0))
    start = np.zeros((count, 4), np.uint32)
    start[:, 0], start[:, 1] = low.astype(np.uint32), high.astype(np.uint32)
    key = np.broadcast_to(np.asarray(SCRAMBLE_KEY, np.uint32), (count, 2))
    mix = philox(start, key)
    key = mix[:, :2]
    blocks = -(-size // 4)
    counter = np.zeros((count, blocks, 4), np.uint32)
    steps = np.arange(blocks, dtype=np.uint64)  # the 128-bit counter, + block number
    low64 = steps & _LOW32
    counter[..., 0] = low64.astype(np.uint32)
    counter[..., 1] = (steps >> np.uint64(32)).astype(np.uint32)
    counter[..., 2] = mix[:, None, 2]
    counter[..., 3] = mix[:, None, 3]
    bits = philox(counter, np.broadcast_to(key[:, None, :], (count, blocks, 2)))
    return bits.reshape(count, blocks * 4)[:, :size]


def glorot_kernels(seeds: np.ndarray, n_in: int, n_out: int) -> np.ndarray:
    """``[len(seeds), n_in, n_out]`` float32 Glorot-uniform kernels, one per initializer seed."""
    bits = stateless_uniform_bits(seeds, n_in * n_out)
    unit = ((bits & np.uint32(0x7FFFFF)) | np.uint32(127 << 23)).view(np.float32) - np.float32(1)
    limit = math.sqrt(3.0 / max(1.0, (n_in + n_out) / 2.0))
    low, high = np.float32(-limit), np.float32(limit)
    values = unit * (high - low) + low
    return values.reshape(len(seeds), n_in, n_out)


def initializer_seeds(seed: int, count: int) -> list[int]:
    """The seeds of the first ``count`` initializers made after
    ``keras.utils.set_random_seed(seed)``."""
    stream = random.Random(check_seed(seed))
    return [stream.randint(1, int(1e9)) for _ in range(count)]


def initial_layers(
    spec: ModelSpec, seeds: Sequence[int], copies: int = 1, init: str = "same"
) -> list[list[Layers]]:
    """Initial (kernel, bias) arrays, float32: ``result[i][c]`` is copy ``c`` of seed
    ``seeds[i]``.

    ``init="same"``: every copy is ``build_model(spec, seed)``'s weights (one list entry,
    shared). ``init="notebook"``: copy c is ``keras.models.clone_model`` number c + 1 of that
    model (the sweeps' notebook protocol, :mod:`stellarnet.runs.sweep`). Specs that are not
    :func:`drawable` are built with Keras (one model, and clones, per seed).
    """
    check_choice(init, "init", INIT_PROTOCOLS)
    if not drawable(spec):
        return _built_layers(spec, seeds, copies, init)
    sizes = spec.layer_sizes
    dense = len(sizes) - 1
    models = 1 if init == "same" else 1 + copies
    streams = np.array([initializer_seeds(s, models * dense) for s in seeds], np.int64)
    streams = streams.reshape(len(seeds), models, dense)
    first = 0 if init == "same" else 1  # the notebook's copies are the clones, not the base
    kernels = [
        glorot_kernels(streams[:, first:, layer].ravel(), sizes[layer], sizes[layer + 1])
        for layer in range(dense)
    ]
    shape = (len(seeds), models - first)
    result = []
    for i in range(len(seeds)):
        per_copy = []
        for c in range(models - first):
            index = np.ravel_multi_index((i, c), shape)
            per_copy.append(
                [
                    (kernels[layer][index], np.zeros(sizes[layer + 1], np.float32))
                    for layer in range(dense)
                ]
            )
        result.append(per_copy * copies if init == "same" else per_copy)
    return result


def _built_layers(
    spec: ModelSpec, seeds: Sequence[int], copies: int, init: str
) -> list[list[Layers]]:
    """:func:`initial_layers` by building the Keras models (any initializer)."""
    import keras

    from stellarnet.train.models import build_model, model_layers

    result = []
    for seed in seeds:
        base = build_model(spec, seed)
        if init == "same":
            result.append([model_layers(base)] * copies)
        else:
            result.append([model_layers(keras.models.clone_model(base)) for _ in range(copies)])
    return result

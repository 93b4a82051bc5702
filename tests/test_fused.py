"""The fused loop (stellarnet.train.fused): each member's history equals the stacked
TensorFlow graph's and a single run's bit for bit, over the row counts that take each branch of
TensorFlow's summation orders, every width it takes, both optimizers and both losses."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import tensorflow as tf

from stellarnet.schema import RECORD_GROUPS
from stellarnet.train import fused
from stellarnet.train.fused_kernel import LEAF_VALUES, reduction_tree, train_members
from stellarnet.train.loop import train
from stellarnet.train.models import ModelSpec, build_model, model_layers
from stellarnet.train.optimizers import ADAM_BETA_1, ADAM_BETA_2
from stellarnet.train.stacked import train_stacked

RATES = [0.001, 0.03, 0.1, 0.3, 1.0, 3.0]


def hr_rows(hr_dataset, rows: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """``rows`` rows of the HR training data (drawn with replacement beyond its 2242)."""
    x, y = hr_dataset.x, hr_dataset.y
    if rows == len(y):
        return x, y
    index = np.random.default_rng(seed).choice(len(y), rows, replace=rows > len(y))
    return x[index], y[index]


def members(width: int, count: int, seed: int = 0) -> list:
    """``count`` members of a 1-``width``-1 net: Keras' initial kernels, non-zero biases."""
    rng = np.random.default_rng(seed)
    drawn = []
    for k in range(count):
        (w1, _), (w2, _) = model_layers(build_model(ModelSpec(hidden=(width,)), seed + k))
        b1 = rng.normal(0, 0.1, width).astype(np.float32)
        drawn.append([(w1, b1), (w2, rng.normal(0, 0.1, 1).astype(np.float32))])
    return drawn


def orders(count: int, rows: int) -> np.ndarray:
    return np.stack([np.random.default_rng(seed).permutation(rows) for seed in range(count)])


def until_divergence(long: pd.DataFrame) -> pd.DataFrame:
    """Each member's rows up to its first non-finite output or loss (what a study keeps)."""
    from stellarnet.runs.study_part import cut_members

    return cut_members(long)


@pytest.mark.parametrize(
    ("rows", "width", "optimizer", "loss"),
    [
        (2242, 6, "adam", "mse"),  # the HR catalog: 70 runs of 32 rows, 0 packets, 2 rows
        (2242, 2, "sgd", "mse"),
        (5, 7, "adam", "half_mse"),  # fewer rows than a packet
        (33, 4, "adam", "mse"),  # one run of 32, one row left
        (127, 3, "sgd", "half_mse"),  # one block of 127 rows in the matrix-vector sums
        (200, 5, "adam", "mse"),
    ],
)
def test_equals_the_stacked_graph(hr_dataset, rows, width, optimizer, loss):
    x, y = hr_rows(hr_dataset, rows)
    nets, order = members(width, len(RATES) * 2), orders(len(RATES) * 2, rows)
    options = dict(epochs=40, optimizer=optimizer, loss=loss, record=RECORD_GROUPS)
    rates = RATES * 2
    recorder, stacked = train_stacked(
        nets, x, y, rates, stop_on_divergence=False, row_orders=order, **options
    )
    finals, long = fused.train_fused(nets, x, y, rates, row_orders=order, **options)
    assert list(long.columns) == list(stacked.columns)
    assert until_divergence(long).equals(until_divergence(stacked))
    if optimizer == "adam":  # a rate of 3 diverges with SGD; Adam's members all stay finite
        assert long.equals(stacked)
        for mine, theirs in zip(finals, recorder.final_layers(), strict=True):
            for (k1, b1), (k2, b2) in zip(mine, theirs, strict=True):
                assert np.array_equal(k1, k2) and np.array_equal(b1, b2)


@pytest.mark.parametrize("rows", [2242, LEAF_VALUES + 11])
def test_equals_single_runs(hr_dataset, rows):
    """Against ``train`` itself, including more rows than one leaf of TensorFlow's tree sum
    (there the stacked graph's rows of members after the first start off its packets)."""
    x, y = hr_rows(hr_dataset, rows, seed=3)
    nets, order = members(6, 3, seed=11), orders(3, rows)
    rates = [0.01, 0.1, 0.3]
    _, long = fused.train_fused(
        nets, x, y, rates, epochs=15, record=RECORD_GROUPS, record_every=2, row_orders=order
    )
    for k, (net, rate) in enumerate(zip(nets, rates, strict=True)):
        model = build_model(ModelSpec(hidden=(6,)), 0)
        model.set_weights([array for pair in net for array in pair])
        single = train(
            model, x[order[k]], y[order[k]], learning_rate=rate, epochs=15,
            record=RECORD_GROUPS, record_every=2,
        )  # fmt: skip
        mine = long[long["member"] == k].drop(columns="member").reset_index(drop=True)
        assert mine.equals(single), k


def test_numbers_do_not_depend_on_the_threads(hr_dataset):
    x, y = hr_rows(hr_dataset, 300)
    nets, order = members(6, 7), orders(7, 300)
    runs = [
        fused.train_fused(nets, x, y, RATES + [0.2], epochs=20, row_orders=order, threads=t)
        for t in (1, 2, 3)
    ]
    assert runs[0][1].equals(runs[1][1]) and runs[0][1].equals(runs[2][1])


def test_denormals_are_flushed_as_tensorflow_flushes_them(hr_dataset):
    """Inputs of 1e-39 (denormal): TensorFlow reads them as 0 (DAZ) and flushes denormal
    results (FTZ), so the input weights' gradients are exactly 0; without those modes they
    would be about 1e-40."""
    x, y = hr_rows(hr_dataset, 64)
    x = np.full_like(x, 1e-39)
    nets = members(4, 2)
    _, stacked = train_stacked(nets, x, y, [0.1, 0.1], epochs=3, stop_on_divergence=False)
    _, long = fused.train_fused(nets, x, y, [0.1, 0.1], epochs=3)
    assert (long.loc[long["epoch"] > 0, ["g^1_1", "g^1_2"]] == 0).all().all()
    assert long.equals(stacked)


def test_the_control_register_is_restored():
    tiny = np.float32(1e-38)
    theta = np.ones((7, 1), np.float32)
    record = np.empty((2, 1, 2 + 14 + 2), np.float32)
    leaves, nodes = reduction_tree(4)
    data = np.ones((4, 1), np.float32)
    args = (np.ones(1, np.float32), True, fused.adam_steps(1), np.float32(0.25), np.float32(1))
    train_members(data, data, theta, *args, leaves, nodes, 1, record)
    assert tiny * np.float32(0.01) != 0  # denormal results are kept outside the loop


def test_adam_steps_equal_tensorflows_scalar_ops():
    @tf.function(autograph=False)
    def step_terms(step):
        beta_1_power = tf.pow(tf.cast(ADAM_BETA_1, tf.float32), step)
        beta_2_power = tf.pow(tf.cast(ADAM_BETA_2, tf.float32), step)
        return tf.sqrt(1 - beta_2_power), 1 - beta_1_power

    steps = fused.adam_steps(5000)
    for t in [*range(1, 400), *range(400, 5001, 37)]:
        expected = [value.numpy() for value in step_terms(tf.constant(float(t)))]
        assert np.array_equal(steps[t - 1], expected), t


def test_reduction_tree():
    leaves, nodes = reduction_tree(2242)
    assert leaves.tolist() == [[0, 2242]] and nodes.tolist() == [[0, -1, -1]]
    leaves, nodes = reduction_tree(20_003)
    assert leaves[:, 1].sum() == 20_003 and (leaves[:, 1] <= LEAF_VALUES).all()
    assert (leaves[:, 0] % 8 == 0).all()  # split on packet boundaries
    assert np.array_equal(leaves[1:, 0], np.cumsum(leaves[:, 1])[:-1])
    assert nodes[-1, 0] == -1 and len(nodes) == 2 * len(leaves) - 1


@pytest.mark.parametrize(
    ("sizes", "activation", "optimizer", "loss", "expected"),
    [
        ((1, 6, 1), "relu", "adam", "mse", True),
        ((1, 2, 1), "relu", "sgd", "half_mse", True),
        ((1, 8, 1), "relu", "adam", "mse", False),  # Keras sums 8 units in another order
        ((1, 1, 1), "relu", "adam", "mse", False),  # a dot product, another order
        ((2, 6, 1), "relu", "adam", "mse", False),
        ((1, 6, 1), "tanh", "adam", "mse", False),
    ],
)
def test_applies(sizes, activation, optimizer, loss, expected):
    assert fused.applies(sizes, activation, "linear", optimizer, loss) is expected


def test_applies_only_under_stellarnets_tensorflow_settings(monkeypatch):
    assert fused.applies((1, 6, 1), "relu", "linear", "adam", "mse")
    monkeypatch.setenv("TF_NUM_INTRAOP_THREADS", "2")
    assert not fused.applies((1, 6, 1), "relu", "linear", "adam", "mse")

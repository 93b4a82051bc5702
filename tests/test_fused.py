"""The fused loop (stellarnet.train.fused): each member's history equals the stacked
TensorFlow graph's and a single run's bit for bit, over the row counts that take each branch of
TensorFlow's summation orders, every width it takes, both optimizers and both losses."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf

from stellarnet.errors import ConfigError
from stellarnet.runs.study_part import cut_members
from stellarnet.schema import RECORD_GROUPS
from stellarnet.train import fused
from stellarnet.train.fused_kernel import LEAF_VALUES, reduction_tree, train_lanes
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
    assert cut_members(long).equals(cut_members(stacked))
    if optimizer == "adam":  # a rate of 3 diverges with SGD; Adam's members all stay finite
        assert long.equals(stacked)
        for mine, theirs in zip(finals, recorder.final_layers(), strict=True):
            for (k1, b1), (k2, b2) in zip(mine, theirs, strict=True):
                assert np.array_equal(k1, k2) and np.array_equal(b1, b2)


@pytest.mark.parametrize(
    ("rows", "width", "epochs"),
    [
        (2242, 6, 15),
        (2243, 6, 120),  # odd: the last row's output sums units 0-3 as a half packet
        (129, 7, 60),
        (21, 4, 60),
        (LEAF_VALUES + 11, 6, 15),  # two leaves of TensorFlow's tree sum
    ],
)
def test_equals_single_runs(hr_dataset, rows, width, epochs):
    """Against ``train`` itself. Above 8192 rows the stacked graph's members after the first
    start their tree sums off its packets; with an odd number of rows both it (before this
    was found) and a naive loop sum the last row's output in another order (differences from
    epoch 25-70 on)."""
    x, y = hr_rows(hr_dataset, rows, seed=3)
    nets, order = members(width, 2, seed=11), orders(2, rows)
    rates = [0.01, 0.1]
    options = dict(epochs=epochs, record=RECORD_GROUPS, record_every=3)
    _, long = fused.train_fused(nets, x, y, rates, row_orders=order, **options)
    _, stacked = train_stacked(nets, x, y, rates, row_orders=order, **options)
    for k, (net, rate) in enumerate(zip(nets, rates, strict=True)):
        model = build_model(ModelSpec(hidden=(width,)), 0)
        model.set_weights([array for pair in net for array in pair])
        single = train(model, x[order[k]], y[order[k]], learning_rate=rate, **options)
        mine = long[long["member"] == k].drop(columns="member").reset_index(drop=True)
        assert mine.equals(single), k
        if rows <= LEAF_VALUES:
            theirs = stacked[stacked["member"] == k].drop(columns="member")
            assert theirs.reset_index(drop=True).equals(single), k


@pytest.mark.parametrize("record", [(), ("biases", "activations"), ("gradients",)])
def test_records_what_is_asked(hr_dataset, record):
    x, y = hr_rows(hr_dataset, 100)
    nets, order = members(5, 3), orders(3, 100)
    options = dict(epochs=12, record=record, record_every=5, row_orders=order)
    _, stacked = train_stacked(nets, x, y, [0.1, 0.2, 0.3], stop_on_divergence=False, **options)
    _, long = fused.train_fused(nets, x, y, [0.1, 0.2, 0.3], **options)
    assert long.equals(stacked)
    assert long["epoch"].unique().tolist() == [0, 5, 10]


def test_numbers_do_not_depend_on_the_threads(hr_dataset):
    x, y = hr_rows(hr_dataset, 300)
    nets, order = members(6, 7), orders(7, 300)
    runs = [
        fused.train_fused(nets, x, y, RATES + [0.2], epochs=20, row_orders=order, threads=t)
        for t in (1, 2, 3)
    ]
    assert runs[0][1].equals(runs[1][1]) and runs[0][1].equals(runs[2][1])


def test_denormals_are_flushed_as_tensorflow_flushes_them(hr_dataset):
    """Inputs of 1e-39 (denormal) with outputs far off: TensorFlow reads the inputs as 0 (DAZ),
    so the input weights' gradients are exactly 0; with flush-to-zero alone they would be the
    normal numbers 1e-39 x d loss/d z (about 1e-35), and without either mode as well."""
    x, y = hr_rows(hr_dataset, 64)
    x, y = np.full_like(x, 1e-39), y * 1e4
    nets = members(4, 2)
    _, stacked = train_stacked(nets, x, y, [0.1, 0.1], epochs=3, stop_on_divergence=False)
    _, long = fused.train_fused(nets, x, y, [0.1, 0.1], epochs=3)
    assert (long.loc[long["epoch"] > 0, ["g^1_1", "g^1_2"]] == 0).all().all()
    assert long.equals(stacked)


def lanes_arguments(rows: int) -> tuple:
    """Arguments of ``train_lanes`` for one member of a 1-2-1 net on ``rows`` rows, 1 epoch."""
    data = np.ones((rows, 1), np.float32)
    theta, columns = np.ones((7, 1), np.float32), np.arange(18)
    record = np.empty((2, 1, 18), np.float32)
    options = (np.float32(0.5), np.float32(1), 1, columns, record)
    return data, data, theta, np.ones(1, np.float32), True, fused.adam_terms(1), *options


def test_the_control_register_is_restored():
    tiny = np.float32(1e-38)
    train_lanes(*lanes_arguments(4))
    assert tiny * np.float32(0.01) != 0  # denormal results are kept outside the loop
    with pytest.raises(ZeroDivisionError):
        train_lanes(*lanes_arguments(0))  # no rows: the mean divides by zero
    assert tiny * np.float32(0.01) != 0  # and after an error in it


def test_refuses_other_shapes(hr_dataset):
    x, y = hr_rows(hr_dataset, 50)
    nets = members(4, 2)
    (_, b1), second = nets[0]
    two_inputs = [[(np.ones((2, 4), np.float32), b1), second]] * 2
    with pytest.raises(ConfigError, match="1-W-1"):
        fused.train_fused(two_inputs, x, y, [0.1, 0.1], epochs=2)
    with pytest.raises(ConfigError, match=r"shape \(n, 1\)"):
        fused.train_fused(nets, np.hstack([x, x]), y, [0.1, 0.1], epochs=2)
    with pytest.raises(ConfigError, match="row_orders"):
        fused.train_fused(nets, x, y, [0.1, 0.1], epochs=2, row_orders=orders(2, 49))


def test_adam_steps_equal_tensorflows_scalar_ops():
    @tf.function(autograph=False)
    def step_terms(step):
        beta_1_power = tf.pow(tf.cast(ADAM_BETA_1, tf.float32), step)
        beta_2_power = tf.pow(tf.cast(ADAM_BETA_2, tf.float32), step)
        return tf.sqrt(1 - beta_2_power), 1 - beta_1_power

    steps = fused.adam_terms(5000)
    for t in [*range(1, 400), *range(400, 5001, 37)]:
        expected = [value.numpy() for value in step_terms(tf.constant(float(t)))]
        assert np.array_equal(steps[t - 1], expected), t


def test_reduction_tree():
    assert reduction_tree(2242)[0].tolist() == [[0, 2242]]
    assert reduction_tree(LEAF_VALUES)[1].tolist() == [[0, -1, -1]]  # one leaf up to 8192
    leaves, nodes = reduction_tree(LEAF_VALUES + 1)
    assert leaves.tolist() == [[0, 4104], [4104, 4089]]  # halves, split on a packet boundary
    assert nodes.tolist() == [[0, -1, -1], [1, -1, -1], [-1, 0, 1]]
    leaves, nodes = reduction_tree(20_003)
    assert leaves[:, 1].sum() == 20_003 and (leaves[:, 1] <= LEAF_VALUES).all()
    assert (leaves[:, 0] % 8 == 0).all()
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


def test_applies_only_under_stellarnets_tensorflow_settings_with_numba(monkeypatch):
    assert fused.applies((1, 6, 1), "relu", "linear", "adam", "mse")
    monkeypatch.setenv("TF_NUM_INTRAOP_THREADS", "2")
    assert not fused.applies((1, 6, 1), "relu", "linear", "adam", "mse")
    monkeypatch.setenv("TF_NUM_INTRAOP_THREADS", "1")
    monkeypatch.setattr(fused.importlib.util, "find_spec", lambda name: None)
    assert not fused.applies((1, 6, 1), "relu", "linear", "adam", "mse")


def test_compiles_without_a_cache_where_it_cannot_write_one(monkeypatch):
    """A read-only package folder and no user cache folder: numba refuses ``cache=True`` at
    decoration; the loop is then compiled in each process instead of failing to import."""
    from stellarnet.train import fused_kernel

    calls = []

    def njit(**options):
        calls.append(options)
        if options.get("cache"):
            raise RuntimeError("cannot cache function 'f': no locator available for file 'x'")
        return lambda function: function

    monkeypatch.setattr(fused_kernel, "njit", njit)
    assert fused_kernel._compiled(len) is len
    assert calls == [{"nogil": True, "cache": True}, {"nogil": True}]

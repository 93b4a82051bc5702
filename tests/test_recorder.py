"""The recorder's engines, record options and the stacked (vectorised) trainer."""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
import pytest

from stellarnet.data.datasets import make_dataset
from stellarnet.data.loading import load_catalog
from stellarnet.errors import ConfigError, TrainingDiverged
from stellarnet.runs.config import load_experiment
from stellarnet.train.engine import compile_epochs, run_epochs
from stellarnet.train.loop import train
from stellarnet.train.models import HR_NET, ModelSpec, build_model, model_layers
from stellarnet.train.policy import ExecutionPolicy
from stellarnet.train.recorder import Recorder

SEED = 1453
"""The HR experiment's seed (``experiments/hr_relation.toml``): initial weights of the runs here."""


@pytest.fixture(scope="module")
def hr_data():
    config = load_experiment("hr_relation")
    catalog = load_catalog(config.query, offline=True)
    return make_dataset(catalog.frame, config.features, config.target, seed=config.seed)


def as_array(frame: pd.DataFrame) -> np.ndarray:
    return frame.to_numpy(dtype=np.float64)


def test_graph_runs_leave_the_sessions_function_options_as_they_were(hr_data):
    """A single run's graph runs on the single-threaded executor, without grappler's rewrites,
    for its own calls only: the session's other functions keep TensorFlow's defaults."""
    import tensorflow as tf
    from tensorflow.python.eager import context

    from stellarnet.train.policy import _call_options

    def options() -> tuple[str, bytes]:
        current = context.context().function_call_options
        return current.executor_type, current.config_proto_serialized

    before = options()
    with _call_options("SINGLE_THREADED_EXECUTOR", grappler_iterations=0):
        executor, config = options()
    rewrites = tf.compat.v1.ConfigProto.FromString(config).graph_options.rewrite_options
    assert executor == "SINGLE_THREADED_EXECUTOR" and rewrites.disable_meta_optimizer
    with _call_options("", grappler_iterations=1):  # as a stacked sweep's graph
        executor, config = options()
    rewrites = tf.compat.v1.ConfigProto.FromString(config).graph_options.rewrite_options
    assert not rewrites.disable_meta_optimizer
    assert rewrites.meta_optimizer_iterations == rewrites.ONE
    with pytest.raises(TrainingDiverged):
        train(build_model(HR_NET, SEED), hr_data.x, hr_data.y, learning_rate=1e9, epochs=40)
    assert options() == before


def test_without_private_call_options_grappler_keeps_its_defaults(hr_data, monkeypatch, caplog):
    import tensorflow as tf

    kwargs = dict(learning_rate=0.1, epochs=25, engine="graph")
    expected = train(build_model(HR_NET, SEED), hr_data.x, hr_data.y, **kwargs)
    monkeypatch.setattr(tf.compat.v1, "ConfigProto", None)  # the options cannot be read
    with caplog.at_level("DEBUG", logger="stellarnet.train.policy"):
        history = train(build_model(HR_NET, SEED), hr_data.x, hr_data.y, **kwargs)
    assert "grappler keeps its defaults" in caplog.text
    pd.testing.assert_frame_equal(history, expected, check_exact=True)


@pytest.mark.parametrize("optimizer", ["adam", "sgd"])
def test_graph_engine_equals_eager_bit_for_bit(hr_data, optimizer):
    kwargs = dict(learning_rate=0.3, epochs=12, optimizer=optimizer)
    eager = train(build_model(HR_NET, SEED), hr_data.x, hr_data.y, engine="eager", **kwargs)
    graph = train(build_model(HR_NET, SEED), hr_data.x, hr_data.y, engine="graph", **kwargs)
    pd.testing.assert_frame_equal(eager, graph, check_exact=True)


def test_graph_is_traced_once_across_chunks(hr_data):
    import tensorflow as tf

    model = build_model(HR_NET, SEED)
    recorder = Recorder(model, hr_data.x, hr_data.y, "adam", 0.1, "mse")
    run = compile_epochs(recorder, 1, recorder.default_policy)
    state = recorder.state()
    for start, count in [(0, 3), (3, 5), (8, 40)]:
        chunk = (tf.constant(start), tf.constant(count), tf.constant(count))
        state, rows = run(state, recorder.data, *chunk)
        assert rows.shape[0] == count and int(state.iterations) == start + count
    assert run.experimental_get_tracing_count() == 1


def test_runs_of_one_architecture_share_a_traced_graph_that_reads_only_its_arguments(hr_data):
    """A second run of the same shapes reuses the first run's graph, yet trains on its own
    data, learning rate and initial weights: its history equals its own eager run's."""
    import keras

    from stellarnet.train import engine

    engine._traced_runs.clear()
    x, y = hr_data.x, hr_data.y
    train(build_model(HR_NET, SEED), x, y, learning_rate=0.1, epochs=25, engine="graph")
    assert len(engine._traced_runs) == 1
    (traced,) = engine._traced_runs.values()
    assert traced.captured_inputs == []  # no tensor of the first run is baked in

    keras.utils.set_random_seed(99)
    other = build_model(HR_NET, SEED)
    weights = other.get_weights()
    x2, y2 = x[::-1].copy(), (y + 0.5).astype(np.float32)  # same shapes, other values
    kwargs = dict(learning_rate=0.02, epochs=25, optimizer="adam")
    graph = train(other, x2, y2, engine="graph", **kwargs)
    assert list(engine._traced_runs.values()) == [traced]  # reused, not traced again
    again = build_model(HR_NET, SEED)
    again.set_weights(weights)
    eager = train(again, x2, y2, engine="eager", **kwargs)
    pd.testing.assert_frame_equal(graph, eager, check_exact=True)

    # Other shapes, optimizer or record groups trace their own graph; the tape never shares.
    train(build_model(HR_NET, SEED), x[:100], y[:100], learning_rate=0.1, epochs=25)
    train(build_model(HR_NET, SEED), x, y, learning_rate=0.1, epochs=25, optimizer="sgd")
    train(build_model(HR_NET, SEED), x, y, learning_rate=0.1, epochs=25, record=("kernels",))
    assert len(engine._traced_runs) == 4
    train(build_model(ModelSpec(hidden=(6,), l2=1e-3), SEED), x, y, learning_rate=0.1, epochs=25)
    assert len(engine._traced_runs) == 4
    assert all(not run.captured_inputs for run in engine._traced_runs.values())


@pytest.mark.parametrize("optimizer", ["adam", "sgd"])
def test_written_out_optimizers_equal_keras_optimizers(hr_data, optimizer):
    """The recorder's Adam/SGD give the numbers of the notebook's loop with a Keras optimizer."""
    import keras
    import tensorflow as tf

    from stellarnet.train.models import dense_parameters

    history = train(
        build_model(HR_NET, SEED),
        hr_data.x,
        hr_data.y,
        learning_rate=0.3,
        epochs=12,
        optimizer=optimizer,
        engine="graph",
    )
    model = build_model(HR_NET, SEED)
    variables = [v for _, _, v in dense_parameters(model)]
    keras_optimizer = {"adam": keras.optimizers.Adam, "sgd": keras.optimizers.SGD}[optimizer](0.3)
    loss_fn = keras.losses.MeanSquaredError()
    x, y = tf.constant(hr_data.x), tf.constant(hr_data.y)
    for epoch in range(1, 13):
        with tf.GradientTape() as tape:
            loss = loss_fn(y, model(x, training=True))
        grads = tape.gradient(loss, variables)
        keras_optimizer.apply_gradients(zip(grads, variables, strict=True))
        recorded = history.loc[epoch]
        assert float(loss) == recorded["loss"]
        assert (
            np.concatenate([v.numpy().ravel() for v in variables]).tolist()
            == recorded[[c for c in history.columns if c[0] in "wb" and "^" in c]].tolist()
        )


WRITTEN_OUT_CASES = [
    (HR_NET, "mse", "adam", None),
    (ModelSpec(hidden=(6,), activation="tanh"), "half_mse", "sgd", None),
    (ModelSpec(hidden=(5, 3), activation="sigmoid", output_activation="relu"), "mse", "adam", None),
    (ModelSpec(inputs=4, hidden=(16, 16)), "mse", "adam", None),
    (ModelSpec(inputs=4, hidden=(8,)), "half_mse", "adam", 96),
    (ModelSpec(inputs=4, hidden=(5,), outputs=3), "mse", "adam", None),
]


@pytest.mark.parametrize(("spec", "loss", "optimizer", "batch_size"), WRITTEN_OUT_CASES)
def test_written_out_backprop_equals_the_tape_bit_for_bit(
    hr_data, spec, loss, optimizer, batch_size
):
    """Plain Dense nets skip the tape (stellarnet.train.backprop); every recorded number is the
    tape's, in the eager and the graph engine."""
    rng = np.random.default_rng(5)
    x = hr_data.x if spec.inputs == 1 else rng.normal(size=(300, 4)).astype(np.float32)  # SYNTHETIC
    y = hr_data.y if spec.inputs == 1 else rng.normal(size=(300, spec.outputs)).astype(np.float32)
    record = ("kernels", "biases", "gradients", "activations")
    histories = []
    for tape, engine in [(True, "eager"), (False, "eager"), (False, "graph")]:
        recorder = Recorder(
            build_model(spec, SEED), x, y, optimizer, 0.05, loss, record, batch_size=batch_size
        )
        assert recorder.use_tape is False
        recorder.use_tape = tape
        rows, epochs = run_epochs(recorder, 15, ExecutionPolicy(engine=engine))
        histories.append(recorder.frame(rows, epochs))
    pd.testing.assert_frame_equal(histories[0], histories[1], check_exact=True)
    if batch_size is None:  # mini-batch graph epochs agree to ~1e-7 (see the test below)
        pd.testing.assert_frame_equal(histories[0], histories[2], check_exact=True)


def test_nets_with_penalties_dropout_or_other_activations_use_the_tape(hr_data):
    import keras

    models = [build_model(ModelSpec(hidden=(6,), l2=1e-3), SEED)]
    models.append(build_model(ModelSpec(hidden=(6,), dropout=0.2), SEED))
    models.append(
        keras.Sequential([keras.Input((1,)), keras.layers.Dense(6, "elu"), keras.layers.Dense(1)])
    )
    for model in models:
        assert Recorder(model, hr_data.x, hr_data.y, "adam", 0.1).use_tape


def test_one_variable_model_and_validation_rows_in_both_engines(hr_data):
    """A Dense layer without bias (the optimizer's packed parameters are the kernel itself),
    and val_loss, give the same numbers eagerly and in a graph; the model ends with the last
    recorded parameters."""
    import keras

    histories = []
    for engine in ("eager", "graph"):
        keras.utils.set_random_seed(3)
        model = keras.Sequential([keras.Input((1,)), keras.layers.Dense(1, use_bias=False)])
        validation = (hr_data.x[:100], hr_data.y[:100])
        histories.append(
            train(
                model,
                hr_data.x,
                hr_data.y,
                learning_rate=0.1,
                epochs=25,
                engine=engine,
                validation=validation,
            )
        )
        assert model.get_weights()[0][0, 0] == np.float32(histories[-1]["w^1_1"].iloc[-1])
    pd.testing.assert_frame_equal(histories[0], histories[1], check_exact=True)
    assert list(histories[0].columns) == ["epoch", "output", "loss", "val_loss", "w^1_1", "g^1_1"]


def test_a_functional_chain_trains_as_its_sequential_twin_and_branches_are_refused(hr_data):
    import keras

    sequential = build_model(HR_NET, SEED)
    inputs = keras.Input((1,))
    hidden = keras.layers.Dense(6, "relu")(inputs)
    functional = keras.Model(inputs, keras.layers.Dense(1)(hidden))
    functional.set_weights(sequential.get_weights())
    kwargs = dict(learning_rate=0.1, epochs=25)
    pd.testing.assert_frame_equal(
        train(functional, hr_data.x, hr_data.y, **kwargs),
        train(sequential, hr_data.x, hr_data.y, **kwargs),
        check_exact=True,
    )
    left, right = keras.layers.Dense(3)(inputs), keras.layers.Dense(3)(inputs)
    branched = keras.Model(inputs, keras.layers.Dense(1)(keras.layers.Concatenate()([left, right])))
    with pytest.raises(ConfigError, match="not a chain of layers"):
        train(branched, hr_data.x, hr_data.y, **kwargs)


@pytest.mark.parametrize(("epochs", "record_every", "kept"), [(70, 64, [0, 64]), (5, 10, [0])])
def test_graph_chunks_that_record_nothing(hr_data, epochs, record_every, kept):
    """A run (or its last chunk) shorter than record_every records no row in that chunk."""
    kwargs = dict(learning_rate=0.01, epochs=epochs, record_every=record_every)
    graph = train(build_model(HR_NET, SEED), hr_data.x, hr_data.y, engine="graph", **kwargs)
    eager = train(build_model(HR_NET, SEED), hr_data.x, hr_data.y, engine="eager", **kwargs)
    assert graph["epoch"].tolist() == kept
    pd.testing.assert_frame_equal(graph, eager, check_exact=True)


def test_losses_added_by_layers_are_in_the_loss(hr_data):
    """An ActivityRegularization layer's loss (in model.losses after a call) is part of the
    recorded loss, as Keras computes it, in both engines."""
    import keras

    keras.utils.set_random_seed(3)  # initial weights whose penalty is not negligible
    model = keras.Sequential(
        [
            keras.Input((1,)),
            keras.layers.Dense(5, "relu"),
            keras.layers.ActivityRegularization(l2=0.1),
            keras.layers.Dense(1),
        ]
    )
    weights = model.get_weights()
    yhat = model(hr_data.x)
    penalty = float(sum(model.losses))
    assert penalty > 1e-3
    expected = float(keras.losses.MeanSquaredError()(hr_data.y, yhat)) + penalty
    histories = []
    for engine in ("eager", "graph"):
        model.set_weights(weights)
        histories.append(
            train(model, hr_data.x, hr_data.y, learning_rate=0.01, epochs=20, engine=engine)
        )
    assert histories[0]["loss"].iloc[0] == pytest.approx(expected, rel=1e-6)
    pd.testing.assert_frame_equal(histories[0], histories[1], check_exact=True)
    # After the graph run, model.losses holds numbers (not the graph's tensors): those of the
    # trained model, as a call of it computes them.
    after_training = [float(loss) for loss in model.losses]
    model(hr_data.x)
    assert after_training == [float(loss) for loss in model.losses]


def constrained_net():
    """A hand-built net with a Dense activity regulariser and kernel/bias constraints."""
    import keras

    keras.utils.set_random_seed(7)
    return keras.Sequential(
        [
            keras.Input((1,)),
            keras.layers.Dense(
                5,
                "relu",
                activity_regularizer=keras.regularizers.L2(0.05),
                kernel_constraint=keras.constraints.NonNeg(),
            ),
            keras.layers.Dense(1, bias_constraint=keras.constraints.MaxNorm(0.2, axis=0)),
        ]
    )


@pytest.mark.parametrize("engine", ["eager", "graph"])
def test_activity_regularisers_and_constraints_are_trained_as_keras_trains_them(hr_data, engine):
    """The loss includes the Dense layer's activity penalty (as in model.losses) and the
    constraints hold after every update: the numbers of a loop with Keras' own Adam."""
    import keras
    import tensorflow as tf

    trained = constrained_net()
    history = train(trained, hr_data.x, hr_data.y, learning_rate=0.1, epochs=25, engine=engine)
    model = constrained_net()
    optimizer = keras.optimizers.Adam(0.1)
    loss_fn = keras.losses.MeanSquaredError()
    x, y = tf.constant(hr_data.x), tf.constant(hr_data.y)
    parameters = [c for c in history.columns if c[0] in "wb" and "^" in c]
    for epoch in range(1, 26):
        with tf.GradientTape() as tape:
            loss = loss_fn(y, model(x, training=True)) + sum(model.losses)
        grads = tape.gradient(loss, model.trainable_variables)
        optimizer.apply(grads, model.trainable_variables)
        values = np.concatenate([v.numpy().ravel() for v in model.trainable_variables])
        np.testing.assert_allclose(history.loc[epoch, parameters], values, rtol=1e-6, atol=1e-7)
        assert history.loc[epoch, "loss"] == pytest.approx(float(loss), rel=1e-6)
    assert len(model.losses) == 1 and float(model.losses[0]) > 1e-3  # the penalty counts
    assert (history.filter(regex=r"^w\^1_").to_numpy()[1:] >= 0).all()  # NonNeg, after updates
    assert np.abs(history["b^2_1"].to_numpy()[1:]).max() <= 0.2 + 1e-7  # MaxNorm
    assert np.abs(history["b^2_1"].to_numpy()[1:]).max() > 0.19  # and it binds
    # The trained model's model.losses holds its own activity penalty, as a call computes it.
    after_training = [float(loss) for loss in trained.losses]
    trained(x)
    assert after_training == [float(loss) for loss in trained.losses]


@pytest.mark.parametrize(
    ("dense", "between", "message"),
    [
        (dict(lora_rank=2), None, "LoRA-enabled or quantized"),
        (dict(dtype="mixed_float16"), None, "computes in float16"),
        ({}, dict(rate=0.1, dtype="mixed_float16"), "'half_dropout' computes in float16"),
    ],
)
def test_layers_the_recorder_cannot_reproduce_are_refused(hr_data, dense, between, message):
    import keras

    layers = [keras.Input((1,)), keras.layers.Dense(4, "relu", **dense)]
    if between is not None:
        layers.append(keras.layers.Dropout(name="half_dropout", **between))
    model = keras.Sequential([*layers, keras.layers.Dense(1)])
    with pytest.raises(ConfigError, match=message):
        train(model, hr_data.x, hr_data.y, learning_rate=0.1, epochs=2)


def batch_normalised_net(trainable: bool):
    """A 1-5-1 net with a BatchNormalization layer between its Dense layers, whose moving
    statistics and scale are not the identity (so that a frozen layer changes the numbers)."""
    import keras

    keras.utils.set_random_seed(5)
    norm = keras.layers.BatchNormalization(trainable=trainable)
    model = keras.Sequential(
        [keras.Input((1,)), keras.layers.Dense(5, "relu"), norm, keras.layers.Dense(1)]
    )
    norm.moving_mean.assign(np.linspace(-0.3, 0.4, 5, dtype=np.float32))
    norm.moving_variance.assign(np.linspace(0.5, 2.0, 5, dtype=np.float32))
    norm.gamma.assign(np.linspace(0.8, 1.3, 5, dtype=np.float32))
    return model


@pytest.mark.parametrize("engine", ["eager", "graph"])
def test_a_frozen_batch_normalization_trains_as_keras_trains_it(hr_data, engine):
    """Frozen, it applies its moving statistics: the numbers of a loop with Keras' Adam."""
    import keras
    import tensorflow as tf

    trained = batch_normalised_net(trainable=False)
    history = train(trained, hr_data.x, hr_data.y, learning_rate=0.05, epochs=25, engine=engine)
    model = batch_normalised_net(trainable=False)
    optimizer = keras.optimizers.Adam(0.05)
    x, y = tf.constant(hr_data.x), tf.constant(hr_data.y)
    for _ in range(25):
        with tf.GradientTape() as tape:
            loss = keras.losses.MeanSquaredError()(y, model(x, training=True))
        optimizer.apply(tape.gradient(loss, model.trainable_variables), model.trainable_variables)
    for ours, keras_own in zip(trained.weights, model.weights, strict=True):
        np.testing.assert_array_equal(ours.numpy(), keras_own.numpy())  # moving stats too
    assert history["loss"].iloc[-1] == float(loss)


def test_layers_with_other_trainable_weights_are_refused(hr_data):
    model = batch_normalised_net(trainable=True)
    with pytest.raises(ConfigError, match=r"\['batch_normalization.*'\] has other trainable"):
        train(model, hr_data.x, hr_data.y, learning_rate=0.1, epochs=2)


def test_a_subclassed_model_is_refused_clearly(hr_data):
    import keras

    class Net(keras.Model):
        def __init__(self):
            super().__init__()
            self.hidden, self.out = keras.layers.Dense(6, "relu"), keras.layers.Dense(1)

        def call(self, x):
            return self.out(self.hidden(x))

    net = Net()
    net(hr_data.x[:2])
    with pytest.raises(ConfigError, match="subclassed model: rebuild it with keras.Sequential"):
        train(net, hr_data.x, hr_data.y, learning_rate=0.1, epochs=2)


@pytest.mark.parametrize(("epochs", "record_every"), [(1100, 1), (3100, 3)])
def test_xla_is_close_to_the_default_over_chunks(hr_data, epochs, record_every):
    """jit_compile=True: fixed-size chunks (2 and 4 of them here), the same rows as the default
    engine, numbers within 1e-5 (XLA rounds differently: about 4e-6 after 1000 epochs)."""
    kwargs = dict(learning_rate=0.1, epochs=epochs, record_every=record_every)
    xla = train(build_model(HR_NET, SEED), hr_data.x, hr_data.y, jit_compile=True, **kwargs)
    default = train(build_model(HR_NET, SEED), hr_data.x, hr_data.y, **kwargs)
    assert xla["epoch"].tolist() == default["epoch"].tolist()
    np.testing.assert_allclose(as_array(xla), as_array(default), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        (dict(engine="eager"), "needs the graph engine"),
        (dict(batch_size=64), "does not run mini-batches"),
    ],
)
def test_xla_refuses_what_it_cannot_do(hr_data, kwargs, message):
    with pytest.raises(ConfigError, match=message):
        train(
            build_model(HR_NET, SEED),
            hr_data.x,
            hr_data.y,
            learning_rate=0.1,
            epochs=30,
            jit_compile=True,
            **kwargs,
        )


def test_model_variables_end_at_the_last_recorded_row(hr_data):
    from stellarnet.train.models import dense_parameters

    model = build_model(ModelSpec(inputs=1, hidden=(4, 3)), SEED)
    history = train(model, hr_data.x, hr_data.y, learning_rate=0.05, epochs=30, engine="graph")
    final = np.concatenate([v.numpy().ravel() for _, _, v in dense_parameters(model)])
    recorded = history[[c for c in history.columns if c[0] in "wb" and "^" in c]].iloc[-1]
    np.testing.assert_array_equal(final, recorded.to_numpy(dtype=np.float32))


@pytest.mark.parametrize("record", [(), ("gradients",), ("activations",), ("biases", "gradients")])
def test_records_without_some_parameters(hr_data, record):
    history = train(
        build_model(HR_NET, SEED), hr_data.x, hr_data.y, learning_rate=0.1, epochs=25, record=record
    )
    biases = ["b^1_1", "b^1_2", "b^1_3", "b^1_4", "b^1_5", "b^1_6", "b^2_1"]
    expected = biases + ["gb" + c[1:] for c in biases] if "biases" in record else []
    expected += [f"a^1_{i}" for i in range(1, 7)] if "activations" in record else []
    assert list(history.columns) == ["epoch", "output", "loss", *expected]
    assert len(history) == 26 and np.isfinite(history["loss"]).all()


def test_record_every_and_groups(hr_data):
    full = train(
        build_model(HR_NET, SEED),
        hr_data.x,
        hr_data.y,
        learning_rate=0.1,
        epochs=20,
        engine="graph",
    )
    thin = train(
        build_model(HR_NET, SEED),
        hr_data.x,
        hr_data.y,
        learning_rate=0.1,
        epochs=20,
        engine="graph",
        record_every=5,
        record=("kernels",),
    )
    assert thin["epoch"].tolist() == [0, 5, 10, 15, 20]
    assert [c for c in thin.columns if "^" in c] == [f"w^1_{i}" for i in range(1, 7)] + [
        f"w^2_{i}" for i in range(1, 7)
    ]
    expected = full.set_index("epoch").loc[[0, 5, 10, 15, 20], thin.columns[1:]]
    np.testing.assert_array_equal(as_array(thin.set_index("epoch")), as_array(expected))


def test_activations_are_batch_means_before_the_update(hr_data):
    history = train(
        build_model(HR_NET, SEED),
        hr_data.x,
        hr_data.y,
        learning_rate=0.1,
        epochs=3,
        record=("kernels", "biases", "gradients", "activations"),
    )
    for epoch in (0, 1, 2):
        row = history.iloc[epoch]
        kernel = np.array([row[f"w^1_{i}"] for i in range(1, 7)])
        bias = np.array([row[f"b^1_{i}"] for i in range(1, 7)])
        hidden = np.maximum(hr_data.x.astype(float) @ kernel[None, :] + bias, 0).mean(axis=0)
        recorded = np.array([history.iloc[epoch + 1][f"a^1_{i}"] for i in range(1, 7)])
        np.testing.assert_allclose(recorded, hidden, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize(
    "bad",
    [{"record": ("weights",)}, {"record_every": 0}, {"engine": "fast"}, {"batch_size": 10**6}],
)
def test_bad_recorder_options_raise(hr_data, bad):
    with pytest.raises(ConfigError):
        train(build_model(HR_NET, SEED), hr_data.x, hr_data.y, learning_rate=0.1, epochs=2, **bad)


def test_minibatch_eager_and_graph_agree(hr_data):
    spec = ModelSpec(hidden=(4,))
    kwargs = dict(learning_rate=0.01, epochs=3, batch_size=500, shuffle_seed=7)
    eager = train(build_model(spec, SEED), hr_data.x, hr_data.y, engine="eager", **kwargs)
    graph = train(build_model(spec, SEED), hr_data.x, hr_data.y, engine="graph", **kwargs)
    np.testing.assert_allclose(as_array(eager), as_array(graph), rtol=0, atol=1e-6)
    again = train(build_model(spec, SEED), hr_data.x, hr_data.y, engine="eager", **kwargs)
    pd.testing.assert_frame_equal(eager, again, check_exact=True)


@pytest.mark.parametrize("optimizer", ["adam", "sgd"])
def test_stacked_members_equal_separate_runs(hr_data, optimizer):
    from stellarnet.train.stacked import StackedRecorder

    rates = [0.3, 0.1, 0.03]
    models = [build_model(HR_NET, SEED), build_model(HR_NET, 7)]
    members = [model_layers(models[0]), model_layers(models[1]), model_layers(models[0])]
    recorder = StackedRecorder(members, hr_data.x, hr_data.y, rates, optimizer=optimizer)
    rows, epochs = run_epochs(recorder, 15)
    stacked = recorder.frame(rows, epochs)
    for k, (rate, seed) in enumerate(zip(rates, [SEED, 7, SEED], strict=True)):
        alone = train(
            build_model(HR_NET, seed),
            hr_data.x,
            hr_data.y,
            learning_rate=rate,
            epochs=15,
            optimizer=optimizer,
        )
        mine = stacked[stacked["member"] == k].drop(columns="member").reset_index(drop=True)
        np.testing.assert_allclose(as_array(mine), as_array(alone), rtol=1e-5, atol=1e-7)


def test_a_diverging_member_leaves_the_others_finite(hr_data):
    from stellarnet.train.stacked import StackedRecorder

    members = [model_layers(build_model(HR_NET, SEED))] * 3
    recorder = StackedRecorder(
        members, hr_data.x, hr_data.y, [0.01, 1e3, 0.03], optimizer="sgd", groups=1
    )
    with pytest.raises(TrainingDiverged) as caught:
        run_epochs(recorder, 60, record_every=50)
    history = caught.value.history
    assert not np.isfinite(history[history["member"] == 1]["loss"].iloc[-1])
    healthy = history[(history["member"] != 1) & (history["epoch"] > 0)]
    assert np.isfinite(healthy.to_numpy(dtype=float)).all()


def test_members_train_on_past_a_diverging_one_with_their_own_numbers(hr_data):
    """stop_on_divergence=False: the diverging member's rows turn NaN, the others' equal
    their separate runs bit for bit, and first_divergence finds where it went."""
    from stellarnet.schema import first_divergence
    from stellarnet.train.stacked import train_stacked

    rates = [0.01, 1e3, 0.03]
    members = [model_layers(build_model(HR_NET, SEED))] * 3
    _, history = train_stacked(
        members, hr_data.x, hr_data.y, rates, epochs=30, optimizer="sgd",
        stop_on_divergence=False,
    )  # fmt: skip
    assert history.groupby("member").size().tolist() == [31, 31, 31]
    epoch, loss = first_divergence(history[history["member"] == 1])
    assert 0 < epoch <= 30 and not np.isfinite(loss)
    for member in (0, 2):
        mine = _member_equals_its_run_alone(hr_data, history, member, SEED, rates[member], 30)
        assert first_divergence(mine) is None


def _member_equals_its_run_alone(hr_data, history, member, seed, rate, epochs):
    """Assert a stacked (SGD) member's rows equal its run alone bit for bit; return them."""
    alone = train(
        build_model(HR_NET, seed), hr_data.x, hr_data.y,
        learning_rate=rate, epochs=epochs, optimizer="sgd",
    )  # fmt: skip
    mine = history[history["member"] == member].drop(columns="member")
    pd.testing.assert_frame_equal(mine.reset_index(drop=True), alone, check_exact=True)
    return mine


@pytest.mark.parametrize(
    ("hidden", "output_activation", "groups", "optimizer", "loss"),
    [
        ((6,), "linear", 1, "adam", "mse"),
        ((6,), "linear", 2, "adam", "mse"),
        ((5,), "relu", 3, "sgd", "half_mse"),  # the galaxy nets
        ((7,), "linear", 2, "adam", "half_mse"),
    ],
)
def test_wide_stacked_members_equal_separate_runs_bit_for_bit(
    hr_data, hidden, output_activation, groups, optimizer, loss
):
    """The wide formulation (1 input, one hidden layer) sums in Keras' order: exact numbers,
    whatever the grouping, activations included."""
    from stellarnet.train.stacked import StackedRecorder

    record = ("kernels", "biases", "gradients", "activations")
    spec, seeds = ModelSpec(hidden=hidden, output_activation=output_activation), (1, 2, 3, 4)
    rates = [0.3, 0.1, 0.03, 0.01]
    members = [model_layers(build_model(spec, seed)) for seed in seeds]
    recorder = StackedRecorder(
        members,
        hr_data.x,
        hr_data.y,
        rates,
        output_activation=output_activation,
        optimizer=optimizer,
        loss=loss,
        record=record,
        groups=groups,
    )
    assert recorder.is_wide and len(recorder.groups) == groups
    rows, epochs = run_epochs(recorder, 60)
    stacked = recorder.frame(rows, epochs)
    for k, (seed, rate) in enumerate(zip(seeds, rates, strict=True)):
        alone = train(
            build_model(spec, seed),
            hr_data.x,
            hr_data.y,
            learning_rate=rate,
            epochs=60,
            optimizer=optimizer,
            loss=loss,
            record=record,
        )
        mine = stacked[stacked["member"] == k].drop(columns="member").reset_index(drop=True)
        pd.testing.assert_frame_equal(mine, alone, check_exact=True)


def test_a_large_group_spreads_by_concatenation_with_each_members_own_numbers(hr_data):
    """More than SPREAD_BY_MATMUL members in one group: dz is spread by concatenation (no
    matmul over the group, no NaN to leak): every member equals its run alone bit for bit,
    beside a member that diverges."""
    from stellarnet.train.backprop import SPREAD_BY_MATMUL
    from stellarnet.train.stacked import train_stacked

    count = SPREAD_BY_MATMUL + 3
    rates = [0.01 * (1 + k % 4) for k in range(count)]
    rates[4] = 1e3  # diverges
    members = [model_layers(build_model(HR_NET, seed)) for seed in range(count)]
    _, history = train_stacked(
        members, hr_data.x, hr_data.y, rates, epochs=20, optimizer="sgd", groups=1,
        stop_on_divergence=False,
    )  # fmt: skip
    assert not np.isfinite(history[history["member"] == 4]["loss"].iloc[-1])
    for member in (0, 3, count - 1):
        _member_equals_its_run_alone(hr_data, history, member, member, rates[member], 20)


@pytest.mark.parametrize("hidden", [(6,), (4, 3)])
@pytest.mark.parametrize(
    "record", [("kernels",), ("biases", "gradients", "activations"), ("gradients",)]
)
def test_stacked_record_subsets_and_final_layers_match_separate_runs(hr_data, hidden, record):
    """The graph's flat record row maps back to each member's own columns, whatever is
    recorded, in both formulations (wide: 1-6-1; batched: 1-4-3-1), over uneven groups."""
    from stellarnet.train.stacked import StackedRecorder

    spec, seeds = ModelSpec(hidden=hidden), (1, 2, 3)
    rates = [0.05, 0.1, 0.02]
    members = [model_layers(build_model(spec, seed)) for seed in seeds]
    recorder = StackedRecorder(members, hr_data.x, hr_data.y, rates, record=record, groups=2)
    assert recorder.is_wide == (hidden == (6,))
    rows, epochs = run_epochs(recorder, 12, record_every=3)
    stacked = recorder.frame(rows, epochs)
    for k, (seed, rate) in enumerate(zip(seeds, rates, strict=True)):
        model = build_model(spec, seed)
        alone = train(
            model,
            hr_data.x,
            hr_data.y,
            learning_rate=rate,
            epochs=12,
            record=record,
            record_every=3,
        )
        mine = stacked[stacked["member"] == k].drop(columns="member").reset_index(drop=True)
        assert list(mine.columns) == list(alone.columns)
        np.testing.assert_allclose(as_array(mine), as_array(alone), rtol=1e-5, atol=1e-7)
        for (kernel, bias), layer in zip(
            recorder.final_layers()[k], model_layers(model), strict=True
        ):
            np.testing.assert_allclose(kernel, layer[0], rtol=1e-5, atol=1e-7)
            np.testing.assert_allclose(bias, layer[1], rtol=1e-5, atol=1e-7)


def test_stacked_eager_and_graph_engines_agree_over_uneven_groups(hr_data):
    """Groups of 2 and 3 members: the traced epoch traces one step per group size; the eager
    engine runs the same steps untraced. Same rows and final parameters, bit for bit."""
    from stellarnet.train.stacked import StackedRecorder

    members = [model_layers(build_model(ModelSpec(), s)) for s in range(5)]
    rates = [0.3, 0.1, 0.03, 0.01, 0.2]
    results = []
    for engine in ("eager", "graph"):
        recorder = StackedRecorder(members, hr_data.x, hr_data.y, rates, groups=2)
        assert recorder.groups == [(0, 2), (2, 5)]
        policy = dataclasses.replace(recorder.default_policy, engine=engine)
        rows, epochs = run_epochs(recorder, 12, policy)
        results.append((recorder.frame(rows, epochs), recorder.theta.numpy()))
    (eager, eager_theta), (graph, graph_theta) = results
    pd.testing.assert_frame_equal(eager, graph, check_exact=True)
    np.testing.assert_array_equal(eager_theta, graph_theta)


def test_default_groups_keep_each_groups_hidden_layer_within_group_bytes():
    from stellarnet.train.grouping import GROUP_BYTES, default_groups

    hr = 2242 * 6  # hidden values of one HR-net member on the shipped catalog
    expected = {1: 1, 2: 2, 3: 2, 8: 2, 96: 2, 97: 4, 192: 4, 193: 6, 512: 12}
    assert {k: default_groups(k, hr, 2) for k in expected} == expected
    assert default_groups(96, hr, 1) == 2  # one core: as few groups as the bound allows
    assert default_groups(96, 100, 2) == 2  # small layers: one group per core
    assert default_groups(3, GROUP_BYTES, 2) == 3  # never more groups than members
    for k in range(1, 300):
        count = default_groups(k, hr, 2)
        assert 1 <= count <= k
        assert count <= 2 or -(-k // count) * hr * 4 <= GROUP_BYTES


def test_stacked_groups_must_fit_the_members(hr_data):
    from stellarnet.train.stacked import StackedRecorder

    members = [model_layers(build_model(HR_NET, SEED))] * 2
    for bad in (0, 3, True):
        with pytest.raises(ConfigError, match="groups"):
            StackedRecorder(members, hr_data.x, hr_data.y, [0.1, 0.2], groups=bad)

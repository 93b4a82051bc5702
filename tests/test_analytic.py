"""Hand-derived backpropagation (stellarnet.train.analytic) against TensorFlow, check-gradients,
--init-from, local catalogs and row selection in configs, and the galaxy-size experiments."""

from __future__ import annotations

import dataclasses
import json
import re
import shutil

import numpy as np
import pandas as pd
import pytest

from stellarnet.cli import main
from stellarnet.data.registry import SHIPPED_CATALOG_DIR as CATALOG_DIR
from stellarnet.errors import CatalogError, ConfigError
from stellarnet.files import sha256_file
from stellarnet.params import parameter_names, read_initial_layers
from stellarnet.runs.config import load_experiment
from stellarnet.train import analytic
from stellarnet.train.analytic import backprop, gradients

GALAXY_CSV = CATALOG_DIR / "hst_jwst_sizes.csv"


def random_layers(rng, n_in, width, n_out):
    """Random kernels; biases <= 0 with some exactly 0, so that an all-zero input row gives
    hidden pre-activations exactly 0 (and, for ReLU, an output pre-activation exactly 0)."""
    b1 = -np.abs(rng.normal(size=width))
    b1[::2] = 0.0
    return [
        (rng.normal(size=(n_in, width)), b1),
        (rng.normal(size=(width, n_out)), np.zeros(n_out)),
    ]


def tape(layers, x, y, activation, output_activation, loss):
    """GradientTape gradients of a float64 Keras copy of the model (stellarnet.runs.gradcheck)."""
    from stellarnet.runs.gradcheck import float64_copy, tape_gradients
    from stellarnet.train.models import ModelSpec, build_model

    n_in, width = layers[0][0].shape
    spec = ModelSpec(
        inputs=n_in,
        hidden=(width,),
        outputs=layers[1][0].shape[1],
        activation=activation,
        output_activation=output_activation,
    )
    return tape_gradients(float64_copy(build_model(spec, seed=0)), layers, x, y, loss)


CASES = [  # n_in, width, n_out, hidden activation, output activation, loss, samples
    (1, 6, 1, "relu", "linear", "mse", 9),
    (1, 5, 1, "relu", "relu", "half_mse", 9),
    (1, 5, 1, "relu", "relu", "half_mse", 1),
    (3, 4, 1, "tanh", "linear", "mse", 7),
    (2, 1, 1, "linear", "relu", "half_mse", 5),
    (4, 7, 2, "relu", "tanh", "mse", 6),
    (2, 3, 1, "sigmoid", "sigmoid", "half_mse", 4),
    (1, 2, 1, "linear", "linear", "mse", 3),
]


@pytest.mark.parametrize("n_in, width, n_out, activation, output_activation, loss, n", CASES)
def test_analytic_gradients_match_float64_tape(
    n_in, width, n_out, activation, output_activation, loss, n
):
    rng = np.random.default_rng(width * 100 + n_in * 10 + n)
    layers = random_layers(rng, n_in, width, n_out)
    if output_activation == "relu":  # keep the output unit alive for most samples
        layers[1] = (np.abs(layers[1][0]), layers[1][1])
    x = rng.normal(size=(n, n_in))
    if n > 1:
        x[0] = 0.0  # z1 = b1 exactly: 0 for every other hidden unit
    y = rng.normal(size=(n, n_out))
    mine = gradients(layers, x, y, activation, output_activation, loss)
    theirs = tape(layers, x, y, activation, output_activation, loss)
    assert list(mine) == list(theirs)  # same names, same (history) order
    assert sum(value != 0 for value in mine.values()) > len(mine) // 2
    np.testing.assert_allclose(
        [mine[k] for k in mine], [theirs[k] for k in mine], rtol=1e-6, atol=1e-12
    )
    passed = backprop(layers, x, y, activation, output_activation, loss)
    if n == 1:
        return
    assert np.any(passed.z1 == 0)
    if activation == "relu":
        assert passed.z2[0, 0] == 0  # every hidden unit off for the zero row, b2 = 0


def test_relu_derivative_at_zero_is_tensorflows():
    """tf.nn.relu (Keras' "relu") passes no gradient at z = 0; H(0) = 1 would be caught."""
    import tensorflow as tf

    z = tf.constant([-1.0, 0.0, 2.0], dtype=tf.float64)
    with tf.GradientTape() as t:
        t.watch(z)
        out = tf.keras.activations.relu(z)
    np.testing.assert_array_equal(t.gradient(out, z).numpy(), [0.0, 0.0, 1.0])
    np.testing.assert_array_equal(analytic.DERIVATIVES["relu"](z.numpy()), [0.0, 0.0, 1.0])

    rng = np.random.default_rng(5)
    layers = random_layers(rng, 1, 4, 1)
    x = np.array([[0.0], [0.5], [1.0]])
    y = np.array([[1.0], [0.2], [0.3]])
    theirs = tape(layers, x, y, "relu", "linear", "mse")
    step = analytic.DERIVATIVES["relu"]
    try:
        analytic.DERIVATIVES["relu"] = lambda z: (z >= 0).astype(float)
        other = gradients(layers, x, y, "relu", "linear", "mse")
    finally:
        analytic.DERIVATIVES["relu"] = step
    assert not np.allclose([other[k] for k in theirs], list(theirs.values()), rtol=1e-6)


def test_assignment_formulas_for_one_sample():
    """dL/dw2_i = a_i (yhat - y), dL/dw1_i = (yhat - y) w2_i H(z_i) x for L = 1/2 (yhat - y)^2;
    Keras' mean squared error has no 1/2, so its gradients are twice as large."""
    w1, w2 = np.array([[0.8, -0.3, 0.5]]), np.array([[0.4], [0.9], [-0.7]])
    layers = [(w1, np.zeros(3)), (w2, np.zeros(1))]
    x, y = 0.949, 0.402
    z = w1[0] * x
    a = np.maximum(z, 0)
    yhat = a @ w2[:, 0]
    half = gradients(layers, [x], [y], "relu", "linear", "half_mse")
    np.testing.assert_allclose([half[f"g^2_{i}"] for i in (1, 2, 3)], a * (yhat - y))
    np.testing.assert_allclose(
        [half[f"g^1_{i}"] for i in (1, 2, 3)], (yhat - y) * w2[:, 0] * (z > 0) * x
    )
    np.testing.assert_allclose(half["gb^2_1"], yhat - y)
    full = gradients(layers, [x], [y], "relu", "linear", "mse")
    np.testing.assert_allclose(list(full.values()), 2 * np.array(list(half.values())))


def test_backprop_rejects_what_it_does_not_cover():
    rng = np.random.default_rng(0)
    layers = random_layers(rng, 1, 3, 1)
    with pytest.raises(ConfigError, match="one hidden layer"):
        backprop([*layers, layers[1]], np.ones((2, 1)), np.ones((2, 1)))
    with pytest.raises(ConfigError, match="do not fit a 1-3-1 net"):
        backprop(layers, np.ones((2, 2)), np.ones((2, 1)))
    with pytest.raises(ConfigError, match="softplus"):
        backprop(layers, np.ones((2, 1)), np.ones((2, 1)), activation="softplus")


# --- experiments on a small local catalog ---------------------------------------------------

EXPERIMENT = """
name = "tiny"
seed = 3
[catalog]
path = "tiny.csv"
[dataset]
features = [{ column = "x", transforms = ["minmax"] }]
target = { column = "y" }
[model]
hidden = [HIDDEN]
activation = "relu"
output_activation = "linear"
[training]
optimizer = "sgd"
loss = "mse"
learning_rate = 0.1
epochs = 3
"""


@pytest.fixture
def tiny(tmp_path):
    """A 12-row local catalog (min-max x = 0 in one row: z1 = 0 exactly at the start) and a
    config using it by path."""
    x = np.linspace(1.0, 3.0, 12)
    pd.DataFrame({"x": x, "y": 0.5 * x + 0.1}).to_csv(tmp_path / "tiny.csv", index=False)
    (tmp_path / "tiny.toml").write_text(EXPERIMENT.replace("HIDDEN", "4"))
    return tmp_path / "tiny.toml"


def test_check_gradients_cli_passes_and_reports(tiny, capsys):
    assert main(["-q", "check-gradients", str(tiny), "--epochs", "2"]) == 0
    out = capsys.readouterr().out
    assert "OK: analytic gradients agree" in out
    assert re.search(r"pre-activations exactly 0: [1-9]\d* of", out)  # the x = 0 row
    for group in ("g^1", "gb^1", "g^2", "gb^2"):
        assert f"\n  {group} " in out


def test_check_gradients_cli_fails_on_a_wrong_derivation(tiny, capsys, monkeypatch):
    monkeypatch.setitem(analytic.DERIVATIVES, "relu", lambda z: (z >= 0).astype(float))
    assert main(["-q", "check-gradients", str(tiny), "--epochs", "1"]) == 1
    out = capsys.readouterr().out
    assert "FAILED" in out and "gb^1 vs tape float64" in out


def test_check_gradients_cli_errors(tiny, capsys):
    assert main(["-q", "check-gradients", str(tiny.parent / "nope.toml")]) == 1
    assert "no experiment config" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit_info:
        main(["check-gradients", str(tiny), "--tolerance", "-1"])
    assert exit_info.value.code == 2
    deep = tiny.parent / "deep.toml"
    deep.write_text(EXPERIMENT.replace("HIDDEN", "3, 3"))
    assert main(["-q", "check-gradients", str(deep)]) == 1
    assert "one hidden layer" in capsys.readouterr().err


def test_experiment_with_jit_is_recorded_and_close_to_the_default(tiny, tmp_path):
    """--jit (XLA) rounds differently: said in run.json, numbers within 1e-5."""
    import json

    tables = {}
    for flags in ([], ["--jit"]):
        results = tmp_path / ("jit" if flags else "default")
        argv = ["-q", "experiment", str(tiny), "--results", str(results), "--epochs", "30"]
        assert main([*argv, *flags]) == 0
        folder = results / "tiny" / ("lr=0.1,epochs=30,jit" if flags else "lr=0.1,epochs=30")
        assert json.loads((folder / "run.json").read_text())["jit_compile"] is bool(flags)
        tables[bool(flags)] = pd.read_csv(folder / "history.csv")
    values = [table.drop(columns="epoch").to_numpy() for table in tables.values()]
    np.testing.assert_allclose(values[1], values[0], rtol=1e-5, atol=1e-6)


def test_init_from_history_and_one_row_csv(tiny, tmp_path, capsys):
    results = tmp_path / "results"
    assert main(["-q", "experiment", str(tiny), "--results", str(results)]) == 0
    first = pd.read_csv(results / "tiny" / "lr=0.1" / "history.csv")
    # A one-row table of new starting weights, written as a student would.
    names = parameter_names((1, 4, 1), "w") + parameter_names((1, 4, 1), "b")
    start = pd.DataFrame([np.linspace(-0.5, 0.5, len(names))], columns=names)
    start.to_csv(tmp_path / "start.csv", index=False)
    capsys.readouterr()
    assert (
        main(
            [
                "-q",
                "experiment",
                str(tiny),
                "--results",
                str(results),
                "--force",
                "--init-from",
                str(tmp_path / "start.csv"),
            ]
        )
        == 0
    )
    sha = sha256_file(tmp_path / "start.csv")
    replay = results / "tiny" / f"lr=0.1,init=start_{sha[:6]}"  # beside the first run
    history = pd.read_csv(replay / "history.csv")
    np.testing.assert_allclose(
        history.loc[0, names].to_numpy(float), start.loc[0, names].to_numpy(float), rtol=1e-7
    )
    assert not np.allclose(history.loc[0, names], first.loc[0, names])
    record = json.loads((replay / "run.json").read_text())
    assert record["init_from"]["path"].endswith("start.csv")
    assert len(record["init_from"]["sha256"]) == 64
    # The epoch = 0 row of a whole history table gives that run's start back.
    layers = read_initial_layers(replay / "history.csv", (1, 4, 1))
    np.testing.assert_allclose(
        layers[0][0].ravel(), start.loc[0, names[:4]].to_numpy(float), rtol=1e-7
    )


def test_init_from_names_missing_and_extra_columns(tiny, tmp_path, capsys):
    names = parameter_names((1, 6, 1), "w") + parameter_names((1, 6, 1), "b")
    pd.DataFrame([np.zeros(len(names))], columns=names).to_csv(tmp_path / "wide.csv", index=False)
    with pytest.raises(ConfigError, match=r"extra parameter column\(s\) \['w\^1_5', 'w\^1_6'"):
        read_initial_layers(tmp_path / "wide.csv", (1, 4, 1))
    narrow = pd.DataFrame([[0.1, 0.2]], columns=["w^1_1", "b^1_1"])
    narrow.to_csv(tmp_path / "narrow.csv", index=False)
    with pytest.raises(ConfigError, match=r"missing parameter column\(s\) \['w\^1_2'"):
        read_initial_layers(tmp_path / "narrow.csv", (1, 4, 1))
    two = pd.DataFrame([np.zeros(len(names))] * 2, columns=names)
    two.to_csv(tmp_path / "two.csv", index=False)
    with pytest.raises(ConfigError, match="2 rows and no epoch column"):
        read_initial_layers(tmp_path / "two.csv", (1, 6, 1))
    assert (
        main(
            [
                "-q",
                "experiment",
                str(tiny),
                "--results",
                str(tmp_path / "r"),
                "--init-from",
                str(tmp_path / "wide.csv"),
            ]
        )
        == 1
    )
    err = capsys.readouterr().err
    assert "does not fit the 1-4-1 model" in err and "b^1_6" in err
    assert not (tmp_path / "r" / "tiny").exists()


def test_config_catalog_path_and_rows(tmp_path):
    config = load_experiment("galaxy_sizes_single")
    assert config.query is None and config.catalog_path == GALAXY_CSV.resolve()
    assert config.rows == (0,) and config.shuffle is False
    assert config.to_dict()["dataset"]["rows"] == [0]
    bad = tmp_path / "bad.toml"
    text = (config.source).read_text()
    for rows, message in (
        ("[-1]", "rows must be"),
        ("[0, 0]", "rows must be"),
        ("[]", "rows must be"),
    ):
        bad.write_text(text.replace("rows = [0]", f"rows = {rows}"))
        with pytest.raises(ConfigError, match=message):
            load_experiment(bad)
    bad.write_text(text.replace("shuffle = false", "shuffle = 0"))
    with pytest.raises(ConfigError, match="shuffle must be true or false"):
        load_experiment(bad)


def test_rows_past_the_end_and_changed_catalog(tmp_path):
    from stellarnet.runs.experiment import load_data

    config = load_experiment("galaxy_sizes_single")
    with pytest.raises(ConfigError, match=r"rows \[71\] are past the end"):
        load_data(dataclasses.replace(config, rows=(71,)))
    shutil.copy(GALAXY_CSV, tmp_path / "hst_jwst_sizes.csv")
    shutil.copy(GALAXY_CSV.with_suffix(".json"), tmp_path / "hst_jwst_sizes.json")
    with open(tmp_path / "hst_jwst_sizes.csv", "a") as handle:
        handle.write("\n0.5,0.5")
    with pytest.raises(CatalogError, match="does not match its provenance"):
        load_data(config.with_overrides(catalog_path=tmp_path / "hst_jwst_sizes.csv"))


# --- the galaxy-size experiments ------------------------------------------------------------


def test_shipped_galaxy_catalog_provenance():
    from stellarnet.files import sha256_file

    record = json.loads(GALAXY_CSV.with_suffix(".json").read_text())
    frame = pd.read_csv(GALAXY_CSV)
    assert record["sha256"] == sha256_file(GALAXY_CSV)
    assert record["rows"] == len(frame) == 71
    assert set(record["columns"]) == set(frame.columns) == {"HST_reff", "JWST_reff_size"}
    assert all(column["unit"] == "arcsec" for column in record["columns"].values())
    assert frame.iloc[0].tolist() == pytest.approx([0.949, 0.402109523])


def test_galaxy_single_records_the_exact_activations(tmp_path):
    from stellarnet.runs.experiment import run_experiment
    from stellarnet.viz.galaxy import fit_figure, loss_steps_figure

    result = run_experiment(load_experiment("galaxy_sizes_single"), tmp_path)
    history = result.history
    assert result.record["dataset"]["rows_kept"] == 1
    assert result.history["loss"].iloc[-1] < result.history["loss"].iloc[1]
    sizes = (1, 5, 1)
    from stellarnet.params import layers_from_row

    for k in range(1, len(history)):  # row k: activations and gradients of row k-1's weights
        layers = layers_from_row(history.iloc[k - 1], sizes)
        passed = backprop(layers, [[0.949]], [[0.402109523]], "relu", "relu", "half_mse")
        recorded = history.iloc[k]
        for name, value in passed.activations().items():
            assert recorded[name] == pytest.approx(value, rel=1e-6, abs=1e-7)
        for name, value in passed.named().items():
            assert recorded[name] == pytest.approx(value, rel=1e-4, abs=1e-8)
    for path in (fit_figure(result.folder), loss_steps_figure(result.folder)):
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_galaxy_sizes_trains_from_its_seed(tmp_path):
    """The config's seed gives a live output unit (the default seed 1453 gives a dead one)."""
    from stellarnet.runs.experiment import load_data, train_config

    config = load_experiment("galaxy_sizes").with_overrides(epochs=2)
    _, dataset = load_data(config)
    assert dataset.rows == 71
    history = train_config(config, dataset)
    assert history["loss"].iloc[2] < history["loss"].iloc[1]
    dead = train_config(config.with_overrides(seed=1453), dataset)
    assert (dead.filter(like="g^").iloc[1:] == 0).all().all()


def test_record_activations_flag_adds_the_group_once():
    from stellarnet.cli import build_parser, run_config

    def record(argv):
        return run_config(build_parser().parse_args(argv)).training.record

    assert record(["experiment", "hr_relation", "--record-activations"]) == (
        "kernels",
        "biases",
        "gradients",
        "activations",
    )
    assert record(["experiment", "hr_relation"]) == ("kernels", "biases", "gradients")
    single = record(["experiment", "galaxy_sizes_single", "--record-activations"])
    assert single.count("activations") == 1
    args = build_parser().parse_args(
        ["experiment", "galaxy_sizes", "--record-activations", "--init-from", "start.csv"]
    )
    assert args.record_activations and args.init_from == "start.csv"

"""Beyond one relation: splits, mini-batches, metrics, dropout/L2, committees, compare, and
clear errors for configs that do not fit the data.

Everything runs on a small SYNTHETIC four-band catalog (120 rows) with tiny nets and a few
epochs, so the whole module takes seconds.
"""

from __future__ import annotations

import dataclasses
import json
import re

import numpy as np
import pandas as pd
import pytest

from stellarnet.cli import main
from stellarnet.data.datasets import ColumnSpec, Split, make_dataset
from stellarnet.data.synthetic import bolometric_4band
from stellarnet.errors import ConfigError, ResultsExist
from stellarnet.params import forward, layers_from_row
from stellarnet.runs.config import load_experiment

ROWS = 120
FEATURES = ["f1", "f2", "f3", "f4"]


@pytest.fixture(scope="module")
def catalog(tmp_path_factory) -> str:
    """A small SYNTHETIC four-band catalog (no provenance JSON: a user's own file)."""
    path = tmp_path_factory.mktemp("catalog") / "four_band.csv"
    bolometric_4band(rows=ROWS, seed=3).to_csv(path, index=False)
    return str(path)


def write_config(
    folder,
    catalog: str,
    name: str = "tiny",
    *,
    features=FEATURES,
    split: str = "{ train = 0.6, validation = 0.2, test = 0.2 }",
    model: str = "hidden = [3]",
    training: str = "batch_size = 16",
) -> str:
    """Write an experiment TOML into ``folder``; return its path."""
    path = folder / f"{name}.toml"
    path.write_text(
        f"""
name = "{name}"
seed = 5

[catalog]
path = "{catalog}"

[dataset]
features = {json.dumps(list(features))}
target = "y"
split = {split}

[model]
{model}

[training]
learning_rate = 0.05
epochs = 3
{training}
""",
        encoding="utf-8",
    )
    return str(path)


def mse(y, yhat) -> float:
    return float(np.mean((np.ravel(y) - np.ravel(yhat)) ** 2))


# --- splits -------------------------------------------------------------------------------


def test_split_sizes_rows_and_training_only_scaling(catalog):
    frame = pd.read_csv(catalog)
    split = Split(train=0.6, validation=0.2, test=0.2)
    assert split.sizes(ROWS) == (72, 24, 24)
    assert Split(train=0.9, test=0.1).sizes(5) == (4, 0, 1)  # a non-zero share gets a row
    features = [ColumnSpec("f1", ("minmax",)), ColumnSpec("f2")]
    data = make_dataset(frame, features, ColumnSpec("y"), seed=1, split=split)
    assert (len(data.y), len(data.y_val), len(data.y_test)) == (72, 24, 24)
    # Every catalog row lands in exactly one part.
    y_all = np.concatenate([data.y, data.y_val, data.y_test]).ravel()
    np.testing.assert_allclose(np.sort(y_all), np.sort(frame["y"].to_numpy(np.float32)))
    # min-max is fitted on the training rows: exactly [0, 1] there, the same map elsewhere.
    assert data.x[:, 0].min() == 0 and data.x[:, 0].max() == 1
    low, high = (data.transform_params["f1"][0][k] for k in ("min", "max"))
    order = np.random.default_rng(1).permutation(ROWS)
    raw_f1 = frame["f1"].to_numpy()[order]
    np.testing.assert_allclose(data.x_test[:, 0], (raw_f1[96:] - low) / (high - low), rtol=1e-6)
    np.testing.assert_allclose(data.x[:, 1], frame["f2"].to_numpy()[order][:72], rtol=1e-7)


# --- mini-batches -------------------------------------------------------------------------


def test_minibatch_rows_are_means_over_steps_with_end_of_epoch_parameters(catalog):
    """A linear 4-1 net with plain SGD, replayed in numpy step by step."""
    import tensorflow as tf

    from stellarnet.train.loop import train
    from stellarnet.train.models import ModelSpec, build_model, model_layers

    frame = pd.read_csv(catalog)
    data = make_dataset(
        frame,
        [ColumnSpec(c) for c in FEATURES],
        ColumnSpec("y"),
        seed=2,
        split=Split(train=0.8, validation=0.2),
    )
    model = build_model(ModelSpec(inputs=4, hidden=()), 4)
    ((kernel, bias),) = [(k.astype(float), b.astype(float)) for k, b in model_layers(model)]
    lr, batch, seed = 0.1, 40, 11  # 96 rows: steps of 40, 40 and 16 rows
    history = train(
        model,
        data.x,
        data.y,
        learning_rate=lr,
        epochs=2,
        optimizer="sgd",
        batch_size=batch,
        shuffle_seed=seed,
        validation=(data.x_val, data.y_val),
        engine="eager",
    )
    assert list(history["epoch"]) == [0, 1, 2]
    assert "val_loss" in history
    x, y = data.x.astype(float), data.y.astype(float)
    for epoch in (1, 2):
        order = tf.random.experimental.stateless_shuffle(
            tf.range(len(y)), tf.constant([seed, epoch], tf.int64)
        ).numpy()
        outputs, losses, grads = [], [], []
        for start in range(0, len(y), batch):
            rows = order[start : start + batch]
            residual = x[rows] @ kernel + bias - y[rows]
            outputs.append(np.mean(x[rows] @ kernel + bias))
            losses.append(np.mean(residual**2))
            g_kernel, g_bias = 2 * x[rows].T @ residual / len(rows), 2 * residual.sum(0) / len(rows)
            grads.append(np.concatenate([g_kernel.ravel(), g_bias]))
            kernel, bias = kernel - lr * g_kernel, bias - lr * g_bias
        row = history.iloc[epoch]
        assert row["output"] == pytest.approx(np.mean(outputs), rel=1e-5)
        assert row["loss"] == pytest.approx(np.mean(losses), rel=1e-5)
        recorded = row[[f"g^1_{i}" for i in range(1, 5)] + ["gb^1_1"]].to_numpy(float)
        np.testing.assert_allclose(recorded, np.mean(grads, axis=0), rtol=1e-4, atol=1e-6)
        np.testing.assert_allclose(
            row[[f"w^1_{i}" for i in range(1, 5)]].to_numpy(float), kernel.ravel(), rtol=1e-5
        )
        assert row["val_loss"] == pytest.approx(
            mse(data.y_val, data.x_val @ kernel + bias), rel=1e-5
        )


# --- run.json test metrics, dropout and L2 ------------------------------------------------


def test_experiment_records_val_loss_and_test_metrics(catalog, tmp_path, capsys):
    config = write_config(tmp_path, catalog)
    assert main(["-q", "experiment", config, "--results", str(tmp_path / "results")]) == 0
    assert "test: MSE" in capsys.readouterr().out
    folder = tmp_path / "results" / "tiny" / "lr=0.05"
    record = json.loads((folder / "run.json").read_text())
    history = pd.read_parquet(folder / "history.parquet")
    assert history["val_loss"].notna().all()
    assert record["dataset"]["rows_test"] == 24
    # Independent check: the last row's parameters, evaluated in float64 on the test rows.
    from stellarnet.runs.experiment import load_data

    _, data = load_data(load_experiment(config))
    yhat, _ = forward(layers_from_row(history.iloc[-1], (4, 3, 1)), data.x_test)
    y = data.y_test.astype(float).ravel()
    metrics = record["test_metrics"]
    assert metrics["rows"] == 24
    assert metrics["mse"] == pytest.approx(mse(y, yhat), rel=1e-5)
    assert metrics["mae"] == pytest.approx(np.mean(np.abs(y - yhat.ravel())), rel=1e-5)
    assert metrics["r2"] == pytest.approx(1 - mse(y, yhat) / np.var(y), rel=1e-5)
    assert metrics["rmse"] == pytest.approx(np.sqrt(metrics["mse"]))


def test_l2_penalty_is_in_the_loss_and_dropout_is_off_at_row_0(catalog):
    from stellarnet.train.loop import train
    from stellarnet.train.models import ModelSpec, build_model

    frame = pd.read_csv(catalog)
    data = make_dataset(frame, [ColumnSpec(c) for c in FEATURES], ColumnSpec("y"), seed=2)
    spec = ModelSpec(inputs=4, hidden=(5,), l2=0.03, dropout=0.5)
    model = build_model(spec, 8)
    history = train(model, data.x, data.y, learning_rate=0.01, epochs=2, engine="eager")
    row0 = history.iloc[0]
    layers = layers_from_row(row0, spec.layer_sizes)
    yhat, _ = forward(layers, data.x)
    penalty = 0.03 * sum(float(np.sum(kernel**2)) for kernel, _ in layers)
    assert penalty > 1e-3
    assert row0["loss"] == pytest.approx(mse(data.y, yhat) + penalty, rel=1e-5)
    assert np.isfinite(history["loss"]).all()
    # Without L2 (same seed, same initial weights) row 0 is the plain MSE.
    plain = train(
        build_model(dataclasses.replace(spec, l2=0.0), 8),
        data.x,
        data.y,
        learning_rate=0.01,
        epochs=1,
        engine="eager",
    )
    assert plain["loss"].iloc[0] == pytest.approx(mse(data.y, yhat), rel=1e-5)


# --- committees ---------------------------------------------------------------------------


def test_bootstrap_counts_are_seeded_draws_with_replacement():
    from stellarnet.runs.committee import bootstrap_counts

    counts = bootstrap_counts(50, 3, seed=7)
    assert counts.shape == (3, 50) and (counts.sum(axis=1) == 50).all()
    draws = np.random.default_rng(7).integers(0, 50, size=(3, 50))
    np.testing.assert_array_equal(counts[1], np.bincount(draws[1], minlength=50))
    assert (counts == 0).any(axis=1).all()  # each sample leaves rows out
    assert not np.array_equal(counts[0], counts[1])


def test_committee_engines_agree_and_members_start_from_their_seeds(catalog, tmp_path):
    from stellarnet.runs.committee import initial_layers, train_committee
    from stellarnet.runs.experiment import load_data
    from stellarnet.train.models import build_model, model_layers

    config = load_experiment(
        write_config(
            tmp_path, catalog, split="{ train = 0.8, test = 0.2 }", training='optimizer = "adam"'
        )
    )
    _, data = load_data(config)
    starts = initial_layers(config, [5, 6])
    for (k0, b0), (k1, _), (k_single, b_single) in zip(
        starts[0], starts[1], model_layers(build_model(config.model, config.seed)), strict=True
    ):
        np.testing.assert_array_equal(k0, k_single)  # member 0 = the single run's start
        np.testing.assert_array_equal(b0, b_single)
        assert not np.array_equal(k0, k1)
    stacked = train_committee(config, data, 2, engine="stacked")
    sequential = train_committee(config, data, 2, engine="sequential")
    assert (stacked.engine, sequential.engine) == ("stacked", "sequential")
    np.testing.assert_array_equal(stacked.counts, sequential.counts)
    for one, other in zip(stacked.members, sequential.members, strict=True):
        for (k_a, b_a), (k_b, b_b) in zip(one, other, strict=True):
            np.testing.assert_allclose(k_a, k_b, rtol=1e-4, atol=1e-6)
            np.testing.assert_allclose(b_a, b_b, rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(stacked.history["loss"], sequential.history["loss"], rtol=1e-5)
    assert list(stacked.history["member"].unique()) == [0, 1]
    mean, spread = stacked.predict(data.x_test)
    outputs = [forward(layers, data.x_test)[0] for layers in stacked.members]
    np.testing.assert_allclose(mean, np.mean(outputs, axis=0))
    np.testing.assert_allclose(spread, np.std(outputs, axis=0, ddof=1))


def test_stacked_committee_refuses_minibatch_configs(catalog, tmp_path):
    from stellarnet.runs.committee import train_committee
    from stellarnet.runs.experiment import load_data

    config = load_experiment(write_config(tmp_path, catalog))
    _, data = load_data(config)
    with pytest.raises(ConfigError, match="sequential"):
        train_committee(config, data, 2, engine="stacked")
    with pytest.raises(ConfigError, match="at least 2 members"):
        train_committee(config, data, 1)


# --- compare ------------------------------------------------------------------------------


def test_compare_table_predictions_and_figures(catalog, tmp_path, capsys):
    from sklearn.linear_model import LinearRegression
    from sklearn.metrics import mean_squared_error, r2_score

    from stellarnet.runs.experiment import load_data

    config = write_config(tmp_path, catalog, split="{ train = 0.8, test = 0.2 }")
    results = str(tmp_path / "results")
    args = ["-q", "compare", config, "--results", results, "--committee", "2", "--epochs", "2"]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "knn" in out and "committee" in out and "carved out" in out
    folder = tmp_path / "results" / "tiny" / "compare"
    table = pd.read_csv(folder / "metrics.csv")
    assert list(table["model"]) == ["network", "committee", "linear", "knn", "mean"]
    metrics = table.set_index("model")
    predictions = pd.read_csv(folder / "predictions.csv")
    assert len(predictions) == 24
    for model in metrics.index:  # the table is recomputable from the saved predictions
        assert metrics.loc[model, "mse"] == pytest.approx(
            mean_squared_error(predictions["y_true"], predictions[model]), rel=1e-9
        )
        assert metrics.loc[model, "r2"] == pytest.approx(
            r2_score(predictions["y_true"], predictions[model]), rel=1e-9
        )
        assert (folder / f"pred_vs_true_{model}.png").stat().st_size > 1000
    # The linear baseline is scikit-learn's least squares on the config's arrays.
    _, data = load_data(load_experiment(config))
    fitted = LinearRegression().fit(data.x, data.y.ravel())
    assert metrics.loc["linear", "mse"] == pytest.approx(
        mse(data.y_test.astype(float), fitted.predict(data.x_test).astype(float)), rel=1e-9
    )
    # The network row is the network run's own test metrics; k is the validation argmin.
    record = json.loads((folder / "compare.json").read_text())
    network = json.loads((folder / "network" / "run.json").read_text())
    assert metrics.loc["network", "mse"] == pytest.approx(network["test_metrics"]["mse"])
    knn = record["compare"]["knn"]
    scores = {int(k): v for k, v in knn["validation_mse_by_k"].items()}
    assert knn["k"] == min(scores, key=scores.get) and max(scores) <= 0.8 * 96
    committee = pd.read_parquet(folder / "committee" / "history.parquet")
    assert sorted(committee["member"].unique()) == [0, 1]
    assert record["compare"]["committee"]["engine"] == "sequential"  # batch_size in config
    assert (predictions["committee_std"] > 0).all()
    with pytest.raises(ResultsExist):
        from stellarnet.runs.compare import run_compare

        run_compare(load_experiment(config), results)


# --- configs that do not fit the data -----------------------------------------------------


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        ({"features": ["f1", "f2", "f3", "f9"]}, r"\[dataset\].*missing column\(s\) \['f9'\]"),
        ({"model": "hidden = [3]\ninputs = 3"}, r"\[model\] inputs = 3 but \[dataset\] has 4"),
        ({"training": "batch_size = 80"}, r"\[training\] batch_size = 80 is larger than the 72 "),
        ({"split": "{ train = 0.7, test = 0.2 }"}, r"split fractions must sum to 1"),
    ],
)
def test_configs_that_do_not_fit_the_data(catalog, tmp_path, capsys, changes, expected):
    config = write_config(tmp_path, catalog, "misfit", **changes)
    assert main(["-q", "experiment", config, "--results", str(tmp_path / "r")]) == 1
    message = capsys.readouterr().err
    assert message.startswith("stellarnet: error: ") and "misfit.toml" in message
    assert re.search(expected, message), message


def test_compare_needs_a_test_split_and_a_real_committee(catalog, tmp_path, capsys):
    config = write_config(tmp_path, catalog, "notest", split="{ train = 0.8, validation = 0.2 }")
    assert main(["-q", "compare", config, "--results", str(tmp_path / "r")]) == 1
    assert "notest.toml" in capsys.readouterr().err
    assert (
        main(["-q", "compare", config, "--results", str(tmp_path / "r"), "--committee", "1"]) == 1
    )
    assert "at least 2 members" in capsys.readouterr().err

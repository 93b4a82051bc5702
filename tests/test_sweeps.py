"""Learning-rate sweeps: protocols, vectorised vs sequential, results folders."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from stellarnet.errors import ConfigError, ResultsExist
from stellarnet.runs.config import load_experiment
from stellarnet.runs.experiment import load_data
from stellarnet.runs.sweep import run_sweep, summarize_sweep, train_sweep


@pytest.fixture(scope="module")
def hr():
    config = load_experiment("hr_relation").with_overrides(epochs=8)
    return config, load_data(config)[1]


@pytest.mark.parametrize("init", ["same", "notebook"])
def test_vectorised_sweep_equals_sequential(hr, init):
    config, data = hr
    config = config.with_overrides(init=init)
    vectorised = train_sweep(config, data, [0.1, 0.3])
    sequential = train_sweep(config, data, [0.1, 0.3], vectorize=False)
    np.testing.assert_allclose(
        vectorised.to_numpy(float), sequential.to_numpy(float), rtol=1e-5, atol=1e-7
    )
    assert vectorised["lr"].tolist() == [0.1] * 9 + [0.3] * 9


def test_same_init_matches_single_runs(hr):
    from stellarnet.runs.experiment import train_config

    config, data = hr
    long = train_sweep(config, data, [0.1, 0.3])
    for lr in (0.1, 0.3):
        single = train_config(config.with_overrides(learning_rate=lr), data)
        part = long[long["lr"] == lr].drop(columns="lr").reset_index(drop=True)
        np.testing.assert_allclose(
            part.to_numpy(float), single.to_numpy(float), rtol=1e-5, atol=1e-7
        )


def test_notebook_init_is_clone_model_in_order(hr):
    import keras

    from stellarnet.train.models import build_model

    config, data = hr
    long = train_sweep(config.with_overrides(init="notebook"), data, [0.3, 0.1])
    # Seed Keras, then build: the notebook's first cell.
    base = build_model(config.model, config.seed)
    first, second = (keras.models.clone_model(base) for _ in range(2))
    for lr, clone in ((0.3, first), (0.1, second)):
        row = long[(long["lr"] == lr) & (long["epoch"] == 0)].iloc[0]
        kernel = clone.layers[0].kernel.numpy().ravel()
        assert [row[f"w^1_{i}"] for i in range(1, 7)] == kernel.tolist()
    w_first = long[(long["lr"] == 0.3) & (long["epoch"] == 0)]["w^1_1"].item()
    w_second = long[(long["lr"] == 0.1) & (long["epoch"] == 0)]["w^1_1"].item()
    assert w_first != w_second


def test_duplicate_rates_rejected(hr):
    config, data = hr
    with pytest.raises(ConfigError, match="distinct"):
        train_sweep(config, data, [0.1, 0.1])


def test_run_sweep_writes_long_table_and_rate_folders(hr, tmp_path):
    config, _ = hr
    result = run_sweep(config, [0.1, 0.3], tmp_path)
    folder = tmp_path / "hr_relation" / "sweep-lr=0.1,0.3"
    assert result.folder == folder
    long = pd.read_parquet(folder / "history.parquet")
    assert long.columns[0] == "lr"
    pd.testing.assert_frame_equal(long, pd.read_csv(folder / "history.csv"), check_exact=True)
    record = json.loads((folder / "run.json").read_text())
    assert record["learning_rates"] == [0.1, 0.3] and record["init"] == "same"
    for lr in ("0.1", "0.3"):
        one = pd.read_parquet(folder / f"lr={lr}" / "history.parquet")
        expected = long[long["lr"] == float(lr)].drop(columns="lr").reset_index(drop=True)
        pd.testing.assert_frame_equal(one, expected, check_exact=True)
        sub = json.loads((folder / f"lr={lr}" / "run.json").read_text())
        assert sub["config"]["training"]["learning_rate"] == float(lr)
    assert (folder / "loss.png").stat().st_size > 0
    with pytest.raises(ResultsExist):
        run_sweep(config, [0.1, 0.3], tmp_path)


def test_summarize_sweep_flags_monotonic_descent():
    long = pd.DataFrame(
        {
            "lr": [0.1] * 4 + [0.3] * 4,
            "epoch": [0, 1, 2, 3] * 2,
            "loss": [5.0, 5.0, 4.0, 3.0, 5.0, 5.0, 2.0, 2.5],
        }
    )
    summary = {row["lr"]: row["monotonic"] for row in summarize_sweep(long)}
    assert summary == {0.1: True, 0.3: False}

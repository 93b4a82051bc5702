"""The results folder: results/<experiment>/lr=<lr>/ with history.parquet, history.csv,
run.json and loss.png; no overwrite without force; the CLI end to end."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import platform
import stat

import numpy as np
import pandas as pd
import pytest

from stellarnet.cli import main
from stellarnet.data.registry import PROJECT_ROOT
from stellarnet.errors import ResultsExist
from stellarnet.results.history import load_history
from stellarnet.runs.experiment import run_experiment, run_folder

RUN_FILES = {"history.parquet", "history.csv", "run.json", "loss.png", "loss.pdf"}


def sha256(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def state(folder) -> dict[str, tuple[bytes, int]]:
    """Every file in ``folder`` with its bytes and modification time."""
    return {p.name: (p.read_bytes(), p.stat().st_mtime_ns) for p in sorted(folder.iterdir())}


@pytest.fixture(scope="module")
def run_lr03(hr_config, tmp_path_factory):
    """One recorded run, lr 0.3, 3 epochs, into a fresh results folder."""
    results = tmp_path_factory.mktemp("run") / "results"
    config = hr_config.with_overrides(learning_rate=0.3, epochs=3)
    return results, config, run_experiment(config, results)


def test_run_writes_the_four_files_in_the_lr_folder(run_lr03):
    results, _, result = run_lr03
    assert result.folder == results / "hr_relation" / "lr=0.3"
    assert {p.name for p in result.folder.iterdir()} == RUN_FILES
    assert (result.folder / "loss.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # Nothing else left behind (no staging folders).
    assert [p.name for p in (results / "hr_relation").iterdir()] == ["lr=0.3"]


def test_csv_and_parquet_hold_the_same_numbers_exactly(run_lr03):
    _, _, result = run_lr03
    parquet = load_history(result.folder / "history.parquet")
    csv = load_history(result.folder / "history.csv")
    pd.testing.assert_frame_equal(parquet, result.history, check_exact=True)
    pd.testing.assert_frame_equal(csv, result.history, check_exact=True)
    assert parquet["epoch"].tolist() == [0, 1, 2, 3]


def test_run_json_says_where_the_table_came_from(run_lr03):
    _, config, result = run_lr03
    record = json.loads((result.folder / "run.json").read_text())
    assert record == json.loads(json.dumps(result.record, default=str))
    assert record["config"] == json.loads(json.dumps(config.to_dict(), default=str))
    assert record["config"]["training"] == {
        "optimizer": "adam",
        "loss": "mse",
        "learning_rate": 0.3,
        "epochs": 3,
        "record": ["kernels", "biases", "gradients"],
        "record_every": 1,
        "engine": "auto",
        "init": "same",
        "batch_size": None,
        "patience": None,
        "metrics": "regression",
    }
    assert record["seed"] == record["config"]["seed"] == 1453
    assert "seed" not in record["config"]["model"]  # one seed: the experiment's

    catalog = PROJECT_ROOT / record["catalog_path"]
    assert catalog == config.catalog_path
    assert record["catalog_sha256"] == sha256(catalog)

    versions = record["versions"]
    assert versions["python"] == platform.python_version()
    for library in ("numpy", "pandas", "pyarrow", "tensorflow", "keras", "matplotlib"):
        assert versions[library][0].isdigit(), (library, versions[library])
    import keras

    assert versions["keras"] == keras.__version__

    assert 0 < record["wall_time_s"] < 600
    assert record["loss_first"] == result.history["loss"].iloc[0]
    assert record["loss_last"] == result.history["loss"].iloc[-1]
    assert record["dataset"]["rows_kept"] == 2242 and record["dataset"]["rows_dropped"] == 0


def test_default_catalog_is_loaded_offline_and_recorded(hr_config, results_dir):
    """Without --catalog the run uses the cache or the shipped snapshot, and says which."""
    from stellarnet.runs.config import load_experiment

    config = load_experiment("hr_relation").with_overrides(epochs=1)
    record = run_experiment(config, results_dir).record
    assert record["catalog_origin"] in ("cache", "snapshot")
    assert record["catalog_sha256"] == sha256(PROJECT_ROOT / record["catalog_path"])
    assert record["catalog_provenance"]["sha256"] == record["catalog_sha256"]


def test_second_run_without_force_is_refused_before_training(hr_config, results_dir, monkeypatch):
    config = hr_config.with_overrides(learning_rate=0.3, epochs=1)
    folder = run_experiment(config, results_dir).folder
    before = state(folder)

    def no_training(*args, **kwargs):
        raise AssertionError("trained although the results folder exists")

    monkeypatch.setattr("stellarnet.train.loop.train", no_training)
    with pytest.raises(ResultsExist, match="--force") as err:
        run_experiment(config, results_dir)
    assert str(folder) in str(err.value)
    assert state(folder) == before


def test_force_replaces_the_run_and_says_so(hr_config, results_dir, caplog):
    first = run_experiment(hr_config.with_overrides(learning_rate=0.3, epochs=1), results_dir)
    (first.folder / "notes.txt").write_text("from the old run")
    with caplog.at_level(logging.INFO, logger="stellarnet"):
        second = run_experiment(
            hr_config.with_overrides(learning_rate=0.3, epochs=2), results_dir, force=True
        )
    assert f"replacing the earlier results in {first.folder}" in caplog.text
    assert second.folder == first.folder
    assert {p.name for p in second.folder.iterdir()} == RUN_FILES
    assert load_history(second.folder)["epoch"].tolist() == [0, 1, 2]
    assert json.loads((second.folder / "run.json").read_text())["config"]["training"]["epochs"] == 2
    assert sorted(p.name for p in second.folder.parent.iterdir()) == ["lr=0.3"]


def test_distinct_learning_rates_get_distinct_folders(hr_config):
    a = run_folder(hr_config.with_overrides(learning_rate=0.1234567))
    b = run_folder(hr_config.with_overrides(learning_rate=0.1234568))
    assert a != b


def test_cli_experiment_end_to_end(snapshot_copy, results_dir, capsys, restore_cli_logging):
    from stellarnet.train.models import HR_NET, build_model

    catalog = snapshot_copy("my_gaia_pull", with_json=False)
    argv = [
        "experiment",
        "hr_relation",
        "--lr",
        "0.3",
        "--epochs",
        "3",
        "--seed",
        "7",
        "--catalog",
        str(catalog),
        "--results",
        str(results_dir),
    ]
    assert main(argv) == 0
    folder = results_dir / "hr_relation" / "lr=0.3,epochs=3,seed=7,catalog=my_gaia_pull"
    out = capsys.readouterr().out
    assert f"wrote {folder}" in out and "loss" in out
    assert {p.name for p in folder.iterdir()} == RUN_FILES

    record = json.loads((folder / "run.json").read_text())
    assert record["seed"] == record["config"]["seed"] == 7
    assert record["config"]["training"]["epochs"] == 3
    assert record["config"]["training"]["learning_rate"] == 0.3
    assert record["config"]["catalog"]["path"] == str(catalog)
    assert record["catalog_path"] == str(catalog.resolve())
    assert record["catalog_sha256"] == sha256(catalog)
    assert record["catalog_origin"] == "file"

    # The seed override is used, not only recorded: row 0 holds seed 7's initial weights.
    history = load_history(folder)
    assert history["epoch"].tolist() == [0, 1, 2, 3]
    weights = build_model(HR_NET, 7).get_weights()
    initial = np.concatenate([w.ravel() for w in weights])
    np.testing.assert_array_equal(history.loc[0, "w^1_1":"b^2_1"].to_numpy(float), initial)

    before = state(folder)
    assert main(argv) == 1
    err = capsys.readouterr().err
    assert err.strip().splitlines()[-1].startswith("stellarnet: error: ") and "--force" in err
    assert state(folder) == before

    (folder / "notes.txt").write_text("from the old run")
    assert main([*argv, "--force"]) == 0
    assert {p.name for p in folder.iterdir()} == RUN_FILES


@pytest.mark.parametrize("umask", [0o022, 0o027])
def test_results_get_the_modes_the_umask_gives(tmp_path, umask):
    """Atomic writes go through mkstemp/mkdtemp (0600/0700); the results must not stay private."""
    from stellarnet.files import staged_folder, write_json

    previous = os.umask(umask)
    try:
        with staged_folder(tmp_path / "run") as staging:
            write_json(staging / "run.json", {"a": 1})
    finally:
        os.umask(previous)
    assert stat.S_IMODE((tmp_path / "run").stat().st_mode) == 0o777 & ~umask
    assert stat.S_IMODE((tmp_path / "run" / "run.json").stat().st_mode) == 0o666 & ~umask

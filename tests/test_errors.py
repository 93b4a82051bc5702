"""Clear errors for what a user can get wrong: learning rate, catalog columns, corrupt catalog
files, bad experiment configs, and training that diverges."""

from __future__ import annotations

import dataclasses
import math
import subprocess
import sys
import textwrap

import numpy as np
import pandas as pd
import pytest

from stellarnet.cli import main
from stellarnet.data.loading import load_catalog, load_catalog_file
from stellarnet.data.provenance import provenance_path
from stellarnet.data.registry import CatalogQuery
from stellarnet.errors import CatalogError, ConfigError, TrainingDiverged
from stellarnet.runs.config import TrainingSpec, load_experiment
from stellarnet.runs.experiment import load_data, run_experiment
from stellarnet.runs.lookup import experiment_path

BAD_LEARNING_RATES = [0, 0.0, -0.1, math.nan, math.inf, -math.inf, "fast", None]


# --- learning rate -----------------------------------------------------------------------


@pytest.mark.parametrize("learning_rate", BAD_LEARNING_RATES, ids=repr)
def test_train_refuses_a_bad_learning_rate(hr_config, hr_dataset, learning_rate):
    from stellarnet.train.loop import train
    from stellarnet.train.models import build_model

    model = build_model(hr_config.model, hr_config.seed)
    before = [w.copy() for w in model.get_weights()]
    with pytest.raises(ConfigError, match="learning rate") as err:
        train(model, hr_dataset.x, hr_dataset.y, learning_rate=learning_rate, epochs=2)
    assert repr(learning_rate) in str(err.value)
    for old, new in zip(before, model.get_weights(), strict=True):
        np.testing.assert_array_equal(old, new)


@pytest.mark.parametrize("learning_rate", BAD_LEARNING_RATES, ids=repr)
def test_config_refuses_a_bad_learning_rate(hr_config, learning_rate):
    with pytest.raises(ConfigError, match="learning rate"):
        TrainingSpec(learning_rate=learning_rate)
    if learning_rate is not None:  # None means "no override"
        with pytest.raises(ConfigError, match="learning rate"):
            hr_config.with_overrides(learning_rate=learning_rate)


def test_boolean_learning_rate_is_refused():
    with pytest.raises(ConfigError):
        TrainingSpec(learning_rate=True)


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--lr", "0"], "'0' must be finite and > 0"),
        (["--lr=-0.1"], "'-0.1' must be finite and > 0"),
        (["--lr", "nan"], "'nan' must be finite and > 0"),
        (["--lr", "inf"], "'inf' must be finite and > 0"),
        (["--lr", "fast"], "'fast' is not a number"),
        (["--epochs", "0"], "'0' must be >= 1"),
        (["--seed=-1"], "'-1' must be from 0 to 4294967295"),
    ],
)
def test_cli_argument_errors_exit_2(argv, message, capsys, results_dir):
    with pytest.raises(SystemExit) as exit_info:
        main(["experiment", "hr_relation", *argv, "--results", str(results_dir)])
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err
    assert not results_dir.exists()


def test_seed_beyond_numpy_range_is_a_config_error(hr_config):
    with pytest.raises(ConfigError, match="seed"):
        hr_config.with_overrides(seed=2**32)


NO_TENSORFLOW = textwrap.dedent(
    """
    import sys
    from stellarnet.cli import main

    def exit_code(argv):
        try:
            main(argv)
        except SystemExit as exit:
            return exit.code
        raise AssertionError(f"{argv} did not exit")

    assert exit_code(["--help"]) == 0
    assert exit_code(["experiment", "--help"]) == 0
    for bad in ["0", "-1", "nan", "inf", "fast"]:
        assert exit_code(["experiment", "hr_relation", "--lr=" + bad]) == 2, bad
    heavy = sorted(m for m in ("tensorflow", "keras") if m in sys.modules)
    assert not heavy, f"--help / argument errors imported {heavy}"
    """
)


def test_help_and_argument_errors_do_not_import_tensorflow(project_root):
    done = subprocess.run(
        [sys.executable, "-c", NO_TENSORFLOW],
        cwd=project_root,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert "usage: stellarnet" in done.stdout
    assert done.stderr.count("must be finite and > 0") == 4


# --- catalog -----------------------------------------------------------------------------


@pytest.fixture
def catalog_without_teff(tmp_path):
    path = tmp_path / "my_gaia_pull.csv"
    pd.DataFrame({"Lum": [0.5, 1.0, 2.0], "BP-RP": [1.0, 0.8, 0.6]}).to_csv(path, index=False)
    return path


def test_catalog_missing_a_column_names_file_and_column(hr_config, catalog_without_teff):
    with pytest.raises(CatalogError) as err:
        load_data(hr_config.with_overrides(catalog_path=catalog_without_teff))
    message = str(err.value)
    assert str(catalog_without_teff) in message
    assert "missing column(s) ['Teff']" in message


def test_catalog_with_a_non_numeric_column_is_refused(tmp_path):
    path = tmp_path / "text.csv"
    pd.DataFrame({"Lum": [1.0, 2.0], "Teff": ["hot", "cool"]}).to_csv(path, index=False)
    with pytest.raises(CatalogError, match=r"\['Teff'\] are not numeric"):
        load_catalog_file(path, ["Lum", "Teff"])


def test_missing_catalog_file_is_named(tmp_path):
    path = tmp_path / "nowhere.csv"
    with pytest.raises(CatalogError, match="does not exist") as err:
        load_catalog_file(path, ["Lum", "Teff"])
    assert str(path) in str(err.value)


def test_cli_missing_column_exits_1_with_an_error_line(
    catalog_without_teff, results_dir, capsys, restore_cli_logging
):
    status = main(
        [
            "experiment",
            "hr_relation",
            "--catalog",
            str(catalog_without_teff),
            "--epochs",
            "1",
            "--results",
            str(results_dir),
        ]
    )
    assert status == 1
    err = capsys.readouterr().err
    last = err.strip().splitlines()[-1]
    assert last.startswith("stellarnet: error: ")
    assert str(catalog_without_teff) in last and "'Teff'" in last
    assert "Traceback" not in err
    assert not results_dir.exists()


def corrupt(path) -> None:
    """Change one digit of the last data row (same size, different sha256)."""
    text = path.read_text()
    head, last = text.rstrip("\n").rsplit("\n", 1)
    digit = next(i for i, c in enumerate(last) if c.isdigit())
    last = last[:digit] + str((int(last[digit]) + 1) % 10) + last[digit + 1 :]
    path.write_text(f"{head}\n{last}\n")


def test_intact_cache_is_used(snapshot_copy, hr_config):
    cache = snapshot_copy(hr_config.query.name)
    catalog = load_catalog(hr_config.query, cache_dir=cache.parent, offline=True)
    assert (catalog.origin, catalog.path, len(catalog.frame)) == ("cache", cache, 2242)


def test_corrupt_cache_is_refused(snapshot_copy, hr_config):
    cache = snapshot_copy(hr_config.query.name)
    corrupt(cache)
    with pytest.raises(CatalogError, match="does not match its provenance") as err:
        load_catalog(hr_config.query, cache_dir=cache.parent, offline=True)
    assert str(cache) in str(err.value) and "sha256" in str(err.value)


def test_corrupt_snapshot_is_refused(snapshot_copy, tmp_path):
    snapshot = snapshot_copy("snapshot")
    corrupt(snapshot)
    # An absolute snapshot name makes the query use this copy instead of catalogs/.
    query = CatalogQuery("I/345/gaia2", ["Lum", "Teff"], name="no_cache", snapshot=str(snapshot))
    with pytest.raises(CatalogError, match="does not match its provenance") as err:
        load_catalog(query, cache_dir=tmp_path / "empty", offline=True)
    assert str(snapshot) in str(err.value)


def test_user_catalog_with_a_stale_provenance_file_is_refused(snapshot_copy):
    path = snapshot_copy("my_pull")
    corrupt(path)
    with pytest.raises(CatalogError, match="does not match its provenance"):
        load_catalog_file(path, ["Lum", "Teff"])


@pytest.mark.parametrize(
    ("provenance", "message"),
    [(None, "has no provenance file"), ("{not json", "is corrupt"), ('{"rows": 3}', "no 'sha256'")],
)
def test_cache_without_a_usable_provenance_file_is_refused(
    snapshot_copy, hr_config, provenance, message
):
    cache = snapshot_copy(hr_config.query.name, with_json=provenance is not None)
    if provenance is not None:
        provenance_path(cache).write_text(provenance)
    with pytest.raises(CatalogError, match=message):
        load_catalog(hr_config.query, cache_dir=cache.parent, offline=True)


# --- experiment config -------------------------------------------------------------------

SHIPPED = experiment_path("hr_relation")


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        ("seed = 1453", "seed = 1453\nseeds = 3", "unknown key(s) ['seeds'] at top level"),
        ("learning_rate = 0.1", "learn_rate = 0.1", "unknown key(s) ['learn_rate'] at [training]"),
        ("hidden = [6]", "hidden = [6]\nwidth = 3", "unknown model setting(s) ['width']"),
        ("hidden = [6]", "hidden = [6]\nseed = 3", "[model] seed: the seed is set once"),
        ("learning_rate = 0.1", "learning_rate = 0", "learning rate must be finite and > 0"),
        ("learning_rate = 0.1", "learning_rate = -0.3", "learning rate must be finite and > 0"),
        ("learning_rate = 0.1", "learning_rate = nan", "learning rate must be finite and > 0"),
        ("learning_rate = 0.1", "learning_rate = inf", "learning rate must be finite and > 0"),
        ("learning_rate = 0.1", 'learning_rate = "fast"', "learning rate must be a number"),
        ("epochs = 10", "epochs = 0", "epochs must be a positive integer"),
        ("epochs = 10", "epochs = 2.5", "epochs must be a positive integer"),
        ('optimizer = "adam"', 'optimizer = "rmsprop"', "optimizer must be one of"),
        ('loss = "mse"', 'loss = "mae"', "loss must be one of"),
        ("hidden = [6]", "hidden = [0]", "ModelSpec.hidden must be positive integers"),
        ('activation = "relu"', 'activation = "gelu"', "ModelSpec.activation must be one of"),
        ('"log10", "minmax"', '"log", "minmax"', "unknown transform(s) ['log']"),
        ("seed = 1453", "seed = -1", "seed must be an integer from 0 to"),
        ('query = "gaia_dr2_hr"', 'query = "sdss"', "unknown catalog query 'sdss'"),
        ("learning_rate = 0.1", "learning_rate = ", "not valid TOML"),
        ("[training]", "[training", "not valid TOML"),
    ],
)
def test_bad_config_names_the_file_and_the_problem(tmp_path, old, new, message):
    text = SHIPPED.read_text()
    assert old in text, "the shipped config changed; update this test"
    path = tmp_path / "broken.toml"
    path.write_text(text.replace(old, new, 1))
    with pytest.raises(ConfigError) as err:
        load_experiment(path)
    assert str(path) in str(err.value)
    assert message in str(err.value)


def test_unknown_experiment_lists_the_available_ones():
    with pytest.raises(ConfigError, match="available: .*hr_relation"):
        load_experiment("no_such_experiment")


def test_shipped_config_loads_as_documented():
    config = load_experiment("hr_relation")
    assert (config.name, config.seed, config.model.layer_sizes) == ("hr_relation", 1453, (1, 6, 1))
    assert (config.training.optimizer, config.training.loss) == ("adam", "mse")
    assert (config.training.learning_rate, config.training.epochs) == (0.1, 10)


# --- divergence --------------------------------------------------------------------------


@pytest.mark.parametrize(("optimizer", "learning_rate"), [("sgd", 1e6), ("adam", 1e30)])
def test_diverging_training_raises_with_partial_history(
    hr_config, hr_dataset, optimizer, learning_rate
):
    from stellarnet.train.loop import train
    from stellarnet.train.models import build_model

    with pytest.raises(TrainingDiverged, match="diverged at epoch") as err:
        train(
            build_model(hr_config.model, hr_config.seed),
            hr_dataset.x,
            hr_dataset.y,
            learning_rate=learning_rate,
            epochs=20,
            optimizer=optimizer,
        )
    history = err.value.history
    assert isinstance(history, pd.DataFrame) and 2 <= len(history) < 21
    assert history["epoch"].tolist() == list(range(len(history)))
    assert f"diverged at epoch {len(history) - 1}:" in str(err.value)
    last = history.iloc[-1].drop("epoch").to_numpy(float)
    assert not np.isfinite(last).all()
    assert np.isfinite(history.iloc[1:-1].to_numpy(float)).all()
    assert "--lr" in str(err.value)


def test_diverging_run_saves_its_rows_as_diverged_and_raises(hr_config, results_dir):
    """Issue 20: the partial history is kept (tests/test_faults_runs.py has the details)."""
    config = dataclasses.replace(
        hr_config, training=TrainingSpec(optimizer="sgd", learning_rate=1e6, epochs=20)
    )
    with pytest.raises(TrainingDiverged) as err:
        run_experiment(config, results_dir)
    assert err.value.folder == results_dir / "hr_relation" / "lr=1e+06"
    written = {p.relative_to(results_dir).parts[:2] for p in results_dir.rglob("*") if p.is_file()}
    assert written == {("hr_relation", "lr=1e+06")}

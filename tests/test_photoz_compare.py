"""``stellarnet compare`` on photometric redshifts: the random-forest baseline, every model's
photo-z metrics in redshift units (computed as run.json's test_metrics), the clipped test
rows, the photo-z figures, committees with early stopping, and the regression comparison
left as it was.

The photo-z catalog is a small subset of the shipped SDSS MGS catalog (its first 300
galaxies and the bad one, data row 3001), written with its own provenance JSON.
"""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pandas as pd
import pytest

from stellarnet.cli import main
from stellarnet.data.registry import SHIPPED_CATALOG_DIR
from stellarnet.files import sha256_file, write_json
from stellarnet.runs.config import load_experiment
from stellarnet.runs.metrics import held_out_metrics

SHIPPED = SHIPPED_CATALOG_DIR / "sdss_mgs_photoz.csv"
BAD_ROW = 3001  # r-i = -2.47: clipped, kept
ROWS = 300
SPLIT = (0.6, 0.2, 0.2)
MODELS = ["network", "committee", "linear", "knn", "random_forest", "mean"]


def bad_galaxy_in_test_seed() -> int:
    """The first seed whose shuffle puts the bad galaxy (the subset's last row) in the test
    rows, as make_dataset splits them."""
    rows = ROWS + 1
    first_test = round(SPLIT[0] * rows) + round(SPLIT[1] * rows)
    for seed in range(100):
        order = np.random.default_rng(seed).permutation(rows)
        if np.flatnonzero(order == ROWS)[0] >= first_test:
            return seed
    raise AssertionError("no seed puts the bad galaxy in the test rows")


SEED = bad_galaxy_in_test_seed()


@pytest.fixture(scope="module")
def subset(tmp_path_factory) -> str:
    """A 301-galaxy subset of the shipped catalog, values unchanged, with provenance JSON."""
    folder = tmp_path_factory.mktemp("photoz")
    path = folder / "mgs_subset.csv"
    lines = SHIPPED.read_text(encoding="utf-8").splitlines(keepends=True)
    path.write_text("".join([lines[0], *lines[1 : ROWS + 1], lines[BAD_ROW + 1]]), encoding="utf-8")
    write_json(
        path.with_suffix(".json"),
        {
            "name": "mgs_subset",
            "description": f"test subset of the shipped SDSS MGS photo-z catalog: data rows "
            f"0..{ROWS - 1} and {BAD_ROW} (the bad galaxy), values unchanged",
            "sha256": sha256_file(path),
            "rows": ROWS + 1,
            "derived_from": {"path": SHIPPED.name, "sha256": sha256_file(SHIPPED)},
        },
    )
    return str(path)


def write_config(folder, catalog: str, name: str = "photoz_small") -> str:
    """photoz_sdss's recipe on the subset, with a small net and few epochs."""
    features = ", ".join(
        f'{{ column = "{c}", transforms = ["standardize", "clip"] }}'
        for c in ("u-g", "g-r", "r-i", "i-z", "r")
    )
    path = folder / f"{name}.toml"
    path.write_text(
        f"""
name = "{name}"
seed = {SEED}

[catalog]
path = "{catalog}"

[dataset]
features = [{features}]
target = {{ column = "zs", transforms = ["standardize"] }}
split = {{ train = {SPLIT[0]}, validation = {SPLIT[1]}, test = {SPLIT[2]} }}

[model]
hidden = [8]

[training]
optimizer = "adam"
learning_rate = 0.01
epochs = 40
batch_size = 32
patience = 5
metrics = "photoz"
""",
        encoding="utf-8",
    )
    return str(path)


def test_random_forest_is_seeded_and_photoz_only(subset, tmp_path):
    from stellarnet.runs.baselines import FOREST_SETTINGS, fit_baselines, random_forest
    from stellarnet.runs.experiment import load_data

    _, data = load_data(load_experiment(write_config(tmp_path, subset)))
    first, _ = fit_baselines(data, 7, forest=True)
    again, _ = fit_baselines(data, 7, forest=True)
    other, _ = fit_baselines(data, 8, forest=True)
    assert np.array_equal(first["random_forest"], again["random_forest"])
    assert not np.array_equal(first["random_forest"], other["random_forest"])
    assert list(first) == ["linear", "knn", "random_forest", "mean"]
    assert "random_forest" not in fit_baselines(data, 7)[0]
    params = random_forest(7).get_params()
    assert params["random_state"] == 7 and FOREST_SETTINGS.items() <= params.items()
    assert FOREST_SETTINGS == {"n_estimators": 200, "min_samples_leaf": 3, "n_jobs": 2}


@pytest.fixture(scope="module")
def compared(subset, tmp_path_factory):
    """``stellarnet compare`` with a committee of 2 on the subset: (folder, config path)."""
    folder = tmp_path_factory.mktemp("compare")
    config = write_config(folder, subset)
    args = ["-q", "compare", config, "--results", str(folder / "results"), "--committee", "2"]
    assert main(args) == 0
    return folder / "results" / "photoz_small" / "compare", config


def test_every_model_has_photoz_metrics_in_redshift_units(compared, subset):
    folder, _ = compared
    table = pd.read_csv(folder / "metrics.csv").set_index("model")
    predictions = pd.read_csv(folder / "predictions.csv")
    assert list(table.index) == MODELS
    assert {"bias", "sigma_nmad", "outlier_fraction"} <= set(table.columns)
    # y_true is the catalog's zs of the test rows (redshift, not standardised).
    catalog = pd.read_csv(subset)
    order = np.random.default_rng(SEED).permutation(len(catalog))
    test_rows = order[round(0.6 * 301) + round(0.2 * 301) :]
    assert np.allclose(predictions["y_true"], catalog["zs"].to_numpy()[test_rows], atol=1e-7)
    for model in MODELS:  # the table is the photo-z metrics of the saved redshifts
        expected = held_out_metrics(predictions["y_true"], predictions[model], "photoz")
        for key, value in expected.items():
            assert table.loc[model, key] == pytest.approx(value, rel=1e-9, abs=1e-15), (model, key)
    assert 0 < table.loc["network", "sigma_nmad"] < 0.1 and table.loc["mean", "r2"] < 0.05
    assert (predictions["committee_std"] > 0).all()


def test_the_network_row_is_what_stellarnet_experiment_records(compared, tmp_path):
    folder, config = compared
    assert main(["-q", "experiment", config, "--results", str(tmp_path)]) == 0
    experiment = json.loads((tmp_path / "photoz_small" / "lr=0.01" / "run.json").read_text())
    network = json.loads((folder / "network" / "run.json").read_text())
    row = json.loads((folder / "compare.json").read_text())["compare"]["metrics"]["network"]
    assert network["test_metrics"] == experiment["test_metrics"]
    assert {k: row[k] for k in experiment["test_metrics"]} == experiment["test_metrics"]
    assert network["early_stopping"] == experiment["early_stopping"]


def test_clipped_test_rows_are_counted_and_left_out_once(compared):
    folder, _ = compared
    record = json.loads((folder / "compare.json").read_text())["compare"]
    robustness = record["robustness"]
    predictions = pd.read_csv(folder / "predictions.csv")
    clipped = predictions["clipped_input"].to_numpy(bool)
    assert robustness["test_rows_clipped"] == clipped.sum() >= 1  # the bad galaxy, kept
    assert robustness["clipped_rows"] == list(np.flatnonzero(clipped))
    assert robustness["clipped_values_all_rows"]["r-i"] >= 1
    kept = predictions[~clipped]
    for model in MODELS:
        expected = held_out_metrics(kept["y_true"], kept[model], "photoz")
        assert robustness["metrics_without_clipped"][model] == pytest.approx(expected, rel=1e-12)
    markdown = (folder / "metrics.md").read_text()
    assert "sigma_NMAD" in markdown and "## Clipped inputs" in markdown
    assert f"without the clipped test rows ({clipped.sum()})" in markdown
    assert record["metric_set"] == "photoz" and record["units"].startswith("zs:")


def test_photoz_figures_are_redrawn_from_the_saved_files(compared):
    from stellarnet.runs.compare_report import prediction_figures

    folder, _ = compared
    assert not list(folder.glob("pred_vs_true_*"))
    for name in ("zphot_vs_zspec", "dz_vs_zspec"):
        before = (folder / f"{name}.png").read_bytes()
        (folder / f"{name}.png").unlink()
        assert len(before) > 10_000
    paths = prediction_figures(folder)
    assert [p.name for p in paths] == ["zphot_vs_zspec.png", "dz_vs_zspec.png"]
    assert all(p.stat().st_size > 10_000 for p in paths)


def test_committee_members_train_exactly_as_train_config(subset, tmp_path):
    from stellarnet.runs.committee import train_committee
    from stellarnet.runs.experiment import load_data, train_config
    from stellarnet.train.models import build_model, model_layers

    config = load_experiment(write_config(tmp_path, subset))
    _, data = load_data(config)
    committee = train_committee(config, data, 2)
    assert committee.engine == "sequential"
    for member in range(2):
        rows = np.repeat(np.arange(len(data.y)), committee.counts[member])
        sample = dataclasses.replace(data, x=data.x[rows], y=data.y[rows])
        alone = dataclasses.replace(config, seed=config.seed + member)
        model = build_model(alone.model, alone.seed)
        history = train_config(alone, sample, model=model)
        stopping = history.attrs["early_stopping"]
        assert committee.early_stopping[member] == {"member": member} | stopping
        for got, want in zip(committee.members[member], model_layers(model), strict=True):
            assert all(np.array_equal(g, w) for g, w in zip(got, want, strict=True))
        part = committee.history[committee.history["member"] == member]
        assert len(part) == len(history)  # ends where this member stopped
    assert committee.summary()["early_stopping"] == committee.early_stopping


def test_regression_comparison_keeps_its_models_columns_and_numbers(tmp_path, capsys):
    from stellarnet.runs.experiment import load_data
    from stellarnet.runs.metrics import regression_metrics

    results = tmp_path / "results"
    args = ["-q", "compare", "bolometric_4band", "--epochs", "3", "--results", str(results)]
    assert main([*args, "--committee", "2"]) == 0
    folder = results / "bolometric_4band" / "compare"
    metrics = pd.read_csv(folder / "metrics.csv")
    predictions = pd.read_csv(folder / "predictions.csv")
    assert list(metrics.columns) == ["model", "detail", "rows", "mse", "rmse", "mae", "r2", "data"]
    assert list(metrics["model"]) == ["network", "committee", "linear", "knn", "mean"]
    assert list(predictions.columns) == [
        "y_true", "network", "committee", "linear", "knn", "mean", "committee_std"
    ]  # fmt: skip
    _, data = load_data(load_experiment("bolometric_4band"))
    assert np.array_equal(predictions["y_true"], data.y_test.ravel().astype(np.float64))
    for row in metrics.itertuples(index=False):  # the regression metrics, as before
        expected = regression_metrics(data.y_test, predictions[row.model])
        assert row.mse == pytest.approx(expected["mse"], rel=1e-12)
        assert row.r2 == pytest.approx(expected["r2"], rel=1e-12)
    record = json.loads((folder / "compare.json").read_text())["compare"]
    assert record["robustness"] is None and record["metric_set"] == "regression"
    markdown = (folder / "metrics.md").read_text().splitlines()
    assert markdown[2] == "| model | MSE | RMSE | MAE | R^2 | rows | detail |"
    assert "Clipped" not in "\n".join(markdown)
    assert len(list(folder.glob("pred_vs_true_*.png"))) == 5
    out = capsys.readouterr().out
    assert "random_forest" not in out and "clipped" not in out

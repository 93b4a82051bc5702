"""Photometric redshifts on the SDSS Main Galaxy Sample: the shipped catalog keeps MLZ's values."""

from pathlib import Path

import pandas as pd
import pytest

from stellarnet.data.loading import load_catalog_file
from stellarnet.data.registry import SHIPPED_CATALOG_DIR
from stellarnet.data.sdss_mgs import PHOTOZ_COLUMNS, read_mlz, write_photoz_catalog
from stellarnet.errors import CatalogError, ConfigError

SOURCE = Path(__file__).resolve().parents[2] / "shared" / "data" / "sdss_mgs_photoz"
SHIPPED = SHIPPED_CATALOG_DIR / "sdss_mgs_photoz.csv"


def test_shipped_catalog_holds_every_value_of_the_source_as_written():
    if not (SOURCE / "SDSS_MGS.train").is_file():
        pytest.skip("the source file (shared/data) is not beside this checkout")
    lines = (SOURCE / "SDSS_MGS.train").read_text().splitlines()
    assert lines[0].startswith("#") and "eu " not in lines[0]  # the quirk being fixed
    source_rows = [line.split() for line in lines[1:] if line.strip()]
    shipped = pd.read_csv(SHIPPED, dtype=str)
    assert tuple(shipped.columns) == PHOTOZ_COLUMNS
    assert shipped.values.tolist() == source_rows


def test_the_shipped_catalog_matches_its_provenance_and_keeps_the_bad_row():
    catalog = load_catalog_file(SHIPPED, PHOTOZ_COLUMNS)
    assert len(catalog.frame) == 5000
    bad = catalog.frame.iloc[3001]
    assert bad["zs"] == pytest.approx(0.0473, abs=1e-4) and bad["r-i"] < -2
    assert (SHIPPED.parent / "MLZ_LICENSE.txt").is_file()


def test_conversion_round_trip_and_its_errors(tmp_path):
    source = tmp_path / "src" / "mini.train"
    source.parent.mkdir()
    header = "#zs u g r i z u-g g-r r-i i-z eg er ei ez eu-g eg-r er-i ei-z\n"
    row = " ".join(f"{v:.6f}" for v in range(19)) + "\n"
    source.write_text(header + row + row)
    with pytest.raises(CatalogError, match="licence"):
        write_photoz_catalog(source, tmp_path)
    (source.parent / "MLZ_LICENSE.txt").write_text("licence text")
    path = write_photoz_catalog(source, tmp_path)
    assert pd.read_csv(path, dtype=str).values.tolist() == [row.split()] * 2
    assert load_catalog_file(path, PHOTOZ_COLUMNS).frame.shape == (2, 19)
    source.write_text(header + " ".join(["1"] * 18) + "\n")
    with pytest.raises(CatalogError, match="18 values, not 19"):
        read_mlz(source)


def test_photoz_metrics_equal_hand_computations():
    from stellarnet.runs.metrics import held_out_metrics, photoz_metrics

    z_spec = [0.0, 0.1, 0.2, 1.0]
    z_phot = [0.01, 0.1, 0.5, 0.9]
    # dz = (z_phot - z_spec) / (1 + z_spec), by hand:
    dz = [0.01, 0.0, 0.3 / 1.2, -0.1 / 2.0]  # 0.01, 0, 0.25, -0.05
    metrics = photoz_metrics(z_spec, z_phot)
    assert metrics["bias"] == pytest.approx(sum(dz) / 4)
    median = (0.0 + 0.01) / 2  # of the sorted -0.05, 0, 0.01, 0.25
    deviations = sorted(abs(d - median) for d in dz)  # 0.005, 0.005, 0.055, 0.245
    assert metrics["sigma_nmad"] == pytest.approx(1.4826 * (deviations[1] + deviations[2]) / 2)
    assert metrics["outlier_fraction"] == 0.25  # only 0.25 > 0.15
    both = held_out_metrics(z_spec, z_phot, "photoz")
    assert {"mse", "r2", "bias", "sigma_nmad", "outlier_fraction"} <= set(both)
    assert "bias" not in held_out_metrics(z_spec, z_phot, "regression")
    assert photoz_metrics([], []) == {}


def test_clip_holds_features_within_five_training_sigmas_and_counts_them():
    import numpy as np

    from stellarnet.data.datasets import CLIP_LIMIT, ColumnSpec, invert_transforms, transform_column

    values = np.r_[np.random.default_rng(0).normal(size=200), -400.0]  # one bad magnitude
    out, params = transform_column(values, ColumnSpec("r-i", ("standardize", "clip")))
    assert out.min() == -CLIP_LIMIT and np.abs(out).max() == CLIP_LIMIT
    assert params[-1] == {"transform": "clip", "limit": CLIP_LIMIT, "clipped": 1}
    assert len(out) == len(values)  # the row stays
    with pytest.raises(ConfigError, match="clip features, not targets"):
        invert_transforms(out, params)


def test_a_standardised_target_maps_back_to_its_units_and_log10_stays():
    import numpy as np

    from stellarnet.data.datasets import ColumnSpec, transform_column, unscaled

    z = np.random.default_rng(1).uniform(0.01, 0.3, size=100)
    scaled, params = transform_column(z, ColumnSpec("zs", ("standardize",)))
    assert np.allclose(unscaled(scaled, params), z, rtol=0, atol=1e-15)
    teff = np.array([3500.0, 5772.0, 9000.0])
    logged, params = transform_column(teff, ColumnSpec("Teff", ("log10", "minmax")))
    assert np.allclose(unscaled(logged, params), np.log10(teff))  # minmax undone, log10 kept


def test_photoz_experiment_records_the_fields_metrics_and_the_chosen_epoch(tmp_path):
    import json

    from stellarnet.runs.config import load_experiment
    from stellarnet.runs.experiment import run_experiment

    config = load_experiment("photoz_sdss").with_overrides(epochs=40)
    result = run_experiment(config, tmp_path)
    record = json.loads((result.folder / "run.json").read_text())
    metrics = record["test_metrics"]
    assert {"r2", "bias", "sigma_nmad", "outlier_fraction"} <= set(metrics)
    assert metrics["rows"] == 750 and 0 < metrics["sigma_nmad"] < 0.1  # redshift units
    stopping = record["early_stopping"]
    assert stopping["patience"] == 20 and 1 <= stopping["best_epoch"] <= 40
    assert len(result.history) == (stopping["stopped_epoch"] or 40) + 1
    clipped = record["dataset"]["transform_params"]["r-i"][-1]
    assert clipped["transform"] == "clip" and clipped["clipped"] >= 1  # the bad galaxy, kept


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"split": "split = { train = 0.8, validation = 0.0, test = 0.2 }"}, "patience"),
        ({"metrics": 'metrics = "astro"'}, "metrics must be one of"),
    ],
)
def test_photoz_config_errors_name_the_fix(tmp_path, change, message):
    from stellarnet.runs.config import load_experiment
    from stellarnet.runs.lookup import experiment_path

    text = experiment_path("photoz_sdss").read_text()
    text = text.replace(
        "split = { train = 0.7, validation = 0.15, test = 0.15 }",
        change.get("split", "split = { train = 0.7, validation = 0.15, test = 0.15 }"),
    )
    text = text.replace('metrics = "photoz"', change.get("metrics", 'metrics = "photoz"'))
    text = text.replace("../catalogs/", str(SHIPPED.parent) + "/")
    path = tmp_path / "photoz.toml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=message):
        load_experiment(path)

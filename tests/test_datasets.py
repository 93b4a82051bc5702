"""The HR dataset: unusable rows dropped and counted, x = minmax(log10 L) in [0, 1],
y = log10 Teff, and the transforms can be undone."""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd
import pytest

from stellarnet.data.datasets import ColumnSpec, invert_transforms, make_dataset
from stellarnet.data.loading import load_catalog_file
from stellarnet.errors import CatalogError, ConfigError

FEATURES = (ColumnSpec("Lum", ("log10", "minmax")),)
TARGET = ColumnSpec("Teff", ("log10",))


@pytest.fixture
def messy() -> pd.DataFrame:
    """Three good stars and five that must be dropped (each for one reason)."""
    return pd.DataFrame(
        {
            "Lum": [1.0, 10.0, 0.1, 0.0, -2.0, np.nan, 5.0, 3.0],
            "BP-RP": [-0.2, 0.5, 1.9, 0.7, 0.7, 0.7, 0.7, 0.7],
            "Teff": [5000.0, 6000.0, 4000.0, 5500.0, 5500.0, 5500.0, 0.0, np.inf],
        }
    )


def test_non_positive_and_missing_rows_are_dropped_and_counted(messy, caplog):
    with caplog.at_level(logging.INFO, logger="stellarnet.data.datasets"):
        data = make_dataset(messy, FEATURES, TARGET, seed=None, source="messy.csv")
    assert (data.rows_total, data.rows, data.rows_dropped) == (8, 3, 5)
    assert data.summary()["rows_dropped"] == 5 and data.summary()["rows_kept"] == 3
    np.testing.assert_allclose(data.x[:, 0], [0.5, 1.0, 0.0])
    np.testing.assert_allclose(data.y[:, 0], np.log10([5000.0, 6000.0, 4000.0]), rtol=1e-7)
    assert "messy.csv: kept 3 of 8 rows, dropped 5" in caplog.text


def test_columns_without_log10_keep_non_positive_values(messy):
    data = make_dataset(messy, (ColumnSpec("BP-RP"),), TARGET, seed=None)
    assert data.rows == 6  # only Teff <= 0 or non-finite is dropped
    assert data.x.min() == np.float32(-0.2)


def test_shipped_catalog_gives_the_hr_relation(hr_config, hr_dataset):
    frame = load_catalog_file(hr_config.catalog_path, ["Lum", "Teff"]).frame
    assert hr_dataset.x.shape == (2242, 1) and hr_dataset.y.shape == (2242, 1)
    assert hr_dataset.x.dtype == hr_dataset.y.dtype == np.float32
    assert (hr_dataset.rows_total, hr_dataset.rows_dropped) == (2242, 0)
    assert hr_dataset.x.min() == 0.0 and hr_dataset.x.max() == 1.0
    params = hr_dataset.transform_params["Lum"]
    assert params[1]["min"] == np.log10(frame["Lum"]).min()
    assert params[1]["max"] == np.log10(frame["Lum"]).max()
    np.testing.assert_array_equal(
        np.sort(hr_dataset.y[:, 0]), np.sort(np.log10(frame["Teff"].to_numpy()).astype(np.float32))
    )


def test_invert_transforms_maps_back_to_the_catalog(hr_config, hr_dataset):
    frame = load_catalog_file(hr_config.catalog_path, ["Lum", "Teff"]).frame
    lum = invert_transforms(hr_dataset.x[:, 0], hr_dataset.transform_params["Lum"])
    teff = invert_transforms(hr_dataset.y[:, 0], hr_dataset.transform_params["Teff"])
    np.testing.assert_allclose(np.sort(lum), np.sort(frame["Lum"]), rtol=2e-6)
    np.testing.assert_allclose(np.sort(teff), np.sort(frame["Teff"]), rtol=2e-6)
    # pairs stay pairs: the star with the largest L keeps its own Teff
    brightest = frame.loc[frame["Lum"].idxmax(), "Teff"]
    np.testing.assert_allclose(teff[np.argmax(lum)], brightest, rtol=2e-6)


def test_dataset_errors_name_the_source():
    frame = pd.DataFrame({"Lum": [1.0, 2.0]})
    with pytest.raises(CatalogError, match=r"mine.csv is missing column\(s\) \['Teff'\]"):
        make_dataset(frame, FEATURES, TARGET, source="mine.csv")
    frame = pd.DataFrame({"Lum": [-1.0, 0.0], "Teff": [5000.0, 6000.0]})
    with pytest.raises(CatalogError, match="mine.csv: no usable rows"):
        make_dataset(frame, FEATURES, TARGET, source="mine.csv")
    frame = pd.DataFrame({"Lum": [2.0, 2.0], "Teff": [5000.0, 6000.0]})
    with pytest.raises(CatalogError, match="'Lum' is constant"):
        make_dataset(frame, FEATURES, TARGET)
    with pytest.raises(ConfigError, match="unknown transform"):
        ColumnSpec("Lum", ("ln",))

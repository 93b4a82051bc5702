"""Shared fixtures: the HR experiment on the shipped Gaia DR2 snapshot, cached trainings, and
temporary results and catalog files; and the ``--remote-data`` option. Nothing here touches
the network."""

from __future__ import annotations

import logging
import shutil
from collections.abc import Callable
from pathlib import Path

import pandas as pd
import pytest

from stellarnet import tfsettings
from stellarnet.data.datasets import Dataset
from stellarnet.data.provenance import provenance_path
from stellarnet.data.registry import GAIA_DR2_HR, PROJECT_ROOT, snapshot_path
from stellarnet.runs.config import ExperimentConfig, load_experiment
from stellarnet.runs.experiment import load_data

# TensorFlow as the stellarnet command runs it (none of the imports above starts it): one
# thread per op, no oneDNN kernels, whose shape-dependent rounding the bit-for-bit tests see.
tfsettings.apply()

SNAPSHOT = snapshot_path(GAIA_DR2_HR)
"""The shipped catalog (2242 Gaia DR2 stars) with its provenance JSON beside it."""


def pytest_addoption(parser: pytest.Parser) -> None:
    """``--remote-data``: also run the tests that need the internet (VizieR)."""
    try:
        parser.addoption(
            "--remote-data",
            action="store_true",
            default=False,
            help="also run tests marked remote_data (they need the internet: VizieR)",
        )
    except ValueError:  # the pytest-remotedata plugin already defines the option
        pass


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Skip ``remote_data`` tests unless ``--remote-data`` is given."""
    if config.getoption("--remote-data") not in (False, None, "none"):  # "none": the plugin's
        return
    skip = pytest.mark.skip(reason="needs the internet (VizieR); run with --remote-data")
    for item in items:
        if item.get_closest_marker("remote_data"):
            item.add_marker(skip)


@pytest.fixture(scope="session")
def project_root() -> Path:
    return PROJECT_ROOT


@pytest.fixture(scope="session")
def hr_config() -> ExperimentConfig:
    """``experiments/hr_relation.toml`` pinned to the shipped snapshot (never a local cache)."""
    return load_experiment("hr_relation").with_overrides(catalog_path=SNAPSHOT)


@pytest.fixture(scope="session")
def hr_dataset(hr_config: ExperimentConfig) -> Dataset:
    """The HR dataset of the shipped snapshot, seed 1453 (x: normalised log L, y: log Teff)."""
    _, dataset = load_data(hr_config)
    return dataset


@pytest.fixture(scope="session")
def train_hr(hr_config: ExperimentConfig, hr_dataset: Dataset) -> Callable[..., pd.DataFrame]:
    """``train_hr(learning_rate, optimizer="adam", epochs=10, seed=None)`` -> history.

    Each distinct call trains once per session (fresh model built from the seed); callers
    get a copy, so they may modify it.
    """
    from stellarnet.train.loop import train
    from stellarnet.train.models import build_model

    cache: dict[tuple, pd.DataFrame] = {}

    def run(
        learning_rate: float, optimizer: str = "adam", epochs: int = 10, seed: int | None = None
    ) -> pd.DataFrame:
        key = (learning_rate, optimizer, epochs, seed)
        if key not in cache:
            cache[key] = train(
                build_model(hr_config.model, hr_config.seed if seed is None else seed),
                hr_dataset.x,
                hr_dataset.y,
                learning_rate=learning_rate,
                epochs=epochs,
                optimizer=optimizer,
            )
        return cache[key].copy()

    return run


@pytest.fixture
def results_dir(tmp_path: Path) -> Path:
    """An empty results folder for one test."""
    return tmp_path / "results"


@pytest.fixture
def snapshot_copy(tmp_path: Path) -> Callable[[str], Path]:
    """``snapshot_copy(name, with_json=True)``: copy the shipped CSV (and its provenance JSON)
    into a temporary folder as ``<name>.csv``; return the CSV path."""

    def copy(name: str = "catalog", with_json: bool = True) -> Path:
        folder = tmp_path / "catalogs"
        folder.mkdir(exist_ok=True)
        csv = folder / f"{name}.csv"
        shutil.copyfile(SNAPSHOT, csv)
        if with_json:
            shutil.copyfile(provenance_path(SNAPSHOT), provenance_path(csv))
        return csv

    return copy


@pytest.fixture
def restore_cli_logging():
    """The CLI rewires the ``stellarnet`` logger (own handler, no propagation); undo that so
    later tests can still capture log records."""
    logger = logging.getLogger("stellarnet")
    saved = logger.handlers[:], logger.level, logger.propagate
    yield
    logger.handlers[:], logger.level, logger.propagate = saved

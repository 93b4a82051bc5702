"""Seeded reproducibility: the same config and seed give bit-identical histories; the seed
alone decides the initial weights and the row shuffle."""

from __future__ import annotations

import dataclasses
import random

import numpy as np
import pandas as pd
import pytest

from stellarnet.data.datasets import make_dataset
from stellarnet.errors import ConfigError
from stellarnet.results.history import load_history
from stellarnet.runs.experiment import run_experiment


def initial_weights(spec, seed: int) -> np.ndarray:
    from stellarnet.train.models import build_model

    return np.concatenate([w.ravel() for w in build_model(spec, seed).get_weights()])


def flat(layers) -> np.ndarray:
    """(kernel, bias) pairs as one vector, in the history's (and ``get_weights``') order."""
    return np.concatenate([array.ravel() for pair in layers for array in pair])


def sorted_pairs(dataset) -> np.ndarray:
    """The (x, y) rows of a dataset in lexicographic order."""
    pairs = np.hstack([dataset.x, dataset.y])
    return pairs[np.lexsort(pairs.T[::-1])]


def test_two_runs_with_the_same_seed_are_bit_identical(hr_config, tmp_path):
    config = hr_config.with_overrides(learning_rate=0.3, epochs=3)
    first = run_experiment(config, tmp_path / "a")
    second = run_experiment(config, tmp_path / "b")
    pd.testing.assert_frame_equal(first.history, second.history, check_exact=True)
    pd.testing.assert_frame_equal(
        load_history(first.folder), load_history(second.folder), check_exact=True
    )
    csv = "history.csv"
    assert (first.folder / csv).read_bytes() == (second.folder / csv).read_bytes()


def test_initial_weights_depend_on_the_seed_alone(hr_config):
    import keras

    reference = initial_weights(hr_config.model, hr_config.seed)
    keras.utils.set_random_seed(99)  # disturb the global random states (Python, NumPy, TF)
    random.random()
    keras.random.uniform((4,))
    np.testing.assert_array_equal(initial_weights(hr_config.model, hr_config.seed), reference)
    other = initial_weights(hr_config.model, 7)
    assert other.shape == reference.shape
    assert not np.array_equal(other, reference)


def test_the_config_holds_the_one_seed(hr_config):
    config = hr_config.with_overrides(seed=7)
    assert config.seed == 7 and hr_config.seed == 1453  # original left alone
    assert not hasattr(config.model, "seed")  # the model spec has none to disagree with
    with pytest.raises(ConfigError, match="seed must be an integer from 0 to"):
        dataclasses.replace(hr_config, seed=-1)


def test_replacing_the_configs_seed_changes_the_initial_weights(hr_config, hr_dataset):
    """``dataclasses.replace(config, seed=s)`` reaches the weights of every kind of run."""
    from stellarnet.runs.committee import initial_layers
    from stellarnet.runs.experiment import train_config
    from stellarnet.runs.sweep import initial_members

    config = hr_config.with_overrides(epochs=1)
    other = dataclasses.replace(config, seed=7)
    expected = initial_weights(config.model, 7)
    assert not np.array_equal(expected, initial_weights(config.model, config.seed))
    history = train_config(other, hr_dataset)
    np.testing.assert_array_equal(history.loc[0, "w^1_1":"b^2_1"].to_numpy(float), expected)
    for init in ("same", "notebook"):
        start = flat(initial_members(other, 1, init)[0])
        assert np.array_equal(start, expected) == (init == "same")
    np.testing.assert_array_equal(flat(initial_layers(other, [other.seed])[0]), expected)


def test_a_seed_in_an_old_run_json_model_table_is_skipped(hr_config):
    """run.json files written when the model spec held a copy of the seed still load."""
    from stellarnet.train.models import ModelSpec

    old_table = hr_config.model.to_dict() | {"seed": 1453}
    assert ModelSpec.from_dict(old_table) == hr_config.model


def test_different_seed_gives_a_different_history(train_hr):
    a, b = train_hr(0.1, epochs=3), train_hr(0.1, epochs=3, seed=7)
    assert list(a.columns) == list(b.columns)
    assert not np.allclose(a.loc[0, "w^1_1":"b^2_1"], b.loc[0, "w^1_1":"b^2_1"])


def test_dataset_shuffle_is_seeded(hr_config, hr_dataset):
    from stellarnet.data.loading import load_catalog_file

    frame = load_catalog_file(hr_config.catalog_path, ["Lum", "Teff"]).frame
    args = (frame, hr_config.features, hr_config.target)
    again = make_dataset(*args, seed=1453)
    np.testing.assert_array_equal(again.x, hr_dataset.x)
    np.testing.assert_array_equal(again.y, hr_dataset.y)

    other = make_dataset(*args, seed=7)
    assert not np.array_equal(other.x, hr_dataset.x)
    np.testing.assert_array_equal(np.sort(other.x, axis=0), np.sort(hr_dataset.x, axis=0))

    # The shuffle keeps (x, y) pairs together: same pairs, different order.
    unshuffled = make_dataset(*args, seed=None)
    np.testing.assert_array_equal(sorted_pairs(unshuffled), sorted_pairs(hr_dataset))
    np.testing.assert_array_equal(unshuffled.y[:, 0], np.log10(frame["Teff"]).astype(np.float32))

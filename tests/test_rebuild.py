"""Figures rebuild exactly the rows a run trained on (issue 19, item 1).

For every config shape (plain, split, ``[dataset] rows``, mini-batch, the one-galaxy run) a
tiny real run is trained and read back, and:

* the rebuilt train / validation / test rows are bit-for-bit the arrays the run trained and
  scored on (:func:`stellarnet.runs.experiment.load_data`);
* the final weights' loss the figures compute (:func:`network_losses`, float64 numpy on the
  rebuilt rows) equals the loss the recorder computes for the same weights (its own float32
  TensorFlow code, :meth:`Recorder.initial`, on the run's arrays), to float32 round-off;
* the recorded columns follow the history convention: full batch, the loss of row k is that of
  row k-1's weights (computed before epoch k's update); ``val_loss`` of row k is that of row k's
  weights (after the update); mini-batches, row 0's loss is that of the initial weights over
  all training rows (later rows hold the mean of the epoch's batch losses, each computed with
  other weights, so no one set of weights has them: the final weights are checked against the
  recorder's own computation instead).

Round-off: the figures' loss is float64 on the float32 inputs, targets and weights the run
had, so it differs from the recorder's float32 loss only by the recorder's rounding, bounded
in :func:`float32_bound` (textbook worst cases, no assumption about TensorFlow's summation
order).
"""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path

import numpy as np
import pytest

from stellarnet.data.datasets import Split, unscaled
from stellarnet.data.registry import GAIA_DR2_HR, shipped_catalog, snapshot_path
from stellarnet.errors import CatalogError
from stellarnet.params import Layers
from stellarnet.results.analysis import LOSS_FUNCTIONS, network_loss, network_losses
from stellarnet.results.run_catalog import (
    ROWS_SHA256,
    load_run_catalog,
    rebuild_dataset,
    rows_sha256,
)
from stellarnet.results.saved import PARTS, SavedResults, load_results
from stellarnet.runs.config import ExperimentConfig, available_experiments, load_experiment
from stellarnet.runs.experiment import load_data, run_experiment

SNAPSHOT = snapshot_path(GAIA_DR2_HR)
"""The shipped Gaia DR2 catalog (never a local cache): the HR runs' data."""
U32 = 2.0**-24
"""Unit round-off of float32."""


def float32_bound(results: SavedResults, layers: Layers, x: np.ndarray, y: np.ndarray) -> float:
    """A bound on |float32 loss - float64 loss| of the net ``layers`` (float32 values) on
    float32 ``(x, y)``, for the run's loss.

    Forward: a Dense layer's float32 output carries an error of at most (n_in + 1) u times
    sum |w a| + |b| (a dot product of n_in terms plus the bias); ReLU, tanh and linear units
    pass errors on unamplified, and the next layer multiplies them by |W|. So an output's
    error is at most (sum over layers of (n_in + 1)) u times the same network evaluated with
    |W|, |b| on |x| and no activation (``magnitude``), plus u |y - yhat| for the subtraction.
    Loss: (r + d)^2 - r^2 <= 2 |r| d + d^2 per row (half of it for half_mse), and the mean of n
    float32 squares is off by at most (n + 1) u of it (recursive summation, the worst case).
    """
    magnitude = np.abs(np.asarray(x, dtype=float))
    terms = 0
    for kernel, bias in layers:
        magnitude = magnitude @ np.abs(kernel) + np.abs(bias)
        terms += kernel.shape[0] + 1
    residual = np.abs(y.astype(float) - results.predict(layers, x))
    error = terms * U32 * magnitude + U32 * residual
    scale = 0.5 if results.loss_name == "half_mse" else 1.0
    value = scale * float(np.mean(residual**2))
    return scale * float(np.mean(2 * residual * error + error**2)) + (len(y) + 1) * U32 * value


def recorder_losses(results: SavedResults, config: ExperimentConfig, lr: float, epoch: int):
    """(train loss, val_loss or None) that the recorder itself computes for the weights of
    ``epoch``, on the arrays the run built (:func:`load_data`, not the rebuild)."""
    from stellarnet.train.models import build_model, set_model_layers
    from stellarnet.train.recorder import Recorder

    _, data = load_data(config)
    layers = [(k.astype(np.float32), b.astype(np.float32)) for k, b in results.layers(lr, epoch)]
    model = set_model_layers(build_model(config.model, config.seed), layers)
    validation = (data.x_val, data.y_val) if len(data.y_val) else None
    training = config.training
    recorder = Recorder(
        model, data.x, data.y, training.optimizer, lr, training.loss, validation=validation
    )
    row = np.asarray(recorder.initial(recorder.state(), recorder.data), dtype=float)
    value = dict(zip(recorder.columns[1:], row, strict=True))
    return value["loss"], value.get("val_loss")


def trained(config: ExperimentConfig, results_dir: Path) -> tuple[SavedResults, ExperimentConfig]:
    """Train ``config`` for real into ``results_dir`` and read the folder back."""
    run = run_experiment(config, results_dir)
    return load_results(run.folder), config


def assert_same_rows(results: SavedResults, config: ExperimentConfig) -> None:
    """The rebuilt parts are bit-for-bit the arrays the run built."""
    _, data = load_data(config)
    built = {
        "train": (data.x, data.y),
        "validation": (data.x_val, data.y_val),
        "test": (data.x_test, data.y_test),
    }
    for part in PARTS:
        for rebuilt, original in zip(results.part(part), built[part], strict=True):
            assert rebuilt.dtype == original.dtype == np.float32
            np.testing.assert_array_equal(rebuilt, original, err_msg=part)


def assert_close(figures: float, recorder: float, bound: float, what: str) -> None:
    assert math.isfinite(figures) and math.isfinite(recorder)
    assert abs(figures - recorder) <= bound, (
        f"{what}: figures {figures!r}, recorder {recorder!r}, difference "
        f"{abs(figures - recorder):.3g} > round-off bound {bound:.3g}"
    )


def assert_final_weights(results: SavedResults, config: ExperimentConfig) -> dict[str, float]:
    """The final weights' loss per part, as the figures give it, equals the recorder's."""
    lr = results.learning_rates[0]
    epoch = results.weights_epoch(lr)
    layers = results.layers(lr, epoch)
    losses = network_losses(results, layers)
    assert list(losses) == [p for p in PARTS if len(results.part(p)[1])]
    assert losses["train"] == network_loss(results, layers)
    train, val = recorder_losses(results, config, lr, epoch)
    x, y = results.part("train")
    bound = float32_bound(results, layers, x, y)
    assert_close(losses["train"], train, bound, "final weights, training rows")
    if "validation" in losses:
        x_val, y_val = results.part("validation")
        bound = float32_bound(results, layers, x_val, y_val)
        assert_close(losses["validation"], val, bound, "final weights, validation rows")
    return losses


def assert_test_metrics(
    results: SavedResults, test_loss: float, scale: float, epoch: int | None = None
) -> None:
    """run.json's test MSE (the model's float32 predictions, in the target's modelled units:
    ``scale`` times the network's squared units) is the figures' test loss of the same weights
    (the kept epoch's), to float32 round-off."""
    layers = results.layers(results.learning_rates[0], epoch)
    x, y = results.part("test")
    metrics = results.record["test_metrics"]
    assert metrics["rows"] == len(y)
    bound = scale * float32_bound(results, layers, x, y) + 1e-12 * metrics["mse"]
    assert_close(scale * test_loss, metrics["mse"], bound, "test MSE")


def assert_full_batch_convention(results: SavedResults) -> None:
    """Row k's loss is that of row k-1's weights on the training rows; row k's val_loss that
    of row k's weights on the validation rows."""
    lr = results.learning_rates[0]
    history = results.histories[lr]
    loss = LOSS_FUNCTIONS[results.loss_name]
    for name, column, shift in (("train", "loss", 1), ("validation", "val_loss", 0)):
        x, y = results.part(name)
        if not len(y):
            assert column not in history.columns
            continue
        for k in range(1, len(history)):
            layers = results.layers(lr, int(history["epoch"].iloc[k - shift]))
            computed = loss(y.astype(float), results.predict(layers, x))
            bound = float32_bound(results, layers, x, y)
            assert_close(computed, float(history[column].iloc[k]), bound, f"{column} row {k}")


@pytest.fixture(scope="module")
def results_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("rebuild") / "results"


def hr(**training) -> ExperimentConfig:
    return load_experiment("hr_relation").with_overrides(catalog_path=SNAPSHOT, **training)


# --- every config shape, trained for real ----------------------------------------------------


def test_plain_full_batch_run(results_dir: Path) -> None:
    results, config = trained(hr(epochs=4), results_dir)
    assert not results.has_split and len(results.part("train")[1]) == 2242
    assert_same_rows(results, config)
    assert_full_batch_convention(results)
    assert_final_weights(results, config)


@pytest.mark.parametrize("seed", [0, 1, 2, 1453])
def test_split_run_for_several_seeds(results_dir: Path, seed: int) -> None:
    """min-max fitted on the training rows only: rebuilding without the split (the old bug)
    fitted it on all rows and refused 2 of these 4 seeds, blaming the catalog."""
    config = dataclasses.replace(
        hr(epochs=3), seed=seed, split=Split(train=0.7, validation=0.15, test=0.15)
    )
    results, config = trained(config, results_dir / f"seed{seed}")
    assert [len(y) for _, y in results.parts().values()] == [1570, 336, 336]
    assert_same_rows(results, config)
    assert_full_batch_convention(results)
    losses = assert_final_weights(results, config)
    assert set(losses) == {"train", "validation", "test"}
    # run.json's test metrics (in log10 Teff, as the network models it: no scaling to undo)
    # are those of the final weights (float32, TensorFlow) on the rebuilt test rows.
    assert_test_metrics(results, losses["test"], scale=1.0)


def test_rows_run_with_shuffle(results_dir: Path) -> None:
    """``[dataset] rows`` picks catalog rows (in that order), then the seeded shuffle."""
    base = load_experiment("galaxy_sizes").with_overrides(epochs=5)
    rows = (5, 17, 3, 40, 22, 9, 60, 31)
    results, config = trained(dataclasses.replace(base, rows=rows), results_dir)
    x, y = results.part("train")
    catalog = results.catalog().iloc[list(rows)]
    assert sorted(x[:, 0].tolist()) == sorted(catalog["HST_reff"].astype(np.float32).tolist())
    assert x[:, 0].tolist() != catalog["HST_reff"].astype(np.float32).tolist()  # shuffled
    assert_same_rows(results, config)
    assert_full_batch_convention(results)
    assert_final_weights(results, config)


def test_mini_batch_run_with_test_split(results_dir: Path) -> None:
    """bolometric_4band: Adam, batch 64 over 640 training rows, 160 test rows."""
    results, config = trained(
        load_experiment("bolometric_4band").with_overrides(epochs=3), results_dir
    )
    history = results.histories[results.learning_rates[0]]
    assert list(results.parts()) == ["train", "test"] and "val_loss" not in history.columns
    assert_same_rows(results, config)
    layers0 = results.layers(results.learning_rates[0], 0)
    x, y = results.part("train")
    bound = float32_bound(results, layers0, x, y)
    assert_close(network_loss(results, layers0), float(history["loss"].iloc[0]), bound, "row 0")
    assert_test_metrics(results, assert_final_weights(results, config)["test"], scale=1.0)


def test_mini_batch_run_with_validation_clip_and_early_stopping(results_dir: Path) -> None:
    """photoz_sdss: standardised and clipped inputs, standardised target, batch 64, val_loss
    every epoch, early stopping (the model keeps its best epoch's weights)."""
    config = load_experiment("photoz_sdss").with_overrides(epochs=3)
    results, config = trained(config, results_dir)
    lr = results.learning_rates[0]
    history = results.histories[lr]
    assert [len(y) for _, y in results.parts().values()] == [3500, 750, 750]
    assert_same_rows(results, config)
    assert_final_weights(results, config)
    loss = LOSS_FUNCTIONS[results.loss_name]
    x_val, y_val = results.part("validation")
    for k in range(len(history)):  # val_loss: the weights after epoch k, on the validation rows
        layers = results.layers(lr, k)
        computed = loss(y_val.astype(float), results.predict(layers, x_val))
        bound = float32_bound(results, layers, x_val, y_val)
        assert_close(computed, float(history["val_loss"].iloc[k]), bound, f"val_loss row {k}")
    # test metrics are in redshift, of the kept (best) epoch's weights
    kept = results.kept_epoch(lr)
    assert kept == results.record["early_stopping"]["best_epoch"] >= 1
    x_test, y_test = results.part("test")
    params = results.dataset().transform_params[results.target.column]
    yhat = results.predict(results.layers(lr, kept), x_test)[:, 0]
    mse = float(np.mean((unscaled(y_test[:, 0], params) - unscaled(yhat, params)) ** 2))
    scaled = network_losses(results, results.layers(lr, kept))["test"]
    assert mse == pytest.approx(scaled * params[-1]["std"] ** 2, rel=1e-12)
    assert_test_metrics(results, scaled, scale=params[-1]["std"] ** 2, epoch=kept)


def test_one_galaxy_run(results_dir: Path) -> None:
    """galaxy_sizes_single trains on the catalog's first galaxy: its figures' loss of the
    final weights is over that galaxy (1.48e-7 with seed 1), not over all 71 (0.019 before)."""
    results, config = trained(load_experiment("galaxy_sizes_single"), results_dir)
    lr = results.learning_rates[0]
    history = results.histories[lr]
    x, y = results.part("train")
    first = results.catalog().iloc[0]
    assert x.tolist() == [[np.float32(first["HST_reff"])]]
    assert y.tolist() == [[np.float32(first["JWST_reff_size"])]]
    assert results.parts().keys() == {"train"}
    assert_same_rows(results, config)
    assert_full_batch_convention(results)  # the last recorded loss is row 9's weights' loss
    final = assert_final_weights(results, config)["train"]
    last = float(history["loss"].iloc[-1])
    # one sample, SGD: every step shrinks the residual, so the final weights do better than
    # the weights of the last recorded loss (seed 1: 1.48e-7 < 3.01e-7)
    assert final < last < 1e-5


# --- the rebuild check fires only when run.json or the catalog really differs ----------------


def _record(config: ExperimentConfig) -> dict:
    catalog, data = load_data(config)
    record = {
        "config": config.to_dict(),
        "dataset": data.summary(),
        "catalog_path": str(catalog.path),
        "catalog_sha256": catalog.sha256,
    }
    return json.loads(json.dumps(record))  # as run.json holds it


@pytest.mark.parametrize("name", available_experiments())
@pytest.mark.parametrize("seed", [0, 1, 2, 7])
def test_every_builtin_config_rebuilds_bit_for_bit(name: str, seed: int) -> None:
    config = dataclasses.replace(load_experiment(name), seed=seed)
    if config.query is not None:
        config = config.with_overrides(catalog_path=SNAPSHOT)
    record = _record(config)
    columns = [spec.column for spec in (*config.features, config.target)]
    _, data = load_data(config)
    record["dataset"][ROWS_SHA256] = rows_sha256(data)  # checked when run.json records it
    rebuilt = rebuild_dataset(record, load_run_catalog(record, columns))
    for attribute in ("x", "y", "x_val", "y_val", "x_test", "y_test"):
        np.testing.assert_array_equal(getattr(rebuilt, attribute), getattr(data, attribute))


def test_edited_catalog_is_refused_naming_the_file(results_dir: Path, tmp_path: Path) -> None:
    source = shipped_catalog("hst_jwst_sizes.csv")
    copy = tmp_path / "sizes.csv"
    copy.write_bytes(source.read_bytes())
    config = load_experiment("galaxy_sizes_single").with_overrides(catalog_path=copy)
    run = run_experiment(config, results_dir / "edited")
    load_results(run.folder).dataset()  # the untouched copy rebuilds
    lines = copy.read_text().splitlines()
    lines[1] = lines[1].replace("0.949", "0.951")
    assert lines[1] != copy.read_text().splitlines()[1]
    copy.write_text("\n".join(lines) + "\n")
    with pytest.raises(CatalogError) as error:
        load_results(run.folder).dataset()
    message = str(error.value)
    assert str(copy) in message and "has changed since the run" in message
    assert "Restore the original file, or pass --catalog" in message


def test_edited_run_json_is_blamed_not_the_catalog(results_dir: Path) -> None:
    config = dataclasses.replace(hr(epochs=1), split=Split(train=0.7, validation=0.15, test=0.15))
    run = run_experiment(config, results_dir / "edited_record")
    run_json = run.folder / "run.json"
    record = json.loads(run_json.read_text())
    # another split: other training rows, so other row counts and min-max parameters
    record["config"]["dataset"]["split"] = {"train": 0.8, "validation": 0.1, "test": 0.1}
    run_json.write_text(json.dumps(record))
    with pytest.raises(CatalogError) as error:
        load_results(run.folder).dataset()
    message = str(error.value)
    assert str(run_json) in message and "matches the sha256" in message
    assert "train the run again with --force" in message
    assert "the catalog gives" not in message


def test_rows_digest_catches_other_rows_with_the_same_parameters() -> None:
    """galaxy_sizes with seed 1 or 2 keeps the same 71 galaxies: the same row counts and no
    scaling parameters to compare. Only the rows' order differs, which the digest sees."""
    config = load_experiment("galaxy_sizes")
    record = _record(config)
    columns = [spec.column for spec in (*config.features, config.target)]
    frame = load_run_catalog(record, columns)
    _, data = load_data(config)
    record["dataset"][ROWS_SHA256] = rows_sha256(data)
    rebuild_dataset(record, frame)  # the run's own settings: no error
    record["config"]["seed"] = config.seed + 1
    with pytest.raises(CatalogError, match="rows_sha256: recorded .* run.json was edited"):
        rebuild_dataset(record, frame)

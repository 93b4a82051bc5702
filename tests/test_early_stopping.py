"""Early stopping on val_loss: the history ends where Keras' rule stops, and the model ends at
the best epoch's weights, read back exactly from that epoch's row."""

import numpy as np
import pandas as pd
import pytest

from stellarnet.errors import ConfigError
from stellarnet.schema import HistorySchema
from stellarnet.train.loop import train
from stellarnet.train.models import HR_NET, build_model, model_layers
from stellarnet.train.stopping import EarlyStopping

SEED, EPOCHS, PATIENCE = 1453, 150, 4


def split(dataset):
    """First 80% of the rows to train on, the rest to validate on."""
    cut = int(0.8 * len(dataset.y))
    return (dataset.x[:cut], dataset.y[:cut]), (dataset.x[cut:], dataset.y[cut:])


def keras_rule(val_loss: pd.Series, patience: int) -> tuple[int, int | None]:
    """Keras' EarlyStopping(monitor="val_loss", patience, min_delta=0), written out: the best
    epoch and the epoch it stops after (None: never), epochs numbered from 1."""
    best, best_epoch, wait = np.inf, 0, 0
    for epoch, value in val_loss.items():
        if value < best:
            best, best_epoch, wait = value, epoch, 0
            continue
        wait += 1
        if wait >= patience:
            return best_epoch, epoch
    return best_epoch, None


@pytest.mark.parametrize("engine", ["eager", "graph"])
def test_the_history_stops_where_keras_would_and_the_best_weights_come_back(hr_dataset, engine):
    (x, y), validation = split(hr_dataset)
    settings = dict(learning_rate=0.3, epochs=EPOCHS, validation=validation, engine=engine)
    full = train(build_model(HR_NET, SEED), x, y, **settings)
    best, stop = keras_rule(full.set_index("epoch")["val_loss"].iloc[1:], PATIENCE)
    assert stop is not None, "the test needs a run that stops early"

    model = build_model(HR_NET, SEED)
    stopper = EarlyStopping(PATIENCE)
    stopped = train(model, x, y, early_stopping=stopper, **settings)

    pd.testing.assert_frame_equal(stopped, full.iloc[: stop + 1], check_exact=True)
    assert (stopper.best_epoch, stopper.stopped_epoch) == (best, stop)
    assert stopped.attrs["early_stopping"]["best_epoch"] == best
    # model_layers: w^1, b^1, w^2, b^2, the schema's order of the flat parameters
    names = [name for block in HistorySchema(HR_NET.layer_sizes).blocks for name in block.names()]
    expected = full.loc[full["epoch"] == best, names].to_numpy(np.float32)[0]
    got = np.concatenate([a.ravel() for pair in model_layers(model) for a in pair])
    assert got.tolist() == expected.tolist()


def test_a_run_that_keeps_improving_runs_all_its_epochs(hr_dataset):
    (x, y), validation = split(hr_dataset)
    stopper = EarlyStopping(patience=1000)
    history = train(
        build_model(HR_NET, SEED), x, y, learning_rate=0.01, epochs=30,
        validation=validation, early_stopping=stopper,
    )  # fmt: skip
    assert len(history) == 31 and stopper.stopped_epoch is None and stopper.best_epoch > 0


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({}, "needs validation rows"),
        ({"record_every": 2, "with_validation": True}, "record_every = 1"),
    ],
)
def test_early_stopping_needs_validation_rows_every_epoch(hr_dataset, settings, message):
    (x, y), validation = split(hr_dataset)
    extra = {"validation": validation} if settings.pop("with_validation", False) else {}
    with pytest.raises(ConfigError, match=message):
        train(
            build_model(HR_NET, SEED), x, y, learning_rate=0.1, epochs=5,
            early_stopping=EarlyStopping(2), **settings, **extra,
        )  # fmt: skip


@pytest.mark.parametrize(("patience", "min_delta"), [(0, 0.0), (2.5, 0.0), (3, -1.0), (3, "x")])
def test_bad_early_stopping_settings_are_refused(patience, min_delta):
    with pytest.raises(ConfigError):
        EarlyStopping(patience, min_delta)

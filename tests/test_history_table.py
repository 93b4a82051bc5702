"""The history table of the 1-6-1 HR net: column names, the epoch-0 row, the long view, and
the round trip row -> numpy layers -> output (stellarnet.params)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from stellarnet.params import forward, layers_from_row
from stellarnet.results.history import to_long


def names(kind: str, layer: int, count: int) -> list[str]:
    return [f"{kind}^{layer}_{i}" for i in range(1, count + 1)]


EXPECTED_COLUMNS = [
    "epoch",
    "output",
    "loss",
    *names("w", 1, 6),
    *names("b", 1, 6),
    *names("w", 2, 6),
    "b^2_1",
    *names("g", 1, 6),
    *names("gb", 1, 6),
    *names("g", 2, 6),
    "gb^2_1",
]
PARAMETERS = EXPECTED_COLUMNS[3:22]
GRADIENTS = EXPECTED_COLUMNS[22:]


def test_column_names_are_exactly_the_documented_ones(train_hr):
    history = train_hr(0.1)
    assert list(history.columns) == EXPECTED_COLUMNS
    assert len(PARAMETERS) == len(GRADIENTS) == 19


def test_rows_are_epochs_zero_to_e(train_hr):
    history = train_hr(0.1, epochs=10)
    assert history["epoch"].dtype == np.int64
    assert history["epoch"].tolist() == list(range(11))
    assert history.drop(columns="epoch").dtypes.eq(np.float64).all()


def test_epoch_zero_row_holds_the_initial_model(train_hr, hr_config, hr_dataset):
    from stellarnet.train.models import build_model

    row0 = train_hr(0.1).iloc[0]
    # [W1 (1, 6), b1, W2 (6, 1), b2]
    initial = build_model(hr_config.model, hr_config.seed).get_weights()
    np.testing.assert_array_equal(
        row0[PARAMETERS].to_numpy(float), np.concatenate([w.ravel() for w in initial])
    )
    assert row0[GRADIENTS].isna().all()

    # Output and loss of the initial model, evaluated independently in float64.
    w1, b1, w2, b2 = (np.asarray(w, dtype=float) for w in initial)
    yhat = np.maximum(hr_dataset.x @ w1 + b1, 0.0) @ w2 + b2
    np.testing.assert_allclose(row0["output"], yhat.mean(), rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(row0["loss"], np.mean((hr_dataset.y - yhat) ** 2), rtol=1e-6)


def test_epoch_one_output_and_loss_repeat_epoch_zero(train_hr):
    """Row 1's output and loss are computed before the first update, from the same weights
    as row 0's; only its w/b have moved."""
    history = train_hr(0.1)
    assert history.loc[1, "output"] == history.loc[0, "output"]
    assert history.loc[1, "loss"] == history.loc[0, "loss"]
    assert not np.array_equal(history.loc[1, PARAMETERS], history.loc[0, PARAMETERS])
    assert history.loc[1:, GRADIENTS].notna().all().all()


def test_to_long_has_one_row_per_epoch_and_parameter(train_hr):
    wide = train_hr(0.1, epochs=4)
    long = to_long(wide)
    assert list(long.columns) == ["epoch", "layer", "kind", "index", "value"]
    assert len(long) == 5 * 38
    assert set(long["kind"]) == {"w", "b", "g", "gb"}
    counts = long[long["epoch"] == 2].groupby(["kind", "layer"]).size().to_dict()
    assert counts == {
        ("w", 1): 6,
        ("w", 2): 6,
        ("b", 1): 6,
        ("b", 2): 1,
        ("g", 1): 6,
        ("g", 2): 6,
        ("gb", 1): 6,
        ("gb", 2): 1,
    }
    pick = long.query("epoch == 3 and layer == 2 and kind == 'w' and index == 4")["value"]
    assert pick.tolist() == [wide.loc[3, "w^2_4"]]
    # Round trip: pivoting the long view back gives the wide parameter columns.
    long["name"] = long["kind"] + "^" + long["layer"].astype(str) + "_" + long["index"].astype(str)
    back = long.pivot(index="epoch", columns="name", values="value")[PARAMETERS + GRADIENTS]
    pd.testing.assert_frame_equal(
        back.reset_index(drop=True),
        wide[PARAMETERS + GRADIENTS],
        check_names=False,
        check_exact=True,
    )


def test_params_forward_reproduces_recorded_outputs(train_hr, hr_config, hr_dataset):
    """Row 0's parameters give row 0's output; row k-1's parameters give row k's output."""
    history = train_hr(0.3)
    rows = history.to_dict("records")
    for k, row in enumerate(rows):
        source = rows[max(k - 1, 0)]
        yhat, hidden = forward(layers_from_row(source, hr_config.model.layer_sizes), hr_dataset.x)
        assert yhat.shape == (hr_dataset.rows, 1)
        assert [h.shape for h in hidden] == [(hr_dataset.rows, 6)]
        np.testing.assert_allclose(
            yhat.mean(), row["output"], rtol=1e-6, atol=1e-6, err_msg=f"epoch {k}"
        )
        np.testing.assert_allclose(
            np.mean((hr_dataset.y - yhat) ** 2),
            row["loss"],
            rtol=1e-5,
            atol=1e-6,
            err_msg=f"epoch {k}",
        )

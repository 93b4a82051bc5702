"""The scikit-learn baselines ``stellarnet compare`` scores the network against.

``linear``
    ``sklearn.linear_model.LinearRegression`` (least squares).
``knn``
    ``sklearn.neighbors.KNeighborsRegressor``, k chosen from :data:`KNN_GRID` by validation
    MSE, then refitted on all training rows. The validation rows are the config's
    validation split; without one, :data:`CARVE_FRACTION` of the training rows, picked with
    ``numpy.random.default_rng(seed)`` (the record says which).
``random_forest`` (photo-z comparisons only, ``forest=True``)
    ``sklearn.ensemble.RandomForestRegressor`` with the fixed setting :data:`FOREST_SETTINGS`
    (200 trees, at least 3 training rows per leaf, fitted with 2 jobs) and ``random_state``
    = the config's seed, so the same seed gives the same forest; it predicts with one job,
    so that the same seed gives the same predictions to the bit. Not tuned: trees of this size are
    the photo-z literature's usual baseline (MLZ's TPZ, the catalog's source, is one).
``mean``
    ``sklearn.dummy.DummyRegressor``: the training mean for every row (R^2 about 0), the
    floor any model should beat.

scikit-learn is imported inside the functions, so that importing this module stays cheap.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from stellarnet.data.datasets import Dataset
from stellarnet.errors import ConfigError

KNN_GRID = (1, 2, 3, 5, 8, 13, 21, 34, 55)
"""Candidate k of the nearest-neighbours baseline (values above the fitting rows are skipped)."""
CARVE_FRACTION = 0.2
"""Share of the training rows held out to choose k when the config has no validation split."""
FOREST_SETTINGS = {"n_estimators": 200, "min_samples_leaf": 3, "n_jobs": 2}
"""The random forest's fixed setting (``random_state`` is the config's seed)."""


@dataclass
class ValidationRows:
    """Rows to choose k on: fit on ``x_fit``, score on ``x_val``; ``source`` says where from."""

    x_fit: np.ndarray
    y_fit: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray
    source: str


def validation_rows(dataset: Dataset, seed: int) -> ValidationRows:
    """The config's validation split, or :data:`CARVE_FRACTION` of the training rows.

    Carved rows are the first ``round(CARVE_FRACTION * n)`` (at least 1) of
    ``numpy.random.default_rng(seed).permutation(n)``; the rest are fitted.
    """
    if len(dataset.y_val):
        return ValidationRows(
            dataset.x,
            dataset.y,
            dataset.x_val,
            dataset.y_val,
            f"the config's validation split ({len(dataset.y_val)} rows)",
        )
    rows = len(dataset.y)
    if rows < 2:
        raise ConfigError(f"{rows} training row(s) are too few to choose k on validation rows")
    n_val = max(1, round(CARVE_FRACTION * rows))
    order = np.random.default_rng(seed).permutation(rows)
    held, kept = order[:n_val], order[n_val:]
    return ValidationRows(
        dataset.x[kept],
        dataset.y[kept],
        dataset.x[held],
        dataset.y[held],
        f"no validation split in the config: {n_val} of the {rows} training rows "
        f"({CARVE_FRACTION:.0%}) carved out with numpy.random.default_rng({seed})",
    )


def choose_k(
    rows: ValidationRows, grid: tuple[int, ...] = KNN_GRID
) -> tuple[int, dict[int, float]]:
    """The k of ``grid`` with the lowest validation MSE (ties: the smaller k), and every
    candidate's validation MSE."""
    from sklearn.metrics import mean_squared_error
    from sklearn.neighbors import KNeighborsRegressor

    scores = {}
    for k in (k for k in grid if k <= len(rows.y_fit)):
        model = KNeighborsRegressor(n_neighbors=k).fit(rows.x_fit, rows.y_fit.ravel())
        scores[k] = float(mean_squared_error(rows.y_val.ravel(), model.predict(rows.x_val)))
    best = min(scores, key=lambda k: (scores[k], k))
    return best, scores


def random_forest(seed: int) -> Any:
    """An unfitted ``RandomForestRegressor`` of :data:`FOREST_SETTINGS`, seeded with ``seed``."""
    from sklearn.ensemble import RandomForestRegressor

    return RandomForestRegressor(**FOREST_SETTINGS, random_state=seed)


def fit_baselines(
    dataset: Dataset, seed: int, forest: bool = False
) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """Fit the scikit-learn baselines on the training rows; predict the test rows.

    Returns the predictions (``linear``, ``knn``, with ``forest`` ``random_forest``, then
    ``mean``; each ``(n_test,)``, in the units the config transforms the target to) and a
    record of how k was chosen.
    """
    from sklearn.dummy import DummyRegressor
    from sklearn.linear_model import LinearRegression
    from sklearn.neighbors import KNeighborsRegressor

    x, y = dataset.x, dataset.y.ravel()
    rows = validation_rows(dataset, seed)
    k, scores = choose_k(rows)
    predictions = {
        "linear": LinearRegression().fit(x, y).predict(dataset.x_test),
        "knn": KNeighborsRegressor(n_neighbors=k).fit(x, y).predict(dataset.x_test),
    }
    if forest:
        fitted = random_forest(seed).fit(x, y)
        # Threads add the trees' outputs in whatever order they finish: predict on one, so
        # that the sum runs in tree order and the same seed gives the same bits.
        predictions["random_forest"] = fitted.set_params(n_jobs=1).predict(dataset.x_test)
    predictions["mean"] = DummyRegressor(strategy="mean").fit(x, y).predict(dataset.x_test)
    knn = {
        "k": k,
        "validation": rows.source,
        "validation_mse_by_k": {str(key): value for key, value in scores.items()},
        "refit": f"on all {len(y)} training rows",
    }
    return predictions, knn


def baseline_details(knn: dict[str, Any]) -> dict[str, str]:
    """The ``detail`` column of each baseline's row in the metrics table."""
    return {
        "linear": "sklearn LinearRegression",
        "knn": f"sklearn KNeighborsRegressor, k={knn['k']} chosen on validation",
        "random_forest": "sklearn RandomForestRegressor, {n_estimators} trees, "
        "min_samples_leaf {min_samples_leaf}".format(**FOREST_SETTINGS),
        "mean": "sklearn DummyRegressor (training mean)",
    }

"""Held-out metrics of a regression: MSE, RMSE, MAE and R^2 (through scikit-learn)."""

from __future__ import annotations

import math

import numpy as np


def regression_metrics(y_true: np.ndarray, y_pred: np.ndarray) -> dict[str, float]:
    """MSE, RMSE, MAE and R^2 of ``y_pred`` against ``y_true``, in float64.

    Returns an empty dict when there are no rows (no test split).
    """
    from sklearn.metrics import mean_absolute_error, mean_squared_error, r2_score

    y_true = np.asarray(y_true, dtype=np.float64).ravel()
    y_pred = np.asarray(y_pred, dtype=np.float64).ravel()
    if y_true.size == 0:
        return {}
    mse = float(mean_squared_error(y_true, y_pred))
    return {
        "rows": int(y_true.size),
        "mse": mse,
        "rmse": math.sqrt(mse),
        "mae": float(mean_absolute_error(y_true, y_pred)),
        "r2": float(r2_score(y_true, y_pred)) if y_true.size > 1 else float("nan"),
    }


def format_metrics(metrics: dict[str, float]) -> str:
    """``"MSE 0.161, RMSE 0.401, MAE 0.32, R^2 0.97 (160 rows)"``."""
    return (
        f"MSE {metrics['mse']:.4g}, RMSE {metrics['rmse']:.4g}, MAE {metrics['mae']:.4g}, "
        f"R^2 {metrics['r2']:.4g} ({metrics['rows']} rows)"
    )

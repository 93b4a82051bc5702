"""Held-out metrics: a regression's MSE, RMSE, MAE and R^2 (through scikit-learn), and the
photometric-redshift metrics on dz = (z_phot - z_spec) / (1 + z_spec).

A config's ``[training] metrics`` picks the set: ``"regression"`` (default) or ``"photoz"``
(both sets, the photo-z ones in redshift units).
"""

from __future__ import annotations

import math

import numpy as np

METRIC_SETS = ("regression", "photoz")
OUTLIER_DZ = 0.15
"""|dz| beyond which a photometric redshift counts as a catastrophic outlier."""
NMAD_SCALE = 1.4826
"""Makes the median absolute deviation a standard deviation for a normal distribution."""


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


def photoz_metrics(z_spec: np.ndarray, z_phot: np.ndarray) -> dict[str, float]:
    """``bias`` (mean dz), ``sigma_nmad`` (1.4826 x median |dz - median dz|) and
    ``outlier_fraction`` (|dz| > 0.15), with dz = (z_phot - z_spec) / (1 + z_spec); empty
    without rows."""
    z_spec = np.asarray(z_spec, dtype=np.float64).ravel()
    z_phot = np.asarray(z_phot, dtype=np.float64).ravel()
    if z_spec.size == 0:
        return {}
    dz = (z_phot - z_spec) / (1.0 + z_spec)
    return {
        "bias": float(np.mean(dz)),
        "sigma_nmad": float(NMAD_SCALE * np.median(np.abs(dz - np.median(dz)))),
        "outlier_fraction": float(np.mean(np.abs(dz) > OUTLIER_DZ)),
    }


def held_out_metrics(y_true: np.ndarray, y_pred: np.ndarray, metric_set: str) -> dict[str, float]:
    """The regression metrics, and with ``metric_set="photoz"`` the photo-z ones too."""
    metrics = regression_metrics(y_true, y_pred)
    if metric_set == "photoz":
        metrics |= photoz_metrics(y_true, y_pred)
    return metrics


def format_metrics(metrics: dict[str, float]) -> str:
    """``"MSE 0.161, RMSE 0.401, MAE 0.32, R^2 0.97 (160 rows)"``."""
    text = (
        f"MSE {metrics['mse']:.4g}, RMSE {metrics['rmse']:.4g}, MAE {metrics['mae']:.4g}, "
        f"R^2 {metrics['r2']:.4g}"
    )
    if "sigma_nmad" in metrics:
        text += (
            f", bias {metrics['bias']:.4g}, sigma_NMAD {metrics['sigma_nmad']:.4g}, "
            f"outliers {metrics['outlier_fraction']:.2%}"
        )
    return text + f" ({metrics['rows']} rows)"

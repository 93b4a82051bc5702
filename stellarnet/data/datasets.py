"""Turn a catalog table into training arrays: column transforms, normalisation, seeded shuffle.

The HR relation of the assignment is::

    x = minmax(log10(Lum))   in [0, 1]
    y = log10(Teff)

written as ``features=[ColumnSpec("Lum", ("log10", "minmax"))]`` and
``target=ColumnSpec("Teff", ("log10",))``.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from stellarnet.errors import CatalogError, ConfigError

log = logging.getLogger(__name__)

TRANSFORMS = ("log10", "minmax", "standardize", "clip")
"""Transforms a column can go through, applied in the order given."""
CLIP_LIMIT = 5.0
"""``clip`` (after ``standardize``) holds a feature within this many training-row standard
deviations: a value far outside what the network trained on (e.g. a bad magnitude) cannot
throw its prediction anywhere. The rows stay; ``run.json`` counts the values clipped."""

DEFAULT_SEED = 1453


@dataclass(frozen=True)
class ColumnSpec:
    """One catalog column and the transforms that turn it into a feature or target."""

    column: str
    transforms: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        unknown = [name for name in self.transforms if name not in TRANSFORMS]
        if unknown:
            raise ConfigError(
                f"column {self.column!r}: unknown transform(s) {unknown}; known: {list(TRANSFORMS)}"
            )
        object.__setattr__(self, "transforms", tuple(self.transforms))


@dataclass(frozen=True)
class Split:
    """Fractions of the kept rows for training, validation and test (summing to 1).

    The rows are split after the seeded shuffle: the first ``train`` share trains, the next
    ``validation`` share is scored every epoch (``val_loss``), the rest is the test set.
    """

    train: float = 1.0
    validation: float = 0.0
    test: float = 0.0

    def __post_init__(self) -> None:
        values = {"train": self.train, "validation": self.validation, "test": self.test}
        for name, value in values.items():
            if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= 1:
                raise ConfigError(f"split {name} must be a fraction in [0, 1], got {value!r}")
        if self.train <= 0:
            raise ConfigError(f"split train must be > 0, got {self.train!r}")
        if abs(sum(values.values()) - 1) > 1e-9:
            raise ConfigError(
                f"split fractions must sum to 1, got train {self.train} + validation "
                f"{self.validation} + test {self.test} = {sum(values.values()):g}"
            )

    def sizes(self, rows: int) -> tuple[int, int, int]:
        """Row counts (train, validation, test) for ``rows`` rows; every non-zero share gets
        at least one row."""
        n_val = max(round(self.validation * rows), 1 if self.validation else 0)
        n_test = max(round(self.test * rows), 1 if self.test else 0)
        n_train = rows - n_val - n_test
        if n_train < 1:
            raise CatalogError(f"{rows} rows are too few for the split {vars(self)}")
        return n_train, n_val, n_test


@dataclass
class Dataset:
    """Training arrays and how they were made from the catalog.

    Attributes
    ----------
    x : ndarray, shape (n, n_features), float32
    y : ndarray, shape (n, 1), float32
    features, target : ColumnSpec
        How each column was transformed.
    transform_params : dict
        Per column, the fitted parameters of each transform (e.g. the min and max of log10 L),
        so that normalised values can be mapped back.
    rows_total, rows_dropped : int
        Catalog rows before and rows dropped for missing, non-finite or (before log10)
        non-positive values.
    x_val, y_val, x_test, y_test : ndarray
        The validation and test rows (empty without a split).
    split : Split
        The fractions the kept rows were split by.
    """

    x: np.ndarray
    y: np.ndarray
    features: tuple[ColumnSpec, ...]
    target: ColumnSpec
    transform_params: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    rows_total: int = 0
    rows_dropped: int = 0
    x_val: np.ndarray = field(default_factory=lambda: np.empty((0, 1), np.float32))
    y_val: np.ndarray = field(default_factory=lambda: np.empty((0, 1), np.float32))
    x_test: np.ndarray = field(default_factory=lambda: np.empty((0, 1), np.float32))
    y_test: np.ndarray = field(default_factory=lambda: np.empty((0, 1), np.float32))
    split: Split = field(default_factory=lambda: Split())

    @property
    def rows(self) -> int:
        """Number of rows kept (training + validation + test)."""
        return len(self.y) + len(self.y_val) + len(self.y_test)

    def summary(self) -> dict[str, Any]:
        """A JSON-ready description for run records."""
        return {
            "features": [
                vars(spec) | {"transforms": list(spec.transforms)} for spec in self.features
            ],
            "target": vars(self.target) | {"transforms": list(self.target.transforms)},
            "rows_total": self.rows_total,
            "rows_kept": self.rows,
            "rows_dropped": self.rows_dropped,
            "split": vars(self.split),
            "rows_train": len(self.y),
            "rows_validation": len(self.y_val),
            "rows_test": len(self.y_test),
            "transform_params": self.transform_params,
        }


def valid_rows(frame: pd.DataFrame, specs: Sequence[ColumnSpec]) -> pd.Series:
    """Rows where every column is finite and, if it is log-transformed, positive."""
    keep = pd.Series(True, index=frame.index)
    for spec in specs:
        values = pd.to_numeric(frame[spec.column], errors="coerce").to_numpy(dtype=float)
        ok = np.isfinite(values)
        if "log10" in spec.transforms:
            ok &= values > 0
        keep &= ok
    return keep


def transform_column(
    values: np.ndarray, spec: ColumnSpec, fit: np.ndarray | slice = slice(None)
) -> tuple[np.ndarray, list[dict]]:
    """Apply ``spec.transforms`` in order (float64); return the values and fitted parameters.

    Scaling parameters (min/max, mean/std) are fitted on ``values[fit]`` (the training rows)
    and applied to all rows.
    """
    params: list[dict[str, Any]] = []
    for name in spec.transforms:
        if name == "log10":
            values = np.log10(values)
            params.append({"transform": "log10"})
        elif name == "minmax":
            low, high = float(values[fit].min()), float(values[fit].max())
            if high == low:
                raise CatalogError(
                    f"column {spec.column!r} is constant; min-max scaling needs a range"
                )
            values = (values - low) / (high - low)
            params.append({"transform": "minmax", "min": low, "max": high})
        elif name == "standardize":
            mean, std = float(values[fit].mean()), float(values[fit].std())
            if std == 0:
                raise CatalogError(f"column {spec.column!r} is constant; cannot standardise")
            values = (values - mean) / std
            params.append({"transform": "standardize", "mean": mean, "std": std})
        elif name == "clip":
            clipped = int((np.abs(values) > CLIP_LIMIT).sum())
            if clipped:
                log.warning(
                    "column %r: %d value(s) beyond %g clipped", spec.column, clipped, CLIP_LIMIT
                )
            values = np.clip(values, -CLIP_LIMIT, CLIP_LIMIT)
            params.append({"transform": "clip", "limit": CLIP_LIMIT, "clipped": clipped})
    return values, params


def invert_transforms(values: np.ndarray, params: list[dict[str, Any]]) -> np.ndarray:
    """Map transformed values back, undoing the recorded transforms in reverse order."""
    values = np.asarray(values, dtype=float)
    for step in reversed(params):
        if step["transform"] == "minmax":
            values = values * (step["max"] - step["min"]) + step["min"]
        elif step["transform"] == "standardize":
            values = values * step["std"] + step["mean"]
        elif step["transform"] == "log10":
            values = 10.0**values
        elif step["transform"] == "clip":
            raise ConfigError("clipped values cannot be mapped back: clip features, not targets")
    return values


SCALINGS = ("minmax", "standardize")


def unscaled(values: np.ndarray, params: list[dict[str, Any]]) -> np.ndarray:
    """Undo the scaling transforms (:data:`SCALINGS`) at the end of a column's transforms,
    keeping the others: the units the column is modelled in (log10 Teff for the HR target,
    redshift for a standardised ``zs``). Held-out metrics are computed in these units."""
    end = len(params)
    while end and params[end - 1]["transform"] in SCALINGS:
        end -= 1
    return invert_transforms(values, params[end:])


def make_dataset(
    frame: pd.DataFrame,
    features: Sequence[ColumnSpec],
    target: ColumnSpec,
    seed: int | None = DEFAULT_SEED,
    source: str = "catalog",
    split: Split | None = None,
) -> Dataset:
    """Build (x, y) from ``frame``: drop unusable rows, shuffle with ``seed``, split, transform.

    Parameters
    ----------
    frame : DataFrame
        The catalog table.
    features, target : ColumnSpec
        Input columns and the output column, each with its transforms.
    seed : int or None
        Seed of the row shuffle (``numpy.random.default_rng``); None keeps catalog order.
    source : str
        Name of the table, for messages.
    split : Split, optional
        Train/validation/test fractions (default: all rows train). Scaling transforms are
        fitted on the training rows only.

    Raises
    ------
    CatalogError
        If a column is missing or no usable rows remain.
    """
    specs = [*features, target]
    kept, dropped = _usable_rows(frame, specs, source)
    split = split or Split()
    n_train, n_val, _ = split.sizes(len(kept))
    rng_order = np.random.default_rng(seed).permutation(len(kept)) if seed is not None else None
    order = np.arange(len(kept)) if rng_order is None else rng_order
    params: dict[str, list[dict[str, Any]]] = {}
    columns = []
    for spec in specs:
        raw = kept[spec.column].to_numpy(dtype=float)[order]
        values, params[spec.column] = transform_column(raw, spec, fit=slice(0, n_train))
        columns.append(values)
    x = np.stack(columns[:-1], axis=1).astype(np.float32)
    y = columns[-1].reshape(-1, 1).astype(np.float32)
    cuts = [n_train, n_train + n_val]
    (x, x_val, x_test), (y, y_val, y_test) = np.split(x, cuts), np.split(y, cuts)
    return Dataset(
        x,
        y,
        tuple(features),
        target,
        params,
        len(frame),
        dropped,
        x_val,
        y_val,
        x_test,
        y_test,
        split,
    )


def _usable_rows(
    frame: pd.DataFrame, specs: Sequence[ColumnSpec], source: str
) -> tuple[pd.DataFrame, int]:
    """The rows of ``frame`` that every column of ``specs`` can use, and how many were dropped.

    Raises CatalogError if a column is missing or no row is left.
    """
    missing = [spec.column for spec in specs if spec.column not in frame.columns]
    if missing:
        raise CatalogError(f"{source} is missing column(s) {missing}; it has {list(frame.columns)}")
    keep = valid_rows(frame, specs)
    kept = frame.loc[keep]
    dropped = int((~keep).sum())
    log.info(
        "%s: kept %d of %d rows, dropped %d (missing, non-finite or non-positive before log10)",
        source,
        len(kept),
        len(frame),
        dropped,
    )
    if len(kept) == 0:
        raise CatalogError(f"{source}: no usable rows for columns {[s.column for s in specs]}")
    return kept, dropped

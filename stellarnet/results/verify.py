"""Checks that a results folder reads back as it was written, before anything is drawn from it.

``stellarnet figures`` draws a folder all or nothing. :func:`record_problems` and
:func:`history_problems` list every problem of a folder's ``run.json`` and history table (a
missing key, a missing column, a value that is not finite in a run recorded as complete, a
gap in the epochs, a learning rate without rows, a last loss other than the recorded one), and
:func:`stellarnet.results.saved.load_results` raises them as one
:class:`~stellarnet.errors.ResultsDamaged` (:func:`damaged`) naming the file and the fix. The
catalog is checked by :func:`stellarnet.results.run_catalog.load_run_catalog`; what a run's status
says about its history is in :mod:`stellarnet.results.status`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from stellarnet.checks import is_int
from stellarnet.errors import ResultsDamaged
from stellarnet.results.status import COMPLETE, RUN_STATUSES, Divergence, divergences, is_number
from stellarnet.schema import RECORD_GROUPS, parameter_names, parse_column
from stellarnet.vocabulary import ACTIVATIONS, LOSSES

RECORD_FIX = (
    "Restore run.json from a backup or version control, or train the run again "
    "(`stellarnet experiment` or `stellarnet sweep` with --force)."
)

MAX_LISTED = 6
"""Epochs or columns named per problem; more are counted."""


# --- run.json ------------------------------------------------------------------------------


def _section(parent: Any, key: str, where: str, problems: list[str]) -> Mapping | None:
    value = parent.get(key) if isinstance(parent, Mapping) else None
    if not isinstance(value, Mapping):
        problems.append(f"{where}{key} is " + ("missing" if value is None else "not an object"))
        return None
    return value


def _column_problems(entry: Any, where: str) -> list[str]:
    if not isinstance(entry, Mapping) or not isinstance(entry.get("column"), str):
        return [f"{where} must be an object with a column name, not {entry!r}"]
    transforms = entry.get("transforms", [])
    if not isinstance(transforms, list) or not all(isinstance(t, str) for t in transforms):
        return [f"{where}.transforms must be a list of names, not {transforms!r}"]
    return []


def _model_problems(model: Mapping, features: Any) -> list[str]:
    problems = []
    for key in ("inputs", "outputs"):
        value = model.get(key, 1)
        if not is_int(value) or value < 1:
            problems.append(f"config.model.{key} must be an integer >= 1, not {value!r}")
    hidden = model.get("hidden")
    if not isinstance(hidden, list) or not all(is_int(n) and n >= 1 for n in hidden):
        problems.append(f"config.model.hidden must be a list of layer widths, not {hidden!r}")
    for key in ("activation", "output_activation"):
        value = model.get(key, "linear")
        if value not in ACTIVATIONS:
            problems.append(f"config.model.{key} {value!r} is not one of {list(ACTIVATIONS)}")
    if isinstance(features, list) and model.get("inputs") != len(features):
        problems.append(
            f"config.model.inputs is {model.get('inputs')!r} but config.dataset has "
            f"{len(features)} feature(s)"
        )
    return problems


def _training_problems(training: Mapping) -> list[str]:
    problems = []
    if training.get("loss") not in LOSSES:
        problems.append(f"config.training.loss {training.get('loss')!r} is not one of {LOSSES}")
    rate = training.get("learning_rate")
    if not is_number(rate) or rate <= 0:
        problems.append(f"config.training.learning_rate must be a number > 0, not {rate!r}")
    epochs = training.get("epochs")
    if not is_int(epochs) or epochs < 0:
        problems.append(f"config.training.epochs must be an integer >= 0, not {epochs!r}")
    every = training.get("record_every", 1)
    if not is_int(every) or every < 1:
        problems.append(f"config.training.record_every must be an integer >= 1, not {every!r}")
    record = training.get("record", list(RECORD_GROUPS[:3]))
    if not isinstance(record, list) or not set(record) <= set(RECORD_GROUPS):
        problems.append(f"config.training.record must list some of {RECORD_GROUPS}: {record!r}")
    return problems


def _sweep_problems(record: Mapping) -> list[str]:
    rates = record["learning_rates"]
    if (
        not isinstance(rates, list)
        or not rates
        or not all(is_number(lr) and lr > 0 for lr in rates)
        or len(set(rates)) != len(rates)
    ):
        return [f"learning_rates must be a list of distinct numbers > 0, not {rates!r}"]
    return []


def _status_problems(record: Mapping) -> list[str]:
    problems: list[str] = []
    status = record.get("status", COMPLETE)
    sweep = "learning_rates" in record
    if not isinstance(status, str) or (not sweep and status not in RUN_STATUSES):
        problems.append(f"status {status!r} is not one of {list(RUN_STATUSES)}")
    found = divergences(record, problems)
    if sweep and isinstance(record.get("learning_rates"), list):
        listed = {float(lr) for lr in record["learning_rates"] if is_number(lr)}
        problems += [
            f"diverged_rates names the rate {lr:g}, which learning_rates does not list"
            for lr in found
            if lr not in listed
        ]
    return problems


def record_problems(record: Any) -> list[str]:
    """Everything wrong with a ``run.json`` that figures need (empty: usable)."""
    if not isinstance(record, Mapping):
        return [f"it holds a JSON {type(record).__name__}, not an object"]
    problems: list[str] = []
    config = _section(record, "config", "", problems)
    if config is None:
        return problems
    sections = [_section(config, key, "config.", problems) for key in ("model", "training")]
    dataset = _section(config, "dataset", "config.", problems)
    features = None
    if dataset is not None:
        features = dataset.get("features")
        if not isinstance(features, list) or not features:
            problems.append(f"config.dataset.features must be a non-empty list, not {features!r}")
            features = None
        else:
            for i, entry in enumerate(features):
                entry = {"column": entry} if isinstance(entry, str) else entry
                problems += _column_problems(entry, f"config.dataset.features[{i}]")
        target = dataset.get("target")
        target = {"column": target} if isinstance(target, str) else target
        problems += _column_problems(target, "config.dataset.target")
    model, training = sections
    if model is not None:
        problems += _model_problems(model, features)
    if training is not None:
        problems += _training_problems(training)
    if "learning_rates" in record:
        problems += _sweep_problems(record)
    return problems + _status_problems(record)


# --- the history table -------------------------------------------------------------------


def _listed(items: Sequence[Any]) -> str:
    shown = ", ".join(map(str, items[:MAX_LISTED]))
    return shown + (f" and {len(items) - MAX_LISTED} more" if len(items) > MAX_LISTED else "")


def layer_sizes(record: Mapping[str, Any]) -> tuple[int, ...]:
    """Layer widths of a checked ``run.json``, inputs first."""
    model = record["config"]["model"]
    return (int(model["inputs"]), *map(int, model["hidden"]), int(model.get("outputs", 1)))


def required_columns(record: Mapping[str, Any]) -> list[str]:
    """The history columns the figures read: epoch, output, loss, every weight and bias, and
    the gradients if the run recorded them."""
    sizes = layer_sizes(record)
    recorded = record["config"]["training"].get("record", RECORD_GROUPS[:3])
    kinds = ["w", "b"] + (["g", "gb"] if "gradients" in recorded else [])
    return ["epoch", "output", "loss", *(n for k in kinds for n in parameter_names(sizes, k))]


def _column_problems_of(frame: pd.DataFrame, record: Mapping[str, Any], sweep: bool) -> list[str]:
    required = (["lr"] if sweep else []) + required_columns(record)
    missing = [c for c in required if c not in frame.columns]
    problems = []
    if missing:
        problems.append(
            f"it lacks the column(s) {_listed(missing)} that the history of a "
            f"{'-'.join(map(str, layer_sizes(record)))} net holds"
        )
    expected = set(required)
    alien = [
        c
        for c in frame.columns
        if (p := parse_column(c)) is not None and p[0] in ("w", "b") and c not in expected
    ]
    if alien:
        problems.append(
            f"it has parameter column(s) {_listed(alien)} that a "
            f"{'-'.join(map(str, layer_sizes(record)))} net (run.json) does not have"
        )
    wrong = [c for c in required if c in frame.columns and not _numeric(frame[c])]
    if wrong:
        problems.append(f"column(s) {_listed(wrong)} hold values that are not numbers")
    return problems


def _numeric(column: pd.Series) -> bool:
    return pd.api.types.is_numeric_dtype(column) and not pd.api.types.is_bool_dtype(column)


def _epoch_problems(epochs: np.ndarray, every: int, total: int, name: str) -> list[str]:
    """Rows at epochs 0, every, 2 every, ...; the last may lie between (a run stopped early
    or diverged there); none beyond the epochs the config trained."""
    if len(epochs) == 0:
        return [f"{name} has no rows"]
    if not np.all(np.isfinite(epochs)) or not np.all(epochs == np.round(epochs)):
        return [f"{name}: the epoch column holds values that are not whole numbers"]
    expected = np.arange(len(epochs) - 1) * every
    previous = expected[-1] if len(expected) else -every
    grid_ok = np.array_equal(epochs[:-1], expected) and 0 < epochs[-1] - previous <= every
    if not grid_ok or epochs[0] != 0:
        return [
            f"{name}: its epochs are {_listed([int(e) for e in epochs])}, not 0, {every}, "
            f"{2 * every}, ... in order without gaps (rows were removed, duplicated or reordered)"
        ]
    if epochs[-1] > total:
        return [f"{name}: it has rows up to epoch {int(epochs[-1])}, but the run trained {total}"]
    return []


def _finite_problems(
    part: pd.DataFrame, columns: list[str], divergence: Divergence | None, name: str
) -> list[str]:
    """Values that are not finite where the run's status says they must be (row 0's
    gradients are empty by convention)."""
    values = part[columns].to_numpy(dtype=float)
    gradients = np.array([parse_column(c) is not None and c.startswith("g") for c in columns])
    bad = ~np.isfinite(values)
    bad[0, gradients] = False
    rows = bad.any(axis=1)
    epochs = part["epoch"].to_numpy()
    if divergence is None:
        if not rows.any():
            return []
        where = [
            f"{columns[c]} at epoch {int(epochs[r])}" for r, c in zip(*np.nonzero(bad), strict=True)
        ]
        return [
            f"{name}: values that are not finite ({_listed(where)}) although run.json records "
            "the run as complete"
        ]
    problems = []
    if int(epochs[-1]) != divergence.epoch:
        problems.append(
            f"{name}: run.json says it {divergence.describe()}, but its history ends at epoch "
            f"{int(epochs[-1])}"
        )
    elif not rows[-1]:
        problems.append(
            f"{name}: run.json says it {divergence.describe()}, but that row holds finite values"
        )
    early = [int(e) for e in epochs[:-1][rows[:-1]]]
    if early:
        problems.append(
            f"{name}: values that are not finite before the epoch it diverged (epoch(s) "
            f"{_listed(early)})"
        )
    return problems


def history_problems(frame: pd.DataFrame, record: Mapping[str, Any]) -> list[str]:
    """Everything wrong with a history table read against its (checked) ``run.json``."""
    sweep = "learning_rates" in record
    problems = _column_problems_of(frame, record, sweep)
    if problems:
        return problems
    training = record["config"]["training"]
    every, total = int(training.get("record_every", 1)), int(training["epochs"])
    diverged = divergences(record)
    rates = [float(lr) for lr in record["learning_rates"]] if sweep else [training["learning_rate"]]
    if sweep:
        present = [float(lr) for lr in pd.unique(frame["lr"])]
        if absent := [f"{lr:g}" for lr in rates if lr not in present]:
            problems.append(f"run.json lists the rate(s) {_listed(absent)}, which have no rows")
        if alien := [f"{lr:g}" for lr in present if lr not in rates]:
            problems.append(f"it has rows of rate(s) {_listed(alien)} that run.json does not list")
    columns = [c for c in required_columns(record) if c != "epoch"]
    for lr in rates:
        part = frame[frame["lr"] == lr] if sweep else frame
        if part.empty:
            continue
        name = f"LR={lr:g}" if sweep else "the history"
        epochs = part["epoch"].to_numpy(dtype=float)
        found = _epoch_problems(epochs, every, total, name)
        problems += found or _finite_problems(part, columns, diverged.get(lr), name)
        problems += _last_loss_problems(part, record, lr, sweep, name)
    return problems


def _last_loss_problems(
    part: pd.DataFrame, record: Mapping[str, Any], lr: float, sweep: bool, name: str
) -> list[str]:
    """The last loss run.json recorded (``loss_last``, a sweep's ``loss_last_by_lr``) against
    the table's: a history cut short no longer ends with it."""
    if sweep:
        by_rate = record.get("loss_last_by_lr")
        recorded = None
        if isinstance(by_rate, Mapping):
            recorded = next((v for k, v in by_rate.items() if _same_rate(k, lr)), None)
    else:
        recorded = record.get("loss_last")
    last = float(part["loss"].iloc[-1])
    if not is_number(recorded) or not math.isfinite(last) or recorded == last:
        return []
    return [
        f"{name}: its last loss is {last:.6g} (epoch {int(part['epoch'].iloc[-1])}) where "
        f"run.json records {recorded:.6g} (rows were cut or changed)"
    ]


def _same_rate(label: Any, lr: float) -> bool:
    try:
        return float(label) == lr
    except (TypeError, ValueError):
        return False


def damaged(path: Path, problems: list[str], fix: str) -> ResultsDamaged:
    """One error listing every problem of the file ``path``, and the fix."""
    lines = "\n".join(f"  - {problem}" for problem in problems)
    return ResultsDamaged(f"{path} cannot be used:\n{lines}\n{fix}")


def history_fix(path: Path) -> str:
    """How to repair a history table: restore it, or read the other copy, or train again."""
    other = path.with_suffix(".csv" if path.suffix == ".parquet" else ".parquet")
    copy = (
        f" If {other.name} beside it is intact, move {path.name} away and `stellarnet figures` "
        f"reads {other.name}."
        if other.is_file() and path.suffix == ".parquet"
        else ""
    )
    return (
        f"Restore {path.name} from a backup or version control, or train the run again "
        f"(`stellarnet experiment` or `stellarnet sweep` with --force).{copy}"
    )

"""A run's status as its ``run.json`` records it (written by :mod:`stellarnet.runs`;
``run.json`` files without one are of complete runs):

* a single run records ``"status": "complete"``, or ``"diverged"`` with ``"diverged_at":
  {"epoch": N, "loss": x}`` (``x`` a number or ``"nan"``, ``"inf"``, ``"-inf"``); its history
  then ends with the row of epoch N, the first holding a value that is not finite;
* a sweep records ``"status"`` and ``"diverged_rates": {"<rate label>": {"epoch": N, "loss":
  x}}`` (the label as in its ``lr=<label>`` folder); its history holds each diverged rate's rows
  up to and including that first non-finite row.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from stellarnet.checks import is_int
from stellarnet.files import json_number
from stellarnet.schema import first_divergence

if TYPE_CHECKING:
    import pandas as pd

COMPLETE = "complete"
DIVERGED = "diverged"
RUN_STATUSES = (COMPLETE, DIVERGED)
"""What a single run's ``status`` may say."""


@dataclass(frozen=True)
class Divergence:
    """Where a run's training stopped being finite: the epoch of the first non-finite row of
    its history (its last row) and the loss recorded in that row."""

    epoch: int
    loss: float

    def describe(self) -> str:
        """``"diverged at epoch 25 (loss inf)"``."""
        return f"diverged at epoch {self.epoch} (loss {self.loss:.4g})"


def divergence_record(history: pd.DataFrame) -> dict[str, Any] | None:
    """``{"epoch": N, "loss": x}`` of the first row of ``history`` (one run's) that is not
    finite, as ``run.json`` records it; None if every row is finite."""
    found = first_divergence(history)
    return None if found is None else {"epoch": found[0], "loss": json_number(found[1])}


def run_status(history: pd.DataFrame) -> dict[str, Any]:
    """A single run's ``{"status": "complete"}``, or ``{"status": "diverged", "diverged_at":
    ...}`` (:func:`divergence_record`)."""
    diverged = divergence_record(history)
    if diverged is None:
        return {"status": COMPLETE}
    return {"status": DIVERGED, "diverged_at": diverged}


def parse_loss(value: Any) -> float:
    """A ``diverged_at`` loss: a number, or ``"nan"``, ``"inf"``, ``"-inf"``."""
    if isinstance(value, bool):
        raise ValueError(value)
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str) and value.strip().lower() in ("nan", "inf", "-inf", "+inf"):
        return float(value)
    raise ValueError(value)


def _divergence(entry: Any, where: str, problems: list[str]) -> Divergence | None:
    if not isinstance(entry, Mapping):
        problems.append(f"{where} must be an object {{'epoch': N, 'loss': x}}, not {entry!r}")
        return None
    epoch, loss = entry.get("epoch"), entry.get("loss")
    if not is_int(epoch) or epoch < 0:
        problems.append(f"{where}.epoch must be an epoch number >= 0, not {epoch!r}")
        return None
    try:
        return Divergence(int(epoch), parse_loss(loss))
    except ValueError:
        problems.append(f'{where}.loss must be a number or "nan", "inf", "-inf", not {loss!r}')
        return None


def divergences(record: Mapping[str, Any], problems: list[str] | None = None) -> dict:
    """Diverged learning rates of a run or sweep: ``{lr: Divergence}`` (empty if none).

    A single run's key is its ``config.training.learning_rate``; a sweep's are the rate labels
    of ``diverged_rates`` read as numbers. Malformed entries are skipped (and described in
    ``problems`` if given).
    """
    problems = [] if problems is None else problems
    if "learning_rates" in record:
        entries = record.get("diverged_rates") or {}
        if not isinstance(entries, Mapping):
            problems.append(f"diverged_rates must be an object, not {entries!r}")
            return {}
        found = {}
        for label, entry in entries.items():
            try:
                lr = float(label)
            except ValueError:
                problems.append(f"diverged_rates names {label!r}, which is not a learning rate")
                continue
            divergence = _divergence(entry, f"diverged_rates[{label!r}]", problems)
            if divergence is not None:
                found[lr] = divergence
        return found
    if record.get("status", COMPLETE) != DIVERGED:
        return {}
    if "diverged_at" not in record:
        problems.append('status is "diverged" but there is no diverged_at')
        return {}
    divergence = _divergence(record["diverged_at"], "diverged_at", problems)
    config = record.get("config")
    training = config.get("training") if isinstance(config, Mapping) else None
    lr = training.get("learning_rate") if isinstance(training, Mapping) else None
    return {} if divergence is None or not is_number(lr) else {float(lr): divergence}


def is_number(value: Any) -> bool:
    """Whether ``value`` is a finite number (not a bool)."""
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)

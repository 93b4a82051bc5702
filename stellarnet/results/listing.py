"""The saved runs and sweeps of a results folder as one aligned text table
(``stellarnet runs``), read from their ``run.json`` files alone (no history, no TensorFlow).

A run or sweep is any folder ``<results>/<experiment>/<name>/`` that holds a ``run.json``,
whatever its name: tagged ones (``lr=0.3,epochs=300``, ``sweep-notebook-lr=0.1,0.3``) and
those named before tags existed (``lr=0.3``, ``sweep``). A sweep's row is followed by one row
per rate, read from its ``lr=<rate>/run.json``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import astuple, dataclass, fields
from pathlib import Path
from typing import Any

from stellarnet.errors import StellarnetError
from stellarnet.results.finding import STUDY_KIND
from stellarnet.results.names import rate_label
from stellarnet.results.saved import RUN_JSON

MISSING = "-"
MAX_RATES_SHOWN = 40
"""A sweep's rates longer than this (joined by commas) are shown as ``<n> rates <min>..<max>``."""


@dataclass(frozen=True)
class RunRow:
    """One line of the table: a run, a sweep, or one rate of a sweep (kind ``rate``)."""

    experiment: str
    kind: str
    lr: str
    epochs: str
    seed: str
    init: str
    status: str
    loss_first: str
    loss_last: str
    folder: str


HEADER = RunRow(**{f.name: f.name.replace("_", " ") for f in fields(RunRow)})
"""The table's first line: the field names (``loss first``, ``loss last``)."""


def read_record(folder: Path) -> dict[str, Any] | None:
    """``folder``'s ``run.json`` as a dict, or None if it is missing or not a JSON object."""
    try:
        record = json.loads((folder / RUN_JSON).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return record if isinstance(record, dict) else None


def _get(record: Mapping[str, Any], *keys: str) -> Any:
    value: Any = record
    for key in keys:
        value = value.get(key) if isinstance(value, Mapping) else None
    return value


def _text(value: Any) -> str:
    if value is None:
        return MISSING
    if isinstance(value, float):
        return f"{value:.6g}"
    return str(value)


def _rates_text(rates: Sequence[Any]) -> str:
    try:
        labels = [rate_label(float(lr)) for lr in rates]
    except (TypeError, ValueError):
        return MISSING
    joined = ",".join(labels)
    if len(joined) <= MAX_RATES_SHOWN or not labels:
        return joined or MISSING
    low, high = (rate_label(f(float(lr) for lr in rates)) for f in (min, max))
    return f"{len(labels)} rates {low}..{high}"


def _init(record: Mapping[str, Any]) -> str:
    """A sweep's protocol (``same``, ``notebook``), ``from <file>`` for a run started from
    ``--init-from``, else ``seed`` (the seed's model)."""
    if "learning_rates" in record or "sweep" in record:
        protocol = record.get("init") or _get(record, "sweep", "init")
        return _text(protocol)
    init_from = _get(record, "init_from", "path")
    return f"from {Path(str(init_from)).name}" if init_from else "seed"


def record_row(
    experiment: str, kind: str, folder: Path, record: Mapping[str, Any] | None, lr: str = ""
) -> RunRow:
    """The row of one folder from its ``run.json`` (``record``; None: unreadable)."""
    if record is None:
        status = "unreadable run.json"
        return RunRow(
            experiment, kind, lr or MISSING, *[MISSING] * 3, status, MISSING, MISSING, str(folder)
        )
    if not lr:
        rates = record.get("learning_rates")
        rate = _get(record, "config", "training", "learning_rate")
        lr = _rates_text(rates) if isinstance(rates, list) else _text(rate)
    return RunRow(
        experiment,
        kind,
        lr,
        _text(_get(record, "config", "training", "epochs")),
        _text(record.get("seed")),
        _init(record),
        _text(record.get("status")),
        _text(record.get("loss_first")),
        _text(record.get("loss_last")),
        str(folder),
    )


def sweep_rows(experiment: str, folder: Path, record: Mapping[str, Any]) -> list[RunRow]:
    """A sweep's row (its losses are per rate: see the rows below it), then one per rate."""
    head = record_row(experiment, "sweep", folder, record)
    rows = [RunRow(*astuple(head)[:7], MISSING, MISSING, head.folder)]
    rates = record.get("learning_rates")
    for lr in rates if isinstance(rates, list) else []:
        try:
            label = rate_label(float(lr))
        except (TypeError, ValueError):
            continue
        sub = folder / f"lr={label}"
        sub_record = read_record(sub)
        if sub_record is None:  # the sweep's own record knows the last loss
            sub_record = {
                "loss_last": _get(record, "loss_last_by_lr", label),
                "status": "no run.json",
                "seed": record.get("seed"),
                "config": record.get("config"),
                "sweep": {"init": record.get("init")},
            }
        rows.append(record_row(experiment, "rate", sub, sub_record, lr=label))
    return rows


def study_row(experiment: str, folder: Path, record: Mapping[str, Any]) -> RunRow:
    """A study's row: its rates, its seeds as a range, its init protocol; its losses are
    per member (``summary.csv``, ``members.csv``)."""
    study = record.get("study") if isinstance(record.get("study"), Mapping) else {}
    rates = study.get("learning_rates")
    first, seeds = study.get("first_seed", 0), study.get("seeds")
    seed_text = f"{first}..{first + seeds - 1}" if isinstance(seeds, int) else MISSING
    return RunRow(
        experiment,
        STUDY_KIND,
        _rates_text(rates) if isinstance(rates, list) else MISSING,
        _text(study.get("epochs")),
        seed_text,
        _text(study.get("init")),
        _text(record.get("status")),
        MISSING,
        MISSING,
        str(folder),
    )


def _order(folder: Path, record: Mapping[str, Any] | None) -> tuple:
    rate = _get(record or {}, "config", "training", "learning_rate")
    if record is not None and record.get("kind") == STUDY_KIND:
        return (2, 0.0, folder.name)
    if record is not None and isinstance(record.get("learning_rates"), list):
        return (1, 0.0, folder.name)
    return (0, rate if isinstance(rate, int | float) else float("inf"), folder.name)


def experiment_rows(experiment_dir: Path) -> list[RunRow]:
    """The rows of every run, sweep and study folder (one holding a ``run.json``) in
    ``experiment_dir``: runs by rate, then sweeps, then studies, each group by folder name."""
    found = []
    for folder in sorted(experiment_dir.iterdir()):
        if folder.name.startswith(".") or not folder.is_dir() or not (folder / RUN_JSON).exists():
            continue
        found.append((folder, read_record(folder)))
    rows = []
    for folder, record in sorted(found, key=lambda item: _order(*item)):
        if record is not None and record.get("kind") == STUDY_KIND:
            rows.append(study_row(experiment_dir.name, folder, record))
        elif record is not None and isinstance(record.get("learning_rates"), list):
            rows += sweep_rows(experiment_dir.name, folder, record)
        else:
            rows.append(record_row(experiment_dir.name, "run", folder, record))
    return rows


def saved_runs(results_dir: str | Path = "results", experiment: str | None = None) -> list[RunRow]:
    """The rows of every run and sweep of ``experiment`` (default: of every experiment) under
    ``results_dir``; raise StellarnetError if there is none."""
    root = Path(results_dir)
    where = root / experiment if experiment else root
    if not where.is_dir():
        raise StellarnetError(
            f"no results folder {where}; run `stellarnet experiment` first, or give --results"
        )
    if experiment:
        experiments = [where]
    else:
        experiments = [p for p in sorted(root.iterdir()) if p.is_dir() and p.name[:1] != "."]
    rows = [row for folder in experiments for row in experiment_rows(folder)]
    if not rows:
        raise StellarnetError(f"no saved runs under {where} (no folder with a {RUN_JSON})")
    return rows


def runs_table(rows: Sequence[RunRow]) -> str:
    """``rows`` under a header as aligned text columns (two spaces apart); a sweep's rates are
    indented under it."""
    indent = {"rate": "  rate"}
    lines = [astuple(HEADER), *(astuple(row) for row in rows)]
    lines = [(line[0], indent.get(line[1], line[1]), *line[2:]) for line in lines]
    widths = [max(len(line[i]) for line in lines) for i in range(len(fields(RunRow)))]
    return "\n".join(
        "  ".join(cell.ljust(width) for cell, width in zip(line, widths, strict=True)).rstrip()
        for line in lines
    )

"""Train one part of a study and write its Parquet part file: what a local study does part
after part and what a Dask worker does for one task.

A member ``(hidden, seed, lr)`` trains on the rows its seed's shuffle puts in order (the
catalog's kept rows permuted by ``numpy.random.default_rng(seed).permutation``, as
:func:`stellarnet.data.datasets.make_dataset` does) from its seed's initial weights
(:func:`stellarnet.train.draws.initial_layers`), with the rest of its part in the fused loop
(:mod:`stellarnet.train.fused`) or stacked (:func:`stellarnet.train.stacked.train_stacked`),
each member on its own row order: its rows equal ``stellarnet experiment EXP --seed S --lr
R``'s bit for bit. A member that diverges keeps its rows up to its first non-finite one, as a
single run does, and the others train on.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from stellarnet import tfsettings
from stellarnet.errors import ConfigError
from stellarnet.results.study_parts import write_part
from stellarnet.results.study_summary import member_stats
from stellarnet.runs.config import ExperimentConfig
from stellarnet.runs.study_grid import Part, StudySpec

log = logging.getLogger(__name__)

ORDER_FREE_TRANSFORMS = {"log10", "minmax"}
"""Transforms whose values do not depend on the rows' order (min and max, not sums): a
seed's rows are then the catalog-order rows permuted."""
ENGINE = "engine"
"""The column of a part's member statistics that says what trained it: ``fused`` or
``stacked`` (``run.json``'s ``engines``, per width; not in members.csv)."""
SHORT_RUN_EPOCHS = 100
"""Parts of at most this many epochs train in larger groups (:func:`part_groups`)."""
SHORT_GROUP_MEMBERS = 64
"""Members per group of a short run's part: the fastest on the HR net (2 cores; 8192
members x 10 epochs end to end: 9.8-11.4 s, and 11.5-11.9 s in the long runs' groups of up
to 48)."""
_DATA: dict[str, tuple[np.ndarray, np.ndarray]] = {}


@dataclass(frozen=True)
class PartTask:
    """All a worker needs to train one part: small, picklable, the same on every try."""

    config: ExperimentConfig
    """The experiment as trained (the study's epochs and record groups applied)."""
    spec: StudySpec
    part: Part
    history: Path
    """The study's history folder (in its staging folder) that the part file goes to."""


def check_studyable(config: ExperimentConfig) -> None:
    """ConfigError unless a study can train ``config``: a plain full-batch Dense net on all
    rows (no split), with order-free transforms."""
    where = config.source or f"experiment {config.name!r}"
    if not config.model.plain or config.training.batch_size is not None:
        raise ConfigError(
            f"{where}: a study trains its members stacked, which needs plain full-batch nets "
            "(no dropout, no l2, no batch_size); remove those settings from a copy of the config"
        )
    if config.split.validation or config.split.test:
        raise ConfigError(
            f"{where}: a study trains every member on all rows in its seed's order; remove "
            "[dataset] split from a copy of the config"
        )
    for column in (*config.features, config.target):
        other = set(column.transforms) - ORDER_FREE_TRANSFORMS
        if other:
            raise ConfigError(
                f"{where}: transform(s) {sorted(other)} of column {column.column!r} depend on the "
                f"rows' order; a study supports {sorted(ORDER_FREE_TRANSFORMS)}"
            )


def study_data(config: ExperimentConfig, loaded: Any = None) -> tuple[np.ndarray, np.ndarray]:
    """The training ``(x, y)`` in catalog order (kept rows, transforms applied), loaded once
    per process and config (``loaded``: the dataset of ``config`` without shuffle, if the
    caller has it)."""
    from stellarnet.runs.experiment import load_data

    key = json.dumps(config.to_dict(), sort_keys=True, default=str)
    if key not in _DATA:
        if loaded is None:
            _, loaded = load_data(dataclasses.replace(config, shuffle=False))
        _DATA.clear()  # one study at a time: do not keep older catalogs
        _DATA[key] = (loaded.x, loaded.y)
    return _DATA[key]


def row_order(config: ExperimentConfig, seed: int, rows: int) -> np.ndarray:
    """The order seed ``seed`` puts the ``rows`` kept rows in (catalog order if the config
    does not shuffle)."""
    if not config.shuffle:
        return np.arange(rows)
    return np.random.default_rng(seed).permutation(rows)


def part_config(config: ExperimentConfig, hidden: int) -> ExperimentConfig:
    """``config`` with one hidden layer of ``hidden`` units."""
    return dataclasses.replace(config, model=dataclasses.replace(config.model, hidden=(hidden,)))


def cut_members(long: pd.DataFrame) -> pd.DataFrame:
    """The stacked history without each member's rows after its first row whose output or
    loss is not finite (a single run's history ends there)."""
    bad = ~(np.isfinite(long["loss"].to_numpy()) & np.isfinite(long["output"].to_numpy()))
    if not bad.any():
        return long
    member = long["member"].to_numpy()
    after = pd.Series(bad).groupby(member).cumsum().to_numpy() - bad  # bad rows before this one
    return long[after == 0].reset_index(drop=True)


def worker_threads() -> int | None:
    """On a Dask worker, its number of threads (one, as the README starts them: the
    machine's other cores run other workers); elsewhere None."""
    if "distributed" not in sys.modules:  # not imported: not a Dask worker
        return None
    from distributed import get_worker

    try:
        return get_worker().state.nthreads
    except ValueError:  # not on a worker
        return None


def worker_settings() -> dict[str, str]:
    """On a Dask worker, TensorFlow's settings for it: as many threads between ops as the
    worker has threads (:func:`worker_threads`). Elsewhere none."""
    threads = worker_threads()
    return {} if threads is None else {"TF_NUM_INTEROP_THREADS": str(threads)}


def part_groups(members: int, epochs: int) -> int | None:
    """Groups of a part's stacked graph. Short runs: groups of about
    :data:`SHORT_GROUP_MEMBERS`, at least one per core, since tracing and optimising the graph
    grow with the number of groups and outweigh the faster epochs of the smaller groups
    (:func:`stellarnet.train.grouping.default_groups`, used for longer runs)."""
    if epochs > SHORT_RUN_EPOCHS:
        return None
    cores = os.cpu_count() or 1
    return min(members, max(cores, -(-members // SHORT_GROUP_MEMBERS)))


def fused_applies(config: ExperimentConfig) -> bool:
    """Whether the fused loop trains ``config``'s nets here
    (:func:`stellarnet.train.fused.applies`)."""
    from stellarnet.train import fused

    options = config.stacked_options()
    model = (options["activation"], options["output_activation"])
    return fused.applies(config.model.layer_sizes, *model, options["optimizer"], options["loss"])


def train_members(
    config: ExperimentConfig,
    layers: list[Any],
    x: np.ndarray,
    y: np.ndarray,
    rates: list[float],
    row_orders: np.ndarray,
    index: int,
) -> tuple[str, list[Any], pd.DataFrame]:
    """Train a part's members (initial ``layers``, ``rates``, ``row_orders``): the fused loop
    where it applies (:func:`stellarnet.train.fused.applies`), else stacked. Returns which
    (``"fused"`` or ``"stacked"``), their final layers and their long history (a ``member``
    column; every row, NaN or not)."""
    from stellarnet.train import fused
    from stellarnet.train.stacked import train_stacked

    options = config.stacked_options()
    training = {name: options[name] for name in ("epochs", "optimizer", "loss", "record")}
    if fused_applies(config):
        finals, long = fused.train_fused(
            layers,
            x,
            y,
            rates,
            **training,
            record_every=options["record_every"],
            row_orders=row_orders,
            threads=worker_threads(),
        )
        return "fused", finals, long
    recorder, long = train_stacked(
        layers,
        x,
        y,
        rates,
        **options,
        context=f"study part {index}",
        stop_on_divergence=False,
        row_orders=row_orders,
        groups=part_groups(len(layers), config.training.epochs),
    )
    return "stacked", recorder.final_layers(), long


def train_part(task: PartTask) -> pd.DataFrame:
    """Train ``task``'s part, write its part file and return its members' statistics
    (:func:`stellarnet.results.study_summary.member_stats`)."""
    tfsettings.apply(tfsettings.SETTINGS | worker_settings(), warn=False)  # a Dask worker's TF
    with tfsettings.tensor_malloc():
        return _train_part(task)


def _train_part(task: PartTask) -> pd.DataFrame:
    """:func:`train_part` once TensorFlow's settings are made."""
    from stellarnet.train.draws import initial_layers

    config, spec, part = part_config(task.config, task.part.hidden), task.spec, task.part
    x, y = study_data(task.config)
    members = part.members(spec)
    seeds = list(dict.fromkeys(seed for seed, _ in members))
    drawn = initial_layers(config.model, seeds, len(spec.learning_rates), spec.init)
    draws = dict(zip(seeds, drawn, strict=True))
    copy = {lr: i for i, lr in enumerate(spec.learning_rates)}
    layers = [draws[seed][copy[lr]] for seed, lr in members]
    orders = {seed: row_order(config, seed, len(y)) for seed in seeds}
    rates = [lr for _, lr in members]
    row_orders = np.stack([orders[seed] for seed, _ in members])
    engine, trained, long = train_members(config, layers, x, y, rates, row_orders, part.index)
    long = cut_members(long)
    keys = pd.DataFrame({"lr": rates, "hidden": part.hidden, "seed": [seed for seed, _ in members]})
    finals = (layers, trained) if spec.record == "loss" else None
    stats = member_stats(long, config.model.layer_sizes, keys, finals, x, config.model.activation)
    index = long.pop("member").to_numpy()
    for position, column in enumerate(("lr", "hidden", "seed")):
        long.insert(position, column, keys[column].to_numpy()[index])
    write_part(task.history, part.name, long)
    log.debug("part %d: %d members written", part.index, len(members))
    return stats.assign(**{ENGINE: engine})

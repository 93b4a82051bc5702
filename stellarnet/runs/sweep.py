"""Learning-rate sweeps: one experiment, K learning rates, one long history table.

Two protocols for the initial weights (``init``):

``"same"`` (default)
    Every rate starts from the same weights, those of the model built right after
    ``keras.utils.set_random_seed(seed)``: the learning rate is the only difference, a fair
    comparison. Each rate's history then equals a single ``stellarnet experiment`` run.
``"notebook"``
    The assignment notebook's protocol: a base model is built right after
    ``keras.utils.set_random_seed(seed)``, then each rate trains its own
    ``keras.models.clone_model(base)``, cloned in the order given. Cloning re-draws the
    weights, so each rate starts from different weights, and a rate's start depends on its
    position in the list. Use it to reproduce the notebook's tables.

By default the K runs are trained together as K stacked copies in one compiled graph
(:mod:`stellarnet.train.stacked`); ``vectorize=False`` trains them one after another. Both give
the same numbers.

A rate that diverges does not stop the others: its rows end at its first epoch whose output
or loss is NaN or infinite (stacked members train on; their numbers are unchanged), its
``lr=<rate>/run.json`` says ``"status": "diverged"`` with ``"diverged_at"``, and the sweep's
``run.json`` lists it under ``"diverged_rates"`` (``"status": "diverged"`` if any rate did).

Results: ``results/<experiment>/sweep-lr=<rates>/`` (``sweep-notebook-lr=<rates>`` for the
notebook protocol, with tags for the settings that differ from the config, e.g.
``sweep-lr=0.1,0.3,epochs=300``: :mod:`stellarnet.runs.naming`) holds
``history.parquet``/``.csv`` (the single-run columns with ``lr`` first), ``run.json`` (with
``learning_rates`` and ``init``), ``loss.png`` (every rate on one axis) and one folder per
rate, ``lr=<lr>/``, laid out as a single run.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from stellarnet.checks import check_choice, check_learning_rate
from stellarnet.data.datasets import Dataset
from stellarnet.errors import ConfigError, TrainingDiverged
from stellarnet.files import json_number
from stellarnet.params import Layers
from stellarnet.results.folders import prepare_folder, staged_result
from stellarnet.results.names import rate_label
from stellarnet.results.status import COMPLETE, DIVERGED, divergence_record
from stellarnet.runs.config import ExperimentConfig
from stellarnet.runs.experiment import (
    RunResult,
    history_size,
    load_data,
    run_record,
    train_config,
    write_run_files,
)
from stellarnet.runs.naming import sweep_folder
from stellarnet.schema import first_divergence
from stellarnet.vocabulary import INIT_PROTOCOLS

log = logging.getLogger(__name__)


def stackable(config: ExperimentConfig) -> bool:
    """Whether the stacked graph can train this config (plain full-batch dense nets)."""
    return config.model.plain and config.training.batch_size is None and not config.split.validation


def initial_members(config: ExperimentConfig, count: int, init: str) -> list[Layers]:
    """Initial (kernel, bias) arrays of ``count`` runs under protocol ``init``."""
    import keras

    from stellarnet.train.models import build_model, model_layers

    check_choice(init, "init", INIT_PROTOCOLS)
    base = build_model(config.model, config.seed)
    if init == "same":
        return [model_layers(base)] * count
    return [model_layers(keras.models.clone_model(base)) for _ in range(count)]


def train_sweep(
    config: ExperimentConfig,
    dataset: Dataset,
    learning_rates: Sequence[float],
    *,
    vectorize: bool = True,
    jit_compile: bool = False,
    progress: bool = False,
) -> pd.DataFrame:
    """Train one run per learning rate; return the long history with an ``lr`` column.

    Parameters
    ----------
    config : ExperimentConfig
        The experiment (its ``training.init`` picks the initial-weights protocol).
    dataset : Dataset
        The training arrays.
    learning_rates : sequence of float
        Distinct, finite, positive rates, in the order the notebook protocol clones.
    vectorize : bool
        Train the K runs as stacked copies in one graph (default) or one after another.
    jit_compile : bool
        XLA for the stacked graph, or for each run (opt-in: different rounding).
    progress : bool
        Show a progress bar over epochs (vectorised) or runs and epochs (sequential).

    A diverging rate's rows end at its first non-finite row (:func:`cut_diverged`); the
    other rates train on as if it were not there.
    """
    from stellarnet.train.models import build_model, set_model_layers
    from stellarnet.train.stacked import train_stacked

    rates = check_rates(learning_rates)
    spec = config.training
    members = initial_members(config, len(rates), spec.init)
    if vectorize and not stackable(config):
        log.info("mini-batches, dropout, L2 or validation: training the rates one after another")
        vectorize = False
    if vectorize:
        recorder, long = train_stacked(
            members,
            dataset.x,
            dataset.y,
            rates,
            **config.stacked_options(),
            jit_compile=jit_compile,
            progress=progress,
            context=f"optimizer {spec.optimizer}, learning rates {rates}",
            stop_on_divergence=False,
        )
        long.insert(0, "lr", np.asarray(rates)[long.pop("member").to_numpy()])
        return cut_diverged(long)
    parts = []
    for lr, layers in zip(rates, members, strict=True):
        one = dataclasses.replace(config, training=dataclasses.replace(spec, learning_rate=lr))
        model = set_model_layers(build_model(config.model, config.seed), layers)
        try:
            history = train_config(one, dataset, progress, model=model, jit_compile=jit_compile)
        except TrainingDiverged as err:
            if err.history is None:
                raise
            log.warning("lr=%s: %s", rate_label(lr), err)
            history = err.history
        history.insert(0, "lr", lr)
        parts.append(history)
    return pd.concat(parts, ignore_index=True)


def check_rates(learning_rates: Sequence[float]) -> list[float]:
    """The learning rates as floats; ConfigError unless each is valid and they are distinct."""
    rates = [check_learning_rate(lr) for lr in learning_rates]
    if not rates:
        raise ConfigError("a sweep needs at least one learning rate (--lr 0.1 0.3 ...)")
    if len(set(rates)) != len(rates):
        raise ConfigError(f"learning rates must be distinct, got {list(learning_rates)}")
    return rates


def cut_diverged(long: pd.DataFrame) -> pd.DataFrame:
    """The long history without the rows of each rate after its first row whose output or
    loss is NaN or infinite (:func:`stellarnet.schema.first_divergence`)."""
    keep = np.ones(len(long), dtype=bool)
    for lr, part in long.groupby("lr", sort=False):
        found = first_divergence(part)
        if found is not None:
            keep &= ~((long["lr"] == lr) & (long["epoch"] > found[0])).to_numpy()
    return long if keep.all() else long[keep].reset_index(drop=True)


def diverged_rates(long: pd.DataFrame) -> dict[str, dict[str, Any]]:
    """``{"<rate label>": {"epoch": E, "loss": L}}`` for every rate whose history holds a NaN
    or infinite row (the first one; ``L`` as in :func:`stellarnet.files.json_number`)."""
    found = {}
    for lr, part in long.groupby("lr", sort=False):
        diverged = divergence_record(part)
        if diverged is not None:
            found[rate_label(lr)] = diverged
    return found


def run_sweep(
    config: ExperimentConfig,
    learning_rates: Sequence[float],
    results_dir: str | Path = "results",
    *,
    force: bool = False,
    vectorize: bool = True,
    jit_compile: bool = False,
    progress: bool = False,
    defaults: ExperimentConfig | None = None,
) -> RunResult:
    """Train a learning-rate sweep; write ``results/<experiment>/sweep[-notebook]-lr=<rates>/``
    (with tags for what ``config`` changes in ``defaults``, the config before the overrides,
    and for ``jit_compile``: :func:`stellarnet.runs.naming.sweep_folder`).

    Every rate is saved, also one that diverged (:func:`train_sweep`); the record's
    ``"status"`` is ``"diverged"`` if any did, and ``"diverged_rates"`` says where.

    Raises
    ------
    ResultsExist, ResultsFolderError
        If the sweep folder holds results and ``force`` is False, holds something that is not
        a stellarnet result, lies outside ``results_dir`` or cannot be written (all checked
        before training).
    ConfigError
        If the long history table would exceed the memory budget.
    """
    rates = check_rates(learning_rates)
    history_size(config, members=len(rates), extra_columns=1)
    folder = sweep_folder(config, rates, results_dir, defaults=defaults, jit_compile=jit_compile)
    prepare_folder(folder, results_dir, force)
    started = time.perf_counter()
    catalog, dataset = load_data(config)
    long = train_sweep(
        config,
        dataset,
        learning_rates,
        vectorize=vectorize,
        jit_compile=jit_compile,
        progress=progress,
    )
    wall_time = time.perf_counter() - started
    rates = list(dict.fromkeys(long["lr"]))
    diverged = diverged_rates(long)
    record = run_record(config, catalog, dataset, long, wall_time)
    record.pop("diverged_at", None)  # per rate, in diverged_rates
    record |= {
        "status": DIVERGED if diverged else COMPLETE,
        "diverged_rates": diverged,
        "learning_rates": rates,
        "init": config.training.init,
        "vectorized": vectorize,
        "jit_compile": jit_compile,
        "loss_last_by_lr": {
            rate_label(lr): json_number(long.loc[long["lr"] == lr, "loss"].iloc[-1]) for lr in rates
        },
    }
    with staged_result(folder, results_dir, force) as staging:
        write_run_files(staging, long, record)
        for lr in rates:
            one = config.with_overrides(learning_rate=lr)
            history = long[long["lr"] == lr].drop(columns="lr").reset_index(drop=True)
            sub_record = run_record(one, catalog, dataset, history, wall_time) | {
                "sweep": {"learning_rates": rates, "init": config.training.init},
                "jit_compile": jit_compile,
            }
            write_run_files(staging / f"lr={rate_label(lr)}", history, sub_record)
    log.debug("wrote %s", folder)  # the CLI prints it with the file list
    return RunResult(folder, long, record)


def summarize_sweep(long: pd.DataFrame) -> list[dict[str, Any]]:
    """Per rate: first and last loss, whether the loss fell at every epoch, and where it
    diverged (``(epoch, loss)`` of its first non-finite row, or None)."""
    summary = []
    for lr, part in long.groupby("lr", sort=False):
        losses = part.loc[part["epoch"] >= 1, "loss"].to_numpy()
        if not len(losses):  # diverged at epoch 0 (the initial model)
            losses = part["loss"].to_numpy()
        summary.append(
            {
                "lr": lr,
                "loss_first": float(losses[0]),
                "loss_last": float(losses[-1]),
                "monotonic": bool((losses[1:] < losses[:-1]).all()),
                "diverged": first_divergence(part) if "output" in part else None,
            }
        )
    return summary

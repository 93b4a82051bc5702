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

Results: ``results/<experiment>/sweep/`` holds ``history.parquet``/``.csv`` (the single-run
columns with ``lr`` first), ``run.json`` (with ``learning_rates`` and ``init``), ``loss.png``
(every rate on one axis) and one folder per rate, ``lr=<lr>/``, laid out as a single run.
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
from stellarnet.errors import ConfigError
from stellarnet.files import staged_folder
from stellarnet.params import Layers
from stellarnet.results.folders import check_not_exists, check_replace, rate_label
from stellarnet.runs.config import ExperimentConfig
from stellarnet.runs.experiment import (
    RunResult,
    load_data,
    run_record,
    train_config,
    write_run_files,
)
from stellarnet.vocabulary import INIT_PROTOCOLS

log = logging.getLogger(__name__)

SWEEP_FOLDER = "sweep"


def sweep_folder(config: ExperimentConfig, results_dir: str | Path = "results") -> Path:
    """``results/<experiment>/sweep``."""
    return Path(results_dir) / config.name / SWEEP_FOLDER


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
    """
    from stellarnet.train.models import build_model, set_model_layers
    from stellarnet.train.stacked import train_stacked

    rates = [check_learning_rate(lr) for lr in learning_rates]
    if len(set(rates)) != len(rates):
        raise ConfigError(f"learning rates must be distinct, got {list(learning_rates)}")
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
        )
        long.insert(0, "lr", np.asarray(rates)[long.pop("member").to_numpy()])
        return long
    parts = []
    for lr, layers in zip(rates, members, strict=True):
        one = dataclasses.replace(config, training=dataclasses.replace(spec, learning_rate=lr))
        model = set_model_layers(build_model(config.model, config.seed), layers)
        history = train_config(one, dataset, progress, model=model, jit_compile=jit_compile)
        history.insert(0, "lr", lr)
        parts.append(history)
    return pd.concat(parts, ignore_index=True)


def run_sweep(
    config: ExperimentConfig,
    learning_rates: Sequence[float],
    results_dir: str | Path = "results",
    *,
    force: bool = False,
    vectorize: bool = True,
    jit_compile: bool = False,
    progress: bool = False,
) -> RunResult:
    """Train a learning-rate sweep and write ``results/<experiment>/sweep/``.

    Raises
    ------
    ResultsExist
        If the sweep folder holds results and ``force`` is False (checked before training).
    """
    folder = sweep_folder(config, results_dir)
    check_not_exists(folder, force)
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
    record = run_record(config, catalog, dataset, long, wall_time) | {
        "learning_rates": rates,
        "init": config.training.init,
        "vectorized": vectorize,
        "jit_compile": jit_compile,
        "loss_last_by_lr": {
            rate_label(lr): float(long.loc[long["lr"] == lr, "loss"].iloc[-1]) for lr in rates
        },
    }
    with staged_folder(folder, ready=lambda: check_replace(folder, force)) as staging:
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
    """Per rate: first and last loss, and whether the loss fell at every epoch."""
    summary = []
    for lr, part in long.groupby("lr", sort=False):
        losses = part.loc[part["epoch"] >= 1, "loss"].to_numpy()
        summary.append(
            {
                "lr": lr,
                "loss_first": float(losses[0]),
                "loss_last": float(losses[-1]),
                "monotonic": bool((losses[1:] < losses[:-1]).all()),
            }
        )
    return summary

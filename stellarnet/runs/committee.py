"""Committees (bagging): N networks of one config, each trained on its own bootstrap sample.

Member k (k = 0..N-1):

* starts from the weights of ``build_model(config.model, config.seed + k)``, so member 0
  starts where the single ``stellarnet experiment`` run starts;
* trains on a bootstrap sample of the training rows: n rows drawn with replacement, given
  as counts ``counts[k, i]`` (how often row i was drawn; :func:`bootstrap_counts`, seeded
  with ``config.seed``).

The committee's prediction is the mean of the members' outputs and its uncertainty their
spread (standard deviation across members, ``ddof=1``). The spread measures how much the
fit depends on the sample and the start (model variance); it does not include the noise of
the data.

Two engines give the same members (up to float32 rounding):

``"stacked"``
    All members in one graph (:class:`stellarnet.train.stacked.StackedRecorder`) with the counts
    as sample weights: the loss of member k is ``sum_i counts[k, i] (y_i - yhat_i)^2 /
    sum_i counts[k, i]``. Full batch only, no dropout, no L2, no validation rows.
``"sequential"``
    One :func:`stellarnet.runs.experiment.train_config` run per member on the resampled rows (row i
    repeated ``counts[k, i]`` times; mini-batch shuffle seeded with ``config.seed + k``).
    Honours every training setting of the config (mini-batches, dropout, L2, ``val_loss``,
    early stopping: a member with ``[training] patience`` stops on its own ``val_loss`` and
    keeps its best epoch's weights, as the single network does; each member's stopping
    record is in :meth:`Committee.summary`).

``"auto"`` (default) picks stacked when the config allows it, else sequential, so a
committee always trains exactly as the config's single network does.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from stellarnet.checks import check_choice, is_int
from stellarnet.data.datasets import Dataset
from stellarnet.errors import ConfigError
from stellarnet.params import Layers, forward
from stellarnet.runs.config import ExperimentConfig
from stellarnet.runs.sweep import stackable

log = logging.getLogger(__name__)

COMMITTEE_ENGINES = ("auto", "stacked", "sequential")
MIN_MEMBERS = 2


@dataclass
class Committee:
    """A trained committee.

    Attributes
    ----------
    members : list of Layers
        Each member's trained (kernel, bias) arrays.
    counts : ndarray, shape (N, n), int
        Bootstrap counts: how often member k drew training row i.
    history : DataFrame
        The long history: a ``member`` column (0..N-1), then a single run's columns.
    engine : {"stacked", "sequential"}
        How the members were trained.
    activation, output_activation : str
        The members' activations (for :func:`stellarnet.params.forward`).
    seeds : list of int
        Initial-weight seed of each member.
    wall_time_s : float
        Training time.
    early_stopping : list of dict
        Each member's early-stopping record (best and stopped epoch), for configs with
        ``[training] patience``; empty otherwise.
    """

    members: list[Layers]
    counts: np.ndarray
    history: pd.DataFrame
    engine: str
    activation: str
    output_activation: str
    seeds: list[int]
    wall_time_s: float = 0.0
    early_stopping: list[dict[str, Any]] = dataclasses.field(default_factory=list)

    @property
    def size(self) -> int:
        """Number of members."""
        return len(self.members)

    def member_predictions(self, x: np.ndarray) -> np.ndarray:
        """Every member's output on ``x`` in float64, shape ``(N, n, outputs)``."""
        activations = (self.activation, self.output_activation)
        return np.stack([forward(layers, x, *activations)[0] for layers in self.members])

    def predict(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The committee's prediction on ``x`` and its spread, each ``(n, outputs)``.

        The prediction is the members' mean; the spread their standard deviation
        (``ddof=1``, the sample estimate over N members).
        """
        outputs = self.member_predictions(x)
        return outputs.mean(axis=0), outputs.std(axis=0, ddof=1)

    def summary(self) -> dict[str, Any]:
        """A JSON-ready description for run records."""
        drawn = (self.counts > 0).mean(axis=1)
        return {
            "members": self.size,
            "engine": self.engine,
            "seeds": self.seeds,
            "bootstrap": "n training rows drawn with replacement per member: "
            "numpy.random.default_rng(config.seed).integers(0, n, size=(N, n))",
            "distinct_rows_fraction": [round(float(f), 4) for f in drawn],
            "prediction": "mean over members; uncertainty: std over members (ddof=1)",
            "wall_time_s": round(self.wall_time_s, 3),
        } | ({"early_stopping": self.early_stopping} if self.early_stopping else {})


def bootstrap_counts(rows: int, size: int, seed: int) -> np.ndarray:
    """Bootstrap counts of ``size`` samples of ``rows`` rows drawn with replacement.

    Returns an int array ``(size, rows)`` whose row k sums to ``rows``: entry ``[k, i]`` is
    how often sample k drew row i. The draws are
    ``numpy.random.default_rng(seed).integers(0, rows, size=(size, rows))``.
    """
    draws = np.random.default_rng(seed).integers(0, rows, size=(size, rows))
    return np.stack([np.bincount(d, minlength=rows) for d in draws])


def member_seeds(config: ExperimentConfig, size: int) -> list[int]:
    """Initial-weight seeds of the members: ``config.seed + k``."""
    return [config.seed + k for k in range(size)]


def initial_layers(config: ExperimentConfig, seeds: list[int]) -> list[Layers]:
    """Initial (kernel, bias) arrays of one freshly built model per seed."""
    from stellarnet.train.models import build_model, model_layers

    return [model_layers(build_model(config.model, seed)) for seed in seeds]


def train_committee(
    config: ExperimentConfig,
    dataset: Dataset,
    size: int,
    *,
    engine: str = "auto",
    progress: bool = False,
) -> Committee:
    """Train a committee of ``size`` networks of ``config`` on bootstrap samples of ``dataset``.

    Parameters
    ----------
    config : ExperimentConfig
        Model and training settings of every member.
    dataset : Dataset
        Training rows (bootstrapped) and validation rows (scored by the sequential engine).
    size : int
        Number of members, at least 2.
    engine : {"auto", "stacked", "sequential"}
        See the module docstring.
    progress : bool
        Show progress bars.

    Raises
    ------
    ConfigError
        For fewer than 2 members, an unknown engine, or ``"stacked"`` with a config it
        cannot train exactly.
    """
    if not is_int(size) or size < MIN_MEMBERS:
        raise ConfigError(f"a committee needs at least {MIN_MEMBERS} members, got {size!r}")
    check_choice(engine, "committee engine", COMMITTEE_ENGINES)
    if engine == "auto":
        engine = "stacked" if stackable(config) else "sequential"
    elif engine == "stacked" and not stackable(config):
        raise ConfigError(
            "the stacked committee engine trains full batch without dropout, L2 or validation "
            "rows; this config has one of them: use engine 'sequential' (or 'auto')"
        )
    started = time.perf_counter()
    seeds = member_seeds(config, size)
    counts = bootstrap_counts(len(dataset.y), size, config.seed)
    train = _train_stacked if engine == "stacked" else _train_sequential
    members, history, stopping = train(config, dataset, seeds, counts, progress)
    model = config.model
    return Committee(
        members,
        counts,
        history,
        engine,
        model.activation,
        model.output_activation,
        seeds,
        time.perf_counter() - started,
        stopping,
    )


def _train_stacked(
    config: ExperimentConfig,
    dataset: Dataset,
    seeds: list[int],
    counts: np.ndarray,
    progress: bool,
) -> tuple[list[Layers], pd.DataFrame, list[dict[str, Any]]]:
    from stellarnet.train.stacked import train_stacked

    spec = config.training
    recorder, history = train_stacked(
        initial_layers(config, seeds),
        dataset.x,
        dataset.y,
        [spec.learning_rate] * len(seeds),
        **config.stacked_options(),
        sample_weight=counts,
        progress=progress,
        context=f"committee of {len(seeds)}, optimizer {spec.optimizer}, "
        f"learning rate {spec.learning_rate}",
    )
    return recorder.final_layers(), history, []  # stacked: no validation rows, no stopping


def _train_sequential(
    config: ExperimentConfig,
    dataset: Dataset,
    seeds: list[int],
    counts: np.ndarray,
    progress: bool,
) -> tuple[list[Layers], pd.DataFrame, list[dict[str, Any]]]:
    from stellarnet.runs.experiment import train_config
    from stellarnet.train.models import build_model, model_layers

    members, parts, stopping = [], [], []
    for member, (seed, count) in enumerate(zip(seeds, counts, strict=True)):
        rows = np.repeat(np.arange(len(count)), count)
        sample = dataclasses.replace(dataset, x=dataset.x[rows], y=dataset.y[rows])
        one = dataclasses.replace(config, seed=seed)
        model = build_model(one.model, one.seed)
        history = train_config(one, sample, progress, model=model)  # best epoch restored
        if "early_stopping" in history.attrs:
            stopping.append({"member": member} | history.attrs["early_stopping"])
        history.insert(0, "member", member)
        parts.append(history)
        members.append(model_layers(model))
        log.info("committee member %d of %d trained", member + 1, len(seeds))
    for part in parts:
        part.attrs = {}  # each member's stopping record is in ``stopping``
    return members, pd.concat(parts, ignore_index=True), stopping

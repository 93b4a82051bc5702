"""A study's grid: learning rates x seeds (x hidden widths), its members, and the parts they
train in.

A member is one cell of the grid: ``(hidden, seed, lr)``. It trains as
``stellarnet experiment EXP --seed S --lr R`` would (with ``[model] hidden = [W]``): the
seed's row shuffle and the seed's initial weights (``init = "same"``), or, with
``init = "notebook"``, the ``clone_model`` of the seed's model that the notebook protocol
gives rate R (:mod:`stellarnet.runs.sweep`: the rates clone in the order given).

Members of one width form one architecture; they are listed seed by seed, rates in the order
given within a seed, and cut into contiguous *parts*, each trained as one stacked graph
(:func:`stellarnet.train.stacked.train_stacked`) and written as its own Parquet part file.
A part's number and its members depend on the grid alone, so a part trained twice (a Dask
task retried) writes the same file.

The grid comes from the command line or from an experiment's ``[study]`` table::

    [study]
    lr = [0.1, 0.3]
    seeds = 64            # seeds first_seed .. first_seed + 63
    hidden = [4, 6, 8]    # optional: the config's width
    init = "same"         # or "notebook"
    epochs = 10           # optional: the config's epochs
    record = "all"        # or "loss": only epoch, loss and output
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from stellarnet.checks import check_choice, check_learning_rate, check_seed, is_int
from stellarnet.errors import ConfigError
from stellarnet.vocabulary import INIT_PROTOCOLS

RECORD_CHOICES = ("all", "loss")
"""``all``: the single-run columns; ``loss``: only epoch, loss and output."""
STUDY_KEYS = {"lr", "seeds", "first_seed", "hidden", "init", "epochs", "record"}
PART_BYTES = 128 * 2**20
"""Largest history of one part (rows x columns x 8 bytes): what a part holds in memory
before it is written. The fused loop (:mod:`stellarnet.train.fused`) runs faster per member
the more members a thread has, and Dask spreads smaller parts better: 512 HR members x 2000
epochs in 6 parts (64 MiB) took 5.4-6.3 s, on 2 Dask workers 1.17-1.27x that; in 4 parts
(128 MiB) 4.9-5.5 s and 1.31-1.34x; in 2 parts (256 MiB) 4.5-6.1 s and 1.39-1.53x (one script,
back to back, load about 2; ``benchmarks/bench_study.py`` later gave 1.10-1.16x for 128 MiB)."""
PART_MEMBERS = 1024
"""Most members in one part (one stacked graph)."""


@dataclass(frozen=True)
class StudySpec:
    """The grid of a study (:mod:`stellarnet.runs.study_grid`).

    Parameters
    ----------
    learning_rates : tuple of float
        Distinct rates, in the order the notebook protocol clones.
    seeds : int
        How many seeds: ``first_seed``, ``first_seed + 1``, ...
    hidden : tuple of int, optional
        Hidden widths (one-hidden-layer nets); None: the config's net.
    init : {"same", "notebook"}
    epochs : int, optional
        None: the config's.
    record : {"all", "loss"}
    first_seed : int
    """

    learning_rates: tuple[float, ...]
    seeds: int
    hidden: tuple[int, ...] | None = None
    init: str = "same"
    epochs: int | None = None
    record: str = "all"
    first_seed: int = 0

    def __post_init__(self) -> None:
        rates = tuple(check_learning_rate(lr) for lr in self.learning_rates)
        if not rates:
            raise ConfigError("a study needs at least one learning rate (--lr 0.1 0.3 ...)")
        if len(set(rates)) != len(rates):
            raise ConfigError(f"a study's learning rates must be distinct, got {list(rates)}")
        object.__setattr__(self, "learning_rates", rates)
        if not is_int(self.seeds) or self.seeds < 1:
            raise ConfigError(f"seeds must be a number of seeds >= 1, got {self.seeds!r}")
        check_seed(self.first_seed)
        check_seed(self.first_seed + self.seeds - 1)
        if self.hidden is not None:
            widths = tuple(self.hidden)
            if not widths or not all(is_int(w) and w >= 1 for w in widths):
                raise ConfigError(
                    f"hidden must be widths >= 1, e.g. [4, 6, 8]; got {self.hidden!r}"
                )
            if len(set(widths)) != len(widths):
                raise ConfigError(f"hidden widths must be distinct, got {list(widths)}")
            object.__setattr__(self, "hidden", widths)
        check_choice(self.init, "init", INIT_PROTOCOLS)
        check_choice(self.record, "record", RECORD_CHOICES)
        if self.epochs is not None and (not is_int(self.epochs) or self.epochs < 1):
            raise ConfigError(f"epochs must be an integer >= 1, got {self.epochs!r}")

    @property
    def seed_list(self) -> list[int]:
        """The seeds, in order."""
        return list(range(self.first_seed, self.first_seed + self.seeds))

    def with_overrides(self, **changes: Any) -> StudySpec:
        """A copy with the given fields replaced; None leaves a field as it is."""
        return dataclasses.replace(self, **{k: v for k, v in changes.items() if v is not None})

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (``run.json``)."""
        return dataclasses.asdict(self) | {
            "learning_rates": list(self.learning_rates),
            "hidden": None if self.hidden is None else list(self.hidden),
        }


def parse_study(table: Any) -> StudySpec:
    """The ``[study]`` table of an experiment config; ConfigError naming the bad key."""
    if not isinstance(table, dict):
        raise ConfigError(f"[study] must be a table, got {table!r}")
    unknown = set(table) - STUDY_KEYS
    if unknown:
        raise ConfigError(
            f"unknown key(s) {sorted(unknown)} at [study]; known: {sorted(STUDY_KEYS)}"
        )
    for key, example in (("lr", "lr = [0.1, 0.3]"), ("seeds", "seeds = 64")):
        if key not in table:
            raise ConfigError(f"[study] needs {key}, e.g. {example}")
    rates, hidden = table["lr"], table.get("hidden")
    if not isinstance(rates, list) or not all(isinstance(r, int | float) for r in rates):
        raise ConfigError(f"[study] lr must be a list of rates, e.g. [0.1, 0.3]; got {rates!r}")
    if hidden is not None and not isinstance(hidden, list):
        raise ConfigError(
            f"[study] hidden must be a list of widths, e.g. [4, 6, 8]; got {hidden!r}"
        )
    try:
        return StudySpec(
            learning_rates=tuple(rates),
            seeds=table["seeds"],
            hidden=None if hidden is None else tuple(hidden),
            init=table.get("init", "same"),
            epochs=table.get("epochs"),
            record=table.get("record", "all"),
            first_seed=table.get("first_seed", 0),
        )
    except ConfigError as err:
        raise ConfigError(f"[study] {err}") from None


@dataclass(frozen=True)
class Part:
    """Members ``first .. end - 1`` of the architecture with hidden width ``hidden``
    (members listed seed by seed, the rates in order within a seed)."""

    hidden: int
    index: int
    first: int
    end: int

    def members(self, spec: StudySpec) -> list[tuple[int, float]]:
        """``(seed, lr)`` of each member, in order."""
        rates, seeds = spec.learning_rates, spec.seed_list
        return [
            (seeds[m // len(rates)], rates[m % len(rates)]) for m in range(self.first, self.end)
        ]

    @property
    def name(self) -> str:
        """The part file's name, the same whoever trains it."""
        return f"part-{self.index:05d}.parquet"


def part_size(members: int, rows: int, columns: int, cores: int) -> int:
    """Members per part: at most :data:`PART_MEMBERS` and :data:`PART_BYTES` of history
    (``rows`` per member, ``columns`` wide), and at least one per core where there are that
    many, in parts of even size."""
    fit = max(1, min(PART_MEMBERS, PART_BYTES // max(1, rows * columns * 8)))
    parts = max(-(-members // fit), 1)
    if members >= cores and parts % cores:  # whole rounds of parts for the cores
        parts += cores - parts % cores
    return max(1, -(-members // min(parts, members)))


def plan_parts(spec: StudySpec, widths: Sequence[int], size_of: Any) -> list[Part]:
    """The parts of every width in order; ``size_of(width)`` gives members per part."""
    parts, count = [], len(spec.learning_rates) * spec.seeds
    for width in widths:
        size = size_of(width)
        for first in range(0, count, size):
            parts.append(Part(width, len(parts), first, min(first + size, count)))
    return parts

"""Experiment configs: one TOML file per experiment in ``experiments/``.

A config names the catalog, how to turn it into (x, y), the model, and the training
settings. Example (``experiments/hr_relation.toml``)::

    name = "hr_relation"
    seed = 1453

    [catalog]
    query = "gaia_dr2_hr"

    [dataset]
    features = [{ column = "Lum", transforms = ["log10", "minmax"] }]
    target = { column = "Teff", transforms = ["log10"] }

    [model]
    hidden = [6]
    activation = "relu"
    output_activation = "linear"

    [training]
    optimizer = "adam"
    loss = "mse"
    learning_rate = 0.1
    epochs = 10

A local catalog (a CSV with its provenance JSON beside it, see :mod:`stellarnet.data.catalogs`)
replaces the query with ``[catalog] path = "../catalogs/<name>.csv"`` (relative to the config
file). ``[dataset] rows = [0, 5]`` keeps only those catalog data rows (0-based, before any row
is dropped), and ``shuffle = false`` keeps the catalog's row order (default: seeded shuffle).

Every problem is reported as a :class:`~stellarnet.errors.ConfigError` naming the file and
the key. This module does not import TensorFlow.
"""

from __future__ import annotations

import dataclasses
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from stellarnet.checks import (
    check_choice,
    check_learning_rate,
    check_name,
    check_positive_int,
    check_seed,
    is_int,
)
from stellarnet.data.datasets import DEFAULT_SEED, ColumnSpec, Split
from stellarnet.data.registry import QUERIES, CatalogQuery
from stellarnet.errors import ConfigError, StellarnetError
from stellarnet.runs.lookup import available_experiments, experiment_path
from stellarnet.runs.metrics import METRIC_SETS
from stellarnet.runs.study_grid import StudySpec, parse_study
from stellarnet.schema import DEFAULT_RECORD, check_record
from stellarnet.train.models import ModelSpec
from stellarnet.vocabulary import ENGINES, INIT_PROTOCOLS, LOSSES, OPTIMIZERS

_TOP_KEYS = {"name", "description", "seed", "catalog", "dataset", "model", "training", "study"}
_CATALOG_KEYS = {"query", "path", "catalog", "columns", "column_filters", "row_limit", "name"}
_DATASET_KEYS = {"features", "target", "split", "rows", "shuffle"}
_TRAINING_KEYS = {
    "optimizer",
    "loss",
    "learning_rate",
    "epochs",
    "record",
    "record_every",
    "engine",
    "init",
    "batch_size",
    "patience",
    "metrics",
}


@dataclass(frozen=True)
class TrainingSpec:
    """How to train and what to record (full batch).

    ``record``, ``record_every`` and ``engine`` are passed to
    :func:`stellarnet.train.recorder.train`; ``init`` is the sweeps' initial-weights protocol
    (:mod:`stellarnet.runs.sweep`).
    """

    optimizer: str = "adam"
    loss: str = "mse"
    learning_rate: float = 0.1
    epochs: int = 10
    record: tuple[str, ...] = DEFAULT_RECORD
    record_every: int = 1
    engine: str = "auto"
    init: str = "same"
    batch_size: int | None = None
    patience: int | None = None
    """Early stopping: stop once val_loss has not improved for this many epochs and keep the
    best epoch's weights (:class:`stellarnet.train.stopping.EarlyStopping`); None: off."""
    metrics: str = "regression"
    """Held-out metric set: ``"regression"`` or ``"photoz"`` (:mod:`stellarnet.runs.metrics`)."""

    def __post_init__(self) -> None:
        if self.batch_size is not None:
            check_positive_int(self.batch_size, "batch_size")
        if self.patience is not None:
            check_positive_int(self.patience, "patience")
        check_choice(self.metrics, "metrics", METRIC_SETS)
        object.__setattr__(self, "record", check_record(self.record))
        check_choice(self.engine, "engine", ENGINES)
        check_choice(self.init, "init", INIT_PROTOCOLS)
        check_positive_int(self.record_every, "record_every")
        check_choice(self.optimizer, "optimizer", OPTIMIZERS)
        check_choice(self.loss, "loss", LOSSES)
        object.__setattr__(self, "learning_rate", check_learning_rate(self.learning_rate))
        check_positive_int(self.epochs, "epochs")


@dataclass(frozen=True)
class ExperimentConfig:
    """A resolved experiment: everything a run needs, and nothing it reads from elsewhere.

    ``seed`` is the experiment's one seed: it shuffles the rows and, passed to
    :func:`stellarnet.train.models.build_model`, draws the initial weights. So
    ``dataclasses.replace(config, seed=s)`` changes both.
    """

    name: str
    query: CatalogQuery | None
    features: tuple[ColumnSpec, ...]
    target: ColumnSpec
    model: ModelSpec
    training: TrainingSpec
    seed: int = DEFAULT_SEED
    description: str = ""
    catalog_path: Path | None = None
    split: Split = field(default_factory=Split)
    source: Path | None = field(default=None, compare=False)
    rows: tuple[int, ...] | None = None
    shuffle: bool = True
    study: StudySpec | None = field(default=None, compare=False)
    """The ``[study]`` grid (:mod:`stellarnet.runs.study_grid`), if the file has one."""

    def __post_init__(self) -> None:
        check_name(self.name, "experiment name")
        check_seed(self.seed)
        if self.query is None and self.catalog_path is None:
            raise ConfigError("an experiment needs a catalog query or a catalog path")
        if self.training.patience is not None and not self.split.validation:
            raise ConfigError(
                f"experiment {self.name!r}: [training] patience (early stopping) watches "
                "val_loss: give [dataset] split a validation share, e.g. "
                "split = { train = 0.7, validation = 0.15, test = 0.15 }"
            )

    def with_overrides(
        self,
        seed: int | None = None,
        catalog_path: str | Path | None = None,
        **training: Any,
    ) -> ExperimentConfig:
        """A copy with command-line overrides applied; None leaves a setting as it is.

        ``training`` holds :class:`TrainingSpec` fields, e.g. ``learning_rate=0.3``.
        """
        changes = {key: value for key, value in training.items() if value is not None}
        config = dataclasses.replace(self, training=dataclasses.replace(self.training, **changes))
        if seed is not None:
            config = dataclasses.replace(config, seed=seed)
        if catalog_path is not None:
            config = dataclasses.replace(config, catalog_path=Path(catalog_path))
        return config

    def stacked_options(self) -> dict[str, Any]:
        """The net and training settings :func:`stellarnet.train.stacked.train_stacked` takes."""
        spec = self.training
        return {
            "epochs": spec.epochs,
            "activation": self.model.activation,
            "output_activation": self.model.output_activation,
            "optimizer": spec.optimizer,
            "loss": spec.loss,
            "record": spec.record,
            "record_every": spec.record_every,
        }

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form, as recorded in ``run.json``."""
        return {
            "name": self.name,
            "description": self.description,
            "seed": self.seed,
            "catalog": (self.query.to_dict() if self.query else {})
            | ({"path": str(self.catalog_path)} if self.catalog_path else {}),
            "dataset": {
                "features": [_column_dict(spec) for spec in self.features],
                "target": _column_dict(self.target),
                "split": dataclasses.asdict(self.split),
                "rows": list(self.rows) if self.rows is not None else None,
                "shuffle": self.shuffle,
            },
            "model": self.model.to_dict(),
            "training": dataclasses.asdict(self.training) | {"record": list(self.training.record)},
            "config_file": str(self.source) if self.source else None,
        }


def _column_dict(spec: ColumnSpec) -> dict[str, Any]:
    return {"column": spec.column, "transforms": list(spec.transforms)}


def load_experiment(name_or_path: str | Path) -> ExperimentConfig:
    """Read and validate an experiment config by name or path.

    Raises
    ------
    ConfigError
        Naming the file and the problem (unknown experiment, TOML syntax, unknown or bad key).
    """
    path = experiment_path(name_or_path)
    if not path.is_file():
        raise ConfigError(
            f"no experiment config {path}; "
            f"available: {', '.join(available_experiments()) or 'none'}"
        )
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as err:
        raise ConfigError(f"{path}: not valid TOML ({err})") from None
    try:
        return parse_experiment(raw, default_name=path.stem, source=path)
    except StellarnetError as err:
        raise ConfigError(f"{path}: {err}") from None
    except TypeError as err:
        raise ConfigError(f"{path}: {err}") from None


def parse_experiment(
    raw: dict[str, Any], default_name: str = "experiment", source: Path | None = None
) -> ExperimentConfig:
    """Build an :class:`ExperimentConfig` from a parsed TOML table."""
    _check_keys(raw, _TOP_KEYS, "top level")
    name = _parse_name(raw, default_name)
    _check_type(raw, "description", str, "description", 'description = "..."')
    seed = check_seed(raw.get("seed", DEFAULT_SEED))
    query, catalog_path = _parse_catalog(raw.get("catalog", {}), source)
    features, target, split = _parse_dataset(_table(raw, "dataset"))
    rows, shuffle = _parse_rows(_table(raw, "dataset"))
    model = _parse_model(_table(raw, "model"), len(features))
    training_raw = _table(raw, "training")
    _check_keys(training_raw, _TRAINING_KEYS, "[training]")
    _check_type(training_raw, "record", list, "[training] record", 'record = ["kernels"]')
    return ExperimentConfig(
        name=name,
        query=query,
        features=features,
        target=target,
        model=model,
        training=TrainingSpec(**training_raw),
        seed=seed,
        description=raw.get("description", ""),
        catalog_path=catalog_path,
        split=split,
        source=source,
        rows=rows,
        shuffle=shuffle,
        study=parse_study(raw["study"]) if "study" in raw else None,
    )


def _parse_name(raw: dict[str, Any], default_name: str) -> str:
    """The top-level ``name`` (default: the file's name): it names the results folder
    ``results/<name>/``, so it must be one plain folder name (:func:`check_name`)."""
    if "name" in raw:
        return check_name(raw["name"], "name")
    try:
        return check_name(default_name, "name")
    except ConfigError as err:  # no name key: the file's name is used, and it is not plain
        raise ConfigError(f"{err}; add a name = ... line (the file's name is not one)") from None


def _check_type(table: dict[str, Any], key: str, kind: type, where: str, example: str) -> None:
    """Raise ConfigError unless ``table[key]`` (if present) is a ``kind`` (list, str)."""
    if key in table and not isinstance(table[key], kind):
        raise ConfigError(f"{where} must be a {kind.__name__}, e.g. {example}, got {table[key]!r}")


def _table(raw: dict[str, Any], key: str) -> dict[str, Any]:
    value = raw.get(key, {})
    if not isinstance(value, dict):
        raise ConfigError(f"[{key}] must be a table, got {value!r}")
    return value


def _check_keys(table: dict[str, Any], known: set[str], where: str) -> None:
    unknown = set(table) - known
    if unknown:
        raise ConfigError(f"unknown key(s) {sorted(unknown)} at {where}; known: {sorted(known)}")


def _parse_catalog(
    table: dict[str, Any], source: Path | None
) -> tuple[CatalogQuery | None, Path | None]:
    _check_keys(table, _CATALOG_KEYS, "[catalog]")
    table = dict(table)
    path = table.pop("path", None)
    if path is not None and source is not None and not Path(path).is_absolute():
        path = (source.parent / path).resolve()
    if "query" in table:
        name = table.pop("query")
        if table:
            raise ConfigError(f"[catalog] gives query = {name!r} and also {sorted(table)}; use one")
        if name not in QUERIES:
            raise ConfigError(f"unknown catalog query {name!r}; known: {sorted(QUERIES)}")
        return QUERIES[name], Path(path) if path else None
    if "catalog" in table:
        return CatalogQuery(**table), Path(path) if path else None
    if path is not None and not table:
        return None, Path(path)  # a local catalog file with its provenance JSON
    raise ConfigError(
        '[catalog] needs `query = "<named query>"`, a VizieR `catalog` and `columns`, or a '
        "local `path` (relative to the config file)"
    )


def _parse_model(table: dict[str, Any], features: int) -> ModelSpec:
    """``[model]``: its ``inputs`` default to (and must equal) the number of features."""
    if "seed" in table:
        raise ConfigError("[model] seed: the seed is set once, at the top level (seed = ...)")
    _check_type(table, "hidden", list, "[model] hidden", "hidden = [6] (a width per layer)")
    inputs = table.get("inputs", features)
    if inputs != features:
        raise ConfigError(f"[model] inputs = {inputs} but [dataset] has {features} feature(s)")
    return ModelSpec.from_dict(table | {"inputs": inputs})


def _parse_dataset(table: dict[str, Any]) -> tuple[tuple[ColumnSpec, ...], ColumnSpec, Split]:
    _check_keys(table, _DATASET_KEYS, "[dataset]")
    if "features" not in table or "target" not in table:
        raise ConfigError("[dataset] needs `features` (a list of columns) and `target`")

    def column(entry: Any) -> ColumnSpec:
        if isinstance(entry, str):
            return ColumnSpec(entry)
        if (
            not isinstance(entry, dict)
            or set(entry) - {"column", "transforms"}
            or "column" not in entry
        ):
            raise ConfigError(
                f"a dataset column is `{{ column = NAME, transforms = [...] }}`, got {entry!r}"
            )
        return ColumnSpec(entry["column"], tuple(entry.get("transforms", ())))

    features = table["features"]
    if not isinstance(features, list) or not features:
        raise ConfigError(f"[dataset] features must be a non-empty list, got {features!r}")
    split = table.get("split", {})
    if not isinstance(split, dict) or set(split) - {"train", "validation", "test"}:
        raise ConfigError(
            f"[dataset] split is `{{ train = 0.8, validation = 0.1, test = 0.1 }}`, got {split!r}"
        )
    return tuple(column(f) for f in features), column(table["target"]), Split(**split)


def _parse_rows(table: dict[str, Any]) -> tuple[tuple[int, ...] | None, bool]:
    """``[dataset] rows`` (0-based catalog data rows to keep) and ``shuffle`` (default true)."""
    rows = table.get("rows")
    if rows is not None:
        if (
            not isinstance(rows, list)
            or not rows
            or len(set(rows)) != len(rows)
            or not all(is_int(r) and r >= 0 for r in rows)
        ):
            raise ConfigError(
                f"[dataset] rows must be a non-empty list of distinct 0-based row numbers, "
                f"got {rows!r}"
            )
        rows = tuple(rows)
    shuffle = table.get("shuffle", True)
    if not isinstance(shuffle, bool):
        raise ConfigError(f"[dataset] shuffle must be true or false, got {shuffle!r}")
    return rows, shuffle

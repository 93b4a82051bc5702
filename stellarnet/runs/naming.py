"""Where a run or a sweep is written: its folder name carries every setting in which it
differs from its experiment's config (the scheme: :mod:`stellarnet.results.names`).

``defaults`` is the config as written (the CLI passes the config file it loaded, before the
command-line overrides); the tags name what ``config`` changes in it: epochs, seed, catalog,
record_every, the recorded groups. ``--init-from`` and ``--jit`` are arguments of the run, not
config settings, and are named whenever given. Without ``defaults`` a library call names only
its rate(s) (and a sweep its protocol), as before tags existed.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from stellarnet.files import sha256_file
from stellarnet.results.folders import result_folder
from stellarnet.results.names import override_tags, run_name, sweep_name
from stellarnet.runs.config import ExperimentConfig


def _changed(value, default):
    return None if value == default else value


def _same_file(a: Path | None, b: Path | None) -> bool:
    if a is None or b is None:
        return a is b
    return Path(a).resolve() == Path(b).resolve()


def config_tags(
    config: ExperimentConfig,
    defaults: ExperimentConfig | None = None,
    *,
    init_from: str | Path | None = None,
    jit_compile: bool = False,
) -> list[str]:
    """The folder-name tags of ``config`` against ``defaults`` (None: no config tags), plus
    ``init_from`` (its stem and sha256) and ``jit_compile``."""
    init_sha = None
    if init_from is not None and Path(init_from).is_file():
        init_sha = sha256_file(init_from)
    tags: dict[str, Any] = {"init_from": init_from, "init_sha256": init_sha, "jit": jit_compile}
    if defaults is not None:
        spec, base = config.training, defaults.training
        record = None
        if spec.record != base.record:
            record = spec.record
            if tuple(dict.fromkeys((*base.record, "activations"))) == spec.record:
                record, tags["added_activations"] = None, True
        tags |= {
            "epochs": _changed(spec.epochs, base.epochs),
            "seed": _changed(config.seed, defaults.seed),
            "catalog": None
            if _same_file(config.catalog_path, defaults.catalog_path)
            else config.catalog_path,
            "record_every": _changed(spec.record_every, base.record_every),
            "record": record,
        }
    return override_tags(**tags)


def run_folder(
    config: ExperimentConfig,
    results_dir: str | Path = "results",
    *,
    defaults: ExperimentConfig | None = None,
    init_from: str | Path | None = None,
    jit_compile: bool = False,
) -> Path:
    """``results/<experiment>/lr=<lr>[,<tags>]`` for ``config`` (:func:`config_tags`), proven
    to lie inside ``results_dir``."""
    tags = config_tags(config, defaults, init_from=init_from, jit_compile=jit_compile)
    return result_folder(results_dir, config.name, run_name(config.training.learning_rate, tags))


def sweep_folder(
    config: ExperimentConfig,
    learning_rates: Sequence[float],
    results_dir: str | Path = "results",
    *,
    defaults: ExperimentConfig | None = None,
    jit_compile: bool = False,
) -> Path:
    """``results/<experiment>/sweep[-notebook]-lr=<rates>[,<tags>]`` for ``config``'s sweep
    over ``learning_rates`` (:func:`config_tags`), proven to lie inside ``results_dir``."""
    tags = config_tags(config, defaults, jit_compile=jit_compile)
    name = sweep_name(learning_rates, config.training.init, tags)
    return result_folder(results_dir, config.name, name)

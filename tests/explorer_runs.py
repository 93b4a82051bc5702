"""Results for the explorer's tests, made with the real ``stellarnet`` command on small runs
(the shipped catalog, 10 epochs) once per test session, and their ``explorer.html`` written by
``stellarnet explore``. Shared by tests/test_explorer.py and tests/test_explorer_browser.py."""

from __future__ import annotations

import logging
from pathlib import Path

EPOCHS = 10
RATES = ("0.1", "0.3")

_made: dict[str, Path] = {}


def _stellarnet(*argv: str) -> None:
    """Run the command in-process, as a user would type it; keep the test's logging as it was
    (the CLI rewires the ``stellarnet`` logger)."""
    from stellarnet.cli import main

    logger = logging.getLogger("stellarnet")
    saved = logger.handlers[:], logger.level, logger.propagate
    try:
        assert main(["-q", *argv]) == 0, argv
    finally:
        logger.handlers[:], logger.level, logger.propagate = saved


def explorer_results(tmp_path_factory) -> dict[str, Path]:
    """``{"run": <lr=0.3 folder>, "sweep": <sweep-lr=0.1,0.3 folder>}``, each with its
    explorer.html; made once per session."""
    if not _made:
        results = tmp_path_factory.mktemp("explorer") / "results"
        common = ("--epochs", str(EPOCHS), "--results", str(results))
        _stellarnet("experiment", "hr_relation", "--lr", RATES[1], *common)
        _stellarnet("sweep", "hr_relation", "--lr", *RATES, *common)
        made = {
            "run": results / "hr_relation" / f"lr={RATES[1]}",
            "sweep": results / "hr_relation" / f"sweep-lr={','.join(RATES)}",
        }
        for folder in made.values():
            _stellarnet("explore", str(folder), "--grid", "9")
        _made.update(made)
    return dict(_made)


EARLY_STOPPING_TOML = """
name = "photoz_early"
description = "photoz_sdss stopped early: the explorer's tests"
seed = 1453
[catalog]
path = "{catalog}"
[dataset]
features = [{features}]
target = {{ column = "zs", transforms = ["standardize"] }}
split = {{ train = 0.7, validation = 0.15, test = 0.15 }}
[model]
hidden = [32, 32]
activation = "relu"
output_activation = "linear"
[training]
optimizer = "adam"
loss = "mse"
learning_rate = 0.03
epochs = 40
batch_size = 64
patience = 2
metrics = "photoz"
"""
"""``photoz_sdss`` (five inputs, 5-32-32-1) at a rate that stops early after epoch 6 (the
weights of epoch 4 kept): a multi-input net with a validation loss and early stopping."""
PHOTOZ_INPUTS = ("u-g", "g-r", "r-i", "i-z", "r")
WILD_EPOCHS = 4
DIVERGED_AT = 4

_more: dict[str, Path] = {}


def _diverged_copy(sweep: Path, target: Path, lr: float, epoch: int) -> Path:
    """A copy of ``sweep`` in which rate ``lr`` diverged at ``epoch`` (loss inf, after a loss
    of 1e30), as tests/test_faults_figures.py makes one: rows after it cut, run.json says so."""
    import json
    import shutil

    import numpy as np
    import pandas as pd

    shutil.copytree(sweep, target)
    long = pd.read_parquet(target / "history.parquet")
    bad = long[(long["lr"] == lr) & (long["epoch"] < epoch)].copy()
    bad.loc[bad.index[-1], "loss"] = 1e30
    last = bad.iloc[[-1]].copy()
    last["epoch"], last["loss"], last["output"] = epoch, np.inf, np.nan
    long = pd.concat([long[long["lr"] != lr], bad, last], ignore_index=True)
    long.to_parquet(target / "history.parquet", index=False)
    long.to_csv(target / "history.csv", index=False)
    record = json.loads((target / "run.json").read_text())
    record["status"] = "diverged"
    record["diverged_rates"] = {f"{lr:g}": {"epoch": epoch, "loss": "inf"}}
    (target / "run.json").write_text(json.dumps(record))
    return target


def more_results(tmp_path_factory) -> dict[str, Path]:
    """Results of nets with several inputs and of wild rates, each with its explorer.html;
    made once per session with the real commands:

    * ``photoz``: photo-z (5 inputs), stopped early (:data:`EARLY_STOPPING_TOML`);
    * ``bolometric``: ``sweep bolometric_4band --lr 0.01 0.03 --epochs 3``;
    * ``exploded``: ``sweep hr_relation --lr 0.1 3 --epochs 4`` (LR 3 spikes to 790.9 at
      epoch 2, then recovers);
    * ``diverged``: that sweep with LR 3 diverged at epoch 4 (loss inf after 1e30).
    """
    if not _more:
        from stellarnet.data.registry import PROJECT_ROOT

        root = tmp_path_factory.mktemp("explorer-more")
        results = root / "results"
        toml = root / "photoz_early.toml"
        features = ", ".join(
            f'{{ column = "{c}", transforms = ["standardize", "clip"] }}' for c in PHOTOZ_INPUTS
        )
        catalog = PROJECT_ROOT / "catalogs" / "sdss_mgs_photoz.csv"
        toml.write_text(EARLY_STOPPING_TOML.format(catalog=catalog, features=features))
        out = ("--results", str(results))
        _stellarnet("experiment", str(toml), *out)
        _stellarnet("sweep", "bolometric_4band", "--lr", "0.01", "0.03", "--epochs", "3", *out)
        _stellarnet("sweep", "hr_relation", "--lr", "0.1", "3", "--epochs", str(WILD_EPOCHS), *out)
        hr = results / "hr_relation" / f"sweep-lr=0.1,3,epochs={WILD_EPOCHS}"
        made = {
            "photoz": results / "photoz_early" / "lr=0.03",
            "bolometric": results / "bolometric_4band" / "sweep-lr=0.01,0.03,epochs=3",
            "exploded": hr,
            "diverged": _diverged_copy(hr, hr.parent / "sweep-diverged", 3.0, DIVERGED_AT),
        }
        for folder in made.values():
            assert folder.is_dir(), folder
            _stellarnet("explore", str(folder), "--grid", "9")
        _more.update(made)
    return dict(_more)

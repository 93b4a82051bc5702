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

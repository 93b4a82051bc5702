"""Finding saved results on disk: the run and sweep folders under an experiment or a
folder (drawn by ``stellarnet figures``), and the study folders, which are drawn from their
members table instead.
"""

from __future__ import annotations

import json
from pathlib import Path

from stellarnet.errors import StellarnetError
from stellarnet.results.history import HISTORY_CSV, HISTORY_PARQUET
from stellarnet.results.names import is_result_folder_name
from stellarnet.results.saved import RUN_JSON

STUDY_KIND = "study"
"""``run.json``'s ``kind`` of a study folder."""


def results_root(target: str | Path, results_dir: str | Path = "results") -> Path:
    """The folder ``target`` names: itself if it is a folder, else the experiment's folder in
    ``results_dir``.

    Raises
    ------
    StellarnetError
        If neither is a folder.
    """
    root = Path(target)
    if not root.is_dir():
        root = Path(results_dir) / str(target)
    if not root.is_dir():
        raise StellarnetError(
            f"no results folder {target!r} (looked for {Path(target)} and {root}); run "
            f"`stellarnet experiment {target}` first, or give a results folder"
        )
    return root


def find_results(target: str | Path, results_dir: str | Path = "results") -> list[Path]:
    """Every run and sweep folder under ``target`` (a folder, or an experiment name looked up
    in ``results_dir``), deepest first so that a sweep's runs come before the sweep; study
    folders are left out (:func:`find_studies`).

    Raises
    ------
    StellarnetError
        If ``target`` is neither a folder nor an experiment with saved results.
    """
    root = results_root(target, results_dir)
    folders = {
        path.parent
        for name in (RUN_JSON, HISTORY_PARQUET, HISTORY_CSV)
        for path in root.rglob(name)
        if not any(part.startswith(".") for part in path.relative_to(root).parts)
        and (name == RUN_JSON or path.parent == root or is_result_folder_name(path.parent.name))
    }
    studies = set(find_studies(root))
    folders = {folder for folder in folders - studies if not studies & set(folder.parents)}
    if not folders and not studies:
        raise StellarnetError(f"no saved runs under {root}; run `stellarnet experiment` first")
    return sorted(folders, key=lambda p: (-len(p.parts), str(p)))


def is_study(folder: Path) -> bool:
    """Whether ``folder`` holds a study (``stellarnet study``: its ``run.json`` says ``"kind":
    "study"``), whose figures are drawn from its members table, not per run."""
    try:
        record = json.loads((folder / RUN_JSON).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(record, dict) and record.get("kind") == STUDY_KIND


def find_studies(root: str | Path) -> list[Path]:
    """Every study folder at or under ``root`` (a folder), sorted."""
    root = Path(root)
    if not root.is_dir():
        return []
    candidates = [root, *(path.parent for path in root.rglob(RUN_JSON))]
    return sorted({folder for folder in candidates if is_study(folder)})

"""Whether a results folder's figures are up to date, so that ``stellarnet figures`` draws
only what is stale.

After drawing a folder, :func:`record_drawing` writes ``figures.json`` into it (atomically):
the stellarnet version, the options the figures were drawn with, the files written, and the
size and modification time (ns) of each input (``run.json``, ``history.parquet``,
``history.csv``) as they were *before* drawing. The figures are fresh while all of that still
holds: same version, same options, every file still there, every input unchanged.

Size and modification time, as ``make`` uses, rather than a hash: reading two stats costs
nothing, and every rewrite of an input (a run trained again, a history restored, ``touch``)
changes its time, so a changed input is never missed; a touched but identical input is
redrawn, which is what ``touch`` asks for. The catalog needs no entry: ``run.json`` records
its sha256, and drawing checks it. The version is there because new code may draw
differently.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from stellarnet import __version__
from stellarnet.files import write_json
from stellarnet.results.history import HISTORY_CSV, HISTORY_PARQUET
from stellarnet.results.saved import RUN_JSON

MANIFEST = "figures.json"
"""What a folder's figures were drawn from and with (written last, after the figures)."""

INPUTS = (RUN_JSON, HISTORY_PARQUET, HISTORY_CSV)
"""The files the figures are drawn from (the catalog is checked through run.json's sha256)."""

OPTIONAL = ("gif", "explorer")
"""Options that add a file: a drawing with one of them serves a request without it."""


@dataclass(frozen=True)
class FigureOptions:
    """How a folder's figures are drawn: the options of ``stellarnet figures``.

    The fields are :func:`stellarnet.viz.figures.regenerate`'s keyword arguments.
    """

    epoch: int | None = None
    digits: int = 4
    log_scale: bool = False
    stride: int | None = None
    grid: int = 41
    catalog: str | None = None
    gif: bool = True
    explorer: bool = False

    def as_kwargs(self) -> dict[str, Any]:
        """The options as keyword arguments of ``regenerate``."""
        return dataclasses.asdict(self)


def input_stats(folder: str | Path) -> dict[str, list[int]]:
    """``{name: [size, mtime_ns]}`` of each input file present in ``folder``."""
    stats = {}
    for name in INPUTS:
        path = Path(folder) / name
        if path.is_file():
            stat = path.stat()
            stats[name] = [stat.st_size, stat.st_mtime_ns]
    return stats


def read_manifest(folder: str | Path) -> dict[str, Any] | None:
    """The folder's ``figures.json``, or None if there is none or it cannot be read (then
    everything is redrawn, which rewrites it)."""
    try:
        record = json.loads((Path(folder) / MANIFEST).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return record if isinstance(record, dict) else None


def stale_reason(folder: str | Path, options: FigureOptions) -> str | None:
    """Why the folder's figures must be drawn (e.g. ``"history.parquet changed"``), or None
    if they are up to date for ``options``."""
    folder = Path(folder)
    record = read_manifest(folder)
    if record is None:
        return f"no {MANIFEST}" if not (folder / MANIFEST).exists() else f"{MANIFEST} unreadable"
    if record.get("stellarnet") != __version__:
        return f"drawn by stellarnet {record.get('stellarnet')}, this is {__version__}"
    drawn = record.get("options", {})
    for name, wanted in options.as_kwargs().items():
        if name in OPTIONAL and drawn.get(name) and not wanted:
            continue  # drawn with the extra file; asked without it
        if drawn.get(name, object()) != wanted:
            return f"drawn with {name}={drawn.get(name)!r}, asked for {wanted!r}"
    inputs = input_stats(folder)
    recorded = record.get("inputs", {})
    for name in sorted(set(inputs) | set(recorded)):
        if inputs.get(name) != recorded.get(name):
            return f"{name} changed since the figures were drawn"
    missing = [name for name in record.get("files", []) if not (folder / name).is_file()]
    if missing:
        return f"{missing[0]} is missing"
    return None


def fresh_files(folder: str | Path, options: FigureOptions) -> list[str] | None:
    """The files of an up-to-date drawing (from ``figures.json``), or None if stale."""
    if stale_reason(folder, options) is not None:
        return None
    return list(read_manifest(folder)["files"])  # type: ignore[index]


def drawn_files(folder: str | Path) -> list[str]:
    """The files the folder's last drawing wrote (none if it has no readable manifest)."""
    record = read_manifest(folder) or {}
    files = record.get("files", [])
    return [name for name in files if isinstance(name, str) and "/" not in name]


def record_drawing(
    folder: str | Path,
    options: FigureOptions,
    files: Iterable[str],
    inputs: dict[str, list[int]],
) -> Path:
    """Write ``figures.json``: ``inputs`` (:func:`input_stats` taken before drawing, so an
    input changed meanwhile makes the figures stale), ``options`` and the ``files`` written."""
    record = {
        "stellarnet": __version__,
        "options": options.as_kwargs(),
        "inputs": inputs,
        "files": sorted(files),
    }
    return write_json(Path(folder) / MANIFEST, record)

"""Results folders' bookkeeping: where they may be written, the guard against
overwriting a run, and what a ``run.json`` says about where the run came from (paths,
library versions).

The commands (:mod:`stellarnet.runs`) decide what goes into a folder; this module holds the
rules every command's folder follows, so that they are written once (the folders' names are
built in :mod:`stellarnet.results.names`):

* every folder a command writes or deletes is proven to lie inside the results folder
  (``--results``) first, by :func:`inside_results` (:func:`result_folder`,
  :func:`clean_staging`, :func:`staged_result`);
* the results folder is checked to be writable before training (:func:`check_writable`);
* an existing folder is replaced only with ``force`` and only if it is a stellarnet result,
  i.e. holds its ``run.json`` (:func:`check_not_exists`, :func:`check_replace`);
* staging folders left behind by a killed run are removed at the next run into the same
  folder, never one whose process still runs (:func:`clean_staging`).

:func:`prepare_folder` does the checks before training, :func:`staged_result` the writing.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import platform
import shutil
import tempfile
import time
from collections.abc import Iterator
from importlib import metadata
from pathlib import Path

from stellarnet import __version__
from stellarnet.checks import check_name
from stellarnet.data.registry import PROJECT_ROOT
from stellarnet.errors import ResultsExist, ResultsFolderError
from stellarnet.files import (
    StagingOwner,
    process_running,
    staged_folder,
    staging_owner,
    staging_prefix,
)
from stellarnet.results.names import check_folder_name
from stellarnet.results.saved import RUN_JSON

log = logging.getLogger(__name__)

LIBRARIES = (
    "numpy",
    "pandas",
    "pyarrow",
    "tensorflow",
    "keras",
    "astropy",
    "astroquery",
    "matplotlib",
    "numba",
)
"""The libraries whose versions a ``run.json`` records."""
STALE_AFTER_S = 24 * 3600
"""A staging folder whose process cannot be looked up (made on another machine, or by
an older stellarnet, whose names carry no process id) is removed once it is this old (by its
modification time); younger ones are reported and left. Staging folders exist only while a
finished run writes its files, seconds to minutes."""


def inside_results(path: str | Path, results_dir: str | Path) -> Path:
    """Return ``path`` after proving that it lies strictly inside ``results_dir`` (both with
    symbolic links followed); raise ResultsFolderError if not. Every folder stellarnet's
    commands write or delete passes through here first."""
    root = Path(results_dir).resolve()
    resolved = Path(path).resolve()
    if resolved == root or root not in resolved.parents:
        raise ResultsFolderError(
            f"{path} lies outside the results folder {results_dir} ({root}); stellarnet writes "
            "and deletes only inside it (a symbolic link may lead out of it: replace the link "
            "by a folder, or give the link's target as --results)"
        )
    return Path(path)


def result_folder(results_dir: str | Path, experiment: str, leaf: str) -> Path:
    """``results_dir/<experiment>/<leaf>``, proven to lie inside ``results_dir``.

    ``experiment`` must be a plain folder name (:func:`stellarnet.checks.check_name`), and
    ``leaf`` (``lr=<rate>[,<tags>]``, ``sweep-lr=<rates>[,<tags>]``, ``compare``; see
    :mod:`stellarnet.results.names`) one safe folder name
    (:func:`stellarnet.results.names.check_folder_name`).
    """
    check_name(experiment, "experiment name")
    check_folder_name(leaf)
    return inside_results(Path(results_dir) / experiment / leaf, results_dir)


def holds_results(folder: Path) -> bool:
    """Whether ``folder`` exists and holds any file or folder."""
    return folder.is_dir() and any(folder.iterdir())


def is_stellarnet_result(folder: Path, marker: str = RUN_JSON) -> bool:
    """Whether ``folder`` holds a stellarnet result: its ``marker`` file (``run.json``), a JSON
    object naming the experiment."""
    try:
        record = json.loads((folder / marker).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(record, dict) and "experiment" in record


def check_not_exists(folder: Path, force: bool, marker: str = RUN_JSON) -> None:
    """Refuse a folder that new results may not replace: raise ResultsExist if it holds a run
    and ``force`` is False, and ResultsFolderError if it holds anything that is not a
    stellarnet result (no ``marker``), with or without ``force``, or is a file.

    Commands call it before training, so that a refused run costs nothing.
    """
    if folder.is_symlink() or (folder.exists() and not folder.is_dir()):
        raise ResultsFolderError(
            f"{folder} is a file or a link, not a results folder; stellarnet will not replace "
            "it: move it away, or give another --results folder"
        )
    if not holds_results(folder):
        return
    if not is_stellarnet_result(folder, marker):
        raise ResultsFolderError(
            f"{folder} holds files but no {marker} of a stellarnet run, so it is not a "
            f"stellarnet result{' and --force will not replace it' if force else ''} "
            "(--force replaces stellarnet results only): move its files away, or give another "
            "--results folder"
        )
    if not force:
        raise ResultsExist(
            f"{folder} already holds a run; pass --force to replace it, or move it away first"
        )


def describe_result(folder: Path, marker: str = RUN_JSON) -> str:
    """``"the run of 2026-12-04T10:00:00+00:00: 7 files, 1.2 MB"`` for log lines."""
    try:
        created = json.loads((folder / marker).read_text(encoding="utf-8")).get("created_utc")
    except (OSError, ValueError, AttributeError):
        created = None
    files = [path for path in folder.rglob("*") if path.is_file()]
    size = sum(path.stat().st_size for path in files)
    when = f"the run of {created}" if created else f"the run in {marker}"
    return f"{when}: {len(files)} files, {size / 1e6:.1f} MB"


def check_replace(folder: Path, force: bool, marker: str = RUN_JSON) -> None:
    """The last check before new results are swapped in: refuse, or say what is replaced.

    Called again when the results are complete, since the folder may have been filled while
    the run trained.
    """
    check_not_exists(folder, force, marker)
    if holds_results(folder):
        log.info(
            "replacing the earlier results in %s (--force): %s",
            folder,
            describe_result(folder, marker),
        )


def check_writable(folder: Path, results_dir: str | Path) -> None:
    """Create ``folder``'s parent folders, write and remove a probe file there, and remove
    the folders it created; raise ResultsFolderError naming the path (and the fix) if that
    fails. Commands call it before training, so that an unusable ``--results`` costs no
    training."""
    parent = Path(folder).parent
    ancestors = (parent, *parent.parents)
    blocker = next((p for p in ancestors if p.exists() and not p.is_dir()), None)
    if blocker is not None:
        raise ResultsFolderError(
            f"cannot write results into {parent}: {blocker} is a file, not a folder; give a "
            f"folder as --results (now {results_dir})"
        )
    missing = [p for p in ancestors if not p.exists()]  # deepest first
    try:
        parent.mkdir(parents=True, exist_ok=True)
        handle, probe = tempfile.mkstemp(
            prefix=staging_prefix(Path(folder).name, "new"), suffix=".probe", dir=parent
        )
        try:
            os.write(handle, b"stellarnet checks that it can write here\n")
        finally:
            os.close(handle)
            os.unlink(probe)
    except OSError as err:
        raise ResultsFolderError(
            f"cannot write results into {parent}: {err.strerror or err}; give a folder you can "
            f"write to as --results (now {results_dir})"
        ) from None
    finally:
        for created in missing:  # the run creates them again when it writes
            with contextlib.suppress(OSError):
                created.rmdir()


def clean_staging(folder: Path, results_dir: str | Path) -> list[Path]:
    """Remove the staging folders (and probe files) beside ``folder`` that a killed run left;
    return them. Never one whose process may still run: a name with this machine's tag and a
    process id is removed only if that process is gone; others (another machine's, or
    an older stellarnet's names without a process id) only once older than
    :data:`STALE_AFTER_S`, and are reported until then.

    A result set aside (``.<name>.old-...``) by a process killed before the new result moved
    in is put back first if nothing has taken its place.
    """
    parent = Path(folder).parent
    if not parent.is_dir():
        return []
    removed = []
    for entry in sorted(parent.iterdir()):
        owner = staging_owner(entry.name)
        if owner is None or entry.is_symlink():
            continue
        if owner.pid is None and owner.final != Path(folder).name:
            continue  # an old-style name: only the folder now written is known to be ours
        left_by = _left_by(entry, owner)
        if left_by is None:
            continue
        inside_results(entry, results_dir)
        _restore_set_aside(entry, owner, parent)
        size = _size(entry)
        try:
            shutil.rmtree(entry) if entry.is_dir() else entry.unlink()
        except FileNotFoundError:
            continue  # another run cleaned it first
        except OSError as err:
            log.warning("could not remove the staging folder %s: %s", entry, err)
            continue
        log.warning("removed %s (%.1f MB), left behind by %s", entry, size / 1e6, left_by)
        removed.append(entry)
    return removed


def _left_by(entry: Path, owner: StagingOwner) -> str | None:
    """Who left ``entry`` if it is stale (for the log line), else None (leave it alone)."""
    if owner.pid is not None and owner.local:
        if process_running(owner.pid):
            log.info("leaving %s: process %d, which writes it, still runs", entry, owner.pid)
            return None
        return f"process {owner.pid}, which no longer runs (killed while writing?)"
    age = time.time() - entry.lstat().st_mtime
    who = f"process {owner.pid} on another machine" if owner.pid else "an older stellarnet"
    if age < STALE_AFTER_S:
        log.warning(
            "leaving %s, made by %s %.1f h ago: stellarnet cannot tell whether that run still "
            "writes it; it is removed once %.0f h old, or remove it yourself",
            entry,
            who,
            age / 3600,
            STALE_AFTER_S / 3600,
        )
        return None
    return f"{who} {age / 3600:.0f} h ago"


def _restore_set_aside(entry: Path, owner: StagingOwner, parent: Path) -> None:
    """Put back a result that a killed replacement had set aside, if its place is empty."""
    kept, final = entry / owner.final, parent / owner.final
    if owner.kind == "old" and kept.is_dir() and not kept.is_symlink() and not final.exists():
        os.replace(kept, final)
        log.warning("restored %s from %s (its replacement was interrupted)", final, entry)


def _size(entry: Path) -> int:
    if not entry.is_dir():
        return entry.lstat().st_size
    return sum(p.lstat().st_size for p in entry.rglob("*") if not p.is_dir())


def prepare_folder(
    folder: Path, results_dir: str | Path, force: bool, marker: str = RUN_JSON
) -> None:
    """Every check on ``folder`` before training: inside ``results_dir``, writable, stale
    staging folders beside it cleaned up, and not an existing result unless ``force`` (and
    then only a stellarnet result)."""
    inside_results(folder, results_dir)
    check_writable(folder, results_dir)
    clean_staging(folder, results_dir)
    check_not_exists(folder, force, marker)


@contextlib.contextmanager
def staged_result(
    folder: Path, results_dir: str | Path, force: bool, marker: str = RUN_JSON
) -> Iterator[Path]:
    """Yield a staging folder for ``folder``'s new files; on success swap it in for
    ``folder`` (:func:`stellarnet.files.staged_folder`), after proving again that ``folder``
    lies inside ``results_dir`` and may be replaced (:func:`check_replace`)."""

    def ready() -> None:
        inside_results(folder, results_dir)
        check_replace(folder, force, marker)

    inside_results(folder, results_dir)
    with staged_folder(folder, ready=ready) as staging:
        inside_results(staging, results_dir)
        yield staging


def display_path(path: str | Path) -> str:
    """``path`` relative to the project if it lies inside it, else absolute."""
    path = Path(path).resolve()
    try:
        return str(path.relative_to(PROJECT_ROOT))
    except ValueError:
        return str(path)


def library_versions() -> dict[str, str]:
    """Versions of Python, stellarnet and the libraries a run depends on."""
    versions = {"python": platform.python_version(), "stellarnet": __version__}
    for name in LIBRARIES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            try:
                versions[name] = metadata.version(f"{name}-cpu")
            except metadata.PackageNotFoundError:
                versions[name] = "not installed"
    return versions

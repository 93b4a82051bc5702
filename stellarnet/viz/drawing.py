"""Drawing the figures of many results folders: only the stale ones, on every core.

``stellarnet figures`` calls :func:`draw_folders`. Each folder is drawn all or nothing (by
:func:`stellarnet.viz.figures.regenerate`, or here in its parts), unless
:mod:`stellarnet.viz.freshness` shows its figures up to date. On several cores, each folder
is checked and staged here, its two parts (:data:`~stellarnet.viz.figures.PARTS`: the
figures, and the pages) are drawn into its staging folder by worker processes forked from
this one, which has imported matplotlib and the drawing code already, and it is committed
here once both are drawn: the parts of four folders keep two cores busy to the end, where
whole folders left one idle. Folders inside others (a sweep's runs) are committed first, so
that a sweep's report shows their figures.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from stellarnet.errors import StellarnetError
from stellarnet.viz.freshness import FigureOptions, fresh_files

if TYPE_CHECKING:
    from stellarnet.results.saved import SavedResults
    from stellarnet.viz.figures import StagedFolder


@dataclass
class Outcome:
    """What became of one folder: ``fresh`` (the files of an up-to-date drawing, left as
    they were), ``written`` (drawn now) or ``error`` (skipped, its files unchanged)."""

    folder: Path
    fresh: list[str] | None = None
    written: list[Path] = field(default_factory=list)
    error: str | None = None


def default_jobs() -> int:
    """Worker processes by default: one per core this process may use."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


def draw_folder(folder: Path, options: FigureOptions, force: bool = False) -> Outcome:
    """Draw one folder's figures if they are stale (or ``force``)."""
    fresh = None if force else fresh_files(folder, options)
    if fresh is not None:
        return Outcome(folder, fresh=fresh)
    from stellarnet.viz.figures import regenerate

    try:
        return Outcome(folder, written=regenerate(folder, **options.as_kwargs()))
    except StellarnetError as err:  # the message, not the exception: it crosses processes
        return Outcome(folder, error=str(err))


def inner_folders(folders: Sequence[Path]) -> dict[Path, list[Path]]:
    """For each folder, the folders of the list inside it (a sweep's runs), whose figures its
    report shows."""
    return {folder: [other for other in folders if folder in other.parents] for folder in folders}


def draw_folders(
    folders: Sequence[Path], options: FigureOptions, force: bool = False, jobs: int | None = None
) -> Iterator[Outcome]:
    """Draw every stale folder of ``folders`` (all with ``force``) in up to ``jobs`` processes
    (default: one per core); yield an :class:`Outcome` per folder, in the order given."""
    folders = [Path(folder) for folder in folders]
    jobs = default_jobs() if jobs is None else jobs
    stale = [folder for folder in folders if force or fresh_files(folder, options) is None]
    if jobs <= 1 or not stale:
        for folder in folders:
            yield draw_folder(folder, options, force)
        return
    _load_drawing_code(options)  # before forking, so that workers inherit it
    outcomes = _draw_in_parts(stale, options, jobs)
    for folder in folders:
        yield outcomes.get(folder) or Outcome(folder, fresh=fresh_files(folder, options))


def _draw_in_parts(stale: list[Path], options: FigureOptions, jobs: int) -> dict[Path, Outcome]:
    """Stage each folder, draw the parts of all of them in ``jobs`` forked processes, and
    commit each folder whose parts were all drawn. A folder with a problem (or whose part
    failed unexpectedly) is left as it was and the others are committed; an unexpected
    failure is raised after that."""
    from stellarnet.viz.figures import discard, stage

    outcomes: dict[Path, Outcome] = {}
    staged: dict[Path, StagedFolder] = {}
    read: dict[Path, SavedResults] = {}  # for the commit: each folder is read here once
    try:
        for folder in stale:
            try:
                staged[folder], read[folder] = stage(folder, options)
            except StellarnetError as err:
                outcomes[folder] = Outcome(folder, error=str(err))
        drawn, errors, unexpected = _draw_parts(staged, jobs)
        outcomes |= _commit_all(staged, read, drawn, errors)
    finally:
        for one in staged.values():
            discard(one)
    if unexpected:
        raise unexpected[0]
    return outcomes


def _draw_parts(
    staged: dict[Path, StagedFolder], jobs: int
) -> tuple[dict[Path, list[str]], dict[Path, str], list[Exception]]:
    """Draw every part of every staged folder in up to ``jobs`` forked processes: the names
    drawn by folder, the error of each folder with a problem, and the unexpected failures
    (a bug, a full disk, a killed worker), whose folders count as failed too."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    from stellarnet.viz.figures import PARTS

    drawn: dict[Path, list[str]] = {folder: [] for folder in staged}
    errors: dict[Path, str] = {}
    unexpected: list[Exception] = []
    if not staged:
        return drawn, errors, unexpected
    inside = inner_folders(list(staged))
    # The longest first, so that no core is left with one long part at the end: a run's
    # figures (about 1.2 s for a 10-epoch HR run), a sweep's (0.6 s), then the pages
    # (0.7-0.9 s), a sweep's last.
    tasks = sorted(
        ((folder, part) for folder in staged for part in PARTS),
        key=lambda task: (PARTS.index(task[1]), bool(inside[task[0]])),
    )
    context = multiprocessing.get_context("fork")
    with ProcessPoolExecutor(min(jobs, len(tasks)), mp_context=context) as pool:
        futures = [
            (folder, pool.submit(_draw_part, staged[folder], part)) for folder, part in tasks
        ]
        for folder, future in futures:
            try:
                names, error = future.result()
            except Exception as err:  # raised by the caller, once the others are committed
                unexpected.append(err)
                names, error = [], f"unexpected {type(err).__name__}: {err}"
            if error is not None:
                errors.setdefault(folder, error)
            drawn[folder] += names
    return drawn, errors, unexpected


def _commit_all(
    staged: dict[Path, StagedFolder],
    read: dict[Path, SavedResults],
    drawn: dict[Path, list[str]],
    errors: dict[Path, str],
) -> dict[Path, Outcome]:
    """Commit each staged folder without an error, inner folders first (a sweep's report
    shows its runs' figures); the outcome of each."""
    from stellarnet.viz.figures import commit

    outcomes = {}
    for folder in sorted(staged, key=lambda folder: -len(folder.parts)):
        if folder in errors:
            outcomes[folder] = Outcome(folder, error=errors[folder])
            continue
        try:
            written = commit(staged[folder], drawn[folder], read[folder])
            outcomes[folder] = Outcome(folder, written=written)
        except StellarnetError as err:  # e.g. damaged since it was staged
            outcomes[folder] = Outcome(folder, error=str(err))
    return outcomes


def _draw_part(staged: StagedFolder, part: str) -> tuple[list[str], str | None]:
    """:func:`~stellarnet.viz.figures.draw_part` in a worker: the names drawn and None, or
    none and the error's message (the message, not the exception: it crosses processes)."""
    from threadpoolctl import threadpool_limits

    from stellarnet.viz.figures import draw_part

    # The command reported the data's warnings (e.g. values clipped) when it staged the
    # folder; reading the same data again here would repeat them.
    logging.getLogger("stellarnet.data").setLevel(logging.ERROR)
    try:
        with threadpool_limits(limits=1):  # the other workers have the other cores
            return draw_part(staged, part), None
    except StellarnetError as err:
        return [], str(err)


def _load_drawing_code(options: FigureOptions) -> None:
    """Import what every folder's drawing needs (matplotlib, its Agg and PDF backends, the
    figure modules, the explorer's Bokeh) and install the drawing caches, once, in the parent
    process."""
    import matplotlib.backends.backend_agg  # noqa: F401
    import matplotlib.backends.backend_pdf  # noqa: F401

    import stellarnet.viz.figures  # noqa: F401
    from stellarnet.viz.style import install_caches

    install_caches()

    if options.explorer:
        import stellarnet.viz.explorer  # noqa: F401

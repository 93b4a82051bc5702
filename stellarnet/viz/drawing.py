"""Drawing the figures of many results folders: only the stale ones, on every core.

``stellarnet figures`` calls :func:`draw_folders`. Each folder is drawn whole by
:func:`stellarnet.viz.figures.regenerate` (one folder's files are all or nothing), unless
:mod:`stellarnet.viz.freshness` shows its figures up to date. Folders are independent, so
they are drawn in worker processes forked from this one, which has imported matplotlib and
the drawing code already: no worker imports anything again. A sweep's report shows its runs'
figures, so the folders that hold other folders (sweeps) are drawn after those.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from stellarnet.errors import StellarnetError
from stellarnet.viz.freshness import FigureOptions, fresh_files


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


def waves(folders: Sequence[Path]) -> list[list[Path]]:
    """The folders in drawing order: first those that hold no other folder of the list (runs,
    a sweep's runs), then the others (sweeps), each in the order given."""

    def holds_another(folder: Path) -> bool:
        return any(other != folder and folder in other.parents for other in folders)

    first = [folder for folder in folders if not holds_another(folder)]
    return [wave for wave in (first, [f for f in folders if f not in first]) if wave]


def draw_folders(
    folders: Sequence[Path], options: FigureOptions, force: bool = False, jobs: int | None = None
) -> Iterator[Outcome]:
    """Draw every stale folder of ``folders`` (all with ``force``) in up to ``jobs`` processes
    (default: one per core); yield an :class:`Outcome` per folder, in the order given."""
    jobs = default_jobs() if jobs is None else jobs
    stale = [Path(f) for f in folders if force or fresh_files(f, options) is None]
    if jobs <= 1 or len(stale) <= 1:
        for folder in folders:
            yield draw_folder(Path(folder), options, force)
        return
    import multiprocessing

    _load_drawing_code(options)  # before forking, so that workers inherit it
    outcomes: dict[Path, Outcome] = {}
    context = multiprocessing.get_context("fork")
    with context.Pool(min(jobs, len(stale))) as pool:
        for wave in waves([Path(f) for f in folders]):
            calls = [(folder, options, force) for folder in wave]
            for outcome in pool.starmap(draw_folder, calls, chunksize=1):
                outcomes[outcome.folder] = outcome
    for folder in folders:
        yield outcomes[Path(folder)]


def _load_drawing_code(options: FigureOptions) -> None:
    """Import what every folder's drawing needs (matplotlib, its Agg and PDF backends, the
    figure modules, the explorer's Bokeh), once, in the parent process."""
    import matplotlib.backends.backend_agg  # noqa: F401
    import matplotlib.backends.backend_pdf  # noqa: F401

    import stellarnet.viz.figures  # noqa: F401

    if options.explorer:
        import stellarnet.viz.explorer  # noqa: F401

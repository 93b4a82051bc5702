"""Drawing the figures of many results folders: only the stale ones, on every core.

``stellarnet figures`` calls :func:`draw_folders`. Each folder is drawn whole by
:func:`stellarnet.viz.figures.regenerate` (one folder's files are all or nothing), unless
:mod:`stellarnet.viz.freshness` shows its figures up to date. Folders are independent, so
they are drawn in worker processes forked from this one, which has imported matplotlib and
the drawing code already: no worker imports anything again. A sweep's report shows its runs'
figures, so it is written again once they are drawn.
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


def inner_folders(folders: Sequence[Path]) -> dict[Path, list[Path]]:
    """For each folder, the folders of the list inside it (a sweep's runs), whose figures its
    report shows."""
    return {folder: [other for other in folders if folder in other.parents] for folder in folders}


def draw_folders(
    folders: Sequence[Path], options: FigureOptions, force: bool = False, jobs: int | None = None
) -> Iterator[Outcome]:
    """Draw every stale folder of ``folders`` (all with ``force``) in up to ``jobs`` processes
    (default: one per core); yield an :class:`Outcome` per folder, in the order given.

    Folders that hold others (sweeps) start first; their reports are written again once the
    folders inside them are drawn (:func:`refresh_report`)."""
    folders = [Path(folder) for folder in folders]
    jobs = default_jobs() if jobs is None else jobs
    stale = [folder for folder in folders if force or fresh_files(folder, options) is None]
    if jobs <= 1 or len(stale) <= 1:
        for folder in folders:
            yield draw_folder(folder, options, force)
        return
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    _load_drawing_code(options)  # before forking, so that workers inherit it
    inside = inner_folders(folders)
    # Outer folders first: a sweep, the most work, starts at once beside its runs instead of
    # alone after them; its report, which shows their figures, is written again after them.
    order = sorted(folders, key=lambda folder: -len(inside[folder]))
    context = multiprocessing.get_context("fork")
    with ProcessPoolExecutor(min(jobs, len(stale)), mp_context=context) as pool:
        futures = {folder: pool.submit(draw_folder, folder, options, force) for folder in order}
        outcomes = {folder: future.result() for folder, future in futures.items()}
    for folder in folders:
        if outcomes[folder].written and any(outcomes[inner].written for inner in inside[folder]):
            refresh_report(folder, options)
        yield outcomes[folder]


def refresh_report(folder: Path, options: FigureOptions) -> None:
    """Write a folder's report again, now that the folders inside it (a sweep's runs) are
    drawn: the same report as drawing it after them."""
    from stellarnet.results.saved import load_results
    from stellarnet.viz.report import write_report

    write_report(load_results(folder, options.catalog), digits=options.digits)


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

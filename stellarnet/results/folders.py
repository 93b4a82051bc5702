"""Results folders' bookkeeping: their names, the guard against overwriting a run, and what a
``run.json`` says about where the run came from (paths, library versions).

The commands (:mod:`stellarnet.runs`) decide what goes into a folder; this module holds the
rules every command's folder follows, so that they are written once.
"""

from __future__ import annotations

import logging
import platform
from importlib import metadata
from pathlib import Path

from stellarnet import __version__
from stellarnet.data.registry import PROJECT_ROOT
from stellarnet.errors import ResultsExist

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
)
"""The libraries whose versions a ``run.json`` records."""


def rate_label(learning_rate: float) -> str:
    """The shortest text that reads back as exactly ``learning_rate``: 0.3 -> ``"0.3"``.

    Folder names (``lr=<label>``) use it, so that distinct rates never share a folder.
    """
    short = f"{learning_rate:g}"
    return short if float(short) == learning_rate else repr(float(learning_rate))


def holds_results(folder: Path) -> bool:
    """Whether ``folder`` exists and holds any file."""
    return folder.exists() and any(folder.iterdir())


def check_not_exists(folder: Path, force: bool) -> None:
    """Raise ResultsExist if ``folder`` holds files and ``force`` is False.

    Commands call it before training, so that a refused run costs nothing.
    """
    if holds_results(folder) and not force:
        raise ResultsExist(
            f"{folder} already holds a run; pass --force to replace it, or move it away first"
        )


def check_replace(folder: Path, force: bool) -> None:
    """The last check before new results are swapped in: refuse, or say what is replaced.

    Called again when the results are complete, since the folder may have been filled while
    the run trained.
    """
    check_not_exists(folder, force)
    if holds_results(folder):
        log.info("replacing the earlier results in %s (--force)", folder)


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

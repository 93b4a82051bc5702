"""Small file helpers: atomic writes and checksums.

Every cache and result stellarnet writes goes through :func:`atomic_write`, so a crash or a
full disk leaves either the old file or the new one, never half of one.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any


def sha256_file(path: str | Path) -> str:
    """Return the hex sha256 digest of the file at ``path``."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def current_umask() -> int:
    """The process's file-mode creation mask (reading it means setting it, so it is put back)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success fsync it and rename it over ``path``.

    The temporary file lives in the same folder so that the final rename is atomic. On any
    exception the temporary file is removed and ``path`` is left untouched.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    os.chmod(tmp, 0o666 & ~current_umask())  # mkstemp makes it 0600: give it open()'s mode
    try:
        yield tmp
        with open(tmp, "rb+") as handle:
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def atomic_write(path: str | Path, write: Callable[[Path], Any]) -> Path:
    """Call ``write(tmp_path)`` and atomically move the result to ``path``; return ``path``."""
    with atomic_path(path) as tmp:
        write(tmp)
    return Path(path)


def json_text(record: dict[str, Any]) -> str:
    """``record`` as the indented JSON text that :func:`write_json` writes."""
    return json.dumps(record, indent=2, sort_keys=False, default=str) + "\n"


def write_json(path: str | Path, record: dict[str, Any]) -> Path:
    """Write ``record`` as indented JSON, atomically."""
    text = json_text(record)
    return atomic_write(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))


@contextlib.contextmanager
def staged_folder(final: str | Path, ready: Callable[[], None] = lambda: None) -> Iterator[Path]:
    """Yield an empty staging folder beside ``final``; on success swap it in for ``final``.

    ``ready()`` is called just before the swap (e.g. to re-check that an existing result may
    be replaced). On any exception the staging folder is deleted and ``final`` is untouched.
    """
    import shutil

    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{final.name}.new-", dir=final.parent))
    os.chmod(staging, 0o777 & ~current_umask())  # mkdtemp makes it 0700: give it mkdir()'s mode
    try:
        yield staging
        ready()
        replace_folder(staging, final)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


def replace_folder(new: str | Path, final: str | Path) -> Path:
    """Move the finished folder ``new`` to ``final``, replacing any folder already there.

    The old folder is renamed aside first and deleted only once ``new`` is in place, so an
    interruption never leaves ``final`` half-written.
    """
    import shutil

    new, final = Path(new), Path(final)
    old = None
    if final.exists():
        old = Path(tempfile.mkdtemp(prefix=f".{final.name}.old-", dir=final.parent))
        os.replace(final, old / final.name)
    os.replace(new, final)
    if old is not None:
        shutil.rmtree(old)
    return final

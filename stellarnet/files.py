"""Small file helpers: atomic writes and checksums.

Every cache and result stellarnet writes goes through :func:`atomic_write`, so a crash or a
full disk leaves either the old file or the new one, never half of one. Results folders are
written into a hidden staging folder and swapped in whole (:func:`staged_folder`); a staging
folder's name says which process made it (:func:`staging_owner`), so that one left behind by
a killed process can be told from one still being written.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import os
import re
import socket
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
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


def json_number(value: float) -> float | str:
    """``value`` if finite, else ``"nan"``, ``"inf"`` or ``"-inf"``: JSON has no NaN or
    infinity (``float()`` reads either form back)."""
    value = float(value)
    if math.isfinite(value):
        return value
    return "nan" if math.isnan(value) else ("inf" if value > 0 else "-inf")


def json_ready(value: Any) -> Any:
    """``value`` with every non-finite float (also inside dicts, lists and tuples) replaced
    by :func:`json_number`'s string."""
    if isinstance(value, float):
        return json_number(value)
    if isinstance(value, dict):
        return {key: json_ready(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [json_ready(item) for item in value]
    return value


def json_text(record: dict[str, Any]) -> str:
    """``record`` as the indented JSON text that :func:`write_json` writes: strict JSON, with
    NaN and infinities written as the strings of :func:`json_number`."""
    return json.dumps(json_ready(record), indent=2, sort_keys=False, default=str) + "\n"


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
    staging = Path(tempfile.mkdtemp(prefix=staging_prefix(final.name, "new"), dir=final.parent))
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
        old = Path(tempfile.mkdtemp(prefix=staging_prefix(final.name, "old"), dir=final.parent))
        os.replace(final, old / final.name)
    os.replace(new, final)
    if old is not None:
        shutil.rmtree(old)
    return final


# --- staging folders' names ----------------------------------------------------------------

STAGING_NAME = re.compile(
    r"\.(?P<final>.+)\.(?P<kind>new|old)-(?:(?P<pid>\d+)-(?P<host>[0-9a-f]{8})-)?"
    r"[a-z0-9_]{8}(?P<probe>\.probe)?"
)
"""``.<final>.new-<pid>-<host>-<random>`` (staging), ``.<final>.old-...`` (an old result set
aside while the new one moves in), ``...probe`` (a write probe); ``<random>`` is the 8
characters ``tempfile`` adds. ``<pid>-<host>-`` is missing from the names of the staging
folders of older stellarnet versions."""


@dataclass(frozen=True)
class StagingOwner:
    """What a staging folder's name says: the folder it stands in for, its kind (``new``,
    ``old``), and the process id and host tag of the process that made it (None if the name
    is of the older form without them)."""

    final: str
    kind: str
    pid: int | None
    host: str | None

    @property
    def local(self) -> bool:
        """Whether it was made on this machine (so its process can be looked up here)."""
        return self.host == host_tag()


def host_tag() -> str:
    """Eight hex digits naming this machine (a results folder may be shared over a network)."""
    return hashlib.sha256(socket.gethostname().encode()).hexdigest()[:8]


def staging_prefix(final_name: str, kind: str) -> str:
    """The start of a staging name: ``.<final_name>.<kind>-<pid>-<host>-``."""
    return f".{final_name}.{kind}-{os.getpid()}-{host_tag()}-"


def staging_owner(name: str) -> StagingOwner | None:
    """Parse a staging folder's (or probe file's) name; None if it is not one."""
    match = STAGING_NAME.fullmatch(name)
    if match is None:
        return None
    pid = match.group("pid")
    return StagingOwner(
        match.group("final"), match.group("kind"), int(pid) if pid else None, match.group("host")
    )


def process_running(pid: int) -> bool:
    """Whether a process ``pid`` runs on this machine (a zombie counts as running)."""
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # it exists, under another user
        return True
    except OSError:
        return True  # cannot tell: assume it runs
    return True

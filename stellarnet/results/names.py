"""The names of results folders: what a run's or a sweep's folder is called, so that two runs
with different settings never share one.

A run's folder is ``lr=<rate>``, followed by one tag per setting that differs from its
experiment's config (or that changes the numbers: ``--init-from``, ``--jit``), joined by
commas, always in this order (:data:`TAG_ORDER`)::

    lr=0.3                              the config's settings (as before tags existed)
    lr=0.3,epochs=300                   --epochs 300
    lr=0.3,seed=7                       --seed 7
    lr=0.3,catalog=my_gaia              --catalog path/to/my_gaia.csv (the file's stem)
    lr=0.1,init=history_3fa9c1          --init-from .../history.csv (stem, 6 hex of its sha256)
    lr=0.3,record_every=5               --record-every 5
    lr=0.3,activations                  --record-activations
    lr=0.3,jit                          --jit (XLA rounds differently)

A sweep's folder is ``sweep``, then ``-notebook`` for the notebook protocol (``same``, the
default, is not named), then ``-lr=`` and the rates in the order given, then the same tags::

    sweep-lr=0.1,0.3                    --init same (default)
    sweep-notebook-lr=0.1,0.3           --init notebook
    sweep-lr=0.1,0.3,epochs=300         --epochs 300
    sweep-lr=64_rates_0.01_to_0.64_3fa9c1d2
        rates whose list would be longer than 40 characters: their number, the smallest and
        the largest, and 8 hex of the sha256 of the whole list in order

Every name is one safe folder name (:func:`check_folder_name`): letters, digits and
``. _ - = , +``, no ``..``, at most :data:`MAX_FOLDER_NAME` characters (a longer one keeps
its first characters and ends with 8 hex of the sha256 of the whole name). Folders named
before tags existed (``lr=0.3``, ``sweep``) are still results folders
(:func:`is_result_folder_name`).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Sequence
from pathlib import Path

from stellarnet.checks import is_safe_name
from stellarnet.errors import ResultsFolderError

SWEEP = "sweep"
"""A sweep folder's name, or its first word (``sweep-lr=...``)."""
RUN_PREFIX = "lr="
"""How a run folder's name starts."""
DEFAULT_INIT = "same"
"""The sweep protocol a sweep folder's name leaves unsaid."""
SAFE_FOLDER_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._=,+-]*")
MAX_FOLDER_NAME = 120
"""Longest folder name (file systems allow 255 bytes; staging folders add about 40)."""
LONG_RATE_LIST = 40
"""A sweep's rates longer than this (joined by commas) are named by their summary."""
MAX_FILE_TAG = 32
"""Longest file stem in a ``catalog=`` or ``init=`` tag."""
TAG_ORDER = ("epochs", "seed", "catalog", "init", "record_every", "record", "jit")
"""The order of the tags after the rate(s)."""
_UNSAFE = re.compile(r"[^A-Za-z0-9._+-]+")


def rate_label(learning_rate: float) -> str:
    """The shortest text that reads back as exactly ``learning_rate``: 0.3 -> ``"0.3"``.

    Folder names (``lr=<label>``) use it, so that distinct rates never share a folder.
    """
    short = f"{learning_rate:g}"
    return short if float(short) == learning_rate else repr(float(learning_rate))


def short_hash(text: str, digits: int = 8) -> str:
    """The first ``digits`` hex digits of the sha256 of ``text`` (UTF-8)."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:digits]


def check_folder_name(name: object) -> str:
    """Return ``name`` if it is a safe results folder name (one path component of letters,
    digits and ``. _ - = , +``, starting with a letter or digit, no ``..``, at most
    :data:`MAX_FOLDER_NAME` characters); else raise ResultsFolderError."""
    if is_safe_name(name, SAFE_FOLDER_NAME, MAX_FOLDER_NAME):
        return name  # type: ignore[return-value]
    raise ResultsFolderError(
        f"results folder name {name!r} is not one safe folder name (letters, digits, "
        f"'.', '_', '-', '=', ',' and '+', no '..', at most {MAX_FOLDER_NAME} characters)"
    )


def is_result_folder_name(name: str) -> bool:
    """Whether ``name`` is the name of a run (``lr=...``) or a sweep (``sweep``,
    ``sweep-...``) folder, old or new."""
    return name == SWEEP or name.startswith((RUN_PREFIX, f"{SWEEP}-"))


def file_tag(path: str | Path, sha256: str | None = None) -> str:
    """A safe, short tag for a file: its stem (characters other than letters, digits and
    ``. _ + -`` become ``_``, at most :data:`MAX_FILE_TAG` of them), then ``_`` and the first
    6 hex digits of ``sha256`` if given. A stem that had to be changed gets 6 hex of its own
    sha256 instead, so that two stems never end up the same tag."""
    stem = Path(path).stem
    safe = _UNSAFE.sub("_", stem).replace("..", "_").strip("._+-")[:MAX_FILE_TAG]
    if safe != stem and sha256 is None:
        sha256 = short_hash(stem)
    if not safe:
        return sha256[:6] if sha256 else "file"
    return f"{safe}_{sha256[:6]}" if sha256 else safe


def override_tags(
    *,
    epochs: int | None = None,
    seed: int | None = None,
    catalog: str | Path | None = None,
    init_from: str | Path | None = None,
    init_sha256: str | None = None,
    record_every: int | None = None,
    record: Sequence[str] | None = None,
    added_activations: bool = False,
    jit: bool = False,
) -> list[str]:
    """The tags of the settings given (None, False: not overridden), in :data:`TAG_ORDER`.

    ``record`` names the recorded groups when they differ from the config's in another way
    than ``added_activations`` (``--record-activations``: the tag ``activations``).
    """
    tags = []
    if epochs is not None:
        tags.append(f"epochs={int(epochs)}")
    if seed is not None:
        tags.append(f"seed={int(seed)}")
    if catalog is not None:
        tags.append(f"catalog={file_tag(catalog)}")
    if init_from is not None:
        tags.append(f"init={file_tag(init_from, init_sha256)}")
    if record_every is not None:
        tags.append(f"record_every={int(record_every)}")
    if record is not None:
        tags.append("record=" + "+".join(_UNSAFE.sub("_", group) for group in record))
    elif added_activations:
        tags.append("activations")
    if jit:
        tags.append("jit")
    return tags


def bounded(name: str) -> str:
    """``name`` if it is at most :data:`MAX_FOLDER_NAME` characters, else its first
    characters, ``_`` and 8 hex of the sha256 of the whole name."""
    if len(name) <= MAX_FOLDER_NAME:
        return name
    head = name[: MAX_FOLDER_NAME - 9].rstrip("._=,+-")
    return f"{head}_{short_hash(name)}"


def _joined(first: str, tags: Iterable[str]) -> str:
    return check_folder_name(bounded(",".join((first, *tags))))


def run_name(learning_rate: float, tags: Iterable[str] = ()) -> str:
    """``lr=<rate>`` and the tags (:func:`override_tags`): ``lr=0.3,epochs=300``."""
    return _joined(f"{RUN_PREFIX}{rate_label(learning_rate)}", tags)


def rates_text(learning_rates: Sequence[float]) -> str:
    """``0.1,0.3``, or for a list longer than :data:`LONG_RATE_LIST` characters
    ``<n>_rates_<smallest>_to_<largest>_<8 hex of the sha256 of the whole list>``."""
    labels = [rate_label(lr) for lr in learning_rates]
    joined = ",".join(labels)
    if len(joined) <= LONG_RATE_LIST:
        return joined
    low, high = rate_label(min(learning_rates)), rate_label(max(learning_rates))
    return f"{len(labels)}_rates_{low}_to_{high}_{short_hash(joined)}"


def sweep_name(
    learning_rates: Sequence[float], init: str = DEFAULT_INIT, tags: Iterable[str] = ()
) -> str:
    """``sweep[-<init>]-lr=<rates>`` and the tags: ``sweep-notebook-lr=0.1,0.3,epochs=300``
    (``init`` is left out when it is :data:`DEFAULT_INIT`)."""
    protocol = "" if init == DEFAULT_INIT else f"-{_UNSAFE.sub('_', init)}"
    return _joined(f"{SWEEP}{protocol}-{RUN_PREFIX}{rates_text(learning_rates)}", tags)

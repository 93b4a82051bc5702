"""The TensorFlow settings stellarnet runs under, set before TensorFlow starts.

TensorFlow reads these environment variables once, when it is first imported; a value you
set yourself is never replaced.

``TF_ENABLE_ONEDNN_OPTS=0``, set when ``stellarnet`` is imported
    TensorFlow's oneDNN kernels, on by default on Intel CPUs with AVX-512, round differently
    from one tensor shape to another and fuse ops differently in a graph than eagerly. With
    them on, a traced run no longer equals the eager loop bit for bit (tanh and sigmoid nets:
    up to 1e-6 apart after 200 epochs) and a stacked sweep member no longer equals its
    separate run (HR net, 200 epochs: loss 1e-5 and a weight 2e-4 apart, relatively). They
    were also slower on these small nets (``benchmarks/bench_recorder.py``). Import
    stellarnet before TensorFlow (or export the variable) to get them off; otherwise training
    logs a warning.
``TF_NUM_INTRAOP_THREADS=1``, set by :func:`apply` (the ``stellarnet`` command, the
benchmark, the tests)
    One thread per op: these nets' ops are too small to split, and the stacked sweeps run
    their member groups side by side on the cores instead (:mod:`stellarnet.train.grouping`).
    Not set on import, because it would slow down whatever else a session does with TensorFlow.

glibc's malloc thresholds, while training on a Dask worker (:func:`tensor_malloc`)
    Dask's nanny starts its workers with ``MALLOC_TRIM_THRESHOLD_=65536``, which also freezes
    glibc's mmap threshold at 128 KiB: every tensor above that size (the stacked nets'
    ``[n, width * k]`` activations, about 0.5 MiB each) is then a fresh ``mmap`` whose pages
    fault in and are zeroed, every op of every epoch (a study's part trained 4x slower, in
    system time).
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
import logging
import os
import sys
from collections.abc import Iterator

log = logging.getLogger(__name__)

NUMERICS = {"TF_ENABLE_ONEDNN_OPTS": "0"}
"""Set on import of stellarnet: the numbers depend on them."""
SETTINGS = NUMERICS | {"TF_NUM_INTRAOP_THREADS": "1"}
"""Set by :func:`apply`, the entry points' full settings."""


def apply(settings: dict[str, str] = SETTINGS, warn: bool = True) -> None:
    """Set ``settings`` where unset; if TensorFlow has already started (too late), set nothing
    and warn (unless ``warn`` is false: training warns anyway, see :func:`check_onednn`)."""
    if "tensorflow" in sys.modules and any(name not in os.environ for name in settings):
        if not warn:
            return
        log.warning(
            "TensorFlow is already imported, so the settings %s do not apply in this session; "
            "call stellarnet.tfsettings.apply() before importing TensorFlow",
            settings,
        )
        return
    for name, value in settings.items():
        os.environ.setdefault(name, value)


def onednn_enabled() -> bool | None:
    """Whether TensorFlow runs its oneDNN kernels (None: this TensorFlow cannot say)."""
    try:
        from tensorflow.python.util import _pywrap_util_port
    except ImportError:
        return None
    return bool(_pywrap_util_port.IsMklEnabled())


@functools.cache
def check_onednn() -> None:
    """Warn once if oneDNN is on: the numbers are then not the ones the tests guarantee."""
    if onednn_enabled():
        log.warning(
            "TensorFlow runs its oneDNN kernels (TF_ENABLE_ONEDNN_OPTS=%s): traced runs match "
            "the eager loop, and stacked sweeps their separate runs, only to about 1e-6 "
            "(absolute), not bit for bit. Import stellarnet before TensorFlow, or set "
            "TF_ENABLE_ONEDNN_OPTS=0 before it starts, to turn them off.",
            os.environ.get("TF_ENABLE_ONEDNN_OPTS", "unset"),
        )


def current() -> dict[str, str | bool | None]:
    """The settings in effect, for a run record: each variable (``None``: TensorFlow's own
    default) and whether oneDNN is actually on."""
    return {name: os.environ.get(name) for name in SETTINGS} | {"onednn": onednn_enabled()}


M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3
"""glibc's ``mallopt`` parameters."""
GLIBC_THRESHOLD = 128 * 1024
"""glibc's initial mmap and trim thresholds (what one not set in the environment stays at)."""
ROOMY_THRESHOLDS = {M_MMAP_THRESHOLD: 32 * 2**20, M_TRIM_THRESHOLD: 64 * 2**20}
"""glibc's largest mmap threshold (32 MiB), and freed memory kept up to twice that."""


@contextlib.contextmanager
def tensor_malloc() -> Iterator[None]:
    """In this block, glibc's malloc reuses freed tensors' memory instead of mapping fresh
    pages for each, if the environment has fixed its thresholds (``MALLOC_TRIM_THRESHOLD_``
    or ``MALLOC_MMAP_THRESHOLD_``, as Dask's workers do); afterwards the environment's values
    again, and the free memory returned to the system. Otherwise (glibc's own adaptive
    thresholds, or not glibc) nothing changes. Only speed depends on it."""
    fixed = {
        M_TRIM_THRESHOLD: os.environ.get("MALLOC_TRIM_THRESHOLD_", ""),
        M_MMAP_THRESHOLD: os.environ.get("MALLOC_MMAP_THRESHOLD_", ""),
    }
    libc = _glibc() if any(fixed.values()) else None
    if libc is None:
        yield
        return
    for parameter, value in ROOMY_THRESHOLDS.items():
        libc.mallopt(parameter, value)
    try:
        yield
    finally:
        for parameter, value in fixed.items():
            libc.mallopt(parameter, int(value) if value.isdigit() else GLIBC_THRESHOLD)
        libc.malloc_trim(0)


def _glibc() -> ctypes.CDLL | None:
    """The C library if it is glibc (it has ``mallopt`` and ``malloc_trim``), else None."""
    try:
        libc = ctypes.CDLL(None)
        libc.mallopt, libc.malloc_trim  # noqa: B018
    except (OSError, AttributeError):
        return None
    return libc

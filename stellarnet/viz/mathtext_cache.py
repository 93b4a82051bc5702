"""A process-wide cache of matplotlib's parsed mathtext (``$w^{1}_{3}$``, ``log$_{10}$``).

matplotlib caches a parsed expression per renderer, and every ``savefig`` makes a new
renderer, each holding at most 50 parses, so the same labels (axis units, each parameter's
name, log ticks) were parsed again for every figure, every format and every layout pass:
about a fifth of the CPU time of ``stellarnet figures``. This cache keeps each parse by all
that determines it (output type, text, dpi, font, antialiasing, hinting and the
``mathtext.*`` rcParams), so a label is parsed once per process and thread. The figures are
byte for byte those matplotlib draws without it (tested).

A parse holds matplotlib's FreeType fonts, which cannot be used across ``fork()`` nor by two
threads at once: like matplotlib's own font cache, the cache is emptied in a forked child
and keyed by thread.

matplotlib offers no hook for this: :func:`install` wraps its private
``MathTextParser._parse_cached``, for the whole process, if that has the form this was
written against (matplotlib 3.11), and otherwise does nothing (labels are then parsed as
before); :func:`uninstall` puts it back.
"""

from __future__ import annotations

import inspect
import os
import threading
from collections.abc import Callable
from typing import Any

MAX_PARSES = 4096
"""Parses kept (each some kB: a label's glyphs, or its small bitmap)."""

_cache: dict[tuple, Any] = {}
_replaced: list[Callable] = []
"""matplotlib's own ``_parse_cached`` while the cache is installed."""


def install() -> bool:
    """Route matplotlib's mathtext parsing through the cache (once per process); return
    whether it is in place."""
    from matplotlib.mathtext import MathTextParser

    current = MathTextParser.__dict__.get("_parse_cached")
    if getattr(current, "stellarnet_cache", False):
        return True
    original = getattr(current, "__wrapped__", None)  # under matplotlib's lru_cache
    if not _as_expected(original):
        return False
    _replaced[:] = [current]
    MathTextParser._parse_cached = _cached(original)
    return True


def uninstall() -> None:
    """Give matplotlib its own parse back (no-op if the cache is not installed)."""
    from matplotlib.mathtext import MathTextParser

    if _replaced:
        MathTextParser._parse_cached = _replaced.pop()


def _forget() -> None:
    """Empty the cache (in a forked child: its fonts belong to the parent)."""
    _cache.clear()


if hasattr(os, "register_at_fork"):  # not on Windows, which does not fork
    os.register_at_fork(after_in_child=_forget)


def _as_expected(function: Callable | None) -> bool:
    """Whether matplotlib's parse has the form the cache was written against."""
    if function is None:
        return False
    expected = ["self", "s", "dpi", "prop", "antialiased", "load_glyph_flags"]
    return list(inspect.signature(function).parameters) == expected


def _cached(original: Callable) -> Callable:
    """matplotlib's ``_parse_cached`` (unwrapped) through the cache."""
    import matplotlib as mpl

    settings = sorted(key for key in mpl.rcParams if key.startswith("mathtext."))

    def _parse_cached(
        self: Any, s: str, dpi: float, prop: Any, antialiased: bool, load_glyph_flags: Any
    ) -> Any:
        # ``prop`` is the parser's own copy of the font, hashed by value; the parser's only
        # state is its output type ("vector" for PDF, "raster" for Agg); the parse also
        # reads the mathtext rcParams (fonts, default style, fallback).
        rc = tuple(str(mpl.rcParams[setting]) for setting in settings)
        key = (threading.get_ident(), self._output_type, s, dpi, prop, antialiased)
        key += (load_glyph_flags, rc)
        parsed = _cache.get(key)
        if parsed is None:
            parsed = _cache[key] = original(self, s, dpi, prop, antialiased, load_glyph_flags)
            if len(_cache) > MAX_PARSES:
                _cache.pop(next(iter(_cache)), None)
        return parsed

    _parse_cached.stellarnet_cache = True  # type: ignore[attr-defined]
    return _parse_cached

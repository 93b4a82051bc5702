"""A process-wide cache of the font subsets matplotlib embeds in each PDF.

Every PDF embeds the part of DejaVu Sans its text uses, cut by fontTools: about 0.1 s a
font, some 40% of the time a PDF takes to save, although most figures of a folder, and the
same figure of every run, use the same glyphs. The cache keeps each cut's bytes by (font
file, glyphs) and hands matplotlib the font read back from them (time stamps kept), so a
repeated cut costs a read. The PDFs are byte for byte those matplotlib writes without it
(tested).

matplotlib offers no hook for this: :func:`install` wraps its private
``matplotlib.backends._backend_pdf_ps.get_glyphs_subset`` if that has the form this was
written against (matplotlib 3.11), and otherwise does nothing (PDFs are then cut as before).
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterable
from typing import Any

MAX_SUBSETS = 256
"""Cuts kept (each some tens of kB)."""

_cache: dict[tuple[str, int, frozenset[int]], tuple[bytes, dict[int, int]]] = {}


def install() -> bool:
    """Route matplotlib's PDF font subsetting through the cache (once per process); return
    whether it is in place."""
    from matplotlib.backends import _backend_pdf_ps as pdf_ps

    current = getattr(pdf_ps, "get_glyphs_subset", None)
    if getattr(current, "stellarnet_cache", False):
        return True
    if not _as_expected(pdf_ps, current):
        return False
    pdf_ps.get_glyphs_subset = _cached(current, pdf_ps)
    return True


def _as_expected(pdf_ps: Any, function: Callable | None) -> bool:
    """Whether matplotlib's subsetting has the form the cache was written against."""
    results = getattr(pdf_ps, "SubsetResults", None)
    if function is None or results is None or not hasattr(pdf_ps, "font_as_file"):
        return False
    if not hasattr(results, "_as_cm") or getattr(results, "_fields", None) != (
        "font",
        "glyph_index_map",
    ):
        return False
    return list(inspect.signature(function).parameters) == ["fontfile", "glyphs"]


def _cached(original: Callable, pdf_ps: Any) -> Callable:
    from io import BytesIO

    from fontTools.ttLib import TTFont

    def get_glyphs_subset(fontfile: Any, glyphs: Iterable[int]) -> Any:
        glyphs = frozenset(glyphs)
        key = (str(fontfile), int(getattr(fontfile, "face_index", 0)), glyphs)
        if key not in _cache:
            with original(fontfile, glyphs) as subset:
                data = pdf_ps.font_as_file(subset.font).getvalue()
                _cache[key] = (data, dict(subset.glyph_index_map))
            if len(_cache) > MAX_SUBSETS:
                _cache.pop(next(iter(_cache)))
        data, index_map = _cache[key]
        font = TTFont(BytesIO(data), recalcTimestamp=False)
        return pdf_ps.SubsetResults(font, dict(index_map))._as_cm()

    get_glyphs_subset.stellarnet_cache = True  # type: ignore[attr-defined]
    return get_glyphs_subset

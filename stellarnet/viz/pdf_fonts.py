"""A process-wide cache of the font subsets matplotlib embeds in each PDF, cut quickly.

Every PDF embeds the part of DejaVu Sans its text uses, cut by fontTools, although most
figures of a folder, and the same figure of every run, use the same glyphs. The cache keeps
each cut's bytes by (font file, glyphs) and hands matplotlib the font marked with those
bytes, which it then embeds as they are: a repeated cut costs nothing. A new cut is told
first to keep only :data:`PDF_TABLES`: matplotlib's cut spent some 60% of its 40 ms on the
OpenType layout tables (GSUB, GPOS, GDEF, MATH), which PDF readers never use and which it
dropped in the end for our text, as empty. The PDFs are byte for byte those matplotlib
writes without the cache (tested); text whose glyphs a ligature rule reaches (``fi``) would
embed a font without the ligature's glyph, which the PDF never draws.

matplotlib offers no hook for this: :func:`install` replaces its private
``matplotlib.backends._backend_pdf_ps.get_glyphs_subset`` and wraps ``font_as_file`` if they
have the form this was written against (matplotlib 3.11), and otherwise does nothing (PDFs
are then cut as before).
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterable
from typing import Any

MAX_SUBSETS = 256
"""Cuts kept (each some kB)."""
PDF_TABLES = frozenset(
    {"head", "hhea", "hmtx", "loca", "maxp", "glyf", "cvt ", "fpgm", "prep", "cmap"}
    | {"name", "post", "OS/2", "GlyphOrder"}
)
"""The tables a cut keeps: those PDF readers use of an embedded TrueType font (PDF 1.7,
section 9.9), and ``name``, ``post`` and ``OS/2``, which keep it a complete font
(``GlyphOrder`` is fontTools' own)."""

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
    written = pdf_ps.font_as_file
    pdf_ps.get_glyphs_subset = _cached(written, pdf_ps)
    pdf_ps.font_as_file = _as_cut(written)
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
    if list(inspect.signature(pdf_ps.font_as_file).parameters) != ["font"]:
        return False
    return list(inspect.signature(function).parameters) == ["fontfile", "glyphs"]


def _cached(font_as_file: Callable, pdf_ps: Any) -> Callable:
    from io import BytesIO

    from fontTools.ttLib import TTFont

    def get_glyphs_subset(fontfile: Any, glyphs: Iterable[int]) -> Any:
        glyphs = frozenset(glyphs)
        key = (str(fontfile), int(getattr(fontfile, "face_index", 0)), glyphs)
        if key not in _cache:
            _cache[key] = cut(fontfile, glyphs, font_as_file)
            if len(_cache) > MAX_SUBSETS:
                _cache.pop(next(iter(_cache)))
        data, index_map = _cache[key]
        font = TTFont(BytesIO(data), recalcTimestamp=False)
        font.stellarnet_cut = data  # what writing it out gives (see _as_cut)
        return pdf_ps.SubsetResults(font, dict(index_map))._as_cm()

    get_glyphs_subset.stellarnet_cache = True  # type: ignore[attr-defined]
    return get_glyphs_subset


def cut(
    fontfile: Any, glyphs: Iterable[int], font_as_file: Callable
) -> tuple[bytes, dict[int, int]]:
    """The font file's glyphs ``glyphs`` (and those fontTools recommends keeping) as the bytes
    of a TrueType font of :data:`PDF_TABLES`, cut with matplotlib's options, and the map from
    the font's glyph indices to the cut's."""
    from fontTools import subset

    options = subset.Options(glyph_names=True, recommended_glyphs=True)
    options.font_number = int(getattr(fontfile, "face_index", 0))
    font = subset.load_font(fontfile, options)
    options.drop_tables = [tag for tag in font.keys() if tag not in PDF_TABLES]
    subsetter = subset.Subsetter(options=options)
    subsetter.populate(gids=glyphs)
    subsetter.subset(font)
    with font:
        return font_as_file(font).getvalue(), dict(subsetter.glyph_index_map)


def _as_cut(original: Callable) -> Callable:
    from io import BytesIO

    def font_as_file(font: Any) -> BytesIO:
        cut = getattr(font, "stellarnet_cut", None)
        return original(font) if cut is None else BytesIO(cut)

    return font_as_file

"""A process-wide cache of the font subsets matplotlib embeds in each PDF, cut to the tables a
PDF reader uses.

Every PDF embeds the part of DejaVu Sans its text uses, cut by fontTools, although most
figures of a folder, and the same figure of every run, use the same glyphs. The cache keeps
each cut's bytes by (font file, glyphs) and hands matplotlib the font marked with those
bytes, which it then embeds as they are: a repeated cut costs nothing.

A new cut keeps only :data:`PDF_TABLES`. matplotlib's own cut also keeps the OpenType layout
tables (GSUB, GPOS, GDEF, MATH) and ``gasp``, and the 10-20 glyphs that only their
substitution rules reach (ligatures, alternates): a PDF reader uses none of them, since
matplotlib places every glyph itself, and closing the glyph set over those rules was 60% of
a cut's 40 ms. So the PDFs are some 8% smaller than matplotlib's; apart from the embedded
font programs, every stream (pages, glyph maps, widths, ``ToUnicode``) is byte for byte
matplotlib's, and each embedded glyph's outline and advance are those of matplotlib's cut
(tested). matplotlib's PostScript backend cuts fonts with the same function; stellarnet
writes no PostScript.

matplotlib offers no hook for this: :func:`install` replaces its private
``matplotlib.backends._backend_pdf_ps.get_glyphs_subset`` and wraps ``font_as_file``, for
the whole process, if they have the form this was written against (matplotlib 3.11), and
otherwise does nothing (PDFs are then cut as before); :func:`uninstall` puts them back.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterable
from io import BytesIO
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
_replaced: dict[str, Callable] = {}
"""matplotlib's own functions while the cache is installed, by name."""


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
    _replaced.update(get_glyphs_subset=current, font_as_file=written)
    pdf_ps.get_glyphs_subset = _cached(written, pdf_ps)
    pdf_ps.font_as_file = _as_cut(written)
    return True


def uninstall() -> None:
    """Give matplotlib its own subsetting back (no-op if the cache is not installed)."""
    from matplotlib.backends import _backend_pdf_ps as pdf_ps

    for name, function in _replaced.items():
        setattr(pdf_ps, name, function)
    _replaced.clear()


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
    """matplotlib's ``get_glyphs_subset`` through the cache: the cut (:func:`_cut`, new or
    kept) as a fontTools font marked with its bytes."""
    from fontTools.ttLib import TTFont

    def get_glyphs_subset(fontfile: Any, glyphs: Iterable[int]) -> Any:
        glyphs = frozenset(glyphs)
        key = (str(fontfile), int(getattr(fontfile, "face_index", 0)), glyphs)
        kept = _cache.get(key)
        if kept is None:
            kept = _cache[key] = _cut(fontfile, glyphs, font_as_file)
            if len(_cache) > MAX_SUBSETS:
                _cache.pop(next(iter(_cache)), None)
        data, index_map = kept
        font = TTFont(BytesIO(data), recalcTimestamp=False)
        font.stellarnet_cut = data  # what writing it out gives (see _as_cut)
        return pdf_ps.SubsetResults(font, dict(index_map))._as_cm()

    get_glyphs_subset.stellarnet_cache = True  # type: ignore[attr-defined]
    return get_glyphs_subset


def _cut(
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
    """matplotlib's ``font_as_file``, which for a cached cut gives its bytes as they are."""

    def font_as_file(font: Any) -> BytesIO:
        data = getattr(font, "stellarnet_cut", None)
        return original(font) if data is None else BytesIO(data)

    return font_as_file

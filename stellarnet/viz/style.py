"""The house style of every stellarnet figure, and deterministic saving to PNG and PDF.

Figures are built on :class:`matplotlib.figure.Figure` directly (no pyplot, no global
figure state, no GUI backend), inside :func:`style` so that fonts and sizes are fixed, and
saved with :func:`save_figure`, which strips the time stamps and version strings that would
make two renderings of the same data differ byte for byte.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from stellarnet.files import atomic_write

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.colorbar import Colorbar
    from matplotlib.figure import Figure

    from stellarnet.results.saved import SavedResults

STYLE: dict[str, Any] = {
    "figure.figsize": (5.0, 3.6),
    "figure.dpi": 100,
    "savefig.dpi": 150,
    "font.family": "DejaVu Sans",
    "font.size": 9,
    "axes.titlesize": 10,
    "axes.labelsize": 9,
    "legend.fontsize": 8,
    "xtick.labelsize": 8,
    "ytick.labelsize": 8,
    "mathtext.fontset": "dejavusans",
    "axes.grid": True,
    "grid.alpha": 0.3,
    "pdf.fonttype": 42,
    "image.cmap": "viridis",
    "figure.autolayout": False,  # figures choose their layout (new_figure: constrained) ...
    "figure.constrained_layout.use": False,  # ... and save_figure drops it for the PDF
}
"""rcParams of every figure: bundled DejaVu fonts (same glyphs on every machine), sizes
readable when a 5 inch wide figure is printed at column width, TrueType fonts in PDFs."""

WIDE = (7.2, 4.4)
"""Figure size of small multiples and two-panel figures (full page width)."""

LR_COLORS = ("#000000", "#7b3294", "#1b7837", "#e66101", "#2166ac", "#b2182b", "#8c510a")
"""Line colour of each learning rate, in sweep order, the same in every figure; dark so that
it stands out over the catalog's colour-coded points."""

MAX_LEGEND_RATES = 6
"""Sweeps of up to this many rates get distinct colours and a legend; more get a colour bar."""
MAX_TITLE_RATES = 4
"""Titles list up to this many rates; more are summarised as a range."""
RATE_CMAP = "plasma"
RATE_CMAP_RANGE = (0.0, 0.85)
"""The sequential colormap of many rates, without its palest end (lost on a white page)."""
LOG_SPAN = 100.0
"""A loss that spans more than this factor is drawn on a log axis (two decades)."""
SIGNIFICANT = 4
"""Significant figures of numbers in text (titles, captions, legends, messages)."""

LOSS_LABELS = {"mse": "mean squared error", "half_mse": "half mean squared error"}

PNG_METADATA = {"Software": None}
PDF_METADATA = {"Creator": None, "Producer": None, "CreationDate": None}
"""Metadata matplotlib would otherwise stamp into each file (version, date)."""

# Subsetting a font for a PDF, fontTools reads font files whose 'head' table has zero time
# stamps and warns about each ("'created' timestamp seems very low"): harmless, and noise.
logging.getLogger("fontTools.ttLib.tables._h_e_a_d").setLevel(logging.ERROR)


def lr_color(position: int) -> str:
    """Colour of the ``position``-th learning rate of a sweep of at most
    :data:`MAX_LEGEND_RATES` rates (0-based); :func:`rate_colors` covers any sweep."""
    return LR_COLORS[position % len(LR_COLORS)]


def uses_colorbar(rates: Sequence[float]) -> bool:
    """Whether a sweep's rates are told apart by a colour bar (more than
    :data:`MAX_LEGEND_RATES`) rather than by a legend of distinct colours."""
    return len(rates) > MAX_LEGEND_RATES


def _rate_scale(rates: Sequence[float]) -> tuple[Any, Any]:
    """The colormap and log norm of :func:`rate_colors` beyond :data:`MAX_LEGEND_RATES`."""
    from matplotlib import colormaps
    from matplotlib.colors import ListedColormap, LogNorm

    low, high = min(rates), max(rates)
    cmap = ListedColormap(colormaps[RATE_CMAP](np.linspace(*RATE_CMAP_RANGE, 256)))
    return cmap, LogNorm(low, high if high > low else low * 10)


def rate_colors(rates: Sequence[float]) -> dict[float, Any]:
    """The colour of each learning rate, the same in every figure of a sweep.

    Up to :data:`MAX_LEGEND_RATES` rates get the distinct dark colours of :data:`LR_COLORS`
    in sweep order (named in legends); more get a sequential colormap ordered by log10 of
    the rate, read off a colour bar (:func:`rate_colorbar`): 32 legend entries could not be
    told apart, a gradient from small to large rates can.
    """
    if not uses_colorbar(rates):
        return {lr: lr_color(position) for position, lr in enumerate(rates)}
    cmap, norm = _rate_scale(rates)
    return {lr: cmap(norm(lr)) for lr in rates}


def rate_colorbar(
    fig: Figure, ax: Axes | Sequence[Axes], rates: Sequence[float], **kwargs: Any
) -> Colorbar:
    """A colour bar of the learning rates (log scale) beside ``ax``, for figures whose rates
    are coloured by :func:`rate_colors` beyond :data:`MAX_LEGEND_RATES`."""
    from matplotlib.cm import ScalarMappable

    cmap, norm = _rate_scale(rates)
    bar = fig.colorbar(ScalarMappable(norm=norm, cmap=cmap), ax=ax, **kwargs)
    bar.set_label(f"learning rate ({len(rates)} rates)")
    return bar


def rates_text(rates: Sequence[float]) -> str:
    """``"LR=0.1, 0.3"`` for a few rates, ``"8 rates, LR=0.001 to 3"`` for many (a title
    listing 32 rates runs off the figure)."""
    if len(rates) <= MAX_TITLE_RATES:
        return "LR=" + ", ".join(f"{lr:g}" for lr in rates)
    return f"{len(rates)} rates, LR={min(rates):g} to {max(rates):g}"


def rates_list(rates: Sequence[float], of: int) -> str:
    """``"LR=0.1, LR=0.3"`` for a few of a figure's ``of`` rates, ``"14 of 32 rates (LR=0.001
    to 0.0287)"`` for many: a caption naming 14 rates is unreadable."""
    if len(rates) <= MAX_TITLE_RATES:
        return ", ".join(f"LR={lr:g}" for lr in rates)
    return f"{len(rates)} of {of} rates (LR={min(rates):g} to {max(rates):g})"


def wants_log(values: np.ndarray | Sequence[float]) -> bool:
    """Whether losses belong on a log axis: their finite positive values span more than
    :data:`LOG_SPAN` (a linear axis would show only the largest of them)."""
    values = np.asarray(values, dtype=float)
    values = values[np.isfinite(values) & (values > 0)]
    return bool(values.size) and float(values.max()) > LOG_SPAN * float(values.min())


def number(value: float) -> str:
    """A number in running text: :data:`SIGNIFICANT` significant figures (``13.82``,
    ``0.000286``); tables keep full precision."""
    return f"{value:.{SIGNIFICANT}g}"


@contextlib.contextmanager
def style() -> Iterator[None]:
    """Context in which figures are drawn and saved with :data:`STYLE`."""
    import matplotlib

    with matplotlib.rc_context(STYLE):
        yield


def new_figure(figsize: tuple[float, float] | None = None) -> Figure:
    """A stand-alone figure (not registered with pyplot, so nothing to close)."""
    from matplotlib.figure import Figure

    return Figure(figsize=figsize, layout="constrained")


def install_caches() -> None:
    """Keep matplotlib's font cuts and parsed mathtext for the whole process
    (:mod:`~stellarnet.viz.pdf_fonts`, :mod:`~stellarnet.viz.mathtext_cache`): the same
    drawings, faster. This patches matplotlib for the whole process (also for figures of
    your own in the same session), and :func:`save_figure` calls it; each module's
    ``uninstall()`` undoes it. Forked processes inherit it."""
    from stellarnet.viz import mathtext_cache, pdf_fonts

    pdf_fonts.install()
    mathtext_cache.install()


def save_figure(fig: Figure, folder: str | Path, stem: str) -> Path:
    """Write ``<folder>/<stem>.png`` and ``<stem>.pdf`` atomically; return the PNG path."""
    folder = Path(folder)
    install_caches()
    with style():
        png = atomic_write(
            folder / f"{stem}.png",
            lambda tmp: fig.savefig(tmp, format="png", metadata=PNG_METADATA),
        )
        # Keep the PNG's layout. No engine at all: with "none"'s placeholder, matplotlib
        # would still draw the figure once before drawing the PDF (same bytes, twice the time).
        fig.set_layout_engine(None)
        atomic_write(
            folder / f"{stem}.pdf",
            lambda tmp: fig.savefig(tmp, format="pdf", metadata=PDF_METADATA),
        )
    return png


def write_figure(draw: Callable[[], Figure], folder: str | Path, stem: str) -> Path:
    """Draw a figure with ``draw()`` inside :func:`style` (the rcParams apply when artists are
    made, not only when saved) and write it with :func:`save_figure`; return the PNG path."""
    with style():
        return save_figure(draw(), folder, stem)


def integer_epochs(ax: Axes) -> None:
    """Whole-number ticks on an epoch (or step) axis: short runs would get 2.5, 7.5."""
    from matplotlib.ticker import MaxNLocator

    ax.xaxis.set_major_locator(MaxNLocator(integer=True))


def math_name(name: str) -> str:
    """A history column as mathtext/LaTeX: ``w^1_3`` -> ``$w^{1}_{3}$``, ``gb^1_3`` ->
    ``${g_b}^{1}_{3}$``; other names unchanged."""
    from stellarnet.schema import parse_column

    parsed = parse_column(name)
    if parsed is None:
        return name
    kind, layer, index = parsed
    symbol = "{g_b}" if kind == "gb" else kind
    return f"${symbol}^{{{layer}}}_{{{index}}}$"


def loss_unit(target_transforms: tuple[str, ...] = (), target_unit: str | None = None) -> str:
    """The unit of a squared-error loss: dex^2 when the target is a log10 value, the target's
    unit squared when it is untransformed, '' when it is scaled (no unit left)."""
    if tuple(target_transforms[-1:]) == ("log10",):
        return "dex$^2$"
    return unit_label(target_unit, power=2) if target_unit and not target_transforms else ""


def loss_label(
    loss_name: str,
    target_transforms: tuple[str, ...] = (),
    target_unit: str | None = None,
) -> str:
    """``"Loss (mean squared error) [dex$^2$]"``, with the unit of :func:`loss_unit`."""
    label = f"Loss ({LOSS_LABELS.get(loss_name, loss_name)})"
    unit = loss_unit(target_transforms, target_unit)
    return f"{label} [{unit}]" if unit else label


def results_loss_label(results: SavedResults) -> str:
    """:func:`loss_label` of a run's loss and target."""
    target = results.target
    return loss_label(results.loss_name, target.transforms, results.unit(target.column))


def unit_label(unit: str | None, power: int = 1) -> str:
    """``"solLum"`` -> ``"$\\mathrm{L_{\\odot}}$"`` (astropy's LaTeX form), raised to ``power``;
    '' if no unit. Angles astropy writes as primes keep their name (``arcsec``): a lone ″ in
    brackets after a column name reads as a quotation mark."""
    if not unit:
        return ""
    try:
        from astropy import units

        value = units.Unit(unit) ** power
    except ValueError:
        return unit if power == 1 else f"({unit})$^{{{power}}}$"
    text = value.to_string("latex_inline")
    return f"$\\mathrm{{{value.to_string()}}}$" if "prime" in text else text


def axis_label(column: str, unit: str | None = None, log: bool = False) -> str:
    """Axis label of a catalog column: ``log$_{10}$ Lum [L_sun]`` or ``BP-RP [mag]``."""
    text = f"log$_{{10}}$ {column}" if log else column
    unit_text = unit_label(unit)
    return f"{text} [{unit_text}]" if unit_text else text

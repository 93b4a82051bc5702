"""The explorer's loss-vs-epoch panel, and the rule that keeps its axis readable.

The rule is the static figures' (:func:`stellarnet.viz.divergence.fit_loss_axis`): the log
axis and, when some rate diverged or exploded, the y range come from the *calm* rates
(:func:`stellarnet.viz.divergence.calm_rates`), so that one loss racing towards infinity, or
spiking 57x, does not flatten the others. A wild rate is drawn up to its last finite row; the
part above the range is cut at the top edge, and the panel names it. Beyond six rates the
rates are told apart by a colour bar ordered by the rate (as the static figures), not by a
legend of 32 entries. With early stopping the validation loss is drawn too, and the epoch
whose weights the model kept is marked.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from bokeh.models import ColorBar, ColumnDataSource, LogColorMapper, Range1d, Span, Title

from stellarnet.results.saved import SavedResults
from stellarnet.viz.divergence import calm_rates, padded_range, wild_text
from stellarnet.viz.explorer_frames import RateTrack
from stellarnet.viz.style import (
    RATE_CMAP,
    RATE_CMAP_RANGE,
    number,
    rates_list,
    uses_colorbar,
    wants_log,
)

KEPT_COLOR = "#1b7837"
"""The early-stopping mark: the epoch whose weights the model kept."""


@dataclass
class LossAxis:
    """How the loss panel is scaled and what it says about the rates it clips.

    Attributes
    ----------
    log : bool
        A log axis: the calm rates' losses span more than two decades.
    y_range : (float, float) or None
        The calm rates' range (padded as matplotlib pads), when other rates diverged or
        exploded; None: Bokeh fits every line.
    wild : dict of str to str
        Per wild rate key, what happened (``"LR=3 spiked to 790.9 (57.2x its start) at
        epoch 2"``); when ``y_range`` is set, its first epoch off the top (``off scale from
        epoch 2``) is added.
    off_scale : dict of str to int
        Per rate key whose loss rises above ``y_range``, the first such epoch.
    colorbar : bool
        More than six rates: a colour bar of the rates instead of a legend.
    rates : list of float
        Every rate, for the colour bar.
    kept : str
        Early stopping: ``"epoch 4's weights kept (best val_loss 0.1985), stopped after
        epoch 6"``, else empty.
    kept_epoch : int or None
    """

    log: bool
    y_range: tuple[float, float] | None
    wild: dict[str, str] = field(default_factory=dict)
    off_scale: dict[str, int] = field(default_factory=dict)
    colorbar: bool = False
    rates: list[float] = field(default_factory=list)
    kept: str = ""
    kept_epoch: int | None = None


def _drawable(values: np.ndarray, log: bool) -> np.ndarray:
    """The losses a loss axis can show: finite, and positive on a log axis."""
    return np.isfinite(values) & ((values > 0) if log else True)


def loss_axis(results: SavedResults, tracks: list[RateTrack]) -> LossAxis:
    """The loss panel's scale, range and notes (see the module docstring). The lines drawn
    include epoch 0, so the calm rates' whole lines set the range."""
    calm = calm_rates(results)
    pool = [t for t in tracks if t.lr in calm] or tracks
    values = np.concatenate([t.loss_values for t in pool])
    values = values[np.isfinite(values)]
    log = wants_log(values)
    if log:
        values = values[values > 0]
    clipped = bool(calm) and len(calm) < len(tracks) and bool(values.size)
    y_range = padded_range(float(values.min()), float(values.max()), log) if clipped else None
    wild, off_scale = {}, {}
    for track in tracks:
        if track.lr in calm:
            continue
        text = wild_text(results, track.lr)
        above = track.loss_epochs[track.loss_values > y_range[1]] if y_range else []
        if len(above):
            text += f", off scale from epoch {above[0]}"
            off_scale[track.key] = int(above[0])
        wild[track.key] = text
    stopping = results.record.get("early_stopping") or {}
    best = stopping.get("best_epoch") if not results.is_sweep else None
    kept = ""
    if best is not None:
        kept = (
            f"epoch {best}'s weights kept (best {stopping.get('monitor', 'val_loss')} "
            f"{number(float(stopping['best_val_loss']))}), stopped after epoch "
            f"{stopping.get('stopped_epoch')}"
        )
    return LossAxis(
        log=log,
        y_range=y_range,
        wild=wild,
        off_scale=off_scale,
        colorbar=uses_colorbar(results.learning_rates),
        rates=list(results.learning_rates),
        kept=kept,
        kept_epoch=None if best is None else int(best),
    )


def rate_palette(count: int = 256) -> list[str]:
    """The static figures' colours of many rates (:data:`RATE_CMAP` without its palest end),
    as ``#rrggbb``, low rates first."""
    from matplotlib import colormaps
    from matplotlib.colors import to_hex

    cmap = colormaps[RATE_CMAP]
    return [to_hex(cmap(v)) for v in np.linspace(*RATE_CMAP_RANGE, count)]


def wild_summary(axis: LossAxis) -> str:
    """The clipped panel's corner note: ``off scale: LR=3`` (many: ``off scale: 5 of 32
    rates (LR=1 to 3)``)."""
    if not axis.y_range or not axis.wild:
        return ""
    keys = [float(k) for k in axis.wild]
    return "y axis fitted to the calm rates; off scale: " + rates_list(keys, len(axis.rates))


def loss_panel(content, renderers: list[list], panel_figure):
    """Loss vs epoch, one line per rate (and its validation loss, dashed), the slider's epoch
    as a vertical cursor; returns the figure, the cursor, each rate's dot and whether the
    axis is logarithmic."""
    axis: LossAxis = content.loss_axis
    fig = panel_figure(
        "Loss vs epoch (row k: loss before epoch k's update)" + (", log axis" if axis.log else ""),
        y_axis_type="log" if axis.log else "linear",
        **({"y_range": Range1d(*axis.y_range)} if axis.y_range else {}),
    )
    fig.name = "loss-panel"
    fig.xaxis.axis_label, fig.yaxis.axis_label = "epoch", content.loss_label
    cursor = Span(location=0, dimension="height", line_color="#555555", line_dash="dashed")
    fig.add_layout(cursor)
    if axis.kept_epoch is not None:
        fig.add_layout(
            Span(location=axis.kept_epoch, dimension="height", line_color=KEPT_COLOR, line_width=2)
        )
        fig.add_layout(_note(f"green: {axis.kept}", KEPT_COLOR), "below")
    marks = []
    for track, own in zip(content.tracks, renderers, strict=True):
        keep = _drawable(track.loss_values, axis.log)
        short = track.label + (", off scale" if track.key in axis.off_scale else "")
        short += f", {track.status}" if track.status else ""
        legend = {} if axis.colorbar else {"legend_label": short}
        own.append(
            fig.line(
                track.loss_epochs[keep],
                track.loss_values[keep],
                color=track.color,
                line_width=2,
                **legend,
            )
        )
        if track.val_values is not None:
            val = _drawable(track.val_values, axis.log)
            own.append(
                fig.line(
                    track.loss_epochs[val],
                    track.val_values[val],
                    color=track.color,
                    line_width=2,
                    line_dash="dashed",
                    **({} if axis.colorbar else {"legend_label": f"{track.label}, val_loss"}),
                )
            )
        if track.diverged_at is not None:  # where its loss stopped being finite
            own.append(
                Span(
                    location=track.diverged_at,
                    dimension="height",
                    line_color=track.color,
                    line_dash="dotted",
                    line_width=2,
                )
            )
            fig.add_layout(own[-1])
        mark = ColumnDataSource({"x": [], "y": []})
        own.append(
            fig.scatter(
                "x", "y", source=mark, size=10, color=track.color, line_color="white", **legend
            )
        )
        marks.append(mark)
    summary = wild_summary(axis)
    if summary:
        fig.add_layout(_note(summary, "#b2182b"), "below")
    if axis.colorbar:
        mapper = LogColorMapper(
            palette=rate_palette(), low=min(axis.rates), high=max(axis.rates) * (1 + 1e-9)
        )
        bar = ColorBar(
            color_mapper=mapper, width=8, title=f"learning rate ({len(axis.rates)} rates)"
        )
        fig.add_layout(bar, "right")
    else:
        fig.legend.click_policy = "hide"
        fig.legend.location = "bottom_left"  # falling losses leave it empty
        fig.legend.background_fill_alpha = 0.7
        fig.legend.label_text_font_size = "9pt"
    return fig, cursor, marks, axis.log


def _note(text: str, colour: str) -> Title:
    """A line of small text under the panel (notes that must not cover a curve)."""
    return Title(text=text, text_color=colour, text_font_size="8pt", text_font_style="normal")

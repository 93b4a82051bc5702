"""The explorer's five panels as Bokeh figures, and the data sources the page's JavaScript
(:file:`explorer.js`) rewrites at each epoch: the network diagram, the data panel, loss vs
epoch, the gradient size per layer and the loss landscape. Each rate's renderers are
collected per rate, so that hiding a rate in a legend hides it in every panel.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from bokeh.models import (
    ColorBar,
    ColumnDataSource,
    HoverTool,
    Label,
    LogColorMapper,
    Range1d,
    Title,
)
from bokeh.palettes import RdBu11, RdYlBu11, Viridis256, interp_palette
from bokeh.plotting import figure
from bokeh.transform import dodge, linear_cmap

from stellarnet.viz.explorer_frames import Frames, RateTrack, gradient_blocks
from stellarnet.viz.explorer_loss import LossAxis
from stellarnet.viz.explorer_predictions import DataPanel
from stellarnet.viz.landscape import Landscape

PANEL = {"width": 450, "height": 340}
"""Size of each panel in pixels: three across fit a 1400-pixel-wide window."""
TOOLS = "pan,wheel_zoom,box_zoom,reset,save"
PALETTE = list(interp_palette(RdBu11, 101))
"""Weights and biases: blue < 0, white near 0, red > 0 (as in ``network.png``)."""
MAX_DATA_LEGEND = 3
"""The data panel names up to this many rates in its legend (the loss panel names all)."""


@dataclass
class ExplorerContent:
    """Everything the page shows, computed from the saved results."""

    title: str
    layer_sizes: tuple[int, ...]
    input_names: list[str]
    output_names: list[str]
    parameters: list[str]
    gradient_names: list[str]
    frames: Frames
    tracks: list[RateTrack]
    panel: DataPanel
    landscape: Landscape | None
    positions: dict[float, np.ndarray]
    loss_label: str
    loss_axis: LossAxis


def panel_figure(title: str, **kwargs: Any):
    fig = figure(title=title, tools=TOOLS, **PANEL, **kwargs)
    fig.toolbar.autohide = True
    fig.toolbar.logo = None
    return fig


def data_figure(content: ExplorerContent, renderers: list[list]):
    """The catalog with each rate's prediction at the slider's epoch."""
    panel = content.panel
    x_span, y_span = padded_range(panel.points_x), padded_range(panel.points_y)
    fig = panel_figure(
        panel.title,
        x_range=Range1d(*(x_span[::-1] if panel.x_reversed else x_span)),
        y_range=Range1d(*y_span),
    )
    fig.name = "data-panel"
    fig.xaxis.axis_label, fig.yaxis.axis_label = panel.x_label, panel.y_label
    if panel.kind == "curve":
        points = {"x": panel.points_x, "y": panel.points_y}
        style: dict[str, Any] = {"color": "#888888", "alpha": 0.45}
        if panel.points_color is not None:
            points["c"] = panel.points_color
            low, high = np.nanpercentile(panel.points_color, [1, 99])
            style = {"color": linear_cmap("c", list(RdYlBu11), low, high), "alpha": 0.6}
        dots = fig.scatter(
            "x",
            "y",
            source=ColumnDataSource(points),
            size=3,
            line_color=None,
            legend_label="catalog",
            **style,
        )
        if panel.points_color is not None:
            bar = ColorBar(
                color_mapper=dots.glyph.fill_color["transform"], width=8, title=panel.color_label
            )
            fig.add_layout(bar, "right")
    else:
        low, high = float(np.nanmin(panel.inputs)), float(np.nanmax(panel.inputs))
        fig.line([low, high], [low, high], color="#888888", line_dash="dashed", legend_label="1:1")
    curves = []
    named = len(content.tracks) <= MAX_DATA_LEGEND  # more would hide the data: see the loss
    for track, own in zip(content.tracks, renderers, strict=True):
        source = ColumnDataSource({"x": [], "y": []}, name=f"prediction-{track.key}")
        legend = {"legend_label": f"network, {track.label}"} if named else {}
        if panel.kind == "curve":
            own.append(
                fig.line(
                    "x",
                    "y",
                    source=source,
                    color=track.color,
                    line_width=3,
                    **legend,
                )
            )
        else:
            own.append(
                fig.scatter(
                    "x",
                    "y",
                    source=source,
                    color=track.color,
                    size=4,
                    alpha=0.6,
                    **legend,
                )
            )
        curves.append(source)
    fig.legend.click_policy = "hide"
    # the HR diagram's top left and predicted-vs-true's top left hold no data
    fig.legend.location = (
        "top_left" if panel.x_reversed or panel.kind == "scatter" else "bottom_right"
    )
    fig.legend.background_fill_alpha = 0.7
    off_note = Label(
        x=8,
        y=8,
        x_units="screen",
        y_units="screen",
        text="",
        text_color="#b2182b",
        text_font_size="9pt",
        background_fill_color="white",
        background_fill_alpha=0.8,
    )
    fig.add_layout(off_note)
    return fig, curves, off_note


def padded_range(values: np.ndarray, pad: float = 0.15) -> tuple[float, float]:
    """The range of ``values`` widened by ``pad`` of its span on each side: the data panel's
    axes stay on the data, so an early network far off it does not squash the catalog."""
    low, high = float(np.nanmin(values)), float(np.nanmax(values))
    span = max(high - low, 1e-9)
    return low - pad * span, high + pad * span


def gradient_panel(content: ExplorerContent, renderers: list[list]):
    """Each layer's gradient norm at the slider's epoch: a bar per rate."""
    names = [name for _, _, name in gradient_blocks(content.layer_sizes)]
    norms = np.concatenate([t.gradient_norms.ravel() for t in content.tracks])
    positive = norms[np.isfinite(norms) & (norms > 0)]
    log = positive.size > 0
    bottom = float(positive.min()) / 3 if log else 0.0
    fig = panel_figure(
        "Gradient size per layer",
        x_range=names,
        y_axis_type="log" if log else "linear",
        y_range=(bottom, float(positive.max()) * 3) if log else None,
    )
    fig.yaxis.axis_label = "‖gradient‖ (Euclidean norm; log axis)" if log else "‖gradient‖"
    fig.xgrid.visible = False
    if len(names) > 4:  # "layer 2 weights" side by side would overlap
        fig.xaxis.major_label_orientation = 0.6
    count = len(content.tracks)
    width = 0.8 / count
    bars = []
    for i, (track, own) in enumerate(zip(content.tracks, renderers, strict=True)):
        source = ColumnDataSource({"x": [], "top": [], "value": []})
        offset = -0.4 + width * (i + 0.5)
        own.append(
            fig.vbar(
                x=dodge("x", offset, range=fig.x_range),
                top="top",
                bottom=bottom,
                width=width * 0.9,
                source=source,
                color=track.color,
            )
        )
        bars.append(source)
    fig.add_tools(HoverTool(tooltips=[("", "@x"), ("norm", "@value")]))
    return fig, bars, log


def landscape_panel(content: ExplorerContent, renderers: list[list]):
    """The loss on the PCA plane of the training paths, each rate's path and where it is."""
    land = content.landscape
    fig = panel_figure("Loss landscape: square start, star end, dot now")
    marks: list[ColumnDataSource | None] = []
    if land is None:
        fig.title.text = "Loss landscape: no finite parameters to draw"
        return fig, [None] * len(content.tracks)
    losses = land.losses
    finite = losses[np.isfinite(losses) & (losses > 0)]
    low = float(finite.min()) if finite.size else 1e-12
    high = float(finite.max()) if finite.size else 1.0
    shown = np.clip(np.nan_to_num(losses, nan=high, posinf=high), low, high)
    mapper = LogColorMapper(palette=list(reversed(Viridis256)), low=low, high=max(high, low * 10))
    x0, x1 = float(land.alphas[0]), float(land.alphas[-1])
    y0, y1 = float(land.betas[0]), float(land.betas[-1])
    fig.image(image=[shown], x=x0, y=y0, dw=x1 - x0, dh=y1 - y0, color_mapper=mapper)
    # the grid's extent, as landscape.png: an exploded rate's path is cut at its edge
    fig.x_range, fig.y_range = Range1d(x0, x1), Range1d(y0, y1)
    fig.add_layout(ColorBar(color_mapper=mapper, width=8, title=content.loss_label), "right")
    fig.xaxis.axis_label = f"PC1 ({100 * land.explained[0]:.1f}% of path variance)"
    fig.yaxis.axis_label = f"PC2 ({100 * land.explained[1]:.1f}% of path variance)"
    for track, own in zip(content.tracks, renderers, strict=True):
        path = land.paths.get(track.lr)
        if path is None:
            marks.append(None)
            continue
        dash = "dashed" if track.lr in land.excluded else "solid"  # kept out of the fit
        own.append(fig.line(path[:, 0], path[:, 1], color="white", line_width=4, alpha=0.7))
        own.append(
            fig.line(path[:, 0], path[:, 1], color=track.color, line_width=2, line_dash=dash)
        )
        own.append(
            fig.scatter(
                [path[-1, 0]],
                [path[-1, 1]],
                marker="star",
                size=16,
                color=track.color,
                line_color="white",
            )
        )
        mark = ColumnDataSource({"x": [], "y": []})
        own.append(
            fig.scatter(
                "x", "y", source=mark, size=13, color=track.color, line_color="white", line_width=2
            )
        )
        marks.append(mark)
    starts = np.unique(np.array([path[0] for path in land.paths.values()]), axis=0)
    fig.scatter(
        starts[:, 0], starts[:, 1], marker="square", size=11, color="white", line_color="black"
    )
    if land.excluded:
        names = ", ".join(f"LR={lr:g}" for lr in land.excluded)
        fig.add_layout(
            Title(
                text=f"dashed, left out of the plane's fit (exploded): {names}",
                text_font_size="8pt",
                text_font_style="normal",
                text_color="#b2182b",
            ),
            "below",
        )
    return fig, marks

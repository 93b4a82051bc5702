"""The explorer's Bokeh document: five panels, the epoch slider, play/pause and the pickers,
wired to :file:`explorer.js` (one ``DocumentReady`` callback that draws every panel for the
slider's epoch and installs ``window.stellarnetExplorer``).

Only Bokeh's core and widget bundles are used (no TeX labels, which would pull in MathJax,
no tables, no WebGL), so the page carries about 1.7 MB of JavaScript.
"""

from __future__ import annotations

from importlib import resources
from typing import Any

import numpy as np
from bokeh.document import Document
from bokeh.events import DocumentReady
from bokeh.layouts import column, row
from bokeh.models import Button, ColumnDataSource, CustomJS, Select, Slider

from stellarnet.viz.explorer_frames import RateTrack, gradient_blocks, hidden_units
from stellarnet.viz.explorer_loss import loss_panel
from stellarnet.viz.explorer_network import network_panel, network_sources
from stellarnet.viz.explorer_panels import (
    PALETTE,
    ExplorerContent,
    data_figure,
    gradient_panel,
    landscape_panel,
    padded_range,
    panel_figure,
)
from stellarnet.viz.explorer_predictions import DataPanel


def _track_data(track: RateTrack, panel: DataPanel, positions: dict) -> dict[str, Any]:
    position = positions.get(track.lr)
    return {
        "key": track.key,
        "label": track.label,
        "color": track.color,
        "scale": track.scale,
        "status": track.status,
        "columns": {
            name: np.ascontiguousarray(v, dtype=float) for name, v in track.columns.items()
        },
        "present": track.present.astype(np.uint8),
        "inactive": track.inactive.astype(np.uint8).ravel(),
        "gradients": np.ascontiguousarray(track.gradient_norms.ravel()),
        "prediction": np.ascontiguousarray(panel.predictions[track.key].ravel()),
        "position": None if position is None else np.ascontiguousarray(position.ravel()),
    }


def build_document(content: ExplorerContent, frame_ms: int) -> Document:
    """The page's Bokeh document (see the module docstring)."""
    tracks = content.tracks
    renderers: list[list] = [[] for _ in tracks]
    frames = content.frames
    last = len(frames.epochs) - 1
    slider = Slider(
        start=0, end=max(last, 1), value=last, step=1, show_value=False, title="Epoch", width=620
    )
    play = Button(label="▶ Play", width=100, button_type="primary")
    names = content.parameters
    param = Select(
        title="Parameter in the readout (or click an edge or a node)",
        value=names[0],
        options=names,
        width=300,
    )
    net = Select(
        title="Network of",
        value=tracks[0].label,
        options=[t.label for t in tracks],
        width=150,
        visible=len(tracks) > 1,
    )
    edges, nodes = network_sources(content)
    highlight = ColumnDataSource({"x0": [], "y0": [], "x1": [], "y1": []})
    ring = ColumnDataSource({"x": [], "y": []})
    net_fig, weight_colors = network_panel(content, edges, nodes, highlight, ring)
    loss_fig, cursor, loss_marks, loss_log = loss_panel(content, renderers, panel_figure)
    data_fig, curves, off_note = data_figure(content, renderers)
    grad_fig, bars, grad_log = gradient_panel(content, renderers)
    land_fig, land_marks = landscape_panel(content, renderers)
    data = {
        "epochs": [int(e) for e in frames.epochs],
        "thinned": frames.stride > 1,
        "frameMs": frame_ms,
        "units": [list(u) for u in hidden_units(content.layer_sizes)],
        "blocks": [name for _, _, name in gradient_blocks(content.layer_sizes)],
        "parameters": names,
        "gradientNames": content.gradient_names,
        "palette": PALETTE,
        "inputs": np.ascontiguousarray(content.panel.inputs, dtype=float),
        "swap": content.panel.swap,
        "dataTitle": content.panel.title,
        "dataRange": [padded_range(content.panel.points_x), padded_range(content.panel.points_y)],
        "lossLog": bool(loss_log),
        "gradLog": bool(grad_log),
        "rates": [_track_data(t, content.panel, content.positions) for t in tracks],
    }
    code = resources.files("stellarnet.viz").joinpath("explorer.js").read_text(encoding="utf-8")
    args = dict(
        data=data,
        slider=slider,
        play=play,
        paramSelect=param,
        netSelect=net,
        edges=edges,
        nodes=nodes,
        highlight=highlight,
        ring=ring,
        cursor=cursor,
        lossMarks=loss_marks,
        curves=curves,
        bars=bars,
        landMarks=land_marks,
        renderers=renderers,
        netFig=net_fig,
        weightColors=weight_colors,
        offNote=off_note,
        dataFig=data_fig,
        gradFig=grad_fig,
    )
    refresh = CustomJS(code="if (window.stellarnetExplorer) window.stellarnetExplorer.refresh()")
    for widget in (slider, param, net):
        widget.js_on_change("value", refresh)
    play.js_on_event("button_click", CustomJS(code="window.stellarnetExplorer.toggle()"))
    for source in (edges, nodes):
        source.selected.js_on_change(
            "indices",
            CustomJS(
                args={"param": param, "source": source, "names": names},
                code="const n = source.data.name[cb_obj.indices[0]];"
                " if (n !== undefined && names.includes(n)) param.value = n;",
            ),
        )
    for own in renderers:  # hiding a rate in a legend hides it in every panel
        sync = CustomJS(args={"others": own}, code=SYNC_JS)
        for renderer in own:
            renderer.js_on_change("visible", sync)
    controls = row(play, slider, param, net)
    grid = column(row(net_fig, data_fig, loss_fig), row(grad_fig, land_fig))
    doc = Document()
    doc.add_root(column(controls, grid))
    doc.js_on_event(DocumentReady, CustomJS(args=args, code=code))
    doc.title = content.title
    return doc


SYNC_JS = """
for (const other of others)
  if (other !== cb_obj && other.visible !== cb_obj.visible) other.visible = cb_obj.visible;
if (window.stellarnetExplorer) window.stellarnetExplorer.refresh();
"""

"""The explorer's network diagram: one edge per kernel entry (``w^l_i``) and one node per unit,
laid out as ``network.png`` lays them out (:func:`stellarnet.viz.network.node_positions`). The
page's JavaScript sets each edge's width and colour from the weight and each node's colour
from the bias at the slider's epoch, greys dead units, and fills in the hover's exact values.
"""

from __future__ import annotations

from bokeh.models import (
    ColorBar,
    ColumnDataSource,
    HoverTool,
    LinearColorMapper,
    TapTool,
    Title,
)

from stellarnet.viz.explorer_frames import hidden_units
from stellarnet.viz.explorer_panels import PALETTE, ExplorerContent, panel_figure
from stellarnet.viz.network import node_positions

MAX_LABELLED_EDGES = 48
"""Larger nets are drawn without edge labels, which would overlap (as in ``network.png``)."""
NODE_PX = 30
"""Diameter of a node in pixels, for layers of up to about 8 units; wider layers get smaller
nodes (and input labels), so that 16 or 32 units one above the other do not overlap."""
MIN_FONT_PX = 11
"""Smallest input label beside its node; smaller ones are listed under the diagram."""
FRAME_PX = 290
"""About the height of the diagram's plotting area in pixels (the panel less its title)."""


def network_sources(content: ExplorerContent) -> tuple[ColumnDataSource, ColumnDataSource]:
    """The diagram's edges (one per kernel entry, named ``w^l_i``) and nodes; the JS fills in
    widths, colours and the hover values at each epoch."""
    sizes = content.layer_sizes
    where = node_positions(sizes)
    units = {unit: j for j, unit in enumerate(hidden_units(sizes))}
    edges: dict[str, list] = {k: [] for k in ("x0", "y0", "x1", "y1", "name", "gname")}
    edges |= {"from_unit": [], "to_unit": [], "lx": [], "ly": []}
    for layer in range(1, len(sizes)):
        n_in, n_out = sizes[layer - 1], sizes[layer]
        along = 0.62 if n_out >= n_in else 0.38  # labels where the fan of edges is widest
        for index in range(1, n_in * n_out + 1):
            source, target = divmod(index - 1, n_out)
            (x0, y0), (x1, y1) = where[(layer - 1, source + 1)], where[(layer, target + 1)]
            edges["x0"].append(x0), edges["y0"].append(y0)
            edges["x1"].append(x1), edges["y1"].append(y1)
            edges["lx"].append(x0 + along * (x1 - x0)), edges["ly"].append(y0 + along * (y1 - y0))
            edges["name"].append(f"w^{layer}_{index}"), edges["gname"].append(f"g^{layer}_{index}")
            edges["from_unit"].append(units.get((layer - 1, source + 1), -1))
            edges["to_unit"].append(units.get((layer, target + 1), -1))
    count = len(edges["name"])
    edges |= {k: [""] * count for k in ("value", "gvalue", "state")}
    edges |= {"width": [1.0] * count, "color": ["#999999"] * count, "alpha": [1.0] * count}
    nodes: dict[str, list] = {k: [] for k in ("x", "y", "name", "gname", "label", "unit")}
    nodes |= {"label_dx": [], "label_align": []}
    for (layer, unit), (x, y) in where.items():
        nodes["x"].append(x), nodes["y"].append(y)
        nodes["unit"].append(units.get((layer, unit), -1))
        nodes["label_dx"].append(-20 if layer == 0 else 20)
        nodes["label_align"].append("right" if layer == 0 else "left")
        if layer == 0:
            nodes["name"].append(f"input {unit}"), nodes["gname"].append("")
            nodes["label"].append(content.input_names[unit - 1])
        else:
            nodes["name"].append(f"b^{layer}_{unit}"), nodes["gname"].append(f"gb^{layer}_{unit}")
            is_output = layer == len(sizes) - 1
            nodes["label"].append(content.output_names[unit - 1] if is_output else "")
    count = len(nodes["name"])
    nodes |= {k: [""] * count for k in ("value", "gvalue", "state")}
    nodes |= {"fill": ["#ffffff"] * count, "hatch": [" "] * count}
    return ColumnDataSource(edges, name="network-edges"), ColumnDataSource(
        nodes, name="network-nodes"
    )


def network_panel(content: ExplorerContent, edges, nodes, highlight, ring):
    """Edges coloured and sized by the weight, nodes by the bias, dead units grey and
    hatched; hover gives the exact values and their column names; tap picks the readout's
    parameter."""
    xs, ys = nodes.data["x"], nodes.data["y"]
    size, font = node_size(max(content.layer_sizes))
    listed = font is None and content.layer_sizes[0] > 1  # labels would touch: list them
    fig = panel_figure(
        "Network",
        x_axis_location=None,
        y_axis_location=None,
        x_range=(min(xs) - 1.1, max(xs) + 1.1),
        y_range=(min(ys) - 0.7, max(ys) + 0.7),
    )
    fig.grid.visible = False
    fig.outline_line_color = None
    fig.segment(
        "x0",
        "y0",
        "x1",
        "y1",
        source=highlight,
        line_color="#f2b600",
        line_width=14,
        line_alpha=0.6,
    )
    lines = fig.segment(
        "x0",
        "y0",
        "x1",
        "y1",
        source=edges,
        line_color="color",
        line_width="width",
        line_alpha="alpha",
    )
    fig.scatter(
        "x", "y", source=ring, size=size * 1.5, fill_alpha=0, line_color="#f2b600", line_width=5
    )
    circles = fig.scatter(
        "x",
        "y",
        source=nodes,
        size=size,
        fill_color="fill",
        line_color="#333333",
        hatch_pattern="hatch",
        hatch_color="#777777",
        hatch_alpha=0.8,
    )
    if listed:
        order = ", ".join(content.input_names)
        fig.add_layout(Title(text=f"inputs, top to bottom: {order}", text_font_size="8pt"), "below")
    fig.text(
        "x",
        "y",
        text="label",
        source=nodes if not listed else _outputs_only(nodes),
        x_offset="label_dx",
        text_align="label_align",
        text_font_size=font or "9pt",
        text_baseline="middle",
    )
    if len(edges.data["name"]) <= MAX_LABELLED_EDGES:
        fig.text(
            "lx",
            "ly",
            text="name",
            source=edges,
            text_font_size="7pt",
            text_align="center",
            text_baseline="middle",
            text_color="#333333",
            background_fill_color="white",
            background_fill_alpha=0.75,
        )
    mapper = LinearColorMapper(palette=PALETTE, low=-1, high=1)
    fig.add_layout(ColorBar(color_mapper=mapper, width=8, title="weight, bias"), "right")
    fig.add_tools(
        HoverTool(
            renderers=[lines],
            tooltips=[
                ("weight", "@name = @value"),
                ("gradient", "@gname = @gvalue"),
                ("", "@state"),
            ],
        ),
        HoverTool(
            renderers=[circles],
            tooltips=[
                ("bias", "@name = @value"),
                ("gradient", "@gname = @gvalue"),
                ("unit", "@state"),
            ],
        ),
        TapTool(renderers=[lines, circles]),
    )
    return fig, mapper


def node_size(widest: int) -> tuple[float, str | None]:
    """A node's diameter in pixels and the input labels' font size (None: too small to read,
    list them instead), for a net whose widest layer has ``widest`` units (one unit apart,
    0.7 units of margin above and below)."""
    spacing = FRAME_PX / (widest - 1 + 1.4)
    size = min(NODE_PX, 0.8 * spacing)
    font = min(12, round(0.95 * spacing))
    return size, None if font < MIN_FONT_PX else f"{font}px"


def _outputs_only(nodes: ColumnDataSource) -> ColumnDataSource:
    """The nodes' labels without the inputs' (listed under the diagram instead)."""
    keep = [j for j, name in enumerate(nodes.data["name"]) if not name.startswith("input")]
    return ColumnDataSource(
        {
            k: [nodes.data[k][j] for j in keep]
            for k in ("x", "y", "label", "label_dx", "label_align")
        }
    )

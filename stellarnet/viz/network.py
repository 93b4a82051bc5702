"""The network diagram, drawn with matplotlib (no graphviz): neurons and connections labelled
with the history's names (``w^{l}_{i}``, ``b^{l}_{i}``), edge width and colour showing each
weight's size and sign at one epoch, node colour the bias, dead units greyed; and the same
diagram animated through training beside the loss curve (a GIF written by matplotlib's
:class:`~matplotlib.animation.PillowWriter`).

A unit is greyed in a frame when its gradient in that epoch is zero (for epoch 0, the first
epoch's gradient, which is computed at the initial weights): a ReLU that outputs 0 for every
star, so it cannot learn.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from stellarnet.files import atomic_write
from stellarnet.results.history import column_name
from stellarnet.results.saved import (
    SavedResults,
    history_row,
    inactive_units,
    load_results,
    lr_label,
)
from stellarnet.viz.style import WIDE, loss_label, math_name, new_figure, save_figure, style

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure
    from matplotlib.lines import Line2D
    from matplotlib.patches import Circle

CMAP = "RdBu_r"
"""Diverging map of parameter values: red > 0, blue < 0, white near 0."""
DEAD_COLOR = "0.75"
NODE_RADIUS = 0.16
LAYER_SPACING = 1.8
MAX_LABELLED_EDGES = 48
"""Larger nets are drawn without edge labels, which would overlap."""
MAX_FRAMES = 150
"""Default frame budget of the animation: every epoch up to this many, else a stride."""
FPS = 4
LOG_RANGE = 100.0
LEGEND_NOTE = "line width: |weight|\ngrey, hatched: dead unit\n(zero gradient in this epoch)"


@dataclass
class NetworkArtists:
    """The drawn diagram, for updating from one epoch's parameters to the next."""

    layer_sizes: tuple[int, ...]
    scale: float
    edges: dict[tuple[int, int], Line2D] = field(default_factory=dict)
    nodes: dict[tuple[int, int], Circle] = field(default_factory=dict)

    def update(self, row, inactive: set[tuple[int, int]]) -> None:
        """Set edge widths and colours and node colours from a history row; grey the units in
        ``inactive`` and their connections."""
        from matplotlib import colormaps
        from matplotlib.colors import Normalize

        cmap, norm = colormaps[CMAP], Normalize(-self.scale, self.scale)
        for (layer, index), line in self.edges.items():
            value = float(row[column_name("w", layer, index)])
            source, target = divmod(index - 1, self.layer_sizes[layer])
            dead = (layer - 1, source + 1) in inactive or (layer, target + 1) in inactive
            line.set_linewidth(0.4 + 4.6 * min(abs(value) / self.scale, 1.0))
            line.set_color(DEAD_COLOR if dead else cmap(norm(value)))
            line.set_alpha(0.6 if dead else 1.0)
        for (layer, unit), circle in self.nodes.items():
            if layer == 0:
                continue
            value = float(row[column_name("b", layer, unit)])
            circle.set_facecolor(DEAD_COLOR if (layer, unit) in inactive else cmap(norm(value)))
            circle.set_hatch("//" if (layer, unit) in inactive else None)


def node_positions(layer_sizes: tuple[int, ...]) -> dict[tuple[int, int], tuple[float, float]]:
    """(layer, unit) -> (x, y): layer 0 is the input at x = 0, units 1-based from the top,
    one unit apart, each layer centred on y = 0, layers :data:`LAYER_SPACING` apart."""
    return {
        (layer, unit): (LAYER_SPACING * layer, (size - 1) / 2 - (unit - 1))
        for layer, size in enumerate(layer_sizes)
        for unit in range(1, size + 1)
    }


def parameter_scale(results: SavedResults, lr: float) -> float:
    """The largest |weight| or |bias| over the whole run: the colour and width scale, fixed
    across epochs so that frames compare."""
    from stellarnet.results.saved import parameter_matrix

    values = np.abs(parameter_matrix(results.histories[lr], results.layer_sizes))
    largest = float(np.nanmax(values)) if values.size else 0.0
    return largest if largest > 0 else 1.0


def draw_network(
    ax: Axes, results: SavedResults, scale: float, input_names: list[str] | None = None
) -> NetworkArtists:
    """Draw neurons and connections with their names; return the artists to colour."""
    from matplotlib.patches import Circle

    sizes = results.layer_sizes
    positions = node_positions(sizes)
    artists = NetworkArtists(sizes, scale)
    n_edges = sum(a * b for a, b in zip(sizes[:-1], sizes[1:], strict=True))
    label_edges = n_edges <= MAX_LABELLED_EDGES
    for layer in range(1, len(sizes)):
        n_in, n_out = sizes[layer - 1], sizes[layer]
        along = 0.62 if n_out >= n_in else 0.38  # label where the fan of edges is widest
        for source in range(n_in):
            for target in range(n_out):
                index = source * n_out + target + 1
                x0, y0 = positions[(layer - 1, source + 1)]
                x1, y1 = positions[(layer, target + 1)]
                (line,) = ax.plot([x0, x1], [y0, y1], solid_capstyle="round", zorder=1)
                artists.edges[(layer, index)] = line
                if label_edges:
                    ax.text(
                        x0 + along * (x1 - x0),
                        y0 + along * (y1 - y0),
                        math_name(column_name("w", layer, index)),
                        fontsize=6.5,
                        ha="center",
                        va="center",
                        zorder=4,
                        bbox={
                            "boxstyle": "round,pad=0.1",
                            "fc": "white",
                            "ec": "none",
                            "alpha": 0.8,
                        },
                    )
    names = input_names or [spec.column for spec in results.features]
    last = len(sizes) - 1
    for (layer, unit), (x, y) in positions.items():
        circle = Circle(
            (x, y), NODE_RADIUS, facecolor="white", edgecolor="black", linewidth=0.8, zorder=3
        )
        ax.add_patch(circle)
        artists.nodes[(layer, unit)] = circle
        gap = NODE_RADIUS + 0.05
        if layer == 0:
            name = names[unit - 1] if unit <= len(names) else f"x{unit}"
            ax.text(x - gap, y, name, ha="right", va="center", fontsize=8)
            continue
        bias = math_name(column_name("b", layer, unit))
        if layer == last:
            ax.text(
                x + gap,
                y,
                f"predicted {results.target.column}\nbias {bias}",
                ha="left",
                va="center",
                fontsize=8,
            )
        else:  # on the outer side of the node, away from its fan of edges
            above = y > 0 or (y == 0 and unit == 1)
            ax.text(
                x,
                y + gap if above else y - gap,
                bias,
                ha="center",
                va="bottom" if above else "top",
                fontsize=6.5,
                zorder=4,
            )
    height = max(sizes)
    ax.set_xlim(-1.0, LAYER_SPACING * last + 1.2)
    ax.set_ylim(-(height - 1) / 2 - 0.5, (height - 1) / 2 + 0.5)
    ax.set_aspect("equal")
    ax.axis("off")
    return artists


def _colorbar(fig: Figure, ax: Axes, scale: float) -> None:
    from matplotlib.cm import ScalarMappable
    from matplotlib.colors import Normalize

    mappable = ScalarMappable(norm=Normalize(-scale, scale), cmap=CMAP)
    fig.colorbar(
        mappable, ax=ax, shrink=0.8, aspect=30, pad=0.02, label="weight (edges), bias (nodes)"
    )


def _input_names(results: SavedResults) -> list[str]:
    return [
        f"{spec.column}" + (f"\n({', '.join(spec.transforms)})" if spec.transforms else "")
        for spec in results.features
    ]


def _description(results: SavedResults) -> str:
    sizes = "-".join(map(str, results.layer_sizes))
    return f"{sizes} {results.activation} net"


def plot_network(
    results: SavedResults, lr: float | None = None, epoch: int | None = None
) -> Figure:
    """The network at ``epoch`` (default: the last) of the run at learning rate ``lr``."""
    lr = results.learning_rates[0] if lr is None else lr
    history = results.histories[lr]
    row = history_row(history, epoch)
    shown = int(row["epoch"])
    scale = parameter_scale(results, lr)
    fig = new_figure((WIDE[0] * 0.85, WIDE[1]))
    ax = fig.add_subplot()
    artists = draw_network(ax, results, scale, _input_names(results))
    inactive = inactive_units(history, results.layer_sizes, shown)
    artists.update(row, inactive)
    _colorbar(fig, ax, scale)
    ax.set_title(f"{_description(results)} at epoch {shown} ({lr_label(lr)})")
    ax.text(0.0, 0.0, LEGEND_NOTE, transform=ax.transAxes, fontsize=6.5, color="0.3", va="bottom")
    return fig


def network_figure(
    source: str | Path | SavedResults, lr: float | None = None, epoch: int | None = None
) -> Path:
    """Write ``network.png`` and ``.pdf`` (the diagram at ``epoch``) into the results folder."""
    results = source if isinstance(source, SavedResults) else load_results(source)
    with style():
        return save_figure(plot_network(results, lr, epoch), results.folder, "network")


def _integer_ticks(ax: Axes) -> None:
    from matplotlib.ticker import MaxNLocator

    ax.xaxis.set_major_locator(MaxNLocator(integer=True))


def frame_epochs(epochs: list[int], stride: int | None = None) -> list[int]:
    """Epochs shown by the animation: every ``stride``-th (default: all, thinned to about
    :data:`MAX_FRAMES`), always including the last."""
    if stride is None:
        stride = max(1, math.ceil(len(epochs) / MAX_FRAMES))
    chosen = epochs[::stride]
    if chosen[-1] != epochs[-1]:
        chosen.append(epochs[-1])
    return chosen


def network_animation(
    source: str | Path | SavedResults,
    lr: float | None = None,
    stride: int | None = None,
    name: str = "network.gif",
    dpi: int = 100,
    log_scale: bool | None = None,
) -> Path:
    """Animate the diagram through training beside the loss curve; write ``network.gif``.

    One frame per recorded epoch, or every ``stride``-th; a marker on the loss curve shows
    the current epoch. The loss axis is logarithmic if ``log_scale``, or by default when the
    loss falls by more than a factor :data:`LOG_RANGE`.
    """
    from matplotlib.animation import FuncAnimation, PillowWriter

    results = source if isinstance(source, SavedResults) else load_results(source)
    lr = results.learning_rates[0] if lr is None else lr
    history = results.histories[lr]
    sizes = results.layer_sizes
    scale = parameter_scale(results, lr)
    epochs = frame_epochs([int(e) for e in history["epoch"]], stride)
    with style():
        fig = new_figure(WIDE)
        net_ax, loss_ax = fig.subplots(1, 2, width_ratios=[1.7, 1])
        artists = draw_network(net_ax, results, scale, _input_names(results))
        net_ax.text(
            0.0,
            0.0,
            LEGEND_NOTE,
            transform=net_ax.transAxes,
            fontsize=6.5,
            color="0.3",
            va="bottom",
        )
        _colorbar(fig, net_ax, scale)
        loss_ax.plot(history["epoch"], history["loss"], color="black", linewidth=1.2)
        (marker,) = loss_ax.plot([], [], "o", color="tab:red", markersize=7)
        losses = history["loss"].to_numpy()
        if log_scale or (
            log_scale is None and losses.min() > 0 and losses.max() > LOG_RANGE * losses.min()
        ):
            loss_ax.set_yscale("log")
        loss_ax.set_xlabel("Epoch")
        loss_ax.set_ylabel(loss_label(results.loss_name, results.target.transforms))
        loss_ax.set_title("Training loss")
        _integer_ticks(loss_ax)
        title = fig.suptitle(f"{_description(results)}, {lr_label(lr)}: epoch {epochs[-1]}")
        fig.draw_without_rendering()  # lay out once with the longest title, then freeze
        fig.set_layout_engine("none")

        def draw(epoch: int) -> list:
            row = history_row(history, epoch)
            artists.update(row, inactive_units(history, sizes, epoch))
            marker.set_data([epoch], [row["loss"]])
            title.set_text(f"{_description(results)}, {lr_label(lr)}: epoch {epoch}")
            return []

        animation = FuncAnimation(fig, draw, frames=epochs, blit=False, repeat=False)
        path = Path(results.folder) / name

        def write(tmp: Path) -> None:
            gif = tmp.with_suffix(".gif")  # Pillow picks the format from the file name
            try:
                animation.save(gif, writer=PillowWriter(fps=FPS), dpi=dpi)
                os.replace(gif, tmp)
            finally:
                gif.unlink(missing_ok=True)

        return atomic_write(path, write)

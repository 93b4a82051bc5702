"""The network diagram, drawn with matplotlib (no graphviz): neurons and connections labelled
with the history's names (``w^{l}_{i}``, ``b^{l}_{i}``), edge width and colour showing each
weight's size and sign at one epoch, node colour the bias, dead units greyed; and the same
diagram animated through training beside the loss curve (a GIF: the still parts drawn once,
the diagram, the marker and the title redrawn per frame, :mod:`stellarnet.viz.gif`).

A unit is greyed in a frame when its gradient in that epoch is zero (for epoch 0, the first
epoch's gradient, which is computed at the initial weights): a ReLU that outputs 0 for every
star, so it cannot learn.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from stellarnet.errors import StellarnetError
from stellarnet.results.analysis import inactive_units, parameter_matrix
from stellarnet.results.saved import SavedResults, as_results, history_row, lr_label
from stellarnet.schema import column_name
from stellarnet.viz.divergence import weights_note
from stellarnet.viz.gif import blit_frames, save_gif
from stellarnet.viz.style import (
    WIDE,
    integer_epochs,
    math_name,
    new_figure,
    results_loss_label,
    style,
    wants_log,
    write_figure,
)

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
        # All weights at once: per edge, a lookup in the row and a colour-map call cost more
        # than drawing (a 5-32-32-1 net has 1216 edges, in every frame of the GIF).
        values = row[[column_name("w", layer, index) for layer, index in self.edges]]
        values = values.to_numpy(dtype=float)
        widths = 0.4 + 4.6 * np.minimum(np.abs(values) / self.scale, 1.0)
        colours = cmap(norm(values))
        for i, ((layer, index), line) in enumerate(self.edges.items()):
            source, target = divmod(index - 1, self.layer_sizes[layer])
            dead = (layer - 1, source + 1) in inactive or (layer, target + 1) in inactive
            line.set_linewidth(widths[i])
            line.set_color(DEAD_COLOR if dead else tuple(colours[i]))
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
    values = np.abs(parameter_matrix(results.finite_history(lr), results.layer_sizes))
    largest = float(np.nanmax(values)) if values.size else 0.0
    return largest if largest > 0 else 1.0


EDGE_LABEL_BOX = {"boxstyle": "round,pad=0.1", "fc": "white", "ec": "none", "alpha": 0.8}
"""White box behind an edge label, so that it reads over the edges it crosses."""


def _draw_edges(ax: Axes, sizes: tuple[int, ...], positions: dict, artists: NetworkArtists) -> None:
    """One line per weight, labelled ``w^{l}_{i}`` unless there are too many to read."""
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
                        bbox=EDGE_LABEL_BOX,
                    )


def _node_label(ax: Axes, results: SavedResults, unit_at: tuple[int, int, float, float]) -> None:
    """A unit's bias name: beside the output node (with what it predicts), else on the outer
    side of a hidden node, away from its fan of edges."""
    layer, unit, x, y = unit_at
    gap = NODE_RADIUS + 0.05
    bias = math_name(column_name("b", layer, unit))
    if layer == len(results.layer_sizes) - 1:
        target = results.target
        # the net outputs the target in its transformed units (log10 Teff for the HR net)
        logged = "log$_{10}$ " if target.transforms[-1:] == ("log10",) else ""
        scaled = " (scaled)" if target.transforms and not logged else ""
        text = f"predicted {logged}{target.column}{scaled}\nbias {bias}"
        ax.text(x + gap, y, text, ha="left", va="center", fontsize=8)
        return
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


def _draw_nodes(
    ax: Axes, results: SavedResults, positions: dict, artists: NetworkArtists, names: list[str]
) -> None:
    """One circle per unit: inputs named by their column, the others by their bias."""
    from matplotlib.patches import Circle

    for (layer, unit), (x, y) in positions.items():
        circle = Circle(
            (x, y), NODE_RADIUS, facecolor="white", edgecolor="black", linewidth=0.8, zorder=3
        )
        ax.add_patch(circle)
        artists.nodes[(layer, unit)] = circle
        if layer == 0:
            name = names[unit - 1] if unit <= len(names) else f"x{unit}"
            ax.text(x - NODE_RADIUS - 0.05, y, name, ha="right", va="center", fontsize=8)
        else:
            _node_label(ax, results, (layer, unit, x, y))


def draw_network(
    ax: Axes, results: SavedResults, scale: float, input_names: list[str] | None = None
) -> NetworkArtists:
    """Draw neurons and connections with their names; return the artists to colour."""
    sizes = results.layer_sizes
    positions = node_positions(sizes)
    artists = NetworkArtists(sizes, scale)
    _draw_edges(ax, sizes, positions, artists)
    names = input_names or [spec.column for spec in results.features]
    _draw_nodes(ax, results, positions, artists, names)
    height = max(sizes)
    ax.set_xlim(-1.0, LAYER_SPACING * (len(sizes) - 1) + 1.2)
    ax.set_ylim(-(height - 1) / 2 - 0.5, (height - 1) / 2 + 0.5)
    ax.set_aspect("equal")
    ax.axis("off")
    return artists


def _diagram(fig: Figure, ax: Axes, results: SavedResults, scale: float) -> NetworkArtists:
    """The diagram as both the still figure and the animation show it: the network, the note
    on what widths and grey mean, and the colour bar of weights and biases."""
    from matplotlib.cm import ScalarMappable
    from matplotlib.colors import Normalize

    artists = draw_network(ax, results, scale, _input_names(results))
    ax.text(0.0, 0.0, LEGEND_NOTE, transform=ax.transAxes, fontsize=6.5, color="0.3", va="bottom")
    mappable = ScalarMappable(norm=Normalize(-scale, scale), cmap=CMAP)
    fig.colorbar(
        mappable, ax=ax, shrink=0.8, aspect=30, pad=0.02, label="weight (edges), bias (nodes)"
    )
    return artists


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
    shown = results.weights_epoch(lr, epoch)
    if shown is None:
        raise StellarnetError(f"{results.folder}: {lr_label(lr)} has no finite row to draw")
    row = history_row(history, shown)
    fig = new_figure((WIDE[0] * 0.85, WIDE[1]))
    ax = fig.add_subplot()
    artists = _diagram(fig, ax, results, parameter_scale(results, lr))
    artists.update(row, inactive_units(history, results.layer_sizes, shown))
    ax.set_title(
        f"{_description(results)} at epoch {shown} ({lr_label(lr)}{weights_note(results, lr)})"
    )
    return fig


def network_figure(
    source: str | Path | SavedResults, lr: float | None = None, epoch: int | None = None
) -> Path:
    """Write ``network.png`` and ``.pdf`` (the diagram at ``epoch``) into the results folder."""
    results = as_results(source)
    return write_figure(lambda: plot_network(results, lr, epoch), results.folder, "network")


# --- the animation --------------------------------------------------------------------------


def frame_epochs(epochs: list[int], stride: int | None = None) -> list[int]:
    """Epochs shown by the animation: every ``stride``-th (default: all, thinned to about
    :data:`MAX_FRAMES`), always including the last."""
    if stride is None:
        stride = max(1, math.ceil(len(epochs) / MAX_FRAMES))
    chosen = epochs[::stride]
    if chosen[-1] != epochs[-1]:
        chosen.append(epochs[-1])
    return chosen


def _loss_panel(ax: Axes, results: SavedResults, lr: float, log_scale: bool | None) -> Line2D:
    """The run's loss curve (up to its last finite row, and a cross where a diverged run's
    loss stopped being finite); return the marker that shows the current epoch."""
    history = results.finite_history(lr)
    ax.plot(history["epoch"], history["loss"], color="black", linewidth=1.2)
    (marker,) = ax.plot([], [], "o", color="tab:red", markersize=7)
    if log_scale or (log_scale is None and wants_log(history["loss"].to_numpy())):
        ax.set_yscale("log")  # the rule of every other loss axis
    divergence = results.divergence(lr)
    if divergence is not None:
        ax.axvline(divergence.epoch, color="black", linestyle=":", linewidth=0.9)
        ax.plot(
            [divergence.epoch],
            [1.0],
            "X",
            transform=ax.get_xaxis_transform(),
            color="black",
            markeredgecolor="white",
            markersize=8,
            clip_on=False,
            label=f"diverged at epoch {divergence.epoch}",
        )
        ax.legend(loc="lower left", fontsize=7)
    ax.set_xlabel("Epoch")
    ax.set_ylabel(results_loss_label(results))
    ax.set_title("Training loss")
    integer_epochs(ax)
    return marker


def _diverged_suffix(results: SavedResults, lr: float) -> str:
    divergence = results.divergence(lr)
    return "" if divergence is None else f" (diverged at epoch {divergence.epoch})"


def network_animation(
    source: str | Path | SavedResults,
    lr: float | None = None,
    stride: int | None = None,
    name: str = "network.gif",
    dpi: int = 100,
    log_scale: bool | None = None,
    folder: str | Path | None = None,
) -> Path:
    """Animate the diagram through training beside the loss curve; write ``network.gif``.

    One frame per recorded epoch, or every ``stride``-th; a marker on the loss curve shows
    the current epoch. The loss axis is logarithmic if ``log_scale``, or by default when the
    loss spans more than two decades (:func:`stellarnet.viz.style.wants_log`, as every loss
    axis). Written into ``folder`` (default: the
    results folder). A diverged run is animated up to its last finite row.
    """
    results = as_results(source)
    lr = results.learning_rates[0] if lr is None else lr
    history = results.finite_history(lr)
    if history.empty:
        raise StellarnetError(f"{results.folder}: {lr_label(lr)} has no finite row to animate")
    epochs = frame_epochs([int(e) for e in history["epoch"]], stride)
    with style():
        fig = new_figure(WIDE)
        fig.set_dpi(dpi)
        net_ax, loss_ax = fig.subplots(1, 2, width_ratios=[1.7, 1])
        artists = _diagram(fig, net_ax, results, parameter_scale(results, lr))
        marker = _loss_panel(loss_ax, results, lr, log_scale)
        label = lr_label(lr) + _diverged_suffix(results, lr)
        title = fig.suptitle(f"{_description(results)}, {label}: epoch {epochs[-1]}")
        fig.draw_without_rendering()  # lay out once with the longest title, then freeze
        fig.set_layout_engine("none")

        def draw(epoch: int) -> None:
            row = history_row(history, epoch)
            artists.update(row, inactive_units(history, results.layer_sizes, epoch))
            marker.set_data([epoch], [row["loss"]])
            title.set_text(f"{_description(results)}, {label}: epoch {epoch}")

        moving = [*artists.edges.values(), *artists.nodes.values(), marker, title]
        # the diagram's labels lie over edges that change colour: drawn once, laid over
        frames = blit_frames(fig, moving, epochs, draw, above=net_ax.texts)
        return save_gif(frames, Path(folder or results.folder) / name, FPS)

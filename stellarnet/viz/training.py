"""Figures of how training went, from the history tables alone (no catalog needed): the loss
per epoch (``loss``) and every weight, bias and gradient per epoch (``parameters``,
``gradients``) with the hidden units that died marked.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from stellarnet.params import parameter_names
from stellarnet.results.analysis import dead_units, describe_dead
from stellarnet.results.saved import SavedResults, as_results, lr_label
from stellarnet.viz.captions import add_caption, run_caption
from stellarnet.viz.divergence import diverged_rates, finite_note, fit_loss_axis
from stellarnet.viz.style import (
    WIDE,
    integer_epochs,
    math_name,
    new_figure,
    rate_colorbar,
    rate_colors,
    rates_text,
    results_loss_label,
    uses_colorbar,
    write_figure,
)

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

MAX_MARKED_EPOCHS = 50
"""Up to this many epochs each loss point gets a marker; beyond, markers would merge."""

KINDS = {"parameters": ("w", "b"), "gradients": ("g", "gb")}
KIND_NAMES = {"w": "weights", "b": "biases", "g": "weight gradients", "gb": "bias gradients"}
MAX_LEGEND_LINES = 12
"""Nets with more hidden units than this get no unit legend (the unit colours repeat)."""


def rates_title(results: SavedResults) -> str:
    """``"LR=0.1, 0.3"`` or ``"8 rates, LR=0.001 to 3"``: the learning rates, for a title."""
    return rates_text(results.learning_rates)


# --- loss ----------------------------------------------------------------------------------


def status_label(results: SavedResults, lr: float) -> str:
    """``"LR=0.1"``, or ``"LR=3, diverged at epoch 25"`` for a rate that diverged."""
    divergence = results.divergence(lr)
    label = lr_label(lr)
    return label if divergence is None else f"{label}, diverged at epoch {divergence.epoch}"


def draw_loss_lines(ax: Axes, results: SavedResults, log_scale: bool | None = None) -> dict:
    """One loss line per learning rate in its colour (:func:`stellarnet.viz.style.rate_colors`),
    labelled ``LR=...``; return the lines by rate.

    The y axis is logarithmic if ``log_scale``, linear if False, and by default logarithmic
    when the loss spans more than two decades. Epoch 0 is left out: its loss is the initial
    model's, the same number as epoch 1's (both are computed before the first update). A rate
    that diverged is drawn up to its last finite row and ends with a cross where its loss
    stopped being finite; the y range leaves out rates that diverged or exploded (see
    :func:`stellarnet.viz.divergence.fit_loss_axis`).
    """
    lines = {}
    colours = rate_colors(results.learning_rates)
    many = uses_colorbar(results.learning_rates)
    for lr in results.learning_rates:
        history = results.finite_history(lr)
        trained = history[history["epoch"] >= 1]
        (lines[lr],) = ax.plot(
            trained["epoch"],
            trained["loss"],
            color=colours[lr],
            label=status_label(results, lr),
            marker="o" if len(trained) <= MAX_MARKED_EPOCHS else None,
            markersize=3,
            linewidth=1.0 if many else 1.5,
        )
    fit_loss_axis(ax, results, lines, log_scale)
    integer_epochs(ax)
    return lines


def loss_legend(fig: Figure, ax: Axes, results: SavedResults) -> None:
    """A legend right of the axes (inside, it would cover curves that span every epoch), or
    a colour bar of the rates when there are too many to tell apart by colour."""
    if uses_colorbar(results.learning_rates):
        rate_colorbar(fig, ax, results.learning_rates)
        return
    if len(results.learning_rates) == 1 and not diverged_rates(results):
        return  # the title names the one rate
    fig.legend(loc="outside right upper", fontsize=7, frameon=False)


def plot_loss(results: SavedResults, log_scale: bool | None = None) -> Figure:
    """Loss vs epoch, one line per learning rate, titled like the assignment, captioned with
    the rows, optimiser and initial weights, and the rates that diverged or exploded."""
    fig = new_figure()
    ax = fig.add_subplot()
    draw_loss_lines(ax, results, log_scale)
    ax.set_xlabel("Epoch")
    ax.set_ylabel(results_loss_label(results))
    ax.set_title(f"Training Loss vs Epochs ({rates_title(results)})")
    loss_legend(fig, ax, results)
    add_caption(fig, run_caption(results, wild=True))
    return fig


def loss_figure(
    source: str | Path | SavedResults, name: str = "loss", log_scale: bool | None = None
) -> Path:
    """Plot loss vs epoch of a run or sweep folder; write ``<folder>/<name>.png`` and ``.pdf``."""
    results = as_results(source)
    return write_figure(lambda: plot_loss(results, log_scale), results.folder, Path(name).stem)


# --- parameter and gradient trajectories -------------------------------------------------


def _hidden_unit(
    layer_sizes: tuple[int, ...], layer: int, kind: str, index: int
) -> tuple[int, int] | None:
    """The hidden unit a parameter belongs to: its output unit in a hidden layer, its input
    unit in the output layer; None for the output layer's biases."""
    last = layer == len(layer_sizes) - 1
    if kind in ("b", "gb"):
        return None if last else (layer, index)
    source, target = divmod(index - 1, layer_sizes[layer])
    return (layer - 1, source + 1) if last else (layer, target + 1)


def _trajectory_style(unit: tuple[int, int] | None, died: int | None) -> tuple[dict[str, Any], str]:
    """Line style and label suffix: the unit's colour; dashed grey if dead throughout."""
    from matplotlib import colormaps

    if died == 1:
        return {"color": "0.6", "linestyle": "--", "linewidth": 1.0}, " (dead)"
    colour = colormaps["tab10"]((unit[1] - 1) % 10) if unit else "black"
    return {"color": colour, "linewidth": 1.2}, "" if died is None else f" (dies ep. {died})"


def _trajectory_panel(
    ax: Axes,
    history: pd.DataFrame,
    sizes: tuple[int, ...],
    layer: int,
    kind: str,
    dead: dict[tuple[int, int], int],
) -> None:
    """One layer's parameters (or gradients) of one kind vs epoch, a cross where a unit died."""
    names = [n for n in parameter_names(sizes, kind) if n.startswith(f"{kind}^{layer}_")]
    for name in names:
        unit = _hidden_unit(sizes, layer, kind, int(name.rsplit("_", 1)[1]))
        died = dead.get(unit) if unit else None
        line_style, suffix = _trajectory_style(unit, died)
        ax.plot(history["epoch"], history[name], label=math_name(name) + suffix, **line_style)
        if died is not None and died > 1:
            value = history.loc[history["epoch"] == died, name]
            ax.plot([died], value, marker="x", color="black", markersize=6, zorder=3)
    ax.set_title(f"layer {layer} {KIND_NAMES[kind]}")


def _unit_legend(fig: Figure, sizes: tuple[int, ...], dead: dict[tuple[int, int], int]) -> None:
    """One legend for every panel, beside them (inside, legends covered the curves): a line's
    colour is its hidden unit's in every panel. Left out for nets of more than
    :data:`MAX_LEGEND_LINES` hidden units, whose colours repeat."""
    from matplotlib.lines import Line2D

    units = [
        (layer, unit) for layer in range(1, len(sizes) - 1) for unit in range(1, sizes[layer] + 1)
    ]
    if len(units) > MAX_LEGEND_LINES:
        return
    handles = []
    for unit in units:
        line_style, suffix = _trajectory_style(unit, dead.get(unit))
        name = f"unit {unit[1]}" if len(sizes) == 3 else f"layer {unit[0]} unit {unit[1]}"
        handles.append(Line2D([], [], label=name + suffix, **line_style))
    handles.append(Line2D([], [], color="black", label="output bias"))
    fig.legend(handles=handles, loc="outside right center", fontsize=7, frameon=False)


def plot_trajectories(results: SavedResults, lr: float, which: str = "parameters") -> Figure:
    """Every weight and bias (``which="parameters"``) or every gradient (``"gradients"``) vs
    epoch: one panel per layer and kind, lines coloured by the hidden unit they belong to.

    Dead hidden units (zero gradient to the end) are marked: dashed grey if dead throughout,
    a cross where a unit died during training.
    """
    kinds = KINDS[which]
    history = results.finite_history(lr)
    if which == "gradients":
        history = history[history["epoch"] >= 1]  # epoch 0 makes no step, so has no gradient
    sizes = results.layer_sizes
    dead = dead_units(results.finite_history(lr), sizes)
    n_layers = len(sizes) - 1
    fig = new_figure((max(WIDE[0], 3.4 * n_layers), WIDE[1] * 1.3))
    axes = fig.subplots(len(kinds), n_layers, sharex=True, squeeze=False)
    for row, kind in enumerate(kinds):
        for layer in range(1, n_layers + 1):
            _trajectory_panel(axes[row][layer - 1], history, sizes, layer, kind, dead)
    for ax in axes[-1]:
        ax.set_xlabel("Epoch")
        integer_epochs(ax)
    _unit_legend(fig, sizes, dead)
    title = "Parameters" if which == "parameters" else "Gradients (d loss / d parameter)"
    fig.suptitle(
        f"{title} vs epoch ({lr_label(lr)})\ndead units (zero gradient to the end): "
        f"{describe_dead(dead)}" + finite_note(results, lr),
        fontsize=9,
    )
    add_caption(
        fig,
        f"{run_caption(results)}. Colour: the hidden unit a parameter belongs to; "
        "cross: where a unit died",
    )
    return fig


def trajectories_figure(source: str | Path | SavedResults, which: str = "parameters") -> Path:
    """Write ``parameters.png``/``.pdf`` or ``gradients.png``/``.pdf`` into a run folder."""
    results = as_results(source)
    lr = results.learning_rates[0]
    return write_figure(lambda: plot_trajectories(results, lr, which), results.folder, which)

"""The loss landscape around the training path (Li et al. 2018, "Visualizing the Loss
Landscape of Neural Nets", section 7): PCA of the recorded per-epoch parameter vectors gives
the two directions in which training moved most; the loss is evaluated on a grid over the
plane through the centre parameters spanned by them, and each learning rate's path is
projected onto it.

Everything is computed from saved results: the parameter vectors from the history tables,
the (x, y) the network was trained on rebuilt from the catalog (checked by its sha256) with
the run's seed and transforms, and the network evaluated by :func:`stellarnet.params.forward`
(:func:`stellarnet.results.analysis.network_loss_batch`, all grid points at once).

The path points lie near, not on, the plane (PCA keeps most of their variance, shown in the
axis labels), so the contour under a point is close to, not equal to, the loss recorded there.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import numpy as np

from stellarnet.errors import ConfigError, StellarnetError
from stellarnet.results.analysis import network_loss_batch, parameter_matrix
from stellarnet.results.saved import SavedResults, as_results, lr_label
from stellarnet.viz.captions import add_caption, run_caption
from stellarnet.viz.divergence import calm_rates, drawn_rates
from stellarnet.viz.style import (
    new_figure,
    rate_colorbar,
    rate_colors,
    rates_list,
    rates_text,
    results_loss_label,
    uses_colorbar,
    write_figure,
)

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

MAX_MARKERS = 40
"""Epoch markers drawn per path at most (every k-th epoch on long runs)."""

MARGIN = 0.25
"""The grid extends this fraction of the paths' span beyond them on each side."""


@dataclass
class Landscape:
    """Losses on a plane in parameter space, and the training paths projected onto it.

    Attributes
    ----------
    center : ndarray, shape (P,)
        The parameter vector at the plane's origin.
    directions : ndarray, shape (2, P)
        Orthonormal principal directions of the recorded parameter vectors.
    explained : ndarray, shape (2,)
        Fraction of the paths' variance along each direction.
    alphas, betas : ndarray
        Grid coordinates along the first and second direction.
    losses : ndarray, shape (len(betas), len(alphas))
        Loss at ``center + alpha * d1 + beta * d2``.
    paths : dict of float to ndarray, shape (epochs + 1, 2)
        Each learning rate's parameter vectors projected onto the plane, epoch 0 first.
    excluded : tuple of float
        Rates that exploded (:func:`stellarnet.viz.divergence.calm_rates`): projected, but
        kept out of the PCA fit and the grid's extent, which they would own.
    """

    center: np.ndarray
    directions: np.ndarray
    explained: np.ndarray
    alphas: np.ndarray
    betas: np.ndarray
    losses: np.ndarray
    paths: dict[float, np.ndarray]
    excluded: tuple[float, ...] = ()


def principal_directions(vectors: np.ndarray, start: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The two leading principal directions of ``vectors`` (rows) by SVD, and the fraction
    of variance each explains. Signs are fixed so that ``start`` projects to negative
    coordinates (training runs left to right and bottom to top)."""
    centred = vectors - vectors.mean(axis=0)
    _, singular, vt = np.linalg.svd(centred, full_matrices=False)
    directions = np.zeros((2, vectors.shape[1]))
    explained = np.zeros(2)
    total = float(np.sum(singular**2))
    for k in range(min(2, len(singular))):
        direction = vt[k]
        if (start - vectors.mean(axis=0)) @ direction > 0:
            direction = -direction
        directions[k] = direction
        explained[k] = singular[k] ** 2 / total if total > 0 else 0.0
    return directions, explained


def compute_landscape(
    results: SavedResults, grid: int = 41, center: Literal["final", "mean"] = "final"
) -> Landscape:
    """Losses on a ``grid`` x ``grid`` mesh over the PCA plane of all recorded paths.

    Parameters
    ----------
    results : SavedResults
        A run or a sweep; a sweep's paths share one plane.
    grid : int
        Points per side (at least 3).
    center : {"final", "mean"}
        The plane passes through the final parameters of the first learning rate, or
        through the mean of all recorded parameter vectors.
    """
    if grid < 3:
        raise ConfigError(f"the landscape grid needs at least 3 points per side, got {grid}")
    sizes = results.layer_sizes
    rates = drawn_rates(results)
    matrices = {lr: parameter_matrix(results.finite_history(lr), sizes) for lr in rates}
    if not matrices:
        raise StellarnetError(
            f"{results.folder}: no learning rate has a finite row to draw a landscape from"
        )
    calm = set(calm_rates(results))
    fitted = [lr for lr in rates if lr in calm] or rates
    stacked = np.vstack([matrices[lr] for lr in fitted])
    first = matrices[fitted[0]]
    origin = first[-1] if center == "final" else stacked.mean(axis=0)
    directions, explained = principal_directions(stacked, first[0])
    paths = {lr: (m - origin) @ directions.T for lr, m in matrices.items()}
    points = np.vstack([paths[lr] for lr in fitted])
    low, high = points.min(axis=0), points.max(axis=0)
    span = np.maximum(high - low, 1e-3 * max(float(np.abs(points).max()), 1.0))
    alphas = np.linspace(low[0] - MARGIN * span[0], high[0] + MARGIN * span[0], grid)
    betas = np.linspace(low[1] - MARGIN * span[1], high[1] + MARGIN * span[1], grid)

    plane = origin + alphas[None, :, None] * directions[0] + betas[:, None, None] * directions[1]
    losses = network_loss_batch(results, plane.reshape(-1, len(origin))).reshape(grid, grid)
    excluded = tuple(lr for lr in rates if lr not in fitted)
    return Landscape(origin, directions, explained, alphas, betas, losses, paths, excluded)


def _loss_contours(fig: Figure, ax: Axes, results: SavedResults, landscape: Landscape) -> None:
    """Filled contours of the loss at 25 log-spaced levels (losses span decades between the
    valley and the rim), thin white lines at every third, and the colour bar. Losses that
    overflowed (around a diverging run) are drawn at the largest finite one."""
    from matplotlib.colors import LogNorm

    losses = landscape.losses
    finite = losses[np.isfinite(losses)]
    positive = finite[finite > 0]
    low = float(positive.min()) if positive.size else 1e-12
    high = float(finite.max()) if finite.size else low
    levels = np.geomspace(low, max(high, low * 10), 25)
    grid = (
        landscape.alphas,
        landscape.betas,
        np.clip(np.nan_to_num(losses, nan=high, posinf=high), low, None),
    )
    filled = ax.contourf(*grid, levels=levels, norm=LogNorm(), cmap="viridis_r")
    ax.contour(*grid, levels=levels[::3], colors="white", linewidths=0.4, alpha=0.6)
    fig.colorbar(filled, ax=ax, label=results_loss_label(results), format="%.3g")


def _training_paths(ax: Axes, landscape: Landscape, rates: list[float]) -> None:
    """Each learning rate's path (haloed, to read over the contours) from its start (square)
    to its end (star), in its colour; exploded rates dashed, clipped at the grid's edge."""
    from matplotlib import patheffects

    colours = rate_colors(rates)
    many = uses_colorbar(rates)
    halo = [patheffects.withStroke(linewidth=2.5 if many else 3.5, foreground="white")]
    for lr, path in landscape.paths.items():
        colour = colours[lr]
        ax.plot(
            path[:, 0],
            path[:, 1],
            "--" if lr in landscape.excluded else "-",
            color=colour,
            marker=None if many else "o",
            markersize=3,
            linewidth=1.0 if many else 1.5,
            markevery=max(1, len(path) // MAX_MARKERS),
            label=None if many else lr_label(lr),
            path_effects=halo,
            zorder=3,
        )
        edge = {"markeredgecolor": "black", "markeredgewidth": 0.6, "zorder": 4}
        ax.plot(*path[0], "s", color=colour, markersize=4 if many else 6, **edge)
        ax.plot(*path[-1], "*", color=colour, markersize=7 if many else 11, **edge)
    marker = {"color": "white", "markeredgecolor": "black", "linestyle": "none"}
    ax.plot([], [], "s", markersize=6, label="start (epoch 0)", **marker)
    ax.plot([], [], "*", markersize=10, label="end (last epoch)", **marker)


def _diverged_note(results: SavedResults, landscape: Landscape) -> str:
    """What the caption says of the wild rates: diverged ones left out or drawn up to their
    last finite row, exploded ones kept out of the fit."""
    notes = []
    diverged = [lr for lr in results.learning_rates if results.divergence(lr) is not None]
    if diverged:
        left_out = [lr for lr in diverged if lr not in landscape.paths]
        names = ", ".join(
            f"{lr_label(lr)} (epoch {results.divergence(lr).epoch})" for lr in left_out or diverged
        )
        what = "not drawn" if left_out else "paths up to the last finite row"
        notes.append(f"Diverged: {names}; {what}")
    exploded = [lr for lr in landscape.excluded if lr not in diverged]
    if exploded:
        names = rates_list(exploded, len(results.learning_rates))
        notes.append(f"Exploded, kept out of the plane's fit and clipped (dashed): {names}")
    return "".join(f". {note}" for note in notes)


def plot_landscape(results: SavedResults, landscape: Landscape) -> Figure:
    """Filled log-spaced loss contours with each learning rate's path (start: square, end:
    star), the plane's axes limited to the grid (an exploded path is clipped at its edge)."""
    fig = new_figure((7.2, 4.6))
    ax = fig.add_subplot()
    _loss_contours(fig, ax, results, landscape)
    _training_paths(ax, landscape, results.learning_rates)
    ax.set_xlim(landscape.alphas[0], landscape.alphas[-1])
    ax.set_ylim(landscape.betas[0], landscape.betas[-1])
    ax.set_xlabel(f"PC1 ({100 * landscape.explained[0]:.1f}% of path variance)")
    ax.set_ylabel(f"PC2 ({100 * landscape.explained[1]:.1f}% of path variance)")
    ax.set_title(f"Loss landscape around the training paths ({rates_text(results.learning_rates)})")
    ax.grid(False)
    if uses_colorbar(results.learning_rates):
        rate_colorbar(fig, ax, results.learning_rates, location="left")
    fig.legend(loc="outside right upper", fontsize=7, frameon=False)
    add_caption(
        fig,
        f"{run_caption(results)}. Plane through the paths' two principal directions; the "
        "contours are the loss on it, near but not at each path point"
        + _diverged_note(results, landscape),
    )
    return fig


def landscape_figure(
    source: str | Path | SavedResults, grid: int = 41, center: Literal["final", "mean"] = "final"
) -> Path:
    """Compute the landscape and write ``landscape.png`` and ``.pdf`` into the folder."""
    results = as_results(source)
    landscape = compute_landscape(results, grid, center)
    return write_figure(lambda: plot_landscape(results, landscape), results.folder, "landscape")

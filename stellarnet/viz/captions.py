"""Captions: the line under a figure that says what a reader needs to judge it without
opening ``run.json``: the catalog and the rows trained on, the optimiser and batches, the
seed and how the rates' initial weights were drawn, and which rates went wild.

Every number in a caption has :data:`stellarnet.viz.style.SIGNIFICANT` significant figures.
"""

from __future__ import annotations

import textwrap
from typing import TYPE_CHECKING, Any

from stellarnet.viz.divergence import wild_rates, wild_text

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from stellarnet.results.saved import SavedResults

CAPTION_SIZE = 7
CHARACTERS_PER_INCH = 19
"""Characters of a :data:`CAPTION_SIZE` pt caption line per inch of figure width."""

PROTOCOLS = {
    "same": "every rate starts from the seed-{seed} model's weights",
    "notebook": "each rate starts from its own clone of the seed-{seed} model (notebook protocol)",
}
OPTIMIZERS = {"adam": "Adam", "sgd": "SGD", "rmsprop": "RMSprop"}


def _training(results: SavedResults) -> dict[str, Any]:
    return results.config.get("training", {})


def rows_text(results: SavedResults) -> str:
    """``"2242 training rows, full batch"``, with the held-out rows of a split run and the
    batch size of a mini-batch run."""
    dataset = results.record.get("dataset", {})
    train = dataset.get("rows_train")
    if train is None:
        return ""
    held = [
        f"{dataset[f'rows_{part}']} {part}"
        for part in ("validation", "test")
        if dataset.get(f"rows_{part}")
    ]
    rows = "training row" if train == 1 else "training rows"
    text = f"{train} {rows}" + (f" ({', '.join(held)} held out)" if held else "")
    batch = _training(results).get("batch_size")
    return text + (f", mini-batches of {batch}" if batch else ", full batch")


def init_text(results: SavedResults) -> str:
    """How the initial weights were drawn: the seed, and for a sweep the protocol."""
    seed = results.record.get("seed", results.config.get("seed"))
    if not results.is_sweep:
        return f"seed {seed}"
    protocol = str(_training(results).get("init", "same"))
    return PROTOCOLS.get(protocol, f"init {protocol}, seed {{seed}}").format(seed=seed)


def run_caption(results: SavedResults, wild: bool = False) -> str:
    """``"gaia_dr2_50pc_snapshot: 2242 training rows, full batch; Adam; every rate starts
    from the seed-1453 model's weights"``, and with ``wild`` the rates that diverged or
    exploded."""
    catalog = results.record.get("catalog_provenance", {}).get("name") or results.experiment
    optimizer = str(_training(results).get("optimizer", ""))
    parts = [rows_text(results), OPTIMIZERS.get(optimizer, optimizer), init_text(results)]
    text = f"{catalog}: " + "; ".join(part for part in parts if part)
    if wild:
        named = [wild_text(results, lr) for lr in wild_rates(results)]
        if named:
            text += ". " + "; ".join(named)
    return text


def add_caption(fig: Figure, text: str) -> None:
    """Put ``text`` under the figure, wrapped to its width (as its ``supxlabel``, so that
    constrained layout keeps room for it)."""
    width = max(40, int(fig.get_figwidth() * CHARACTERS_PER_INCH))
    fig.supxlabel(textwrap.fill(text, width), fontsize=CAPTION_SIZE, color="0.25")

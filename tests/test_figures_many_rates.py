"""Figures stay readable at many rates: a colour bar ordered by log LR instead of a legend
beyond six rates, an automatic log loss axis, wild rates clipped and named, residuals as
small multiples, a landscape fitted to the calm rates with a start and an end per path.

Two real sweeps of the HR net on the shipped catalog, 8 and 32 rates from 0.001 to 3 (Adam;
LR 3 spikes to ~790 at epoch 2 while the calm rates stay below their start of 13.8), are
trained once per module; every test reads them back from disk.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from stellarnet.results.analysis import parameter_matrix
from stellarnet.results.saved import load_results
from stellarnet.viz.captions import init_text, rows_text, run_caption
from stellarnet.viz.divergence import EXPLODE_FACTOR, calm_rates, peak, wild_rates
from stellarnet.viz.landscape import compute_landscape, plot_landscape, principal_directions
from stellarnet.viz.prediction import plot_hr, plot_residuals
from stellarnet.viz.style import (
    LR_COLORS,
    MAX_LEGEND_RATES,
    number,
    rate_colors,
    rates_list,
    rates_text,
    wants_log,
)
from stellarnet.viz.training import plot_loss

EIGHT = (0.001, 0.003, 0.01, 0.03, 0.1, 0.3, 1.0, 3.0)
THIRTY_TWO = tuple(float(f"{lr:.3g}") for lr in np.geomspace(0.001, 3.0, 32))
EPOCHS = 6


def _sweep(tmp_path_factory, rates: tuple[float, ...]):
    from stellarnet.runs.config import load_experiment
    from stellarnet.runs.sweep import run_sweep

    config = load_experiment("hr_relation")
    config = dataclasses.replace(
        config, training=dataclasses.replace(config.training, epochs=EPOCHS)
    )
    folder = run_sweep(config, list(rates), tmp_path_factory.mktemp("many")).folder
    return load_results(folder)


@pytest.fixture(scope="module")
def eight(tmp_path_factory):
    return _sweep(tmp_path_factory, EIGHT)


@pytest.fixture(scope="module")
def thirty_two(tmp_path_factory):
    return _sweep(tmp_path_factory, THIRTY_TWO)


def _legends(fig) -> list:
    return [*fig.legends, *(ax.get_legend() for ax in fig.axes if ax.get_legend())]


# --- colours, numbers and the log rule ------------------------------------------------------


def test_few_rates_get_the_distinct_colours_in_sweep_order():
    rates = EIGHT[:MAX_LEGEND_RATES]
    assert list(rate_colors(rates).values()) == list(LR_COLORS[: len(rates)])


def test_many_rates_get_distinct_colours_ordered_by_log_rate():
    from matplotlib.colors import to_hex

    colours = rate_colors(THIRTY_TWO)
    assert len({to_hex(c) for c in colours.values()}) == 32
    # the order of the sweep does not matter, only the rate: a shuffled sweep gets the same
    assert rate_colors(THIRTY_TWO[::-1]) == colours
    # plasma runs from dark blue (low red) to yellow (high red): red grows with the rate
    reds = [colours[lr][0] for lr in sorted(THIRTY_TWO)]
    assert reds == sorted(reds)


@pytest.mark.parametrize(
    ("values", "log"),
    [([13.8, 0.2], False), ([13.8, 0.13], True), ([1.0, np.nan, np.inf, 99.0], False), ([], False)],
)
def test_a_loss_goes_on_a_log_axis_when_it_spans_more_than_two_decades(values, log):
    assert wants_log(values) is log


def test_numbers_in_text_have_four_significant_figures():
    assert [number(v) for v in (13.818, 0.00285979, 790.936, 2.0)] == [
        "13.82",
        "0.00286",
        "790.9",
        "2",
    ]


def test_titles_and_captions_summarise_many_rates():
    assert rates_text((0.1, 0.3)) == "LR=0.1, 0.3"
    assert rates_text(EIGHT) == "8 rates, LR=0.001 to 3"
    assert rates_list((0.1, 0.3), 8) == "LR=0.1, LR=0.3"
    assert rates_list(THIRTY_TWO[:14], 32) == "14 of 32 rates (LR=0.001 to 0.0287)"


# --- which rates are wild ---------------------------------------------------------------------


def test_a_rate_that_spikes_tenfold_is_wild_the_others_calm(eight):
    losses = eight.histories[3.0]["loss"].to_numpy()
    assert losses[2] > EXPLODE_FACTOR * losses[1]  # the spike the sweep really has
    assert peak(eight, 3.0) == (2, pytest.approx(losses[2]))
    assert wild_rates(eight) == [3.0]
    assert calm_rates(eight) == list(EIGHT[:-1])


# --- the loss figure ------------------------------------------------------------------------


def test_loss_of_many_rates_has_a_rate_colour_bar_a_log_axis_and_the_spike_clipped(eight):
    fig = plot_loss(eight)
    ax, bar = fig.axes
    assert _legends(fig) == []
    assert bar.get_ylabel() == "learning rate (8 rates)"
    assert ax.get_yscale() == "log"
    calm = np.concatenate([eight.histories[lr]["loss"].to_numpy()[1:] for lr in EIGHT[:-1]])
    low, high = ax.get_ylim()
    assert low <= calm.min() and calm.max() <= high < eight.histories[3.0]["loss"].max()
    caption = fig.get_supxlabel()
    assert f"LR=3 spiked to {number(peak(eight, 3.0)[1])}" in caption.replace("\n", " ")


def test_loss_of_two_rates_keeps_its_legend_beside_the_axes(eight):
    two = dataclasses.replace(eight, histories={lr: eight.histories[lr] for lr in (0.1, 0.3)})
    fig = plot_loss(two, log_scale=False)
    (legend,) = fig.legends
    assert [t.get_text() for t in legend.texts] == ["LR=0.1", "LR=0.3"]
    assert fig.axes[0].get_yscale() == "linear"  # --log not given and asked linear: kept


# --- residuals --------------------------------------------------------------------------------


def test_residuals_of_eight_rates_are_a_two_by_four_grid_each_titled(eight):
    fig = plot_residuals(eight)
    visible = [ax for ax in fig.axes if ax.axison]
    assert len(fig.axes) == 8
    assert [ax.get_title() for ax in visible] == [f"LR={lr:g}" for lr in EIGHT]
    assert {ax.get_subplotspec().get_geometry()[:2] for ax in visible} == {(2, 4)}
    assert all(any(t.get_text().startswith("RMS ") for t in ax.texts) for ax in visible)


def test_residuals_of_32_rates_share_their_axes_in_a_six_by_six_grid(thirty_two):
    fig = plot_residuals(thirty_two)
    visible = [ax for ax in fig.axes if ax.axison]
    assert len(visible) == 32 and len(fig.axes) == 36
    assert len({ax.get_ylim() for ax in visible}) == 1
    assert "own y scale" not in fig.get_suptitle()


# --- HR ---------------------------------------------------------------------------------------


def test_hr_of_many_rates_greys_the_stars_and_names_the_clipped_curves(eight):
    fig = plot_hr(eight)
    (stars,) = [c for c in fig.axes[0].collections if c.get_gid() == "catalog"]
    assert stars.get_array() is None  # one colour scale only: the rates'
    assert fig.axes[1].get_ylabel() == "learning rate (8 rates)"
    assert "Curves clipped at the axes:" in fig.get_supxlabel().replace("\n", " ")


def test_the_explorers_hr_panel_greys_the_stars_beside_a_rate_colour_bar(eight):
    from stellarnet.viz.explorer import explorer_content

    two = dataclasses.replace(eight, histories={lr: eight.histories[lr] for lr in (0.1, 0.3)})
    assert explorer_content(two, grid=3).panel.points_color is not None  # BP-RP, a legend
    panel = explorer_content(eight, grid=3).panel
    assert panel.points_color is None and panel.color_label == ""


# --- the landscape ----------------------------------------------------------------------------


def test_landscape_is_fitted_to_the_calm_rates_and_projects_the_wild_one(eight):
    landscape = compute_landscape(eight, grid=3)
    assert landscape.excluded == (3.0,)
    sizes = eight.layer_sizes
    calm = [parameter_matrix(eight.histories[lr], sizes) for lr in EIGHT[:-1]]
    directions, _ = principal_directions(np.vstack(calm), calm[0][0])
    np.testing.assert_allclose(landscape.directions, directions)
    wild = parameter_matrix(eight.histories[3.0], sizes)
    np.testing.assert_allclose(landscape.paths[3.0], (wild - landscape.center) @ directions.T)


def test_every_path_has_its_own_start_and_end_marker(eight):
    landscape = compute_landscape(eight, grid=3)
    ax = plot_landscape(eight, landscape).axes[0]
    starts = [line for line in ax.get_lines() if line.get_marker() == "s" and len(line.get_xdata())]
    ends = [line for line in ax.get_lines() if line.get_marker() == "*" and len(line.get_xdata())]
    assert sorted(tuple(s.get_xydata()[0]) for s in starts) == sorted(
        tuple(path[0]) for path in landscape.paths.values()
    )
    assert len(ends) == len(EIGHT)


# --- captions ---------------------------------------------------------------------------------


def test_captions_say_rows_batches_and_the_init_protocol(eight):
    assert rows_text(eight) == "2242 training rows, full batch"
    assert init_text(eight) == "every rate starts from the seed-1453 model's weights"
    record = {**eight.record, "config": {**eight.config}}
    record["config"]["training"] = {**eight.config["training"], "init": "notebook"}
    notebook = dataclasses.replace(eight, record=record)
    assert "own clone of the seed-1453 model (notebook protocol)" in run_caption(notebook)

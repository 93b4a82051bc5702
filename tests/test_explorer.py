"""explorer.html from saved results: the numbers it embeds (history rows, dead units,
gradient sizes, prediction curves, landscape positions), the page (one offline file, within
its size budget), and the commands that write it. What the browser shows is tested in
tests/test_explorer_browser.py."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys

import numpy as np
import pytest

from stellarnet.params import forward
from stellarnet.results.analysis import inactive_units, prediction_curve
from stellarnet.results.saved import load_results
from stellarnet.viz.explorer import EXPLORER_HTML, explorer_html, page_title
from stellarnet.viz.explorer_frames import choose_frames, gradient_blocks, hidden_units, rate_tracks
from stellarnet.viz.explorer_predictions import (
    GRID_POINTS,
    batched_forward,
    curve_panel,
    landscape_positions,
)
from stellarnet.viz.landscape import compute_landscape
from tests.explorer_runs import EPOCHS, explorer_results

MB = 1_000_000


@pytest.fixture(scope="module")
def made(tmp_path_factory):
    return explorer_results(tmp_path_factory)


@pytest.fixture(scope="module")
def sweep(made):
    return load_results(made["sweep"])


def test_every_recorded_epoch_is_a_frame_and_long_runs_are_thinned_evenly(sweep):
    frames = choose_frames(sweep)
    assert list(frames.epochs) == list(range(EPOCHS + 1)) and frames.stride == 1
    assert frames.note() == f"every recorded epoch ({EPOCHS + 1})"
    thinned = choose_frames(sweep, max_frames=4)
    assert list(thinned.epochs) == [0, 4, 8, 10] and thinned.stride == 4
    assert "4 of 11 recorded epochs: every 4th, and the last" in thinned.note()


def test_tracks_hold_the_saved_rows_exactly(sweep):
    frames = choose_frames(sweep)
    tracks = rate_tracks(sweep, frames)
    assert [t.key for t in tracks] == ["0.1", "0.3"]
    assert [t.label for t in tracks] == ["LR=0.1", "LR=0.3"]
    for track in tracks:
        history = sweep.histories[track.lr]
        assert track.present.all()
        for name in history.columns:  # bit for bit, NaN (epoch 0's gradients) included
            np.testing.assert_array_equal(track.columns[name], history[name].to_numpy(float))
        np.testing.assert_array_equal(track.loss_values, history["loss"].to_numpy(float))


def test_dead_units_and_gradient_sizes_are_those_of_the_history(sweep):
    sizes = sweep.layer_sizes
    frames = choose_frames(sweep)
    for track in rate_tracks(sweep, frames):
        history = sweep.histories[track.lr]
        units = hidden_units(sizes)
        for frame, epoch in enumerate(frames.epochs):
            dead = {units[j] for j in np.flatnonzero(track.inactive[frame])}
            assert dead == inactive_units(history, sizes, int(epoch))
        assert track.inactive[:, :3].all()  # the seed's units 1-3 start dead and stay dead
        row = history[history["epoch"] == 5].iloc[0]
        for j, (layer, kind, _) in enumerate(gradient_blocks(sizes)):
            names = [c for c in history.columns if c.startswith(f"{kind}^{layer}_")]
            assert track.gradient_norms[5, j] == pytest.approx(np.linalg.norm(row[names]))
        assert np.isnan(track.gradient_norms[0]).all()  # row 0 holds no gradient


def test_batched_forward_is_the_saved_networks_forward_pass(sweep):
    frames = choose_frames(sweep)
    track = rate_tracks(sweep, frames)[1]
    x = np.linspace(0, 1, 7)[:, None]
    batched = batched_forward(sweep, track, x)
    for frame, epoch in enumerate(frames.epochs):
        expected = forward(sweep.layers(track.lr, int(epoch)), x)[0]
        np.testing.assert_allclose(batched[frame], expected, rtol=1e-12, atol=1e-12)


def test_prediction_curves_are_prediction_curve_at_every_epoch(sweep):
    frames = choose_frames(sweep)
    tracks = rate_tracks(sweep, frames)
    panel = curve_panel(sweep, tracks)
    assert panel.kind == "curve" and panel.swap and panel.x_reversed  # HR: Teff reversed
    assert panel.x_label == "log10 Teff [K]" and panel.y_label.startswith("log10 Lum")
    assert len(panel.inputs) == GRID_POINTS and panel.points_color is not None
    span = sweep.dataset().x[:, 0].astype(float)
    grid = np.linspace(span.min(), span.max(), GRID_POINTS)
    for track in tracks:
        for epoch in (0, 4, EPOCHS):
            feature, predicted = prediction_curve(sweep, track.lr, epoch, inputs=grid)
            np.testing.assert_allclose(panel.inputs, feature, rtol=1e-12)
            drawn = panel.predictions[track.key][epoch]
            np.testing.assert_allclose(drawn, predicted, rtol=1e-6)  # float32 on the page


def test_landscape_positions_are_the_projected_paths(sweep):
    landscape = compute_landscape(sweep, grid=3)
    frames = choose_frames(sweep)
    positions = landscape_positions(sweep, landscape, frames)
    for lr, path in landscape.paths.items():
        np.testing.assert_array_equal(positions[lr], path)


def test_page_is_one_offline_file_within_its_budget(made):
    for folder in made.values():
        page = (folder / EXPLORER_HTML).read_text(encoding="utf-8")
        assert len(page.encode()) < 3 * MB
        assert not re.search(r"<script[^>]+src=|<link[^>]+href=", page)  # nothing fetched
        assert "window.stellarnetExplorer" in page and "bokeh-mathjax" not in page
        assert "Row k of the history holds the loss" in page
        assert "every recorded epoch (11)" in page
    assert "hr_relation: LR=0.1, 0.3, 10 epochs" in (made["sweep"] / EXPLORER_HTML).read_text()


def test_page_title_summarises_many_rates(sweep):
    assert page_title(sweep) == "hr_relation: LR=0.1, 0.3, 10 epochs"
    sweep_of_eight = load_results(sweep.folder)
    sweep_of_eight.histories = {lr: sweep.histories[0.1] for lr in (0.01, 0.02, 0.05, 0.1, 1)}
    assert page_title(sweep_of_eight) == "hr_relation: 5 rates, LR=0.01 to 1, 10 epochs"


def test_explore_command_loads_no_tensorflow(made, tmp_path):
    folder = tmp_path / "run"
    shutil.copytree(made["run"], folder)
    (folder / EXPLORER_HTML).unlink()
    code = (
        "import sys; from stellarnet.cli import main; "
        f"status = main(['explore', {str(folder)!r}]); "
        "print(status, sorted(m for m in sys.modules if m.split('.')[0] in "
        "('tensorflow', 'keras') or m.startswith(('stellarnet.train', 'stellarnet.runs'))))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip().endswith("0 []")
    assert f"wrote {folder / EXPLORER_HTML}" in out.stdout
    assert (folder / EXPLORER_HTML).stat().st_size > 0
    assert not [p for p in folder.iterdir() if p.name.startswith(".")]  # no temporary left


def test_explore_refuses_a_folder_without_results(tmp_path, capsys, restore_cli_logging):
    from stellarnet.cli import main

    assert main(["explore", str(tmp_path)]) == 1
    assert "holds no run.json: not a results folder" in capsys.readouterr().err
    assert not (tmp_path / EXPLORER_HTML).exists()


def test_figures_writes_the_explorer_unless_told_not_to(made, tmp_path, restore_cli_logging):
    from stellarnet.cli import main

    for flags, expected in (((), True), (("--no-explorer",), False)):
        folder = tmp_path / f"run{len(flags)}"
        shutil.copytree(made["run"], folder)
        (folder / EXPLORER_HTML).unlink()
        args = ["-q", "figures", str(folder), "--grid", "3", "--stride", "5", *flags]
        assert main(args) == 0
        assert (folder / "loss.png").is_file()
        assert (folder / EXPLORER_HTML).is_file() == expected


def test_page_embeds_the_landscape_it_is_given(sweep):
    page = explorer_html(sweep, grid=3)
    assert "on a 3x3 grid" in page


def test_same_results_give_the_same_page_bytes(sweep):
    first = explorer_html(sweep, grid=3)
    assert explorer_html(sweep, grid=3) == first  # Bokeh's ids made reproducible

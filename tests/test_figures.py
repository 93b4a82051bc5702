"""Figures, tables and reports are regenerated from saved results alone, with the right data.

Two real runs (LR 0.1 and 0.3, a few epochs, the shipped catalog) are trained once per
session; a sweep folder is assembled from them the way ``stellarnet sweep`` lays it out.
Every test then works from the files on disk only.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from stellarnet.errors import CatalogError, StellarnetError
from stellarnet.results.analysis import dead_units, network_loss, parameter_matrix
from stellarnet.results.finding import find_results
from stellarnet.results.run_catalog import catalog_path
from stellarnet.results.saved import load_results
from stellarnet.viz.figures import (
    plot_hr,
    plot_loss,
    plot_residuals,
    plot_trajectories,
    regenerate,
)
from stellarnet.viz.landscape import compute_landscape, plot_landscape
from stellarnet.viz.network import frame_epochs, network_animation, plot_network
from stellarnet.viz.tables import column_groups, to_latex, to_markdown, write_tables

EPOCHS = 4
RATES = (0.1, 0.3)


def _make_sweep(experiment_dir: Path, rates: tuple[float, ...]) -> Path:
    """``sweep/`` as the sweep command writes it: one long table with a first column ``lr``,
    a run.json with ``learning_rates``, and one run folder per rate."""
    sweep = experiment_dir / "sweep"
    sweep.mkdir()
    frames = []
    for lr in rates:
        run = experiment_dir / f"lr={lr:g}"
        shutil.copytree(run, sweep / run.name)
        frame = pd.read_parquet(run / "history.parquet")
        frame.insert(0, "lr", lr)
        frames.append(frame)
    pd.concat(frames, ignore_index=True).to_parquet(sweep / "history.parquet", index=False)
    record = json.loads((experiment_dir / f"lr={rates[0]:g}" / "run.json").read_text())
    record["learning_rates"] = list(rates)
    (sweep / "run.json").write_text(json.dumps(record))
    return sweep


@pytest.fixture(scope="session")
def experiment_dir(tmp_path_factory) -> Path:
    from stellarnet.runs.config import load_experiment
    from stellarnet.runs.experiment import run_experiment

    results = tmp_path_factory.mktemp("results")
    config = load_experiment("hr_relation").with_overrides(epochs=EPOCHS)
    for lr in RATES:
        run_experiment(config.with_overrides(learning_rate=lr), results)
    experiment = results / "hr_relation"
    _make_sweep(experiment, RATES)
    return experiment


@pytest.fixture()
def run(experiment_dir):
    return load_results(experiment_dir / "lr=0.1")


@pytest.fixture()
def sweep(experiment_dir):
    return load_results(experiment_dir / "sweep")


def _lines(ax, containing: str = ""):
    return [line for line in ax.get_lines() if containing in line.get_label()]


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


# --- reading saved results -------------------------------------------------------------


def test_sweep_folder_is_split_into_one_history_per_rate(experiment_dir, sweep):
    assert sweep.is_sweep and sweep.learning_rates == list(RATES)
    for lr in RATES:
        single = pd.read_parquet(experiment_dir / f"lr={lr:g}" / "history.parquet")
        pd.testing.assert_frame_equal(sweep.histories[lr], single)


def test_find_results_lists_a_sweeps_runs_before_the_sweep(experiment_dir):
    folders = find_results("hr_relation", experiment_dir.parent)
    assert folders.index(experiment_dir / "sweep" / "lr=0.1") < folders.index(
        experiment_dir / "sweep"
    )
    assert set(folders) >= {experiment_dir / "lr=0.1", experiment_dir / "lr=0.3"}
    with pytest.raises(StellarnetError, match="no results folder"):
        find_results("no_such_experiment", experiment_dir.parent)


def test_rebuilt_dataset_reproduces_the_recorded_losses(run):
    """The catalog, the saved transforms and params.forward give back every recorded loss:
    the loss of epoch k is that of the weights saved in row k - 1."""
    history = run.histories[0.1]
    for k in range(1, EPOCHS + 1):
        loss = network_loss(run, run.layers(0.1, epoch=k - 1))
        assert loss == pytest.approx(history.loc[k, "loss"], rel=1e-5)


def test_dead_units_are_those_with_zero_gradient(run):
    history = run.histories[0.1]
    dead = dead_units(history, run.layer_sizes)
    trained = history[history["epoch"] >= 1]
    for unit in range(1, 7):
        zero = (trained[[f"g^1_{unit}", f"gb^1_{unit}"]] == 0).all(axis=1)
        assert ((1, unit) in dead) == bool(zero.iloc[-1])
        if dead.get((1, unit)) == 1:
            assert zero.all()
    assert dead, "the shipped data at seed 1453 starts with dead ReLUs"


# --- catalog checks ----------------------------------------------------------------------


def test_changed_catalog_is_refused(run, tmp_path):
    copy = tmp_path / "catalog.csv"
    copy.write_bytes(catalog_path(run.record).read_bytes() + b"\n")
    changed = load_results(run.folder, catalog=copy)
    with pytest.raises(CatalogError, match=r"has changed since the run .*sha256"):
        plot_hr(changed)


def test_missing_catalog_is_refused(run, tmp_path):
    record = json.loads((run.folder / "run.json").read_text())
    record["catalog_path"] = str(tmp_path / "gone.csv")
    folder = tmp_path / "run"
    shutil.copytree(run.folder, folder)
    (folder / "run.json").write_text(json.dumps(record))
    with pytest.raises(CatalogError, match="gone.csv does not exist"):
        regenerate(folder, grid=3)


def test_an_identical_copy_of_the_catalog_is_accepted(run, tmp_path):
    copy = tmp_path / "moved.csv"
    shutil.copyfile(catalog_path(run.record), copy)
    assert len(load_results(run.folder, catalog=copy).catalog()) == 2242


# --- figures -----------------------------------------------------------------------------


def test_loss_curve_is_the_saved_loss(sweep):
    fig = plot_loss(sweep, log_scale=True)
    ax = fig.axes[0]
    assert ax.get_title() == "Training Loss vs Epochs (LR=0.1, 0.3)"
    assert ax.get_yscale() == "log"
    for lr in RATES:
        (line,) = _lines(ax, f"LR={lr:g}")
        trained = sweep.histories[lr].query("epoch >= 1")
        np.testing.assert_array_equal(line.get_xdata(), trained["epoch"])
        np.testing.assert_array_equal(line.get_ydata(), trained["loss"])


def test_hr_curve_runs_over_the_de_normalised_log_luminosity(sweep):
    fig = plot_hr(sweep)
    ax = fig.axes[0]
    left, right = ax.get_xlim()
    assert left > right, "Teff axis reversed"
    log_lum = np.log10(sweep.catalog()["Lum"].to_numpy())
    curves = _lines(ax, "network")
    assert [c.get_label().split(",")[1].strip() for c in curves] == ["LR=0.1", "LR=0.3"]
    for curve in curves:
        assert curve.get_ydata()[0] == pytest.approx(log_lum.min())
        assert curve.get_ydata()[-1] == pytest.approx(log_lum.max())
    (points,) = [c for c in ax.collections if c.get_gid() == "catalog"]
    np.testing.assert_allclose(points.get_offsets()[:, 0], np.log10(sweep.catalog()["Teff"]))
    np.testing.assert_allclose(points.get_offsets()[:, 1], log_lum)
    np.testing.assert_allclose(points.get_array(), sweep.catalog()["BP-RP"])


def test_hr_curve_at_a_chosen_epoch_matches_the_recorded_output(run):
    """The curve is evaluated on a grid, the history's ``output`` is the mean over the stars:
    interpolating the curve at the stars reproduces it."""
    history = run.histories[0.1]
    fig = plot_hr(run, epoch=1)
    (curve,) = _lines(fig.axes[0], "network")
    log_l = np.log10(run.catalog()["Lum"].to_numpy())
    predicted = np.interp(log_l, curve.get_ydata(), curve.get_xdata())
    assert predicted.mean() == pytest.approx(history.loc[2, "output"], rel=1e-3)
    assert "after epoch 1" in curve.get_label()


def test_residuals_are_prediction_minus_truth(sweep):
    fig = plot_residuals(sweep)
    for ax, lr in zip(fig.axes, RATES, strict=True):
        offsets = ax.collections[0].get_offsets()
        assert len(offsets) == 2242
        mse = float(np.mean(np.asarray(offsets[:, 1]) ** 2))
        assert mse == pytest.approx(network_loss(sweep, sweep.layers(lr)), rel=1e-9)
        assert f"LR={lr:g}" in ax.get_title()


def test_parameter_and_gradient_trajectories(run):
    history = run.histories[0.1]
    dead = dead_units(history, run.layer_sizes)
    fig = plot_trajectories(run, 0.1, "parameters")
    weights, biases_out = fig.axes[0], fig.axes[3]
    assert weights.get_title() == "layer 1 weights"
    for unit in range(1, 7):
        (line,) = _lines(weights, f"$w^{{1}}_{{{unit}}}$")
        np.testing.assert_array_equal(line.get_ydata(), history[f"w^1_{unit}"])
        assert ("(dead)" in line.get_label()) == (dead.get((1, unit)) == 1)
    assert "dead" not in _lines(biases_out, "b^{2}")[0].get_label()
    grads = plot_trajectories(run, 0.1, "gradients")
    (line,) = _lines(grads.axes[0], "$g^{1}_{4}$")
    np.testing.assert_array_equal(line.get_xdata(), np.arange(1, EPOCHS + 1))
    np.testing.assert_array_equal(line.get_ydata(), history["g^1_4"].iloc[1:])


def test_network_diagram_shows_weights_and_greys_dead_units(run):
    from matplotlib.colors import to_rgba

    history = run.histories[0.1]
    fig = plot_network(run, epoch=2)
    ax = fig.axes[0]
    assert "epoch 2" in ax.get_title()
    labels = {t.get_text() for t in ax.texts}
    assert {"$w^{1}_{1}$", "$w^{2}_{6}$", "$b^{1}_{3}$"} <= labels
    edges = ax.get_lines()
    assert len(edges) == 12
    row = history.loc[2]
    weights = np.array([row[f"w^{layer}_{i}"] for layer in (1, 2) for i in range(1, 7)])
    widths = np.array([line.get_linewidth() for line in edges])
    assert np.argmax(widths) == np.argmax(np.abs(weights))
    dead = [
        unit for (layer, unit), first in dead_units(history, run.layer_sizes).items() if first == 1
    ]
    for unit in dead:
        assert to_rgba(edges[unit - 1].get_color())[:3] == to_rgba("0.75")[:3]
    with pytest.raises(StellarnetError, match="epoch 99 is not in the history"):
        plot_network(run, epoch=99)


def test_animation_has_one_frame_per_epoch_or_stride(run):
    from PIL import Image

    assert frame_epochs(list(range(11)), 3) == [0, 3, 6, 9, 10]
    path = network_animation(run, stride=2, name="anim.gif")
    first = path.read_bytes()
    with Image.open(path) as gif:
        assert gif.format == "GIF"
        assert gif.n_frames == len(frame_epochs(list(range(EPOCHS + 1)), 2))
    assert network_animation(run, stride=2, name="anim.gif").read_bytes() == first
    path.unlink()


def test_figures_are_byte_for_byte_reproducible(sweep, tmp_path):
    from stellarnet.viz.style import save_figure, style

    digests = []
    for _ in range(2):
        with style():
            png = save_figure(plot_loss(sweep), tmp_path, "loss")
        digests.append((_digest(png), _digest(png.with_suffix(".pdf"))))
    assert digests[0] == digests[1]
    assert b"CreationDate" not in png.with_suffix(".pdf").read_bytes()


def test_landscape_plane_and_paths(sweep):
    landscape = compute_landscape(sweep, grid=5)
    d = landscape.directions
    np.testing.assert_allclose(d @ d.T, np.eye(2), atol=1e-12)
    for lr in RATES:
        vectors = parameter_matrix(sweep.histories[lr], sweep.layer_sizes)
        np.testing.assert_allclose(landscape.paths[lr], (vectors - landscape.center) @ d.T)
        assert landscape.paths[lr][0][0] < 0, "training runs left to right"
    np.testing.assert_allclose(landscape.paths[0.1][-1], 0.0, atol=1e-12)  # plane through it
    assert landscape.losses.shape == (5, 5)
    # the grid's middle point is the centre itself when the paths are symmetric about it;
    # check one grid value directly instead
    from stellarnet.params import layers_from_row, parameter_names

    names = parameter_names(sweep.layer_sizes, "w") + parameter_names(sweep.layer_sizes, "b")
    point = landscape.center + landscape.alphas[1] * d[0] + landscape.betas[3] * d[1]
    layers = layers_from_row(dict(zip(names, point, strict=True)), sweep.layer_sizes)
    assert landscape.losses[3, 1] == pytest.approx(network_loss(sweep, layers))
    fig = plot_landscape(sweep, landscape)
    (path,) = _lines(fig.axes[0], "LR=0.3")
    np.testing.assert_allclose(path.get_xdata(), landscape.paths[0.3][:, 0])


# --- tables, report, command ---------------------------------------------------------------


def test_column_groups_fit_the_page():
    columns = [
        "epoch",
        "output",
        "loss",
        *[f"w^1_{i}" for i in range(1, 7)],
        *[f"b^1_{i}" for i in range(1, 7)],
        *[f"w^2_{i}" for i in range(1, 7)],
        "b^2_1",
    ]
    groups = column_groups(columns, max_columns=8)
    assert groups[0] == ["output", "loss", *[f"w^1_{i}" for i in range(1, 7)]]
    assert groups[-1] == [*[f"w^2_{i}" for i in range(1, 7)], "b^2_1"]
    assert all(len(g) <= 8 for g in groups)
    assert [c for g in groups for c in g] == columns[1:]


def test_table_exports_are_rounded_and_deterministic(run, tmp_path):
    history = run.histories[0.1]
    first = [p.read_bytes() for p in write_tables(run, digits=3, folder=tmp_path)]
    second = [p.read_bytes() for p in write_tables(run, digits=3, folder=tmp_path)]
    assert first == second
    markdown, latex = to_markdown(history, 3), to_latex(history, 3, caption="hr_relation, LR=0.1")
    assert markdown.encode() == first[0] and latex.encode() == first[1]
    assert f"| 1 | {history.loc[1, 'output']:.3f} | {history.loc[1, 'loss']:.3f} |" in markdown
    assert "w^1\\_1" in markdown
    assert "\\toprule" in latex and "$w^{1}_{1}$" in latex and "${g_b}^{1}_{1}$" in latex
    gradient_row_0 = next(
        line
        for line in latex.splitlines()
        if line.startswith("0 & ") and line.count("&") > 0 and line.split(" & ")[1].strip() == ""
    )
    assert gradient_row_0


def test_command_regenerates_every_figure_table_and_report(experiment_dir, tmp_path):
    from stellarnet.cli import main

    folder = tmp_path / "lr=0.3"
    shutil.copytree(experiment_dir / "lr=0.3", folder)
    args = ["-q", "figures", str(folder), "--grid", "4", "--digits", "3", "--stride", "2"]
    assert main(args) == 0
    expected = {
        f"{stem}.{ext}"
        for stem in ("loss", "hr", "residuals", "landscape", "parameters", "gradients", "network")
        for ext in ("png", "pdf")
    }
    expected |= {"network.gif", "history.md", "history.tex", "report.md", "report.html"}
    assert expected <= {p.name for p in folder.iterdir()}
    report = (folder / "report.md").read_text()
    record = json.loads((folder / "run.json").read_text())
    assert record["catalog_sha256"] in report
    assert f"seeded with {record['config']['seed']}" in report  # the one seed, top level
    assert "![hr](hr.png)" in report and "| 0.3 | 4 |" in report
    html = (folder / "report.html").read_text()
    assert '<img src="landscape.png"' in html


def test_sweep_report_links_each_runs_figures(experiment_dir, tmp_path):
    from stellarnet.viz.figures import trajectories_figure
    from stellarnet.viz.report import write_report

    folder = tmp_path / "sweep"
    shutil.copytree(experiment_dir / "sweep", folder)
    trajectories_figure(folder / "lr=0.1", "parameters")
    md, html = write_report(load_results(folder))
    text = md.read_text()
    assert "| 0.1 | 4 |" in text and "| 0.3 | 4 |" in text
    assert "(lr=0.1/parameters.png)" in text and "lr=0.3/parameters.png" not in text
    assert '<img src="lr=0.1/parameters.png"' in html.read_text()


@pytest.fixture(scope="module")
def galaxy_sweep(tmp_path_factory) -> Path:
    from stellarnet.runs.config import load_experiment
    from stellarnet.runs.sweep import run_sweep

    config = load_experiment("galaxy_sizes").with_overrides(epochs=2)
    return run_sweep(config, [0.1, 0.6], tmp_path_factory.mktemp("galaxy")).folder


def test_untransformed_single_feature_runs_get_the_fit_figures(galaxy_sweep):
    """The galaxy sizes (no transforms): `figures` adds the data-and-fit and loss-vs-step plots,
    and draws residuals but no HR diagram (its columns are radii, not Lum and Teff)."""
    folder = galaxy_sweep
    names = {path.name for path in regenerate(folder, grid=5)}
    assert {"fit.png", "loss_steps.png", "residuals.png"} <= names
    assert "hr.png" not in names and not (folder / "hr.png").exists()
    assert (folder / "fit.pdf").is_file() and (folder / "loss_steps.pdf").is_file()


def test_galaxy_figures_share_the_style_labels_and_units(galaxy_sweep):
    """Fit and loss-vs-step: lines labelled LR=..., in the sweep's colours, radii in arcsec,
    the loss in arcsec^2; the curves are the saved networks in catalog units."""
    from stellarnet.viz.galaxy import plot_fit, plot_loss_steps
    from stellarnet.viz.style import lr_color

    sweep = load_results(galaxy_sweep)
    ax = plot_fit(sweep).axes[0]
    assert ax.get_xlabel() == "HST_reff [$\\mathrm{arcsec}$]"
    assert ax.get_ylabel() == "JWST_reff_size [$\\mathrm{arcsec}$]"
    for position, lr in enumerate((0.1, 0.6)):
        (line,) = _lines(ax, f"LR={lr:g},\nafter 2 steps")
        assert line.get_color() == lr_color(position)
        x = np.asarray(line.get_xdata())
        expected = sweep.predict(sweep.layers(lr), x[:, None])[:, 0]
        np.testing.assert_allclose(line.get_ydata(), expected)
    (initial,) = _lines(ax, "initial network")
    assert initial.get_xdata()[0] == 0.0
    ax = plot_loss_steps(sweep).axes[0]
    assert ax.get_yscale() == "linear"  # the automatic rule: 2 steps span less than 100x
    assert ax.get_ylabel().endswith("[$\\mathrm{arcsec^{2}}$]")
    assert [line.get_label() for line in ax.get_lines()] == ["LR=0.1", "LR=0.6"]


def test_galaxy_figures_are_byte_for_byte_reproducible(galaxy_sweep):
    from stellarnet.viz.galaxy import fit_figure, loss_steps_figure

    digests = []
    for _ in range(2):
        paths = [fit_figure(galaxy_sweep), loss_steps_figure(galaxy_sweep)]
        digests.append([_digest(p) for path in paths for p in (path, path.with_suffix(".pdf"))])
    assert digests[0] == digests[1]


def test_rebuilt_dataset_takes_the_runs_rows_only(galaxy_sweep, tmp_path):
    """A run on `[dataset] rows` (the one-galaxy variant) is rebuilt from those rows, in that
    order, unshuffled; a catalog giving another row count than run.json's is refused."""
    folder = tmp_path / "run"
    shutil.copytree(galaxy_sweep / "lr=0.1", folder)
    record = json.loads((folder / "run.json").read_text())
    record["config"]["dataset"] |= {"rows": [3, 0], "shuffle": False}
    record["dataset"] |= {"rows_kept": 2, "rows_train": 2}
    del record["dataset"]["rows_sha256"]  # the digest of the rows the run had, not these
    (folder / "run.json").write_text(json.dumps(record))
    results = load_results(folder)
    catalog = results.catalog()
    np.testing.assert_array_equal(
        results.dataset().x[:, 0], catalog["HST_reff"].iloc[[3, 0]].astype(np.float32)
    )
    record["dataset"]["rows_kept"] = 71
    (folder / "run.json").write_text(json.dumps(record))
    with pytest.raises(CatalogError, match="rows_kept: recorded 71, rebuilt 2"):
        load_results(folder).dataset()


def test_figures_load_neither_tensorflow_nor_the_training_layers():
    """viz and results sit below train and runs: drawing figures must not start TensorFlow."""
    import subprocess
    import sys

    code = (
        "import sys, stellarnet.viz.figures, stellarnet.viz.galaxy; "
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('tensorflow', 'keras') "
        "or m.startswith(('stellarnet.train', 'stellarnet.runs'))))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"

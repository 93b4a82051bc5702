"""`stellarnet figures` draws only what is stale, in parallel, and its GIF is drawn by
updating one figure (issue 19, item 3). No timings here: benchmarks/bench_figures.py."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from stellarnet.viz.freshness import MANIFEST

EPOCHS = 6
FAST = ["--grid", "5", "--no-explorer", "--jobs", "1"]


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> Path:
    """results/hr_relation/ with one short run, not drawn."""
    from stellarnet.runs.config import load_experiment
    from stellarnet.runs.experiment import run_experiment

    results = tmp_path_factory.mktemp("results")
    config = load_experiment("hr_relation").with_overrides(epochs=EPOCHS, learning_rate=0.3)
    run_experiment(config, results)
    return results / "hr_relation"


@pytest.fixture
def run(trained, tmp_path) -> Path:
    """A copy of the run folder (its own figures.json to spoil)."""
    copy = tmp_path / "results" / "hr_relation"
    shutil.copytree(trained, copy)
    return copy / "lr=0.3"


def _figures(capsys, folder: Path, *options: str) -> str:
    from stellarnet.cli import main

    assert main(["-q", "figures", str(folder), *FAST, *options]) == 0
    return capsys.readouterr().out


def _digests(folder: Path) -> dict[str, str]:
    return {
        path.name: hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(folder.iterdir())
        if path.is_file() and path.name != MANIFEST
    }


def _drawn(out: str, folder: Path) -> bool:
    return out.startswith(f"{folder}/: loss.png")


def _up_to_date(out: str, folder: Path) -> bool:
    files = json.loads((folder / MANIFEST).read_text())["files"]
    return out.strip() == f"{folder}: up to date ({len(files)} files)"


def test_a_fresh_folder_is_skipped_and_left_as_it_was(run, capsys, restore_cli_logging):
    assert _drawn(_figures(capsys, run), run)
    record = json.loads((run / MANIFEST).read_text())
    assert {"loss.png", "loss.pdf", "network.gif", "report.md"} <= set(record["files"])
    assert set(record["inputs"]) == {"run.json", "history.parquet", "history.csv"}
    before = {path.name: path.stat().st_mtime_ns for path in run.iterdir()}
    assert _up_to_date(_figures(capsys, run), run)
    assert {path.name: path.stat().st_mtime_ns for path in run.iterdir()} == before


@pytest.mark.parametrize("name", ["history.parquet", "history.csv", "run.json"])
def test_touching_an_input_redraws(run, name, capsys, restore_cli_logging):
    _figures(capsys, run)
    stat = (run / name).stat()
    os.utime(run / name, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))
    assert _drawn(_figures(capsys, run), run)
    assert _up_to_date(_figures(capsys, run), run)


@pytest.mark.parametrize(
    "options", [["--digits", "3"], ["--log"], ["--stride", "2"], ["--epoch", "3"], ["--grid", "7"]]
)
def test_other_options_redraw(run, options, capsys, restore_cli_logging):
    _figures(capsys, run)
    assert _drawn(_figures(capsys, run, *options), run)
    assert _up_to_date(_figures(capsys, run, *options), run)
    assert _drawn(_figures(capsys, run), run), "back to the defaults: drawn again"


def test_a_missing_figure_another_version_or_a_bad_manifest_redraws(
    run, capsys, restore_cli_logging
):
    _figures(capsys, run)
    (run / "hr.pdf").unlink()
    assert _drawn(_figures(capsys, run), run)
    assert (run / "hr.pdf").is_file()
    record = json.loads((run / MANIFEST).read_text())
    (run / MANIFEST).write_text(json.dumps({**record, "stellarnet": "0.0.1"}))
    assert _drawn(_figures(capsys, run), run)
    (run / MANIFEST).write_text("{not json")
    assert _drawn(_figures(capsys, run), run)


def test_force_redraws_to_the_same_bytes(run, capsys, restore_cli_logging):
    _figures(capsys, run)
    before = _digests(run)
    assert _drawn(_figures(capsys, run, "--force"), run)
    assert _digests(run) == before


def test_no_gif_leaves_no_gif(run, capsys, restore_cli_logging):
    _figures(capsys, run, "--no-gif")
    assert not (run / "network.gif").exists() and (run / "network.png").is_file()
    assert _up_to_date(_figures(capsys, run, "--no-gif"), run)
    assert _drawn(_figures(capsys, run), run), "asked for the GIF: drawn"
    assert (run / "network.gif").is_file()
    assert _up_to_date(_figures(capsys, run, "--no-gif"), run), "the drawing had all it asks"
    _figures(capsys, run, "--no-gif", "--force")
    assert not (run / "network.gif").exists(), "a GIF of an older drawing is removed"


def test_a_sweeps_runs_are_the_folders_inside_it():
    from stellarnet.viz.drawing import inner_folders

    sweep = Path("r/hr/sweep-lr=0.1,0.3")
    folders = [sweep / "lr=0.1", sweep / "lr=0.3", Path("r/hr/lr=0.3"), sweep]
    inside = inner_folders(folders)
    assert inside[sweep] == folders[:2]
    assert all(inside[folder] == [] for folder in folders[:3])


def test_folders_drawn_in_parallel_are_those_drawn_one_by_one(trained, tmp_path, capsys):
    """Two runs and a one-rate sweep with its run, drawn by two worker processes and by one:
    the same bytes, and the sweep's report (drawn beside its run) shows the run's figures."""
    from stellarnet.cli import main
    from stellarnet.runs.config import load_experiment
    from stellarnet.runs.sweep import run_sweep

    one, two = tmp_path / "one", tmp_path / "two"
    shutil.copytree(trained, one / "hr_relation")
    config = load_experiment("hr_relation").with_overrides(epochs=EPOCHS)
    sweep = run_sweep(config, [0.3], one).folder
    shutil.copytree(trained / "lr=0.3", one / "hr_relation" / "lr=0.3,seed=7")
    shutil.copytree(one, two)
    base = ["-q", "figures", "hr_relation", "--grid", "5", "--no-explorer", "--no-gif"]
    assert main([*base, "--results", str(one), "--jobs", "1"]) == 0
    assert main([*base, "--results", str(two), "--jobs", "2"]) == 0
    capsys.readouterr()
    for folder in (sweep / "lr=0.3", one / "hr_relation" / "lr=0.3,seed=7"):
        twin = two / folder.relative_to(one)
        assert _digests(folder) == _digests(twin) and "report.md" in _digests(folder)
    # the sweep, drawn beside its run in parallel: its report still shows the run's figures
    report = (two / sweep.relative_to(one) / "report.md").read_text()
    assert report == (sweep / "report.md").read_text() and "lr=0.3/network.png" in report


def test_the_gif_has_a_frame_per_epoch_and_they_change(run):
    from PIL import Image

    from stellarnet.viz.network import frame_epochs, network_animation

    path = network_animation(run, stride=2, name="anim.gif")
    with Image.open(path) as gif:
        assert gif.n_frames == len(frame_epochs(list(range(EPOCHS + 1)), 2)) == 4
        gif.seek(0)
        first = np.asarray(gif.convert("RGB"))
        gif.seek(gif.n_frames - 1)
        last = np.asarray(gif.convert("RGB"))
        assert gif.info["duration"] == 250 and gif.info["loop"] == 0
    assert first.shape == last.shape == (440, 720, 3)
    assert (first != last).any(axis=2).mean() > 0.001, "edges and nodes change colour"


def test_gif_frames_look_like_the_figure_redrawn_whole(run, monkeypatch):
    """A frame drawn over the still background equals the whole figure drawn afresh, up to
    the labels' compositing (2/255), before the palette."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from PIL import Image

    import stellarnet.viz.network as network

    frames: dict[str, list[np.ndarray]] = {}

    def keep(kind):
        def save(images, path, fps):
            frames[kind] = [np.asarray(image.convert("RGB"), dtype=int) for image in images]
            return path

        return save

    def whole(fig, moving, epochs, update, above=()):
        for epoch in epochs:
            update(epoch)
            canvas = FigureCanvasAgg(fig)
            canvas.draw()
            yield Image.fromarray(np.asarray(canvas.buffer_rgba()).copy())

    monkeypatch.setattr(network, "save_gif", keep("blit"))
    network.network_animation(run, stride=3)
    monkeypatch.setattr(network, "save_gif", keep("whole"))
    monkeypatch.setattr(network, "blit_frames", whole)
    network.network_animation(run, stride=3)
    assert len(frames["blit"]) == len(frames["whole"]) == 3
    for ours, theirs in zip(frames["blit"], frames["whole"], strict=True):
        assert np.abs(ours - theirs).max() <= 2


def _pdf_streams(pdf: bytes) -> tuple[list[bytes], list[bytes]]:
    """A PDF's streams, inflated: its embedded TrueType font programs, and the others."""
    import re
    import zlib

    fonts, others = [], []
    for raw in re.findall(rb"stream\n(.*?)\nendstream", pdf, flags=re.DOTALL):
        data = zlib.decompress(raw)
        (fonts if data.startswith(b"\x00\x01\x00\x00") else others).append(data)
    return fonts, others


def test_pdfs_with_the_font_cache_differ_from_matplotlibs_only_in_unused_font_tables(
    run, monkeypatch
):
    """Against matplotlib's own cut (the cache uninstalled): every stream but the font
    programs byte for byte the same, each embedded glyph's outline and advance the same, only
    the tables a PDF reader uses kept; a repeated (cached) cut gives the bytes of a new one."""
    from io import BytesIO

    from fontTools.ttLib import TTFont
    from matplotlib.backends import _backend_pdf_ps

    from stellarnet.results.saved import load_results
    from stellarnet.viz import pdf_fonts
    from stellarnet.viz.figures import plot_network, plot_trajectories
    from stellarnet.viz.style import PDF_METADATA, style

    for name in ("get_glyphs_subset", "font_as_file"):  # as they were, after the test
        monkeypatch.setattr(_backend_pdf_ps, name, getattr(_backend_pdf_ps, name))
    monkeypatch.setattr(pdf_fonts, "_cache", {})
    monkeypatch.setattr(pdf_fonts, "_replaced", dict(pdf_fonts._replaced))
    results = load_results(run)

    def pdfs() -> list[bytes]:
        out = []
        for fig in figures:
            buffer = BytesIO()
            fig.savefig(buffer, format="pdf", metadata=PDF_METADATA)
            out.append(buffer.getvalue())
        return out

    with style():
        figures = [plot_trajectories(results, 0.3, "parameters"), plot_network(results)]
        for fig in figures:
            fig.draw_without_rendering()  # lay out once: later saves draw the same
            fig.set_layout_engine(None)
        pdf_fonts.uninstall()
        assert not getattr(_backend_pdf_ps.get_glyphs_subset, "stellarnet_cache", False)
        matplotlibs = pdfs()
        assert pdf_fonts.install() and pdf_fonts.install()
        first, again = pdfs(), pdfs()
    assert first == again and pdf_fonts._cache
    for ours, theirs in zip(first, matplotlibs, strict=True):
        our_fonts, our_streams = _pdf_streams(ours)
        their_fonts, their_streams = _pdf_streams(theirs)
        assert our_streams == their_streams  # pages, glyph maps, widths, ToUnicode
        assert len(ours) < len(theirs) and len(our_fonts) == len(their_fonts) >= 1
        for mine, its in zip(our_fonts, their_fonts, strict=True):
            font, reference = TTFont(BytesIO(mine)), TTFont(BytesIO(its))
            assert set(font.keys()) == set(reference.keys()) & pdf_fonts.PDF_TABLES
            for glyph in font.getGlyphOrder():
                assert font["hmtx"][glyph] == reference["hmtx"][glyph]
                ours_glyph = font["glyf"][glyph].compile(font["glyf"])
                assert ours_glyph == reference["glyf"][glyph].compile(reference["glyf"])
    assert any("GSUB" in TTFont(BytesIO(f)) for f in _pdf_streams(matplotlibs[0])[0])


def test_figures_with_the_mathtext_cache_are_those_without(run, monkeypatch):
    """Labels parsed once per process: the same PNG and PDF bytes as matplotlib's own parse,
    also under other mathtext rcParams; the parses kept across figures (each save makes a
    new renderer), and none of them in a forked child, where matplotlib's FreeType fonts
    cannot be used."""
    from io import BytesIO

    import matplotlib as mpl
    from matplotlib.mathtext import MathTextParser

    from stellarnet.results.saved import load_results
    from stellarnet.viz import mathtext_cache
    from stellarnet.viz.figures import plot_network
    from stellarnet.viz.style import PDF_METADATA, PNG_METADATA, style

    monkeypatch.setattr(MathTextParser, "_parse_cached", MathTextParser._parse_cached)
    monkeypatch.setattr(mathtext_cache, "_cache", {})
    monkeypatch.setattr(mathtext_cache, "_replaced", list(mathtext_cache._replaced))
    results = load_results(run)

    def saved(default: str = "it") -> list[bytes]:
        out = []
        with mpl.rc_context({"mathtext.default": default}):
            for which, metadata in (("png", PNG_METADATA), ("pdf", PDF_METADATA)):
                buffer = BytesIO()
                fig.savefig(buffer, format=which, metadata=metadata)
                out.append(buffer.getvalue())
        return out

    with style():
        fig = plot_network(results)  # every parameter's name in mathtext
        fig.draw_without_rendering()
        fig.set_layout_engine(None)
        mathtext_cache.uninstall()
        assert not getattr(MathTextParser._parse_cached, "stellarnet_cache", False)
        matplotlibs, upright = saved(), saved("regular")
        assert mathtext_cache.install() and mathtext_cache.install()
        first = saved()
        parses = len(mathtext_cache._cache)
        again = saved()
        assert parses > 10 and len(mathtext_cache._cache) == parses, "again: none parsed"
        upright_again = saved("regular")
    assert first == matplotlibs and again == matplotlibs and upright_again == upright
    assert upright != matplotlibs, "the rcParam changes the drawing: a cache ignoring it fails"
    read, write = os.pipe()
    child = os.fork()
    if child == 0:  # pragma: no cover (the child reports through the pipe)
        os.write(write, str(len(mathtext_cache._cache)).encode())
        os._exit(0)
    os.close(write)
    os.waitpid(child, 0)
    with os.fdopen(read, "rb") as pipe:
        assert pipe.read() == b"0"


@pytest.mark.parametrize("failure", ["problem", "bug"])
def test_a_part_failing_in_a_worker_leaves_its_folder_as_it_was_and_the_others_drawn(
    trained, tmp_path, monkeypatch, failure
):
    """Two folders drawn by two processes; one's figures part fails in its worker: that
    folder keeps its files (its staging folder removed), the other is drawn; a problem
    (StellarnetError) is that folder's outcome, a bug is raised once the other is drawn."""
    from stellarnet.errors import StellarnetError
    from stellarnet.viz import drawing, figures
    from stellarnet.viz.freshness import MANIFEST, FigureOptions

    good, bad = tmp_path / "lr=0.3", tmp_path / "lr=0.3,seed=7"
    shutil.copytree(trained / "lr=0.3", good)
    shutil.copytree(trained / "lr=0.3", bad)
    before = _digests(bad)
    plot_hr = figures.plot_hr

    def failing(results, *args, **kwargs):  # the workers, forked after this, inherit it
        if results.folder == bad:
            raise StellarnetError("no HR today") if failure == "problem" else RuntimeError("oops")
        return plot_hr(results, *args, **kwargs)

    monkeypatch.setattr(figures, "plot_hr", failing)
    draw = lambda: list(drawing.draw_folders([good, bad], FigureOptions(grid=5), jobs=2))  # noqa: E731
    if failure == "problem":
        outcomes = {outcome.folder: outcome for outcome in draw()}
        assert outcomes[bad].error == "no HR today" and not outcomes[bad].written
        assert outcomes[good].error is None and outcomes[good].written
    else:
        with pytest.raises(RuntimeError, match="oops"):
            draw()
    assert (good / MANIFEST).is_file() and (good / "hr.png").is_file()
    assert _digests(bad) == before
    assert not list(tmp_path.rglob(".figures-*")), "no staging folder left behind"


def test_a_worker_draws_with_one_blas_thread(monkeypatch):
    """Each drawing process uses one BLAS thread: the other processes have the other cores."""
    from threadpoolctl import threadpool_info

    from stellarnet.viz import drawing, figures

    def threads(staged, part):
        return [str(max(pool["num_threads"] for pool in threadpool_info()))]

    assert threadpool_info(), "numpy's BLAS is loaded (else there is nothing to limit)"
    monkeypatch.setattr(figures, "draw_part", threads)
    assert drawing._draw_part(None, "figures") == (["1"], None)


def test_landscape_grid_losses_are_the_one_network_losses(run):
    from stellarnet.params import layers_from_row, parameter_names
    from stellarnet.results.analysis import network_loss, network_loss_batch
    from stellarnet.results.saved import load_results

    results = load_results(run)
    sizes = results.layer_sizes
    names = parameter_names(sizes, "w") + parameter_names(sizes, "b")
    vectors = np.random.default_rng(0).normal(size=(40, len(names)))
    rows = [dict(zip(names, vector, strict=True)) for vector in vectors]
    one = [network_loss(results, layers_from_row(row, sizes)) for row in rows]
    np.testing.assert_allclose(network_loss_batch(results, vectors), one, rtol=1e-12)


def test_the_figures_command_runs_without_tensorflow(run):
    code = (
        "import sys; from stellarnet.cli import main; "
        f"status = main(['-q', 'figures', {str(run)!r}, '--grid', '5', '--jobs', '1']); "
        "print(status, sorted(m for m in sys.modules if m.split('.')[0] in "
        "('tensorflow', 'keras') or m.startswith(('stellarnet.train', 'stellarnet.runs'))))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip().splitlines()[-1] == "0 []"
    assert (run / "network.gif").is_file() and (run / "explorer.html").is_file()

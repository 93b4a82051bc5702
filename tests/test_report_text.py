"""What the reader reads (issue 19, item 5): one number format in text, reports that say which
rows a run trained on and how, and galaxy figures labelled in the units of their data.

Tiny real runs (2 to 10 epochs) of the built-in configs are trained and read back:

* numbers in text (the CLI's summaries, the report's prose and summary table) have 4
  significant figures (:func:`stellarnet.viz.style.number`); tables keep their own format;
* the report's provenance says full batch or mini-batches, shuffled or in the catalog's order
  (``shuffle = false``), the ``[dataset] rows`` of the catalog, the sweep's init protocol with
  its seed, and for an early-stopped run which epoch's weights the figures draw and which the
  model kept; the summary note says whose weights a recorded loss belongs to;
* galaxy figures (no transforms: radii in arcsec) never say log10, their legends stand beside
  the axes and a caption names the rows;
* ``run.json`` records the rows' digest (``rows_sha256``) and the catalog's row count, and a
  rebuild is checked against the digest.
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest

from stellarnet.cli import main, report_run
from stellarnet.errors import CatalogError
from stellarnet.results.run_catalog import ROWS_SHA256, rows_sha256
from stellarnet.results.saved import SavedResults, load_results
from stellarnet.runs.config import load_experiment
from stellarnet.runs.experiment import load_data, run_experiment
from stellarnet.runs.sweep import run_sweep
from stellarnet.viz.provenance import provenance_items, summary_note
from stellarnet.viz.report import render_markdown, report_blocks
from stellarnet.viz.style import number

DECIMAL = re.compile(r"(?<![\w.])-?(\d+\.\d*|\.\d+)(e[-+]?\d+)?(?![\w.])")
"""A decimal number in text (``0.000178178``, ``3.00597e-07``); not a version (``3.11.7``),
a count or a hash."""


def significant_figures(token: str) -> int:
    """Significant figures of a decimal written without trailing-zero ambiguity: its digits
    without the sign, exponent, point and leading zeros (``0.0001782`` -> 4)."""
    mantissa = token.lstrip("-").split("e")[0].replace(".", "")
    return len(mantissa.lstrip("0"))


def long_numbers(text: str) -> list[str]:
    """The decimals in ``text`` with more than 4 significant figures."""
    return [m.group(0) for m in DECIMAL.finditer(text) if significant_figures(m.group(0)) > 4]


def test_long_numbers_finds_what_the_old_format_wrote() -> None:
    old = "loss 13.818 -> 0.751596 (0.000178178, 3.00597e-07); python 3.11.7, 2242 rows, 4.564 s"
    assert long_numbers(old) == ["13.818", "0.751596", "0.000178178", "3.00597e-07"]
    assert long_numbers("loss 13.82 -> 0.7516 (0.0001782, 3.006e-07); 1.16 and 0.0949") == []


@pytest.fixture(scope="module")
def single_galaxy(tmp_path_factory) -> SavedResults:
    """galaxy_sizes_single as built in: one galaxy (``rows = [0]``, ``shuffle = false``),
    full batch, 10 steps."""
    run = run_experiment(load_experiment("galaxy_sizes_single"), tmp_path_factory.mktemp("one"))
    return load_results(run.folder)


@pytest.fixture(scope="module")
def mini_batch(tmp_path_factory) -> SavedResults:
    """bolometric_4band for 2 epochs: mini-batches of 64, a test split."""
    config = load_experiment("bolometric_4band").with_overrides(epochs=2)
    return load_results(run_experiment(config, tmp_path_factory.mktemp("batches")).folder)


@pytest.fixture(scope="module")
def early_stopped(tmp_path_factory) -> SavedResults:
    """photoz_sdss (mini-batches, validation split, early stopping) with patience 1, so that
    it stops within 30 epochs."""
    config = load_experiment("photoz_sdss").with_overrides(epochs=30, patience=1)
    return load_results(run_experiment(config, tmp_path_factory.mktemp("stopped")).folder)


@pytest.fixture(scope="module")
def sweeps(tmp_path_factory) -> dict[str, SavedResults]:
    """galaxy_sizes swept over LR 0.1 and 0.6 for 2 steps, under each init protocol."""
    root = tmp_path_factory.mktemp("sweeps")
    config = load_experiment("galaxy_sizes").with_overrides(epochs=2)
    found = {}
    for protocol in ("same", "notebook"):
        one = config.with_overrides(init=protocol)
        found[protocol] = load_results(run_sweep(one, [0.1, 0.6], root).folder)
    return found


def item(results: SavedResults, start: str) -> str:
    """The provenance item that starts with ``start``."""
    (found,) = [text for text in provenance_items(results) if text.startswith(start)]
    return found


# --- one number format ----------------------------------------------------------------------


def test_run_summary_has_four_significant_figures(single_galaxy, capsys) -> None:
    report_run(single_galaxy.folder, single_galaxy.record)
    first = capsys.readouterr().out.splitlines()[0]
    assert first.startswith("galaxy_sizes_single (lr=0.1, 10 epochs): loss 0.0001782 -> 3.006e-0")
    assert long_numbers(first) == []


def test_sweep_summary_has_four_significant_figures(tmp_path, capsys, restore_cli_logging):
    args = ["-q", "sweep", "galaxy_sizes", "--lr", "0.1", "0.6", "--epochs", "2"]
    assert main([*args, "--results", str(tmp_path)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[1] == "  lr=0.1: loss 0.02102 -> 0.01715 (falls every epoch)"
    assert lines[2].startswith("  lr=0.6: loss 0.02102 -> 0.00")
    assert long_numbers("\n".join(lines)) == []


@pytest.mark.parametrize("fixture", ["single_galaxy", "mini_batch", "early_stopped"])
def test_report_prose_has_four_significant_figures(fixture, request) -> None:
    results = request.getfixturevalue(fixture)
    text = render_markdown(report_blocks(results))
    prose = text.split("## History tables")[0]  # the history tables round to 4 decimals
    assert "| learning rate |" in prose and long_numbers(prose) == []
    (history,) = results.histories.values()
    assert f"| {number(float(history['loss'].iloc[-1]))} |" in prose  # last recorded loss


# --- rows, batches and initial weights in the report -----------------------------------------


def test_full_batch_run_in_the_catalogs_order(single_galaxy) -> None:
    training = item(single_galaxy, "Training:")
    assert "full batch" in training and "mini-batch" not in training
    data = item(single_galaxy, "Data:")
    assert "catalog rows [0] of 71 ([dataset] rows), 1 kept" in data
    assert data.endswith("in the catalog's order (shuffle = false)")
    assert "shuffled" not in data
    assert item(single_galaxy, "Initial weights:") == "Initial weights: seed 1"
    note = summary_note(single_galaxy)
    assert "Full batch: row k's loss is that of row k-1's weights" in note
    assert "val_loss" not in note and "Mini-batches" not in note


def test_mini_batch_run(mini_batch) -> None:
    training = item(mini_batch, "Training:")
    assert "mini-batches of 64 (rows reshuffled every epoch" in training
    assert "full batch" not in training
    assert "held out" in training  # the test rows
    assert item(mini_batch, "Data:").endswith(f"shuffled with seed {mini_batch.config['seed']}")
    note = summary_note(mini_batch)
    assert "Mini-batches: row k's loss is the mean over epoch k's batches" in note
    assert "Full batch" not in note
    convention = item(mini_batch, "History rows:")
    assert "means over epoch k's mini-batches" in convention


def test_early_stopped_run_says_which_weights(early_stopped) -> None:
    stopping = early_stopped.record["early_stopping"]
    best, stopped = stopping["best_epoch"], stopping["stopped_epoch"]
    assert stopped is not None and best < stopped  # the fixture stops early, by design
    weights = item(early_stopped, "Weights:")
    assert f"are those of epoch {stopped} (the last history row)" in weights
    assert f"the model kept epoch {best}'s weights" in weights
    assert "val_loss of row k is the validation rows' loss with row k's weights" in summary_note(
        early_stopped
    )


def test_plain_run_says_nothing_of_kept_weights(single_galaxy) -> None:
    assert not [text for text in provenance_items(single_galaxy) if text.startswith("Weights:")]


@pytest.mark.parametrize(
    ("protocol", "sentence"),
    [
        (
            "same",
            "Initial weights (`--init same`): every rate starts from the seed-1 model's weights",
        ),
        (
            "notebook",
            "Initial weights (`--init notebook`): each rate starts from its own clone of the "
            "seed-1 model (notebook protocol)",
        ),
    ],
)
def test_sweep_report_states_the_init_protocol(sweeps, protocol, sentence) -> None:
    results = sweeps[protocol]
    assert item(results, "Initial weights") == sentence
    training = item(results, "Training:")
    assert "on 71 training rows, full batch; learning rates 0.1, 0.6" in training
    assert sentence in render_markdown(report_blocks(results))


# --- galaxy figures -------------------------------------------------------------------------


def axis_labels(fig) -> list[str]:
    return [label for ax in fig.axes for label in (ax.get_xlabel(), ax.get_ylabel()) if label]


@pytest.mark.parametrize("fixture", ["single_galaxy", "sweep"])
def test_galaxy_figures_are_labelled_in_catalog_units(fixture, request, sweeps) -> None:
    from stellarnet.viz.galaxy import plot_fit, plot_loss_steps
    from stellarnet.viz.prediction import plot_residuals
    from stellarnet.viz.style import style

    results = sweeps["same"] if fixture == "sweep" else request.getfixturevalue(fixture)
    assert not results.features[0].transforms and not results.target.transforms
    with style():
        fit, steps, residuals = (
            plot(results) for plot in (plot_fit, plot_loss_steps, plot_residuals)
        )
    for fig in (fit, steps, residuals):
        labels = axis_labels(fig) + [fig.get_supylabel() if hasattr(fig, "get_supylabel") else ""]
        assert labels and not [label for label in labels if "log" in label.lower()], labels
    fit_ax = fit.axes[0]
    assert fit_ax.get_xlabel() == r"HST_reff [$\mathrm{arcsec}$]"
    assert fit_ax.get_ylabel() == r"JWST_reff_size [$\mathrm{arcsec}$]"
    assert fit_ax.get_legend() is None and len(fit.legends) == 1  # beside the axes
    rows = len(results.part("train")[1])
    for fig in (fit, steps):
        caption = fig._supxlabel.get_text().replace("\n", " ")
        assert f"{rows} training row" in caption and "SGD" in caption
    assert r"[$\mathrm{arcsec^{2}}$]" in fit._supxlabel.get_text().replace("\n", " ")
    assert long_numbers(" ".join(t.get_text() for t in fit.legends[0].get_texts())) == []


def test_loss_steps_axis_follows_the_log_rule(single_galaxy, sweeps) -> None:
    from stellarnet.viz.galaxy import plot_loss_steps
    from stellarnet.viz.style import style, wants_log

    for results in (single_galaxy, sweeps["same"]):
        losses = [h.loc[h["epoch"] >= 1, "loss"] for h in results.histories.values()]
        expected = "log" if wants_log([v for loss in losses for v in loss]) else "linear"
        with style():
            ax = plot_loss_steps(results).axes[0]
        assert ax.get_yscale() == expected
    one = single_galaxy.histories[0.1]["loss"]
    assert one.iloc[1] > 100 * one.iloc[-1]  # so both scales are tested: 1.8e-4 to 3e-7 ...
    assert not wants_log(sweeps["same"].histories[0.1]["loss"])  # ... and 0.021 to 0.017


# --- run.json: the rows' digest -------------------------------------------------------------


def test_rows_digest_is_recorded_and_checked(single_galaxy, sweeps, tmp_path) -> None:
    config = load_experiment("galaxy_sizes_single")
    _, dataset = load_data(config)
    recorded = single_galaxy.record["dataset"]
    assert recorded[ROWS_SHA256] == rows_sha256(dataset)
    assert recorded["catalog_rows"] == 71 and recorded["rows_kept"] == 1
    for results in sweeps.values():
        for record_path in results.folder.glob("**/run.json"):
            assert ROWS_SHA256 in json.loads(record_path.read_text())["dataset"], record_path
    edited = Path(shutil.copytree(single_galaxy.folder, tmp_path / "edited"))
    record = json.loads((edited / "run.json").read_text())
    record["dataset"][ROWS_SHA256] = "0" * 64
    (edited / "run.json").write_text(json.dumps(record))
    with pytest.raises(CatalogError, match="rows_sha256: recorded 0000"):
        load_results(edited).dataset()
    assert load_results(single_galaxy.folder).dataset().rows == 1  # the untouched run rebuilds

"""`stellarnet figures` on damaged and on diverged results (issue 20).

Damaged: a results folder whose history, run.json or catalog was tampered with is refused
whole, with one message per problem naming the file and the fix, and every file in it stays
byte for byte as it was; other folders under the same target are still drawn and the command
exits 1 listing the folders it skipped.

Diverged: run.json records ``"status": "diverged"`` with ``diverged_at`` (a run) or
``diverged_rates`` (a sweep), and the history ends with the first non-finite row. The fixtures
are made from real runs: rows cut, a non-finite row appended.

Two real runs (LR 0.1 and 0.3, 4 epochs, the shipped catalog) are trained once, a sweep
folder is assembled from them as ``stellarnet sweep`` lays it out, and every folder is drawn
once; each test works on a copy.
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from stellarnet.errors import ResultsDamaged, StellarnetError
from stellarnet.results.run_catalog import catalog_path
from stellarnet.results.saved import load_results
from stellarnet.results.status import Divergence
from stellarnet.viz.figures import plot_hr, plot_loss, plot_residuals, regenerate

EPOCHS = 4
RATES = (0.1, 0.3)
GRID = "3"


def _make_sweep(experiment: Path) -> Path:
    sweep = experiment / "sweep"
    sweep.mkdir()
    frames = []
    for lr in RATES:
        run = experiment / f"lr={lr:g}"
        shutil.copytree(run, sweep / run.name)
        frame = pd.read_parquet(run / "history.parquet")
        frame.insert(0, "lr", lr)
        frames.append(frame)
    long = pd.concat(frames, ignore_index=True)
    long.to_parquet(sweep / "history.parquet", index=False)
    long.to_csv(sweep / "history.csv", index=False)
    record = json.loads((experiment / "lr=0.1" / "run.json").read_text())
    record["learning_rates"] = list(RATES)
    (sweep / "run.json").write_text(json.dumps(record))
    return sweep


@pytest.fixture(scope="module")
def drawn(tmp_path_factory) -> Path:
    """results/hr_relation/ with lr=0.1/, lr=0.3/ and sweep/, every figure drawn."""
    from stellarnet.runs.config import load_experiment
    from stellarnet.runs.experiment import run_experiment

    results = tmp_path_factory.mktemp("results")
    config = load_experiment("hr_relation").with_overrides(epochs=EPOCHS)
    for lr in RATES:
        run_experiment(config.with_overrides(learning_rate=lr), results)
    experiment = results / "hr_relation"
    sweep = _make_sweep(experiment)
    for folder in (sweep / "lr=0.1", sweep / "lr=0.3", experiment / "lr=0.1"):
        regenerate(folder, grid=3, stride=4, explorer=True)  # as `stellarnet figures` draws
    regenerate(experiment / "lr=0.3", grid=3, stride=4, explorer=True)
    regenerate(sweep, grid=3, explorer=True)
    return experiment


@pytest.fixture
def experiment(drawn, tmp_path) -> Path:
    copy = tmp_path / "results" / "hr_relation"
    shutil.copytree(drawn, copy)
    return copy


def _digests(folder: Path) -> dict[str, str]:
    return {
        str(path.relative_to(folder)): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(folder.rglob("*"))
        if path.is_file()
    }


def _figures(capsys, *args: str) -> tuple[int, str, str]:
    from stellarnet.cli import main

    target, *options = args
    status = main(["-q", "figures", target, "--grid", GRID, "--stride", "4", *options])
    out, err = capsys.readouterr()
    return status, out, err


def _history(folder: Path) -> pd.DataFrame:
    return pd.read_parquet(folder / "history.parquet")


def _save(folder: Path, frame: pd.DataFrame) -> None:
    frame.to_parquet(folder / "history.parquet", index=False)
    frame.to_csv(folder / "history.csv", index=False)


def _edit_record(folder: Path, edit: Callable[[dict], object]) -> None:
    record = json.loads((folder / "run.json").read_text())
    edit(record)
    (folder / "run.json").write_text(json.dumps(record))


# --- damaged folders: refused whole, nothing rewritten ---------------------------------------


def _garbage_parquet(folder: Path) -> None:
    (folder / "history.parquet").write_bytes(b"PAR1 this is not a parquet file PAR1")


def _truncated_parquet(folder: Path) -> None:
    data = (folder / "history.parquet").read_bytes()
    (folder / "history.parquet").write_bytes(data[: len(data) // 2])


def _drop_column(name: str) -> Callable[[Path], None]:
    return lambda folder: _save(folder, _history(folder).drop(columns=name))


def _set_value(column: str, epoch: int, value: float) -> Callable[[Path], None]:
    def tamper(folder: Path) -> None:
        frame = _history(folder)
        frame.loc[frame["epoch"] == epoch, column] = value
        _save(folder, frame)

    return tamper


def _drop_epoch(epoch: int) -> Callable[[Path], None]:
    return lambda folder: _save(folder, _history(folder).query(f"epoch != {epoch}"))


def _text_in_loss(folder: Path) -> None:
    (folder / "history.parquet").unlink()
    frame = pd.read_csv(folder / "history.csv")
    frame["loss"] = frame["loss"].astype(object)
    frame.loc[2, "loss"] = "oops"
    frame.to_csv(folder / "history.csv", index=False)


def _no_history(folder: Path) -> None:
    (folder / "history.parquet").unlink()
    (folder / "history.csv").unlink()


def _record(edit: Callable[[dict], object]) -> Callable[[Path], None]:
    return lambda folder: _edit_record(folder, edit)


def _write_run_json(text: str) -> Callable[[Path], None]:
    return lambda folder: (folder / "run.json").write_text(text)


def _gone_catalog(folder: Path) -> None:
    _edit_record(folder, lambda r: r.update(catalog_path=str(folder.parent / "gone.csv")))


RUN_TAMPERING = {
    "garbage parquet": (
        _garbage_parquet,
        [],
        r"history\.parquet cannot be used:\n  - it cannot be read as a Parquet table .*move "
        r"history\.parquet away",
    ),
    "truncated parquet": (_truncated_parquet, [], "cannot be read as a Parquet table"),
    "missing weight column": (
        _drop_column("w^1_3"),
        [],
        r"lacks the column\(s\) w\^1_3 that the history of a 1-6-1 net holds",
    ),
    "missing loss column": (_drop_column("loss"), [], r"lacks the column\(s\) loss"),
    "missing gradient column": (_drop_column("gb^2_1"), [], r"lacks the column\(s\) gb\^2_1"),
    "NaN loss": (
        _set_value("loss", 2, np.nan),
        [],
        r"values that are not finite \(loss at epoch 2\) although run\.json records the run "
        r"as complete",
    ),
    "NaN weight": (_set_value("w^1_4", 3, np.nan), [], r"w\^1_4 at epoch 3"),
    "infinite bias": (_set_value("b^2_1", 1, np.inf), [], r"b\^2_1 at epoch 1"),
    "row removed": (_drop_epoch(2), [], r"its epochs are 0, 1, 3, 4, not 0, 1, 2, \.\.\."),
    "last row cut": (_drop_epoch(EPOCHS), [], r"run\.json records .*rows were cut or changed"),
    "text in a number column": (
        _text_in_loss,
        [],
        r"history\.csv cannot be used:\n  - column\(s\) loss hold values that are not numbers",
    ),
    "history gone": (_no_history, [], r"has run\.json but no history\.parquet or history\.csv"),
    "epoch out of range": (lambda folder: None, ["--epoch", "99"], r"--epoch 99 is not a "),
    "grid too small": (lambda folder: None, ["--grid", "2"], "needs at least 3 points"),
    "run.json missing": (
        lambda folder: (folder / "run.json").unlink(),
        [],
        r"holds history\.parquet but no run\.json.*Restore run\.json",
    ),
    "run.json not JSON": (
        _write_run_json('{"config": {"model": '),
        [],
        r"run\.json cannot be used:\n  - it is not valid JSON",
    ),
    "run.json a list": (_write_run_json("[1, 2]"), [], "it holds a JSON list, not an object"),
    "run.json without hidden": (
        _record(lambda r: r["config"]["model"].pop("hidden")),
        [],
        r"config\.model\.hidden must be a list of layer widths, not None",
    ),
    "run.json without config": (_record(lambda r: r.pop("config")), [], "config is missing"),
    "run.json bad learning rate": (
        _record(lambda r: r["config"]["training"].update(learning_rate="fast")),
        [],
        r"config\.training\.learning_rate must be a number > 0, not 'fast'",
    ),
    "run.json unknown status": (
        _record(lambda r: r.update(status="finished")),
        [],
        r"status 'finished' is not one of \['complete', 'diverged'\]",
    ),
    "run.json diverged without diverged_at": (
        _record(lambda r: r.update(status="diverged")),
        [],
        'status is "diverged" but there is no diverged_at',
    ),
    "run.json says diverged, history complete": (
        _record(lambda r: r.update(status="diverged", diverged_at={"epoch": 4, "loss": "nan"})),
        [],
        r"run\.json says it diverged at epoch 4 \(loss nan\), but that row holds finite values",
    ),
    "run.json for another net": (
        _record(lambda r: r["config"]["model"].update(hidden=[5])),
        [],
        r"parameter column\(s\) w\^1_6, b\^1_6, w\^2_6 that a 1-5-1 net",
    ),
    "catalog gone": (_gone_catalog, [], r"gone\.csv does not exist.*pass --catalog"),
    "catalog with another sha256": (
        _record(lambda r: r.update(catalog_sha256="0" * 64)),
        [],
        r"has changed since the run \(sha256 .* != 000000000000\.\.\. recorded",
    ),
}


@pytest.mark.parametrize("case", list(RUN_TAMPERING))
def test_a_tampered_run_is_refused_whole_and_left_as_it_was(
    case, experiment, capsys, restore_cli_logging
):
    tamper, args, message = RUN_TAMPERING[case]
    folder = experiment / "lr=0.3"
    tamper(folder)
    before = _digests(folder)
    status, out, err = _figures(capsys, str(folder), *args)
    assert status == 1
    assert f"skipped {folder}/ (its files unchanged)" in err
    assert len(re.findall(message, err, flags=re.S)) == 1, err
    assert "Traceback" not in err and out == ""
    assert _digests(folder) == before, "a refused folder must keep every file as it was"


def test_another_catalog_given_with_catalog_is_refused(
    experiment, tmp_path, capsys, restore_cli_logging
):
    folder = experiment / "lr=0.1"
    copy = tmp_path / "catalog.csv"
    copy.write_bytes(
        catalog_path(json.loads((folder / "run.json").read_text())).read_bytes() + b"1"
    )
    before = _digests(folder)
    status, _, err = _figures(capsys, str(folder), "--catalog", str(copy))
    assert status == 1 and "has changed since the run" in err and str(copy) in err
    assert _digests(folder) == before


SWEEP_TAMPERING = {
    "rate listed without rows": (
        lambda folder: _save(folder, _history(folder).query("lr != 0.3")),
        r"run\.json lists the rate\(s\) 0\.3, which have no rows",
    ),
    "rows of an unlisted rate": (
        _record(lambda r: r.update(learning_rates=[0.1])),
        r"it has rows of rate\(s\) 0\.3 that run\.json does not list",
    ),
    "learning_rates not numbers": (
        _record(lambda r: r.update(learning_rates=["a"])),
        r"learning_rates must be a list of distinct numbers > 0",
    ),
    "NaN in one rate": (
        _set_value("output", 3, np.nan),
        r"LR=0\.1: values that are not finite \(output at epoch 3\).*LR=0\.3: values",
    ),
    "lr column missing": (_drop_column("lr"), r"lacks the column\(s\) lr that"),
    "diverged rate not listed": (
        _record(lambda r: r.update(diverged_rates={"0.7": {"epoch": 2, "loss": "inf"}})),
        r"diverged_rates names the rate 0\.7, which learning_rates does not list",
    ),
    "diverged_rates malformed": (
        _record(lambda r: r.update(diverged_rates={"0.3": {"epoch": -1, "loss": "huge"}})),
        r"diverged_rates\['0\.3'\]\.epoch must be an epoch number >= 0",
    ),
}


@pytest.mark.parametrize("case", list(SWEEP_TAMPERING))
def test_a_tampered_sweep_is_refused_whole_and_left_as_it_was(case, experiment):
    tamper, message = SWEEP_TAMPERING[case]
    sweep = experiment / "sweep"
    tamper(sweep)
    before = _digests(sweep)
    with pytest.raises(ResultsDamaged) as caught:
        regenerate(sweep, grid=3)
    assert re.search(message, str(caught.value), flags=re.S), caught.value
    assert str(sweep) in str(caught.value) and "Restore " in str(caught.value)
    assert _digests(sweep) == before


def test_the_other_folders_are_drawn_and_the_skipped_ones_listed(
    experiment, capsys, restore_cli_logging
):
    sweep = experiment / "sweep"
    SWEEP_TAMPERING["rate listed without rows"][0](sweep)
    _garbage_parquet(experiment / "lr=0.3")
    before = {path: _digests(path) for path in (sweep, experiment / "lr=0.3")}
    (experiment / "lr=0.1" / "hr.png").unlink()
    status, out, err = _figures(
        capsys, "hr_relation", "--results", str(experiment.parent), "--force"
    )  # --force: the untouched folders too (else they are up to date, not drawn)
    assert status == 1
    assert err.count("cannot be used:") == 2 and "Traceback" not in err
    assert err.endswith(f"error: 2 folder(s) skipped: {experiment}/lr=0.3/, {sweep}/\n")
    assert all(_digests(path) == digests for path, digests in before.items())
    assert (experiment / "lr=0.1" / "hr.png").is_file()
    drawn = [line.split(":")[0] for line in out.splitlines()]
    assert drawn == [f"{sweep}/lr=0.1/", f"{sweep}/lr=0.3/", f"{experiment}/lr=0.1/"]


def test_a_run_folder_that_lost_its_run_json_is_reported_not_ignored(
    experiment, capsys, restore_cli_logging
):
    (experiment / "sweep" / "lr=0.3" / "run.json").unlink()
    status, out, err = _figures(capsys, "hr_relation", "--results", str(experiment.parent))
    assert status == 1
    assert "sweep/lr=0.3 holds history.parquet but no run.json" in err
    assert f"{experiment}/sweep/:" in out  # the sweep itself is intact and drawn


def test_every_problem_of_a_folder_is_named_once(experiment):
    folder = experiment / "lr=0.1"
    _edit_record(
        folder,
        lambda r: (
            r["config"]["training"].update(loss="l1", epochs=-1),
            r["config"]["model"].update(activation="swish"),
        ),
    )
    with pytest.raises(ResultsDamaged) as caught:
        load_results(folder)
    lines = [line for line in str(caught.value).splitlines() if line.startswith("  - ")]
    assert len(lines) == 3
    assert str(folder / "run.json") in str(caught.value)


def test_a_drawing_that_fails_halfway_leaves_the_folder_untouched(experiment, monkeypatch):
    """All or nothing also for a failure no check foresaw: figures are drawn into a staging
    folder and moved in only when every one was drawn."""
    import stellarnet.viz.figures as figures

    folder = experiment / "lr=0.1"
    before = _digests(folder)

    def broken(*args, **kwargs):
        raise StellarnetError("the HR figure broke")

    monkeypatch.setattr(figures, "plot_hr", broken)
    with pytest.raises(StellarnetError, match="HR figure broke"):
        regenerate(folder, grid=3, stride=4, log_scale=True)  # loss would differ: log axis
    assert _digests(folder) == before
    assert not list(folder.glob(".figures-*"))


def test_a_good_folder_is_redrawn_to_the_same_bytes(experiment, capsys, restore_cli_logging):
    folder = experiment / "lr=0.3"
    before = _digests(folder)
    status, out, _ = _figures(capsys, str(folder), "--force")  # else: up to date, not drawn
    assert status == 0 and out.startswith(f"{folder}/: loss.png")
    assert _digests(folder) == before
    assert not list(folder.glob(".figures-*"))


# --- diverged runs ---------------------------------------------------------------------------


def _diverge(frame: pd.DataFrame, epoch: int, loss: float, blow_up: float | None) -> pd.DataFrame:
    """Rows up to ``epoch - 1``, a copy of the last with loss ``loss`` (and NaN output) as
    epoch ``epoch``; the loss of ``epoch - 1`` set to ``blow_up`` if given."""
    kept = frame[frame["epoch"] < epoch].copy()
    if blow_up is not None:
        kept.loc[kept.index[-1], "loss"] = blow_up
    last = kept.iloc[[-1]].copy()
    last["epoch"] = epoch
    last["loss"] = loss
    last["output"] = np.nan
    return pd.concat([kept, last], ignore_index=True)


@pytest.fixture
def diverged_run(experiment) -> Path:
    """lr=0.3 diverged at epoch 3 (loss NaN): rows 0-2 kept, a NaN row appended."""
    folder = experiment / "lr=0.3"
    _save(folder, _diverge(_history(folder), 3, np.nan, None))
    _edit_record(
        folder,
        lambda r: r.update(status="diverged", diverged_at={"epoch": 3, "loss": "nan"}),
    )
    return folder


@pytest.fixture
def diverged_sweep(experiment) -> Path:
    """The sweep with LR 0.3 diverged at epoch 3 (loss inf) after a loss of 1e30."""
    sweep = experiment / "sweep"
    long = _history(sweep)
    bad = _diverge(long[long["lr"] == 0.3].drop(columns="lr"), 3, np.inf, 1e30)
    bad.insert(0, "lr", 0.3)
    _save(sweep, pd.concat([long[long["lr"] == 0.1], bad], ignore_index=True))
    _edit_record(
        sweep,
        lambda r: r.update(status="diverged", diverged_rates={"0.3": {"epoch": 3, "loss": "inf"}}),
    )
    return sweep


def test_a_diverged_run_reads_back_with_its_status(diverged_run, diverged_sweep):
    run = load_results(diverged_run)
    assert run.status == "diverged"
    assert run.divergence(0.3).epoch == 3 and np.isnan(run.divergence(0.3).loss)
    assert run.weights_epoch(0.3) == 2 and list(run.finite_history(0.3)["epoch"]) == [0, 1, 2]
    assert run.weights_epoch(0.3, 4) == 2, "an epoch beyond the divergence: last finite row"
    sweep = load_results(diverged_sweep)
    assert sweep.divergence(0.1) is None and sweep.divergence(0.3) == Divergence(3, np.inf)
    assert sweep.weights_epoch(0.1) == EPOCHS


def test_older_run_json_without_status_is_complete(experiment):
    _edit_record(experiment / "lr=0.1", lambda r: r.pop("status", None))
    assert load_results(experiment / "lr=0.1").status == "complete"


def test_loss_curve_of_a_diverged_run_ends_with_a_marker(diverged_run):
    fig = plot_loss(load_results(diverged_run))
    ax = fig.axes[0]
    (line,) = [line for line in ax.get_lines() if line.get_label().startswith("LR=0.3")]
    assert line.get_label() == "LR=0.3, diverged at epoch 3"
    np.testing.assert_array_equal(line.get_xdata(), [1, 2])
    crosses = [line for line in ax.get_lines() if line.get_marker() == "X"]
    assert [list(c.get_xdata()) for c in crosses] == [[3], []]  # the mark, the legend entry
    (legend,) = fig.legends  # beside the axes, where it covers no curve
    assert "loss no longer finite (diverged)" in [t.get_text() for t in legend.texts]


def test_a_diverging_rate_does_not_flatten_the_others(diverged_sweep):
    sweep = load_results(diverged_sweep)
    ax = plot_loss(sweep).axes[0]
    good = sweep.histories[0.1].query("epoch >= 1")["loss"]
    low, high = ax.get_ylim()
    assert low <= good.min() and good.max() <= high < 2 * good.max()
    (bad,) = [line for line in ax.get_lines() if line.get_label().startswith("LR=0.3")]
    assert bad.get_label() == "LR=0.3, diverged at epoch 3 (off scale from epoch 2)"
    off_scale = [line for line in ax.get_lines() if line.get_marker() == "^"]
    assert [list(line.get_xdata()) for line in off_scale] == [[2]]
    log_ax = plot_loss(sweep, log_scale=True).axes[0]
    assert log_ax.get_yscale() == "log" and log_ax.get_ylim()[1] < 1e30


def test_a_complete_sweep_gets_no_divergence_marks(experiment):
    ax = plot_loss(load_results(experiment / "sweep")).axes[0]
    assert [line.get_label() for line in ax.get_lines()] == ["LR=0.1", "LR=0.3"]
    assert all(line.get_marker() not in ("X", "^") for line in ax.get_lines())


def test_one_diverged_run_whose_loss_spans_decades_goes_on_a_log_scale(diverged_run):
    frame = _history(diverged_run)
    frame.loc[frame["epoch"] == 2, "loss"] = 1e20
    _save(diverged_run, frame)
    ax = plot_loss(load_results(diverged_run)).axes[0]
    assert ax.get_yscale() == "log"


def test_prediction_figures_use_the_last_finite_weights_and_say_so(diverged_sweep):
    sweep = load_results(diverged_sweep)
    curves = [line for line in plot_hr(sweep).axes[0].get_lines() if "network" in line.get_label()]
    labels = [curve.get_label() for curve in curves]
    assert labels[0].startswith("network, LR=0.1, after epoch 4 (loss ")
    assert labels[1].startswith(
        "network, LR=0.3, diverged at epoch 3:\n   last finite weights, after epoch 2 (loss "
    )
    x = np.asarray(curves[1].get_ydata())
    expected = sweep.predict(sweep.layers(0.3, 2), np.linspace(0, 1, len(x))[:, None])[:, 0]
    np.testing.assert_allclose(curves[1].get_xdata(), expected, rtol=1e-12)
    fig = plot_residuals(sweep)
    assert len(fig.axes) == 1 and fig.axes[0].get_title() == "LR=0.1"
    assert fig.get_suptitle().startswith("Residuals of the network's prediction, after epoch 4")
    assert "not drawn, diverged: LR=0.3 (epoch 3)" in fig.get_suptitle()


def test_landscape_network_and_report_of_a_diverged_run(diverged_run, capsys, restore_cli_logging):
    from stellarnet.viz.landscape import compute_landscape
    from stellarnet.viz.network import plot_network

    run = load_results(diverged_run)
    assert compute_landscape(run, grid=3).paths[0.3].shape == (3, 2)  # epochs 0 to 2
    title = plot_network(run).axes[0].get_title()
    assert "at epoch 2 (LR=0.3, diverged at epoch 3: last finite weights)" in title
    status, out, err = _figures(capsys, str(diverged_run))
    assert status == 0, err
    report = (diverged_run / "report.md").read_text()
    assert "- Status: diverged. LR=0.3 diverged at epoch 3 (loss nan)." in report
    assert "| 0.3 | 3 (diverged) | " in report and "(last finite: epoch 2)" in report
    table = (diverged_run / "history.md").read_text()
    assert "| 3 | nan | nan |" in table and "| 0 |" in table


def test_a_diverged_sweep_is_drawn_whole(diverged_sweep, capsys, restore_cli_logging):
    status, out, err = _figures(capsys, str(diverged_sweep), "--epoch", "4")
    assert status == 0, err
    assert {"loss.png", "hr.png", "residuals.png", "landscape.png"} <= {
        p.name for p in diverged_sweep.iterdir()
    }
    report = (diverged_sweep / "report.md").read_text()
    assert "the residuals and the loss landscape leave it out" in report


def test_an_epoch_beyond_a_single_diverged_runs_training_is_refused(
    diverged_run, capsys, restore_cli_logging
):
    before = _digests(diverged_run)
    status, _, err = _figures(capsys, str(diverged_run), "--epoch", "9")
    assert status == 1 and "--epoch 9 is not a recorded epoch" in err
    assert _digests(diverged_run) == before


DIVERGED_TAMPERING = {
    "history goes on past the divergence": (
        lambda folder: _edit_record(folder, lambda r: r["diverged_at"].update(epoch=2)),
        r"run\.json says it diverged at epoch 2 \(loss nan\), but its history ends at epoch 3",
    ),
    "NaN before the divergence": (
        _set_value("loss", 1, np.nan),
        r"values that are not finite before the epoch it diverged \(epoch\(s\) 1\)",
    ),
    "diverged_at loss not a number": (
        lambda folder: _edit_record(folder, lambda r: r["diverged_at"].update(loss="big")),
        r'diverged_at\.loss must be a number or "nan", "inf", "-inf", not \'big\'',
    ),
}


@pytest.mark.parametrize("case", list(DIVERGED_TAMPERING))
def test_a_diverged_run_that_disagrees_with_its_history_is_refused(
    case, diverged_run, capsys, restore_cli_logging
):
    tamper, message = DIVERGED_TAMPERING[case]
    tamper(diverged_run)
    before = _digests(diverged_run)
    status, _, err = _figures(capsys, str(diverged_run))
    assert status == 1 and re.search(message, err), err
    assert _digests(diverged_run) == before

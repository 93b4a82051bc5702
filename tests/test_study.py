"""Studies (issue 21): a member equals its single run bit for bit, the initial-weight draws
equal Keras', the history is a partitioned Parquet dataset, summary.csv says what the
history says, and the folder follows the results rules."""

from __future__ import annotations

import dataclasses
import json

import keras
import numpy as np
import pandas as pd
import pytest

from stellarnet.errors import ConfigError, ResultsExist
from stellarnet.results.analysis import dead_units, inactive_units
from stellarnet.results.study_parts import read_history, write_part
from stellarnet.results.study_summary import SUMMARY_COLUMNS, wilson_interval
from stellarnet.runs.config import load_experiment, parse_experiment
from stellarnet.runs.experiment import run_experiment
from stellarnet.runs.study import run_study, study_folder
from stellarnet.runs.study_grid import StudySpec, parse_study
from stellarnet.runs.sweep import train_sweep
from stellarnet.train.draws import initial_layers
from stellarnet.train.models import ModelSpec, build_model, model_layers

EPOCHS = 12


def member_rows(folder, lr, seed, hidden=6) -> pd.DataFrame:
    frame = read_history(folder / "history", lr=lr, hidden=hidden)
    rows = frame[frame["seed"] == seed].drop(columns=["lr", "hidden", "seed"])
    return rows.reset_index(drop=True)


@pytest.fixture(scope="module")
def same_study(hr_config, tmp_path_factory):
    results = tmp_path_factory.mktemp("study") / "results"
    spec = StudySpec((0.1, 0.3), seeds=3, first_seed=1452, epochs=EPOCHS)
    return run_study(hr_config, spec, results), results


@pytest.mark.parametrize(
    "spec", [ModelSpec(hidden=(6,)), ModelSpec(hidden=(9,)), ModelSpec(inputs=3, hidden=(5, 4))]
)
@pytest.mark.parametrize("init", ["same", "notebook"])
def test_draws_equal_keras_build_model(spec, init):
    seeds = [0, 1, 2, 3, 17, 1453, 99_999, 2**31 - 1, 2**31, 2**32 - 1]
    drawn = initial_layers(spec, seeds, copies=3, init=init)
    for seed, copies in zip(seeds, drawn, strict=True):
        base = build_model(spec, seed)
        if init == "same":
            expected = [model_layers(base)] * 3
        else:
            expected = [model_layers(keras.models.clone_model(base)) for _ in range(3)]
        for got, want in zip(copies, expected, strict=True):
            for (kernel, bias), (kernel_k, bias_k) in zip(got, want, strict=True):
                assert kernel.dtype == kernel_k.dtype == np.float32
                assert np.array_equal(kernel, kernel_k) and np.array_equal(bias, bias_k), seed


def test_draws_of_many_seeds_equal_keras():
    spec = ModelSpec(hidden=(6,))
    seeds = list(range(64))
    drawn = initial_layers(spec, seeds, copies=2, init="notebook")
    for seed in seeds[::7]:
        base = build_model(spec, seed)
        for copy in drawn[seed]:
            clone = model_layers(keras.models.clone_model(base))
            assert all(
                np.array_equal(a, b)
                for pa, pb in zip(copy, clone, strict=True)
                for a, b in zip(pa, pb, strict=True)
            )


def test_members_equal_single_runs_same_init(same_study, hr_config, tmp_path):
    result, _ = same_study
    for seed, lr in [(1452, 0.1), (1454, 0.3)]:
        config = hr_config.with_overrides(seed=seed, learning_rate=lr, epochs=EPOCHS)
        single = run_experiment(config, tmp_path / f"single-{seed}-{lr}").history
        rows = member_rows(result.folder, lr, seed)
        assert list(rows.columns) == list(single.columns)
        assert rows.equals(single)


def test_members_equal_notebook_sweeps_and_other_widths(hr_config, results_dir):
    spec = StudySpec((0.1, 0.3), seeds=2, first_seed=7, hidden=(4, 8), init="notebook", epochs=8)
    result = run_study(hr_config, spec, results_dir)
    assert result.record["engines"] == {"4": "fused", "8": "stacked"}
    for hidden in (4, 8):
        for seed in (7, 8):
            config = hr_config.with_overrides(seed=seed, epochs=8, init="notebook")
            config = dataclasses.replace(
                config, model=dataclasses.replace(config.model, hidden=(hidden,))
            )
            from stellarnet.runs.experiment import load_data

            _, dataset = load_data(config)
            long = train_sweep(config, dataset, [0.1, 0.3], vectorize=False)
            for lr in (0.1, 0.3):
                single = long[long["lr"] == lr].drop(columns="lr").reset_index(drop=True)
                assert member_rows(result.folder, lr, seed, hidden).equals(single), (hidden, seed)


def test_history_dataset_layout_and_columns(same_study):
    result, _ = same_study
    history = result.folder / "history"
    parts = sorted(p.relative_to(history).as_posix() for p in history.rglob("*.parquet"))
    assert parts and all(
        p.startswith(("lr=0.1/hidden=6/part-", "lr=0.3/hidden=6/part-")) for p in parts
    )
    frame = read_history(history)
    assert list(frame.columns[:5]) == ["lr", "hidden", "seed", "epoch", "output"]
    assert len(frame) == 2 * 3 * (EPOCHS + 1)
    assert (
        frame.groupby(["lr", "seed"])["epoch"].apply(list) == [list(range(EPOCHS + 1))] * 6
    ).all()
    assert pd.read_parquet(history).shape[0] == len(frame)  # any Parquet reader sees it


def test_summary_recomputed_from_history(same_study):
    result, _ = same_study
    frame = read_history(result.folder / "history", ["epoch", "loss", "output"])
    summary = pd.read_csv(result.folder / "summary.csv")
    assert list(summary.columns) == list(SUMMARY_COLUMNS)
    for _, row in summary.iterrows():
        cell = frame[(frame["lr"] == row["lr"]) & (frame["hidden"] == row["hidden"])]
        monotone = overshoot = diverged = 0
        finals = []
        for _, member in cell.groupby("seed"):
            losses = list(member.sort_values("epoch").query("epoch >= 1")["loss"])
            monotone += all(b < a for a, b in zip(losses, losses[1:], strict=False))
            overshoot += any(b > a for a, b in zip(losses, losses[1:], strict=False))
            diverged += not np.isfinite(member[["loss", "output"]].to_numpy()).all()
            finals.append(losses[-1])
        members = cell["seed"].nunique()
        assert row["members"] == members == 3
        assert row["monotone"] == monotone / members
        assert row["overshoot"] == overshoot / members
        assert row["diverged"] == diverged / members
        assert row["loss_q50"] == pytest.approx(np.quantile(finals, 0.5), rel=1e-12)
        assert row["init"] == "same"


def test_dead_units_as_analysis_counts_them(same_study):
    result, _ = same_study
    stats = result.members
    for lr, seed in [(0.1, 1452), (0.3, 1453)]:
        rows = member_rows(result.folder, lr, seed)
        member = stats[(stats["lr"] == lr) & (stats["seed"] == seed)].iloc[0]
        assert member["dead_start"] == len(inactive_units(rows, (1, 6, 1), 0))
        assert member["dead_end"] == len(dead_units(rows, (1, 6, 1)))


def test_record_loss_keeps_epoch_loss_output(hr_config, results_dir, same_study):
    spec = StudySpec((0.1, 0.3), seeds=3, first_seed=1452, epochs=EPOCHS, record="loss")
    result = run_study(hr_config, spec, results_dir)
    frame = read_history(result.folder / "history")
    assert list(frame.columns) == ["lr", "hidden", "seed", "epoch", "output", "loss"]
    full = read_history(same_study[0].folder / "history", ["epoch", "output", "loss"])
    assert frame.equals(full)
    assert result.members["dead_start"].notna().all()
    assert "record=loss" in result.folder.name


def test_diverging_members_do_not_stop_the_study(hr_config, results_dir):
    config = hr_config.with_overrides(optimizer="sgd")
    spec = StudySpec((0.1, 1e6), seeds=2, epochs=15)
    result = run_study(config, spec, results_dir)
    stats = result.members
    assert stats.loc[stats["lr"] == 1e6, "diverged"].all()
    assert not stats.loc[stats["lr"] == 0.1, "diverged"].any()
    frame = read_history(result.folder / "history")
    diverged = frame[frame["lr"] == 1e6]
    for _, member in diverged.groupby("seed"):
        finite = np.isfinite(member["loss"].to_numpy())
        assert not finite[-1] and finite[:-1].all()  # ends at its first non-finite row
    assert json.loads((result.folder / "run.json").read_text())["diverged_members"] == 2


def test_refuses_to_overwrite_and_force_replaces(hr_config, results_dir):
    spec = StudySpec((0.1,), seeds=1, epochs=2)
    first = run_study(hr_config, spec, results_dir)
    with pytest.raises(ResultsExist):
        run_study(hr_config, spec, results_dir)
    again = run_study(hr_config, spec, results_dir, force=True)
    assert again.folder == first.folder
    assert again.summary.equals(first.summary)


def test_folder_names(hr_config, tmp_path):
    defaults = load_experiment("hr_relation")
    spec = StudySpec((0.1, 0.3), seeds=64)
    assert study_folder(defaults, spec, tmp_path, defaults).name == "study-lr=0.1,0.3,seeds=64"
    spec = StudySpec((0.1, 0.3), seeds=64, hidden=(4, 8), init="notebook", epochs=300)
    name = study_folder(defaults, spec, tmp_path, defaults).name
    assert name == "study-notebook-lr=0.1,0.3,seeds=64,hidden=4+8,epochs=300"


def test_part_files_are_idempotent(tmp_path):
    frame = pd.DataFrame(
        {"lr": [0.1, 0.1], "hidden": [6, 6], "seed": [0, 0], "epoch": [0, 1], "loss": [2.0, 1.0]}
    )
    (path,) = write_part(tmp_path, "part-00003.parquet", frame)
    first = path.read_bytes()
    write_part(tmp_path, "part-00003.parquet", frame)  # a retried task
    assert path.read_bytes() == first
    assert [p.name for p in path.parent.iterdir()] == ["part-00003.parquet"]  # no temporaries
    assert read_history(tmp_path).equals(frame)


def test_study_table_in_config():
    raw = {
        "dataset": {"features": ["Lum"], "target": "Teff"},
        "catalog": {"query": "gaia_dr2_hr"},
        "study": {"lr": [0.1, 0.3], "seeds": 64, "init": "notebook", "hidden": [4, 6]},
    }
    config = parse_experiment(raw)
    assert config.study == StudySpec((0.1, 0.3), 64, hidden=(4, 6), init="notebook")
    assert load_experiment("hr_relation").study is not None
    bad = [
        ({"lr": [0.1], "seeds": 0}, "seeds"),
        ({"lr": [0.1, 0.1], "seeds": 4}, "distinct"),
        ({"lr": "0.1", "seeds": 4}, "lr must be a list"),
        ({"lr": [0.1], "seeds": 4, "init": "clone"}, "init"),
        ({"lr": [0.1], "seeds": 4, "record": "some"}, "record"),
        ({"lr": [0.1], "seeds": 4, "hidden": [0]}, "hidden"),
        ({"lr": [0.1], "seeds": 4, "width": 3}, "unknown key"),
        ({"seeds": 4}, "needs lr"),
    ]
    for table, words in bad:
        with pytest.raises(ConfigError, match=words):
            parse_study(table)
        with pytest.raises(ConfigError, match=r"\[study\]"):
            parse_experiment(raw | {"study": table})


def test_unstudyable_configs_are_refused(hr_config, results_dir):
    split = dataclasses.replace(
        hr_config, split=dataclasses.replace(hr_config.split, train=0.8, test=0.2)
    )
    with pytest.raises(ConfigError, match="split"):
        run_study(split, StudySpec((0.1,), seeds=1), results_dir)
    deep = dataclasses.replace(hr_config, model=dataclasses.replace(hr_config.model, hidden=(4, 4)))
    with pytest.raises(ConfigError, match="hidden layers"):
        run_study(deep, StudySpec((0.1,), seeds=1, hidden=(3,)), results_dir)
    assert not results_dir.exists() or not any(results_dir.rglob("run.json"))


def test_wilson_interval():
    low, high = wilson_interval(np.array([0, 5, 10]), np.array([10, 10, 10]))
    assert low[0] == 0 and high[2] == 1
    assert low[1] == pytest.approx(0.2366, abs=1e-4) and high[1] == pytest.approx(0.7634, abs=1e-4)


def test_cli_study(hr_config, results_dir, capsys, restore_cli_logging, snapshot_copy):
    from stellarnet.cli import main

    catalog = snapshot_copy("gaia")
    argv = ["study", "hr_relation", "--lr", "0.1", "0.3", "--seeds", "2", "--epochs", "3"]
    argv += ["--catalog", str(catalog), "--results", str(results_dir)]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "falls at every epoch for" in out and "/2 seeds" in out
    folder = next((results_dir / "hr_relation").iterdir())
    assert folder.name == "study-lr=0.1,0.3,seeds=2,epochs=3,catalog=gaia"
    for name in ("summary.csv", "members.csv", "run.json", "report.md", "monotone.png"):
        assert (folder / name).is_file()
    assert main(argv) == 1  # refused without --force
    assert "--force" in capsys.readouterr().err


def test_figures_and_runs_treat_a_study_as_a_study(
    results_dir, capsys, restore_cli_logging, snapshot_copy
):
    """A study beside a run: `figures` redraws the study's own figures and report (not the
    run figures, which it has no history.parquet for), `runs` lists it with its seeds."""
    from stellarnet.cli import main
    from stellarnet.results.finding import find_results, find_studies

    catalog = ["--catalog", str(snapshot_copy("gaia")), "--results", str(results_dir)]
    study = ["study", "hr_relation", "--lr", "0.1", "0.3", "--seeds", "2", "--epochs", "2"]
    assert main([*study, *catalog]) == 0
    assert main(["experiment", "hr_relation", "--epochs", "2", *catalog]) == 0
    (folder,) = find_studies(results_dir / "hr_relation")
    assert folder.name.startswith("study-")
    assert folder not in find_results("hr_relation", results_dir)
    (folder / "monotone.png").unlink()
    capsys.readouterr()
    argv = ["figures", "hr_relation", "--results", str(results_dir), "--no-gif", "--no-explorer"]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert f"{folder}/: loss_bands.png, final_loss.png, monotone.png, report.md" in out
    assert (folder / "monotone.png").is_file()
    assert main(["runs", "hr_relation", "--results", str(results_dir)]) == 0
    (row,) = [line for line in capsys.readouterr().out.splitlines() if " study " in line]
    assert row.split()[1:6] == ["study", "0.1,0.3", "2", "0..1", "same"]

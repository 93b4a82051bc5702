"""Issue 19, item 4: runs never collide. A run's or a sweep's folder name carries every setting
that differs from its config (stellarnet.results.names, stellarnet.runs.naming), the default
names are the old ones, old folders still load, and ``stellarnet runs`` lists them all."""

from __future__ import annotations

import json
import logging
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from stellarnet.cli import main
from stellarnet.errors import ResultsFolderError
from stellarnet.files import sha256_file
from stellarnet.results.finding import find_results
from stellarnet.results.folders import inside_results, result_folder
from stellarnet.results.history import load_history
from stellarnet.results.listing import runs_table, saved_runs
from stellarnet.results.names import (
    MAX_FOLDER_NAME,
    check_folder_name,
    file_tag,
    is_result_folder_name,
    run_name,
    sweep_name,
)
from stellarnet.results.saved import load_results
from stellarnet.runs.config import load_experiment
from stellarnet.runs.naming import run_folder, sweep_folder

BASE = load_experiment("hr_relation")  # epochs 10, seed 1453, learning rate 0.1, init same


def name_of(defaults=BASE, **kwargs) -> str:
    """The run folder name of ``BASE`` with ``kwargs`` applied (config overrides, or the run
    arguments ``init_from`` and ``jit_compile``)."""
    run_args = {k: kwargs.pop(k) for k in ("init_from", "jit_compile") if k in kwargs}
    config = BASE.with_overrides(**{"learning_rate": 0.3, **kwargs})
    return run_folder(config, "results", defaults=defaults, **run_args).name


# --- names ------------------------------------------------------------------------------------


def test_without_overrides_the_names_are_the_old_ones():
    assert name_of() == "lr=0.3"
    assert name_of(epochs=10, seed=1453) == "lr=0.3"  # given, but as the config says
    assert name_of(defaults=None, epochs=300) == "lr=0.3"  # a library call without defaults
    assert run_name(0.1) == "lr=0.1" and run_name(1e30) == "lr=1e+30"
    assert sweep_folder(BASE, [0.1, 0.3], "results", defaults=BASE).name == "sweep-lr=0.1,0.3"


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        ({"epochs": 300}, "lr=0.3,epochs=300"),
        ({"seed": 7}, "lr=0.3,seed=7"),
        ({"catalog_path": "elsewhere/my_gaia.csv"}, "lr=0.3,catalog=my_gaia"),
        ({"record_every": 5}, "lr=0.3,record_every=5"),
        ({"record": ("kernels", "biases", "gradients", "activations")}, "lr=0.3,activations"),
        ({"record": ("kernels",)}, "lr=0.3,record=kernels"),
        ({"jit_compile": True}, "lr=0.3,jit"),
        (
            {"jit_compile": True, "seed": 7, "epochs": 300, "record_every": 2},
            "lr=0.3,epochs=300,seed=7,record_every=2,jit",  # always in the documented order
        ),
    ],
)
def test_each_override_is_named(overrides, expected):
    assert name_of(**overrides) == expected


def test_init_from_is_named_by_its_file_and_contents(tmp_path):
    start = tmp_path / "history.csv"
    start.write_text("w^1_1\n0.5\n")
    first = name_of(init_from=start)
    assert first == f"lr=0.3,init=history_{sha256_file(start)[:6]}"
    start.write_text("w^1_1\n0.25\n")  # another history.csv: another folder
    assert name_of(init_from=start) != first


def test_the_sweep_protocol_and_rates_are_named():
    notebook = BASE.with_overrides(init="notebook")
    assert sweep_folder(notebook, [0.1, 0.3], defaults=BASE).name == "sweep-notebook-lr=0.1,0.3"
    # a config whose own protocol is notebook is still named so, and back to same is not
    assert sweep_folder(notebook, [0.1, 0.3], defaults=notebook).name.startswith("sweep-notebook")
    assert sweep_folder(BASE, [0.1, 0.3], defaults=notebook).name == "sweep-lr=0.1,0.3"
    longer = BASE.with_overrides(epochs=300, seed=7)
    assert sweep_folder(longer, [0.3, 0.1], defaults=BASE, jit_compile=True).name == (
        "sweep-lr=0.3,0.1,epochs=300,seed=7,jit"  # the order given: the notebook's clones
    )


def test_long_rate_lists_give_bounded_valid_names():
    rates = [0.001 * k for k in range(1, 65)]
    name = sweep_name(rates)
    assert check_folder_name(name) == name and len(name) <= MAX_FOLDER_NAME
    assert name.startswith("sweep-lr=64_rates_0.001_to_0.064_")
    assert sweep_name(rates[::-1]) != name  # same rates, other order: another table
    assert sweep_name([*rates[:-2], 0.0635, 0.064]) != name  # same count, smallest, largest
    every_tag = sweep_name(
        [1.1754943508222875e-38 * 3**k for k in range(200)],
        "notebook",
        ["epochs=1000000000000", "seed=4294967295", f"catalog={file_tag('x' * 300 + '.csv')}"],
    )
    assert check_folder_name(every_tag) == every_tag and len(every_tag) <= MAX_FOLDER_NAME
    assert len(sweep_name([0.1, 0.3, 1, 3])) < 30  # short lists stay readable


HOSTILE_FILES = [
    "../../etc/passwd",
    "a,b=c.csv",
    "..csv",
    ".hidden.csv",
    "with space.csv",
    "ünïcödé.csv",
    "-dash.csv",
    "x" * 400 + ".csv",
    "a..b.csv",
    "$(rm -rf ~).csv",
]


@pytest.mark.parametrize("path", HOSTILE_FILES)
def test_every_name_passes_the_results_folder_safety_check(path, tmp_path):
    results = tmp_path / "results"
    names = [
        name_of(catalog_path=path),
        name_of(catalog_path=path, epochs=10**12, seed=2**32 - 1, record_every=10**9),
        sweep_name([0.1, 0.3], "notebook", [f"catalog={file_tag(path)}"]),
        run_name(1.1754943508222875e-38, [f"init={file_tag(path, '0' * 64)}", "jit"]),
    ]
    for name in names:
        assert check_folder_name(name) == name and is_result_folder_name(name)
        folder = result_folder(results, "hr_relation", name)
        assert inside_results(folder, results).parent == results / "hr_relation"
    assert file_tag(path) != file_tag("other.csv")


def test_unsafe_leaves_are_refused(tmp_path):
    for leaf in ("..", ".", "", "a/b", "x" * (MAX_FOLDER_NAME + 1), "a b", "lr=0.1/../../x"):
        with pytest.raises(ResultsFolderError):
            result_folder(tmp_path, "hr_relation", leaf)


# --- the commands ----------------------------------------------------------------------------


def cli(*argv: str) -> int:
    logger = logging.getLogger("stellarnet")
    saved = logger.handlers[:], logger.level, logger.propagate
    try:
        return main(["-q", *argv])
    finally:
        logger.handlers[:], logger.level, logger.propagate = saved


@pytest.fixture(scope="module")
def results(tmp_path_factory) -> Path:
    """The README's runs: LR 0.3 for 10 epochs (twice, as `make experiment LR=0.3` does), then
    for 300; sweeps of LR 0.1 and 0.3 under both protocols; and an old-style ``sweep``
    folder and ``lr=0.1`` run (folders named before tags existed)."""
    root = tmp_path_factory.mktemp("names") / "results"
    experiment = ["experiment", "hr_relation", "--lr", "0.3", "--results", str(root)]
    assert cli(*experiment) == 0
    first = load_history(root / "hr_relation" / "lr=0.3")
    assert cli(*experiment, "--epochs", "10", "--force") == 0  # make experiment LR=0.3
    pd.testing.assert_frame_equal(load_history(root / "hr_relation" / "lr=0.3"), first)
    assert cli(*experiment, "--epochs", "300") == 0  # no --force needed: its own folder
    sweep = ["sweep", "hr_relation", "--lr", "0.1", "0.3", "--results", str(root)]
    assert cli(*sweep) == 0
    assert cli(*sweep, "--init", "notebook") == 0
    old = root / "hr_relation"
    shutil.copytree(old / "sweep-lr=0.1,0.3", old / "sweep")
    shutil.copytree(old / "sweep-lr=0.1,0.3" / "lr=0.1", old / "lr=0.1")
    return root


def test_the_10_and_300_epoch_runs_do_not_collide(results):
    folder = results / "hr_relation"
    short, long = load_history(folder / "lr=0.3"), load_history(folder / "lr=0.3,epochs=300")
    assert short["epoch"].max() == 10 and long["epoch"].max() == 300
    # where the table is written changed, not the table: the first 11 rows are the same run's
    pd.testing.assert_frame_equal(long.iloc[:11], short, check_exact=True)
    record = json.loads((folder / "lr=0.3,epochs=300" / "run.json").read_text())
    assert record["config"]["training"]["epochs"] == 300


def test_notebook_and_same_sweeps_get_their_own_folders(results):
    folder = results / "hr_relation"
    same = load_results(folder / "sweep-lr=0.1,0.3")
    notebook = load_results(folder / "sweep-notebook-lr=0.1,0.3")
    assert same.record["init"] == "same" and notebook.record["init"] == "notebook"
    assert same.histories[0.3]["w^1_1"].iloc[0] != notebook.histories[0.3]["w^1_1"].iloc[0]
    # init same: each rate's table is the single run's, bit for bit, as before
    pd.testing.assert_frame_equal(
        same.histories[0.3].reset_index(drop=True),
        load_history(folder / "lr=0.3"),
        check_exact=True,
    )
    assert sorted(p.name for p in (folder / "sweep-notebook-lr=0.1,0.3").glob("lr=*")) == [
        "lr=0.1",
        "lr=0.3",
    ]


def test_figures_find_new_and_old_names(results):
    found = find_results("hr_relation", results)
    names = {path.relative_to(results / "hr_relation").as_posix() for path in found}
    assert {
        "lr=0.1",
        "lr=0.3",
        "lr=0.3,epochs=300",
        "sweep",
        "sweep/lr=0.1",
        "sweep-lr=0.1,0.3",
        "sweep-lr=0.1,0.3/lr=0.3",
        "sweep-notebook-lr=0.1,0.3",
        "sweep-notebook-lr=0.1,0.3/lr=0.1",
    } <= names
    assert load_results(results / "hr_relation" / "sweep").learning_rates == [0.1, 0.3]


def test_the_runs_listing_shows_every_run_and_sweep(results, capsys):
    assert cli("runs", "hr_relation", "--results", str(results)) == 0
    out = capsys.readouterr().out
    lines = out.splitlines()
    header = lines[0].split()
    assert header[:7] == ["experiment", "kind", "lr", "epochs", "seed", "init", "status"]
    folder = results / "hr_relation"
    cells = [line.split() for line in lines[1:]]
    by_folder = {Path(row[-1]).relative_to(folder).as_posix(): row for row in cells}
    assert by_folder["lr=0.3"][1:7] == ["run", "0.3", "10", "1453", "seed", "complete"]
    assert by_folder["lr=0.3,epochs=300"][1:7] == ["run", "0.3", "300", "1453", "seed", "complete"]
    notebook = ["sweep", "0.1,0.3", "10", "1453", "notebook"]
    assert by_folder["sweep-notebook-lr=0.1,0.3"][1:6] == notebook
    assert by_folder["sweep-lr=0.1,0.3"][5] == by_folder["sweep"][5] == "same"
    assert by_folder["lr=0.1"][1] == "run"  # the old-style copies are listed too
    assert (
        by_folder["sweep/lr=0.3"][1:3]
        == by_folder["sweep-lr=0.1,0.3/lr=0.3"][1:3]
        == [
            "rate",
            "0.3",
        ]
    )
    # first and last loss, from run.json, under a sweep per rate
    rows = saved_runs(results, "hr_relation")
    ten = next(row for row in rows if Path(row.folder) == folder / "lr=0.3")
    record = json.loads((folder / "lr=0.3" / "run.json").read_text())
    assert float(ten.loss_first) == pytest.approx(record["loss_first"], rel=1e-5)
    assert float(ten.loss_last) == pytest.approx(record["loss_last"], rel=1e-5)
    rates = [row for row in rows if row.kind == "rate" and "notebook" in row.folder]
    assert [row.lr for row in rates] == ["0.1", "0.3"] and all(r.loss_last != "-" for r in rates)
    # aligned: every column starts at the same place on every line
    start = lines[0].index("folder")
    assert all(line[start - 2 : start] == "  " and line[start] != " " for line in lines)
    assert runs_table(rows) == out.rstrip("\n")


def test_the_runs_listing_does_not_import_tensorflow(results):
    code = (
        "import sys; from stellarnet.cli import main; "
        f"status = main(['-q', 'runs', '--results', {str(results)!r}]); "
        "heavy = [m for m in sys.modules if m.split('.')[0] in ('tensorflow', 'keras')]; "
        "print('HEAVY', heavy, status)"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert "HEAVY [] 0" in done.stdout and "sweep-notebook-lr=0.1,0.3" in done.stdout


def test_the_runs_listing_of_nothing_is_an_error(tmp_path, capsys):
    assert cli("runs", "--results", str(tmp_path / "none")) == 1
    assert "no results folder" in capsys.readouterr().err
    (tmp_path / "empty" / "hr_relation").mkdir(parents=True)
    assert cli("runs", "--results", str(tmp_path / "empty")) == 1
    assert "no saved runs" in capsys.readouterr().err

"""Issue 20, the runs' share: nothing lost, nothing written where it should not be.

Hostile or careless input to ``stellarnet experiment`` / ``sweep`` (and the library calls under
them): experiment names that lead out of ``--results``, ``--force`` on folders that are no
stellarnet result, diverging runs and sweeps, unusable ``--results`` folders, staging folders
left by killed runs, values that crash or vanish in float32, history tables too large for
memory, and errors that must reach the user as one line. Every error test checks the message
and that nothing outside the results folder changed (a listing with sha256 of every file under
the test's folder, before and after).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from stellarnet.cli import main
from stellarnet.data.registry import GAIA_DR2_HR, snapshot_path
from stellarnet.errors import (
    ConfigError,
    ResultsExist,
    ResultsFolderError,
    StellarnetError,
    TrainingDiverged,
)
from stellarnet.files import host_tag, json_text, sha256_file, staged_folder, staging_prefix
from stellarnet.results.folders import (
    STALE_AFTER_S,
    clean_staging,
    inside_results,
    prepare_folder,
    result_folder,
)
from stellarnet.results.history import HISTORY_BUDGET_BYTES, load_history
from stellarnet.runs.config import TrainingSpec, load_experiment
from stellarnet.runs.experiment import history_size, run_experiment
from stellarnet.runs.lookup import experiment_path
from stellarnet.runs.sweep import run_sweep, train_sweep

pytestmark = pytest.mark.usefixtures("restore_cli_logging")

REPO = Path(__file__).resolve().parents[1]
SNAPSHOT = snapshot_path(GAIA_DR2_HR)
SHIPPED = experiment_path("hr_relation")
ONE_LINE_ERROR = "stellarnet: error: "


# --- helpers -----------------------------------------------------------------------------


def tree(root: Path) -> dict[str, str]:
    """Every folder, file (its sha256) and link under ``root``, hidden ones too."""
    found = {}
    for folder, names, files in os.walk(root):
        for name in [*names, *files]:
            path = Path(folder) / name
            key = str(path.relative_to(root))
            if path.is_symlink():
                found[key] = f"link -> {os.readlink(path)}"
            elif path.is_dir():
                found[key] = "folder"
            else:
                found[key] = sha256_file(path)
    return found


@dataclasses.dataclass
class Workspace:
    """A test's folder: ``results/`` (``--results``) beside the user's other files, laid out
    as in the audit (``victim/sweep/thesis.tex``, ``victim/lr=0.1/notes.txt``)."""

    root: Path
    results: Path

    def outside(self) -> dict[str, str]:
        """The listing of everything outside ``results/``."""
        return {k: v for k, v in tree(self.root).items() if not k.startswith("results")}

    def config(self, name: str = "hr_relation", old: str = 'name = "hr_relation"', new=None):
        """A copy of the shipped HR config with one line changed; returns its path."""
        text = SHIPPED.read_text()
        assert old in text, "the shipped config changed; update this test"
        path = self.root / "configs" / f"{name}.toml"
        path.parent.mkdir(exist_ok=True)
        path.write_text(text.replace(old, new if new is not None else old, 1))
        return path


@pytest.fixture
def ws(tmp_path: Path) -> Workspace:
    root = tmp_path / "work"
    (root / "victim" / "sweep").mkdir(parents=True)
    (root / "victim" / "sweep" / "thesis.tex").write_text("\\chapter{Four years of work}\n")
    (root / "victim" / "lr=0.1").mkdir()
    (root / "victim" / "lr=0.1" / "notes.txt").write_text("do not lose me\n")
    (root / "precious.txt").write_text("mine\n")
    return Workspace(root, root / "results")


def cli(capsys, *argv: str) -> tuple[int, str, str]:
    """Run the ``stellarnet`` command quietly; return its status, stdout and stderr."""
    status = main(["-q", *argv])
    out, err = capsys.readouterr()
    return status, out, err


def error_line(err: str) -> str:
    """The command's one error line (no traceback before it)."""
    assert "Traceback" not in err, err
    lines = [line for line in err.strip().splitlines() if not line.startswith("warning: ")]
    assert len(lines) == 1, err
    assert lines[0].startswith(ONE_LINE_ERROR), err
    return lines[0]


@pytest.fixture
def no_training(monkeypatch):
    """Fail the test if a run reaches training."""

    def refuse(*args, **kwargs):
        raise AssertionError("trained although the run should have been refused first")

    monkeypatch.setattr("stellarnet.runs.experiment.train_config", refuse)
    monkeypatch.setattr("stellarnet.runs.sweep.train_config", refuse)
    monkeypatch.setattr("stellarnet.train.stacked.train_stacked", refuse)


def dead_pid() -> int:
    """The id of a process that has ended (started here and waited for)."""
    done = subprocess.Popen([sys.executable, "-c", "pass"])
    done.wait()
    return done.pid


def strict_json(path: Path) -> dict:
    """Read JSON refusing NaN and Infinity (not JSON)."""

    def refuse(token):
        raise AssertionError(f"{path} holds {token}, which is not JSON")

    return json.loads(path.read_text(), parse_constant=refuse)


# --- 1. experiment names and paths outside --results ----------------------------------------

BAD_NAMES = [
    '"../../x"',
    '"../victim"',
    '"/abs/path"',
    '""',
    '".."',
    '"."',
    '"a/b"',
    '".hidden"',
    '"x\\n"',
    '"a..b"',
    '"with space"',
    "42",
    "true",
]


@pytest.mark.parametrize("command", ["experiment", "sweep"])
@pytest.mark.parametrize("bad", BAD_NAMES)
def test_unsafe_experiment_names_are_refused_with_file_and_key(ws, capsys, command, bad):
    config = ws.config("evil", new=f"name = {bad}")
    before = tree(ws.root)
    status, _, err = cli(
        capsys, command, str(config), "--lr", "0.1", "--results", str(ws.results), "--force"
    )
    line = error_line(err)
    assert status == 1
    assert str(config) in line and "name must be a plain folder name" in line
    assert tree(ws.root) == before  # nothing written, nothing deleted, results/ not even made


def test_the_audits_name_no_longer_deletes_a_users_thesis(ws, capsys):
    """``name = "../victim"`` with ``--force`` used to replace victim/sweep and victim/lr=0.1."""
    config = ws.config("evil", new='name = "../victim"')
    before = ws.outside()
    for command in ("experiment", "sweep"):
        status, _, err = cli(capsys, command, str(config), "--lr", "0.1", "--force")
        assert status == 1 and "'../victim'" in error_line(err)
    assert ws.outside() == before
    assert (ws.root / "victim" / "sweep" / "thesis.tex").read_text().startswith("\\chapter")


def test_a_config_file_whose_name_is_not_plain_needs_a_name_key(ws, capsys):
    text = SHIPPED.read_text().replace('name = "hr_relation"\n', "", 1)
    path = ws.root / "my experiment.toml"
    path.write_text(text)
    before = tree(ws.root)
    with pytest.raises(ConfigError, match="add a name = ... line") as err:
        load_experiment(path)
    assert str(path) in str(err.value) and "'my experiment'" in str(err.value)
    assert tree(ws.root) == before


@pytest.mark.parametrize("bad", ["../x", "/tmp/x", "", "a/b", 42])
def test_configs_built_in_code_are_checked_too(hr_config, bad):
    with pytest.raises(ConfigError, match="experiment name must be a plain folder name"):
        dataclasses.replace(hr_config, name=bad)


def test_every_result_folder_is_proven_inside_results(tmp_path):
    results = tmp_path / "results"
    assert result_folder(results, "hr_relation", "lr=0.1") == results / "hr_relation" / "lr=0.1"
    for leaf in ("..", ".", "", "a/b"):
        with pytest.raises(ResultsFolderError):
            result_folder(results, "hr_relation", leaf)
    for path in (results, results / ".." / "x", tmp_path, Path("/")):
        with pytest.raises(ResultsFolderError, match="outside the results folder"):
            inside_results(path, results)


@pytest.mark.parametrize("command", ["experiment", "sweep"])
def test_a_symlink_out_of_results_is_not_followed(ws, capsys, no_training, command):
    """results/hr_relation -> ../victim: a valid name, but the folder lies elsewhere."""
    ws.results.mkdir()
    (ws.results / "hr_relation").symlink_to(ws.root / "victim", target_is_directory=True)
    (ws.root / "victim" / "sweep" / "run.json").write_text('{"experiment": "hr_relation"}')
    (ws.root / "victim" / "lr=0.1" / "run.json").write_text('{"experiment": "hr_relation"}')
    before = tree(ws.root)
    status, _, err = cli(
        capsys, command, "hr_relation", "--lr", "0.1", "--results", str(ws.results), "--force"
    )
    line = error_line(err)
    assert status == 1 and "lies outside the results folder" in line
    assert str(ws.results) in line
    assert tree(ws.root) == before


# --- 2. --force replaces stellarnet results only -------------------------------------------


@pytest.mark.parametrize(
    ("command", "leaf", "contents"),
    [
        ("experiment", "lr=0.3", {"notes.txt": "mine"}),
        ("experiment", "lr=0.3", {"run.json": "not json at all"}),
        ("experiment", "lr=0.3", {"run.json": "[1, 2]"}),
        ("experiment", "lr=0.3", {"sub/thesis.tex": "mine"}),
        ("sweep", "sweep-lr=0.3", {"thesis.tex": "mine", "lr=0.3/notes.txt": "mine"}),
    ],
)
@pytest.mark.parametrize("force", [True, False])
def test_force_never_replaces_a_folder_that_is_no_stellarnet_result(
    ws, capsys, no_training, command, leaf, contents, force
):
    folder = ws.results / "hr_relation" / leaf
    for name, text in contents.items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_text(text)
    before = tree(ws.root)
    argv = [command, "hr_relation", "--lr", "0.3", "--results", str(ws.results)]
    status, _, err = cli(capsys, *argv, *(["--force"] if force else []))
    line = error_line(err)
    assert status == 1
    assert f"{folder} holds files but no run.json" in line and "not a stellarnet result" in line
    assert ("--force will not replace it" in line) == force
    assert tree(ws.root) == before


def test_a_file_where_the_run_folder_goes_is_not_replaced(ws, capsys, no_training):
    (ws.results / "hr_relation").mkdir(parents=True)
    (ws.results / "hr_relation" / "lr=0.3").write_text("a file, not a folder")
    before = tree(ws.root)
    argv = ["experiment", "hr_relation", "--lr", "0.3", "--results", str(ws.results), "--force"]
    status, _, err = cli(capsys, *argv)
    assert status == 1 and "is a file or a link, not a results folder" in error_line(err)
    assert tree(ws.root) == before


def test_a_compare_folder_needs_its_compare_json(ws):
    folder = ws.results / "x" / "compare"
    (folder / "network").mkdir(parents=True)
    (folder / "network" / "run.json").write_text('{"experiment": "x"}')
    before = tree(ws.root)
    with pytest.raises(ResultsFolderError, match="no compare.json"):
        prepare_folder(folder, ws.results, force=True, marker="compare.json")
    assert tree(ws.root) == before
    (folder / "compare.json").write_text('{"experiment": "x"}')
    prepare_folder(folder, ws.results, force=True, marker="compare.json")  # a comparison: fine
    with pytest.raises(ResultsExist):
        prepare_folder(folder, ws.results, force=False, marker="compare.json")


def test_force_says_what_it_replaces(hr_config, ws, caplog):
    config = hr_config.with_overrides(learning_rate=0.3, epochs=1)
    first = run_experiment(config, ws.results)
    created = first.record["created_utc"]
    files = len([p for p in first.folder.rglob("*") if p.is_file()])
    before = ws.outside()
    with caplog.at_level(logging.INFO, logger="stellarnet"):
        run_experiment(config, ws.results, force=True)
    assert (
        f"replacing the earlier results in {first.folder} (--force): the run of {created}: "
        f"{files} files" in caplog.text
    )
    assert ws.outside() == before


# --- 4. diverging runs keep their work ------------------------------------------------------


def test_a_diverging_run_saves_its_rows_and_exits_non_zero(ws, capsys):
    argv = ["experiment", "hr_relation", "--lr", "1e30", "--epochs", "20", "--catalog"]
    before = ws.outside()
    status, out, err = cli(capsys, *argv, str(SNAPSHOT), "--results", str(ws.results))
    folder = ws.results / "hr_relation" / "lr=1e+30,epochs=20,catalog=gaia_dr2_50pc_snapshot"
    line = error_line(err)
    assert status == 1 and out == ""
    assert "diverged at epoch" in line and f"in {folder}/" in line and '"diverged"' in line
    record = strict_json(folder / "run.json")
    history = load_history(folder)
    assert record["status"] == "diverged"
    epoch = record["diverged_at"]["epoch"]
    assert isinstance(epoch, int) and history["epoch"].tolist() == list(range(epoch + 1))
    assert record["diverged_at"]["loss"] in ("nan", "inf", "-inf")
    assert float(record["diverged_at"]["loss"]) == history["loss"].iloc[-1] or (
        np.isnan(history["loss"].iloc[-1])
    )
    assert record["loss_last"] == record["diverged_at"]["loss"]
    assert np.isfinite(history.iloc[1:-1].drop(columns=["epoch"]).to_numpy(float)).all()
    assert {p.name for p in folder.iterdir()} >= {"history.parquet", "history.csv", "run.json"}
    assert ws.outside() == before


def test_the_library_raises_after_saving_with_the_folder(hr_config, ws):
    config = dataclasses.replace(
        hr_config, training=TrainingSpec(optimizer="sgd", learning_rate=1e6, epochs=20)
    )
    with pytest.raises(TrainingDiverged) as err:
        run_experiment(config, ws.results)
    folder = ws.results / "hr_relation" / "lr=1e+06"
    assert err.value.folder == folder
    pd.testing.assert_frame_equal(err.value.history, load_history(folder))
    record = strict_json(folder / "run.json")
    assert record["status"] == "diverged"
    assert record["diverged_at"]["epoch"] == int(err.value.history["epoch"].iloc[-1])
    assert "test_metrics" not in record


def test_a_good_run_says_complete(hr_config, ws):
    result = run_experiment(hr_config.with_overrides(learning_rate=0.3, epochs=2), ws.results)
    record = strict_json(result.folder / "run.json")
    assert record["status"] == "complete" and "diverged_at" not in record


RATES = [0.1, 1e30, 0.3]


@pytest.mark.parametrize("sequential", [False, True])
def test_a_sweep_saves_every_rate_and_marks_the_diverged_one(ws, capsys, sequential):
    argv = ["sweep", "hr_relation", "--lr", *map(str, RATES), "--epochs", "20"]
    argv += ["--catalog", str(SNAPSHOT), "--results", str(ws.results)]
    before = ws.outside()
    status, out, err = cli(capsys, *argv, *(["--sequential"] if sequential else []))
    folder = (
        ws.results
        / "hr_relation"
        / "sweep-lr=0.1,1e+30,0.3,epochs=20,catalog=gaia_dr2_50pc_snapshot"
    )
    line = error_line(err)
    assert status == 1
    assert "1 of 3 learning rates diverged: lr=1e+30 at epoch" in line and str(folder) in line
    assert "lr=1e+30: loss 13.82, diverged at epoch" in out and "lr=0.3: loss 13.82 ->" in out
    record = strict_json(folder / "run.json")
    assert record["status"] == "diverged" and list(record["diverged_rates"]) == ["1e+30"]
    at = record["diverged_rates"]["1e+30"]
    assert isinstance(at["epoch"], int) and at["loss"] in ("nan", "inf", "-inf")
    long = load_history(folder)
    assert list(dict.fromkeys(long["lr"])) == RATES
    bad = long[long["lr"] == 1e30]
    assert bad["epoch"].tolist() == list(range(at["epoch"] + 1))
    assert long[long["lr"] != 1e30]["epoch"].tolist() == list(range(21)) * 2
    for label in ("0.1", "1e+30", "0.3"):
        sub = strict_json(folder / f"lr={label}" / "run.json")
        if label == "1e+30":
            assert sub["status"] == "diverged" and sub["diverged_at"] == at
        else:
            assert sub["status"] == "complete" and "diverged_at" not in sub
    assert ws.outside() == before


def test_a_diverging_rate_leaves_the_others_numbers_bit_for_bit(hr_config, hr_dataset):
    config = hr_config.with_overrides(epochs=20)
    with_bad = train_sweep(config, hr_dataset, RATES)
    without = train_sweep(config, hr_dataset, [0.1, 0.3])
    good = with_bad[with_bad["lr"] != 1e30].reset_index(drop=True)
    pd.testing.assert_frame_equal(good, without, check_exact=True)
    sequential = train_sweep(config, hr_dataset, RATES, vectorize=False)
    bad_v, bad_s = (frame[frame["lr"] == 1e30] for frame in (with_bad, sequential))
    assert bad_v["epoch"].tolist() == bad_s["epoch"].tolist()


def test_a_sweep_that_does_not_diverge_says_complete(hr_config, ws):
    result = run_sweep(hr_config.with_overrides(epochs=2), [0.1, 0.3], ws.results)
    record = strict_json(result.folder / "run.json")
    assert record["status"] == "complete" and record["diverged_rates"] == {}


def test_run_json_is_strict_json_whatever_the_numbers():
    text = json_text({"a": float("nan"), "b": [float("inf"), -float("inf"), 1.5], "c": {"d": 2}})
    assert json.loads(text) == {"a": "nan", "b": ["inf", "-inf", 1.5], "c": {"d": 2}}


# --- 5. an unusable --results folder is found before training ---------------------------------


@pytest.mark.parametrize("command", ["experiment", "sweep"])
@pytest.mark.parametrize("where", ["a file", "under a file"])
def test_results_that_is_a_file_is_refused_before_training(ws, capsys, no_training, command, where):
    blocker = ws.root / "results.txt"
    blocker.write_text("a file")
    results = blocker if where == "a file" else blocker / "sub"
    before = tree(ws.root)
    status, _, err = cli(capsys, command, "hr_relation", "--lr", "0.1", "--results", str(results))
    line = error_line(err)
    assert status == 1
    assert f"{blocker} is a file, not a folder" in line and "--results" in line
    assert tree(ws.root) == before


def test_results_that_cannot_be_written_is_refused_before_training(
    ws, capsys, no_training, monkeypatch
):
    def read_only(*args, dir=None, **kwargs):
        raise PermissionError(13, "Permission denied", dir)

    monkeypatch.setattr("stellarnet.results.folders.tempfile.mkstemp", read_only)
    before = tree(ws.root)
    argv = ["experiment", "hr_relation", "--lr", "0.1", "--results", str(ws.results)]
    status, _, err = cli(capsys, *argv)
    line = error_line(err)
    assert status == 1
    assert f"cannot write results into {ws.results / 'hr_relation'}: Permission denied" in line
    assert tree(ws.root) == before  # the folders made for the probe are gone again


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_a_read_only_results_folder_is_refused_before_training(ws, capsys, no_training):
    ws.results.mkdir()
    ws.results.chmod(0o555)
    try:
        before = tree(ws.root)
        argv = ["experiment", "hr_relation", "--lr", "0.1", "--results", str(ws.results)]
        status, _, err = cli(capsys, *argv)
        assert status == 1 and "cannot write results into" in error_line(err)
        assert tree(ws.root) == before
    finally:
        ws.results.chmod(0o755)


@pytest.mark.skipif(not Path("/proc/self").is_dir(), reason="needs Linux /proc")
def test_a_results_folder_nobody_can_create_is_refused(ws, capsys, no_training):
    before = tree(ws.root)
    status, _, err = cli(capsys, "experiment", "hr_relation", "--results", "/proc/stellarnet")
    assert status == 1 and "cannot write results into /proc/stellarnet/hr_relation" in error_line(
        err
    )
    assert tree(ws.root) == before and not Path("/proc/stellarnet").exists()


# --- 8. staging folders left by killed runs -------------------------------------------------


def staging(parent: Path, final: str, pid: int | None, host: str | None = None, kind="new"):
    """A staging folder as a killed run leaves it, with 1 MB of history in it."""
    if pid is None:
        name = f".{final}.{kind}-abcd1234"
    else:
        name = f".{final}.{kind}-{pid}-{host or host_tag()}-abcd1234"
    path = parent / name
    path.mkdir(parents=True)
    (path / "history.parquet").write_bytes(b"\0" * 1_000_000)
    return path


def age(path: Path, seconds: float) -> None:
    then = time.time() - seconds
    os.utime(path, (then, then))


def test_a_sigkill_while_writing_leaves_staging_that_the_next_run_removes(hr_config, ws, caplog):
    folder = ws.results / "hr_relation" / "lr=0.3"
    killed = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import os, signal, sys\n"
            "from pathlib import Path\n"
            "from stellarnet.files import staged_folder\n"
            "with staged_folder(Path(sys.argv[1])) as staging:\n"
            "    (staging / 'history.parquet').write_bytes(bytes(1_000_000))\n"
            "    os.kill(os.getpid(), signal.SIGKILL)\n",
            str(folder),
        ],
        cwd=REPO,
    )
    assert killed.wait(timeout=120) == -signal.SIGKILL
    (left,) = folder.parent.iterdir()
    assert left.name.startswith(f".lr=0.3.new-{killed.pid}-{host_tag()}-")
    assert (left / "history.parquet").stat().st_size == 1_000_000
    before = ws.outside()
    with caplog.at_level(logging.INFO, logger="stellarnet"):
        result = run_experiment(hr_config.with_overrides(learning_rate=0.3, epochs=1), ws.results)
    assert sorted(p.name for p in folder.parent.iterdir()) == ["lr=0.3"]
    assert (
        f"removed {left} (1.0 MB), left behind by process {killed.pid}, which no longer runs"
        in caplog.text
    )
    assert strict_json(result.folder / "run.json")["status"] == "complete"
    assert ws.outside() == before


def test_staging_of_a_run_that_still_runs_is_left_alone(hr_config, ws, caplog):
    parent = ws.results / "hr_relation"
    alive = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
    try:
        mine = staging(parent, "lr=0.3", alive.pid)
        dead = staging(parent, "lr=0.1", dead_pid())  # another rate's, also stale: removed
        with caplog.at_level(logging.INFO, logger="stellarnet"):
            removed = clean_staging(parent / "lr=0.3", ws.results)
        assert removed == [dead] and mine.is_dir() and not dead.exists()
        assert f"leaving {mine}: process {alive.pid}, which writes it, still runs" in caplog.text
    finally:
        alive.kill()
        alive.wait()


def test_staging_whose_owner_cannot_be_looked_up_is_removed_only_when_old(ws, caplog):
    parent = ws.results / "hr_relation"
    other_host = "00000000" if host_tag() != "00000000" else "11111111"
    young_legacy = staging(parent, "lr=0.3", None)
    young_remote = staging(parent, "lr=0.3", dead_pid(), host=other_host)
    old_remote = staging(parent, "sweep", dead_pid(), host=other_host, kind="old")
    old_legacy = staging(parent, "sweep", None)
    for path in (old_remote, old_legacy):
        age(path, STALE_AFTER_S + 60)
    with caplog.at_level(logging.INFO, logger="stellarnet"):
        clean_staging(parent / "lr=0.3", ws.results)
    # old_legacy stays: an old-style name is only known to be ours for the folder now written
    assert young_legacy.is_dir() and young_remote.is_dir() and old_legacy.is_dir()
    assert not old_remote.exists()
    assert "stellarnet cannot tell whether that run still writes it" in caplog.text
    age(young_legacy, STALE_AFTER_S + 60)
    clean_staging(parent / "lr=0.3", ws.results)
    assert not young_legacy.exists() and young_remote.is_dir()


def test_cleanup_never_touches_other_files_or_follows_links(ws):
    parent = ws.results / "hr_relation"
    parent.mkdir(parents=True)
    for name in (".notes.new-draft", ".lr=0.3.new-zz", "lr=0.3.new-abcd1234", ".lr=0.3.tmp"):
        (parent / name).write_text("the user's")
    link = parent / f".lr=0.3.new-{dead_pid()}-{host_tag()}-abcd1234"
    link.symlink_to(ws.root / "victim", target_is_directory=True)
    before = tree(ws.root)
    assert clean_staging(parent / "lr=0.3", ws.results) == []
    assert tree(ws.root) == before


def test_a_result_set_aside_by_a_killed_replacement_is_put_back(hr_config, ws, capsys, caplog):
    config = hr_config.with_overrides(learning_rate=0.3, epochs=1)
    folder = run_experiment(config, ws.results).folder
    original = tree(folder)
    aside = folder.parent / f".lr=0.3.old-{dead_pid()}-{host_tag()}-abcd1234"
    aside.mkdir()
    os.replace(folder, aside / folder.name)  # killed between the two renames of replace_folder
    with caplog.at_level(logging.WARNING, logger="stellarnet"):
        with pytest.raises(ResultsExist):
            run_experiment(config, ws.results)
    assert tree(folder) == original and not aside.exists()
    assert f"restored {folder} from {aside}" in caplog.text


def test_staging_names_say_which_process_made_them(tmp_path):
    with staged_folder(tmp_path / "lr=0.1") as folder:
        assert folder.name.startswith(staging_prefix("lr=0.1", "new"))
        assert f"-{os.getpid()}-{host_tag()}-" in folder.name


def test_the_write_probe_leaves_nothing_behind(hr_config, ws):
    run_experiment(hr_config.with_overrides(learning_rate=0.3, epochs=1), ws.results)
    assert sorted(tree(ws.results)) == sorted(
        ["hr_relation", "hr_relation/lr=0.3"]
        + [f"hr_relation/lr=0.3/{n}" for n in os.listdir(ws.results / "hr_relation" / "lr=0.3")]
    )


# --- 9, 10. values that crashed, vanished in float32 or outgrew memory ----------------------


@pytest.mark.parametrize("rate", ["1e300", "1e-320", "1e-40", "3.5e38"])
@pytest.mark.parametrize("command", ["experiment", "sweep"])
def test_learning_rates_outside_float32_are_refused(ws, capsys, command, rate):
    before = tree(ws.root)
    with pytest.raises(SystemExit) as exit_info:
        main([command, "hr_relation", "--lr", "0.1" if command == "sweep" else rate, rate])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert f"argument --lr: '{rate}' must be finite and > 0, from 1.175e-38 to 3.403e+38" in err
    assert "float32" in err and "Traceback" not in err
    assert tree(ws.root) == before


@pytest.mark.parametrize(("rate", "word"), [("1e-320", "vanishes"), ("1e300", "overflows")])
def test_config_learning_rates_outside_float32_name_the_file(ws, rate, word):
    config = ws.config("tiny", old="learning_rate = 0.1", new=f"learning_rate = {rate}")
    before = tree(ws.root)
    with pytest.raises(ConfigError) as err:
        load_experiment(config)
    assert str(config) in str(err.value) and f"{word} in float32" in str(err.value)
    with pytest.raises(ConfigError, match=word):
        TrainingSpec(learning_rate=float(rate))
    assert tree(ws.root) == before


def test_train_refuses_a_rate_that_vanishes_in_float32(hr_config, hr_dataset):
    from stellarnet.train.loop import train
    from stellarnet.train.models import build_model

    with pytest.raises(ConfigError, match="vanishes in float32"):
        train(
            build_model(hr_config.model, 1),
            hr_dataset.x,
            hr_dataset.y,
            learning_rate=1e-320,
            epochs=1,
        )


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        ('name = "hr_relation"', "name = 42", "name must be a plain folder name"),
        ("hidden = [6]", "hidden = 6", "[model] hidden must be a list, e.g. hidden = [6]"),
        ("hidden = [6]", 'hidden = "6"', "[model] hidden must be a list"),
        ("description = ", "description = 1 # ", "description must be a str"),
        ("epochs = 10", 'epochs = 10\nrecord = "kernels"', "[training] record must be a list"),
    ],
)
def test_config_values_that_crashed_are_one_line_errors(ws, capsys, no_training, old, new, message):
    config = ws.config("odd", old=old, new=new)
    before = tree(ws.root)
    status, _, err = cli(capsys, "experiment", str(config), "--results", str(ws.results))
    line = error_line(err)
    assert status == 1 and str(config) in line and message in line
    assert "object is not iterable" not in line
    assert tree(ws.root) == before


@pytest.mark.parametrize("command", ["experiment", "check-gradients"])
def test_init_from_a_folder_names_the_file_to_give(hr_config, ws, capsys, command):
    folder = run_experiment(
        hr_config.with_overrides(learning_rate=0.3, epochs=1), ws.results
    ).folder
    before = tree(ws.root)
    argv = [command, "hr_relation", "--init-from", str(folder)]
    status, _, err = cli(
        capsys, *argv, *(["--results", str(ws.results)] if command == "experiment" else [])
    )
    line = error_line(err)
    assert status == 1
    assert f"--init-from {folder} is a folder" in line and f"{folder / 'history.csv'}" in line
    assert tree(ws.root) == before


def test_init_from_a_missing_file_is_named(ws, capsys):
    before = tree(ws.root)
    missing = ws.root / "nope.csv"
    argv = ["experiment", "hr_relation", "--init-from", str(missing), "--results", str(ws.results)]
    status, _, err = cli(capsys, *argv)
    assert status == 1 and f"--init-from {missing} does not exist" in error_line(err)
    assert tree(ws.root) == before


def test_a_history_table_beyond_the_budget_is_refused_with_the_fix(ws, capsys, no_training):
    before = tree(ws.root)
    argv = ["experiment", "hr_relation", "--epochs", "1000000000000", "--results", str(ws.results)]
    status, _, err = cli(capsys, *argv)
    line = error_line(err)
    assert status == 1
    assert "the history table would hold 1,000,000,000,001 rows x 41 columns x 8 bytes" in line
    assert "TiB" in line and "over the memory budget of 2.0 GiB" in line
    assert "HISTORY_BUDGET_BYTES" in line and "--record-every " in line
    assert tree(ws.root) == before


def test_the_suggested_record_every_is_the_smallest_that_fits(hr_config):
    config = hr_config.with_overrides(epochs=10**12)
    with pytest.raises(ConfigError) as err:
        history_size(config)
    every = int(str(err.value).split("--record-every ")[1].split()[0])
    assert "x 41 columns" in history_size(config.with_overrides(record_every=every))
    with pytest.raises(ConfigError):
        history_size(config.with_overrides(record_every=every - 1))
    rows = 10**12 // every + 1
    assert rows * 41 * 8 <= HISTORY_BUDGET_BYTES


def test_a_sweep_and_a_config_beyond_the_budget_are_refused(ws, capsys, no_training):
    config = ws.config("long", old="epochs = 10", new="epochs = 1_000_000_000")
    before = tree(ws.root)
    status, _, err = cli(capsys, "experiment", str(config), "--results", str(ws.results))
    assert status == 1 and str(config) in error_line(err)
    rates = [str(0.01 * k) for k in range(1, 65)]
    argv = ["sweep", "hr_relation", "--lr", *rates, "--epochs", "1000000"]
    status, _, err = cli(capsys, *argv, "--results", str(ws.results))
    line = error_line(err)
    assert (
        status == 1 and "history table of 64 runs would hold 64,000,064 rows x 42 columns" in line
    )
    assert tree(ws.root) == before


def test_the_table_size_is_stated_before_training(hr_config, ws, caplog):
    with caplog.at_level(logging.INFO, logger="stellarnet"):
        run_experiment(hr_config.with_overrides(learning_rate=0.3, epochs=3), ws.results)
    assert "history table: 4 rows x 41 columns x 8 bytes = 1.3 KiB" in caplog.text


# --- errors reach the user as one line --------------------------------------------------------


@pytest.mark.parametrize(
    ("raised", "expected"),
    [
        (StellarnetError("first line\nsecond line"), "stellarnet: error: first line; second line"),
        (
            PermissionError(13, "Permission denied", "/some/where"),
            "stellarnet: error: Permission denied: /some/where",
        ),
        (OSError(28, "No space left on device"), "stellarnet: error: No space left on device"),
        (MemoryError(), "stellarnet: error: out of memory"),
        (RuntimeError("boom"), "stellarnet: error: unexpected RuntimeError: boom (a bug in"),
    ],
    ids=["multi-line", "permission", "disk full", "memory", "bug"],
)
def test_every_error_is_one_line_without_a_traceback(ws, capsys, monkeypatch, raised, expected):
    def fail(args):
        raise raised

    monkeypatch.setattr("stellarnet.cli.cmd_list", fail)
    monkeypatch.delenv("STELLARNET_TRACEBACK", raising=False)
    before = tree(ws.root)
    status, _, err = cli(capsys, "list")
    assert status == 1 and error_line(err).startswith(expected)
    assert tree(ws.root) == before


def test_the_traceback_is_there_on_request(monkeypatch):
    def fail(args):
        raise RuntimeError("boom")

    monkeypatch.setattr("stellarnet.cli.cmd_list", fail)
    monkeypatch.setenv("STELLARNET_TRACEBACK", "1")
    with pytest.raises(RuntimeError, match="boom"):
        main(["list"])


def test_the_installed_command_prints_one_line_and_no_traceback(ws):
    """End to end, in a process of its own: the hostile name and a file as --results."""
    evil = ws.config("evil", new='name = "../victim"')
    (ws.root / "results.txt").write_text("a file")
    before = tree(ws.root)
    for argv in (
        ["experiment", str(evil), "--force"],
        ["experiment", "hr_relation", "--results", "results.txt", "--epochs", "1"],
    ):
        done = subprocess.run(
            [sys.executable, "-m", "stellarnet", "-q", *argv],
            cwd=ws.root,
            env=os.environ | {"PYTHONPATH": str(REPO)},
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert done.returncode == 1, done.stderr
        assert done.stderr.count("\n") == 1 and done.stderr.startswith(ONE_LINE_ERROR)
    assert tree(ws.root) == before

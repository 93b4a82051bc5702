"""Studies on Dask (issue 21): a LocalCluster and a scheduler with two workers started as
separate processes give the local study's numbers bit for bit, and a worker that dies
mid-study loses nothing and doubles nothing. Small grids: each worker pays TensorFlow's
import."""

from __future__ import annotations

import functools
import json
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

distributed = pytest.importorskip("distributed")

from stellarnet.results.study_parts import read_history  # noqa: E402
from stellarnet.runs.study import run_study  # noqa: E402
from stellarnet.runs.study_dask import run_on_dask  # noqa: E402
from stellarnet.runs.study_grid import StudySpec  # noqa: E402
from stellarnet.runs.study_part import train_part  # noqa: E402

SPEC = StudySpec((0.1, 0.3), seeds=3, epochs=5)
BIN = Path(sys.executable).parent


@pytest.fixture(scope="module")
def local(hr_config, tmp_path_factory):
    """The study run locally: the reference."""
    return run_study(hr_config, SPEC, tmp_path_factory.mktemp("local") / "results")


def assert_same_study(folder: Path, reference) -> None:
    history = read_history(folder / "history")
    assert history.equals(read_history(reference.folder / "history"))
    assert history.groupby(["lr", "hidden", "seed"]).size().eq(SPEC.epochs + 1).all()
    for name in ("summary.csv", "members.csv"):
        assert pd.read_csv(folder / name).equals(pd.read_csv(reference.folder / name))


def test_local_cluster_equals_local(hr_config, results_dir, local):
    result = run_study(hr_config, SPEC, results_dir, dask_workers=2)
    assert result.record["run_on"]["where"] == "dask"
    assert result.record["engines"] == local.record["engines"] == {"6": "fused"}
    assert result.summary.equals(local.summary)
    assert_same_study(result.folder, local)


def _train_or_die(task, marker: str):
    """Train the part, write its file, then (once, for part 0) kill this worker's process
    before the result reaches the scheduler: the part must be trained again."""
    stats = train_part(task)
    if task.part.index == 0 and not os.path.exists(marker):
        Path(marker).write_text(str(os.getpid()))
        os.kill(os.getpid(), signal.SIGKILL)
    return stats


def test_worker_dying_mid_study_loses_and_doubles_nothing(hr_config, tmp_path, local, monkeypatch):
    import cloudpickle

    import stellarnet.runs.study_dask as study_dask

    cloudpickle.register_pickle_by_value(sys.modules[__name__])  # workers cannot import tests/
    marker = tmp_path / "killed"
    dying = functools.partial(_train_or_die, marker=str(marker))
    monkeypatch.setattr(
        study_dask, "run_on_dask", functools.partial(study_dask.run_on_dask, function=dying)
    )
    result = run_study(hr_config, SPEC, tmp_path / "results", dask_workers=2)
    assert marker.is_file()  # a worker did die, after writing its part file
    assert_same_study(result.folder, local)  # every member once, the same numbers
    history = result.folder / "history"
    assert not [p for p in history.rglob("*") if p.is_file() and not p.name.startswith("part-")]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_cli_through_a_scheduler_and_two_worker_processes(
    hr_config, results_dir, local, tmp_path, restore_cli_logging
):
    from stellarnet.cli import main

    port = _free_port()
    address = f"tcp://127.0.0.1:{port}"
    logs = [open(tmp_path / f"{name}.log", "w") for name in ("scheduler", "worker1", "worker2")]  # noqa: SIM115
    scheduler = subprocess.Popen(
        [BIN / "dask", "scheduler", "--host", "127.0.0.1", "--port", str(port), "--no-dashboard"],
        stdout=logs[0],
        stderr=subprocess.STDOUT,
    )
    workers = [
        subprocess.Popen(
            [BIN / "dask", "worker", address, "--nthreads", "1", "--host", "127.0.0.1"]
            + ["--no-dashboard", "--name", f"w{i}"],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        for i, log in enumerate(logs[1:], start=1)
    ]
    processes = [*workers, scheduler]
    try:
        with distributed.Client(address, timeout="60s") as client:
            client.wait_for_workers(2, timeout=120)
        argv = ["study", "hr_relation", "--lr", "0.1", "0.3", "--seeds", "3", "--epochs", "5"]
        argv += ["--catalog", str(hr_config.catalog_path), "--results", str(results_dir)]
        assert main([*argv, "--scheduler", address]) == 0
        folder = next((results_dir / "hr_relation").iterdir())
        assert_same_study(folder, local)
        record = json.loads((folder / "run.json").read_text())
        assert record["engines"] == {"6": "fused"}  # the workers run stellarnet's settings
    finally:
        for process in processes:  # workers first, then the scheduler
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        for log in logs:
            log.close()
    assert all(process.returncode is not None for process in processes)


def test_run_on_dask_needs_a_cluster():
    from stellarnet.errors import ConfigError

    with pytest.raises(ConfigError, match="--dask-workers"):
        run_on_dask([], scheduler=None, workers=None)


def test_a_worker_gives_tensorflow_its_own_threads_only():
    """On a Dask worker TensorFlow runs as many threads between ops as the worker has (the
    machine's other cores run the other workers); outside a worker nothing is set."""
    from stellarnet.runs.study_dask import dask_client
    from stellarnet.runs.study_part import worker_settings

    assert worker_settings() == {}
    with dask_client(workers=1) as client:
        assert client.submit(worker_settings, pure=False).result() == {
            "TF_NUM_INTEROP_THREADS": "1"
        }


class _FakeLibc:
    """Records ``mallopt`` and ``malloc_trim`` calls."""

    def __init__(self) -> None:
        self.calls: list[tuple] = []

    def mallopt(self, parameter: int, value: int) -> int:
        self.calls.append(("mallopt", parameter, value))
        return 1

    def malloc_trim(self, pad: int) -> int:
        self.calls.append(("malloc_trim", pad))
        return 1


def test_tensor_malloc_lifts_a_fixed_threshold_while_training_then_restores_it(monkeypatch):
    """Dask's workers start with MALLOC_TRIM_THRESHOLD_=65536, which keeps glibc mapping fresh
    pages for every tensor; training lifts the thresholds and puts the worker's back after."""
    from stellarnet import tfsettings

    libc = _FakeLibc()
    monkeypatch.setattr(tfsettings, "_glibc", lambda: libc)
    monkeypatch.setenv("MALLOC_TRIM_THRESHOLD_", "65536")
    monkeypatch.delenv("MALLOC_MMAP_THRESHOLD_", raising=False)
    with tfsettings.tensor_malloc():
        inside = list(libc.calls)
    trim, mmap = tfsettings.M_TRIM_THRESHOLD, tfsettings.M_MMAP_THRESHOLD
    assert sorted(inside) == sorted(
        ("mallopt", p, v) for p, v in tfsettings.ROOMY_THRESHOLDS.items()
    )
    assert sorted(libc.calls[len(inside) :]) == sorted(
        [("mallopt", trim, 65536), ("mallopt", mmap, 128 * 1024), ("malloc_trim", 0)]
    )
    monkeypatch.delenv("MALLOC_TRIM_THRESHOLD_")
    libc.calls.clear()
    with tfsettings.tensor_malloc():  # glibc's adaptive thresholds: left alone
        pass
    assert libc.calls == []

"""Study speed (issue 21) on the HR-relation data (the shipped 2242-row Gaia DR2 catalog, 1-6-1
ReLU net, Adam), printed beside the issue's targets:

1. 2 rates x 256 seeds x 2000 epochs, everything recorded (``run_study`` in this process),
   as a multiple of one 2000-epoch single run's training (``train_config``, first run of the
   process after TensorFlow's first ops: it traces; target <= 60x);
2. 2 rates x 4096 seeds x 10 epochs, ``--record all``, end to end: the ``stellarnet study``
   command in a subprocess, TensorFlow's import included (target <= 20 s);
3. the study of 1. on a local Dask cluster of 2 worker processes vs the local path (target
   <= 1.5x), and the overhead per task: the extra wall time per part (the workers' start and
   TensorFlow import included), and the round trip of an empty task;
4. the client's peak memory (RSS, sampled every 50 ms) of a study on Dask at 128 and at 512
   members (it gathers only per-member statistics).

Run: ``.venv/bin/python benchmarks/bench_study.py [--quick]`` (``--quick``: smaller grids, for
a smoke test). The numbers vary with whatever else runs on the machine.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from stellarnet import tfsettings

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
tfsettings.apply()

STELLARNET = Path(sys.executable).parent / "stellarnet"


def single_run(config, epochs: int) -> float:
    """Training time of one run of ``epochs`` epochs (first run of the process: traces)."""
    from stellarnet.runs.experiment import load_data, train_config

    one = config.with_overrides(epochs=epochs)
    _, dataset = load_data(one)
    train_config(config.with_overrides(epochs=2), dataset)  # TensorFlow's first ops, not the run
    started = time.perf_counter()
    train_config(one, dataset)
    return time.perf_counter() - started


def study(config, spec, results: Path, **where) -> tuple[float, object]:
    from stellarnet.runs.study import run_study

    shutil.rmtree(results, ignore_errors=True)
    started = time.perf_counter()
    result = run_study(config, spec, results, **where)
    return time.perf_counter() - started, result


def cli_wall(args: list[str], sample_memory: bool = False) -> tuple[float, float]:
    """Wall time of ``stellarnet ARGS`` and its peak RSS in MiB (sampled; 0 if not)."""
    import psutil

    started = time.perf_counter()
    process = subprocess.Popen([str(STELLARNET), "-q", *args], stdout=subprocess.DEVNULL)
    peak = 0
    watched = psutil.Process(process.pid)
    while process.poll() is None:
        if sample_memory:
            try:
                peak = max(peak, watched.memory_info().rss)
            except psutil.Error:
                pass
        time.sleep(0.05)
    if process.returncode:
        raise SystemExit(f"stellarnet {' '.join(args)} failed ({process.returncode})")
    return time.perf_counter() - started, peak / 2**20


def empty_task_round_trip() -> float:
    """Median seconds of submitting and gathering an empty task on a 2-worker LocalCluster."""
    import statistics

    from stellarnet.runs.study_dask import dask_client

    with dask_client(workers=2) as client:
        client.submit(int, 0, pure=False).result()
        times = []
        for i in range(30):
            started = time.perf_counter()
            client.submit(int, i, pure=False).result()
            times.append(time.perf_counter() - started)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small grids (smoke test)")
    args = parser.parse_args()
    from stellarnet.runs.config import load_experiment
    from stellarnet.runs.study_grid import StudySpec

    config = load_experiment("hr_relation")
    scale = 8 if args.quick else 1
    work = Path(tempfile.mkdtemp(prefix="bench_study_"))
    lines = []
    try:
        epochs = 2000 // (10 if args.quick else 1)
        single = single_run(config, epochs)
        spec = StudySpec((0.1, 0.3), seeds=256 // scale, epochs=epochs)
        wall, long_result = study(config, spec, work / "long")
        members = 2 * spec.seeds
        wall_long = wall
        lines.append(
            f"{members} members x {epochs} epochs, all recorded: {wall:.1f} s = "
            f"{wall / single:.0f}x one single run ({single:.3f} s); target <= 60x; "
            f"{wall / members / epochs * 1e6:.1f} us per member-epoch"
        )

        seeds = 4096 // scale
        args_cli = ["study", "hr_relation", "--lr", "0.1", "0.3", "--seeds", str(seeds)]
        wall, _ = cli_wall([*args_cli, "--record", "all", "--results", str(work / "cli")])
        lines.append(
            f"{2 * seeds} members x 10 epochs, --record all, end to end (CLI, TF import "
            f"included): {wall:.1f} s; target <= 20 s"
        )

        dask_spec, local, result = spec, wall_long, long_result
        on_dask, dask_result = study(config, dask_spec, work / "dask", dask_workers=2)
        parts = dask_result.record["parts"]
        same = result.summary.equals(dask_result.summary)
        lines.append(
            f"{2 * dask_spec.seeds} members x {epochs} epochs: local {local:.1f} s, "
            f"LocalCluster of 2 workers {on_dask:.1f} s = {on_dask / local:.2f}x (target <= 1.5x); "
            f"{(on_dask - local) / parts:.2f} s extra per part ({parts} parts, workers' start "
            f"and TF import included); summaries equal: {same}"
        )
        lines.append(
            f"empty task round trip on the cluster: {empty_task_round_trip() * 1e3:.1f} ms"
        )

        for seeds in (64 // scale, 256 // scale):
            run = ["study", "hr_relation", "--lr", "0.1", "0.3", "--seeds", str(seeds)]
            run += ["--epochs", "50", "--dask-workers", "2", "--results", str(work / f"m{seeds}")]
            wall, peak = cli_wall(run, sample_memory=True)
            lines.append(
                f"client peak RSS, {2 * seeds} members on Dask: {peak:.0f} MiB ({wall:.1f} s)"
            )
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print("\n".join(lines))


if __name__ == "__main__":
    main()

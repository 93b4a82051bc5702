"""Study speed (issue 21) on the HR-relation data (the shipped 2242-row Gaia DR2 catalog, 1-6-1
ReLU net, Adam), printed beside the issue's targets:

1. 2 rates x 256 seeds x 2000 epochs, everything recorded (``run_study`` in this process),
   as a multiple of one 2000-epoch single run's training (``train_config``, first run of the
   process after TensorFlow's first ops: it traces; target <= 60x);
2. 2 rates x 4096 seeds x 10 epochs, ``--record all``, end to end: the ``stellarnet study``
   command in a subprocess, TensorFlow's import included (target <= 20 s);
3. the study of 1. on a local Dask cluster of 2 worker processes vs the local path (target
   <= 1.5x), and the overhead per task: the extra wall time per part (the workers' start and
   imports included), and the round trip of an empty task;
4. the client's peak memory (RSS, sampled every 50 ms) of a study on Dask at 128 and at 512
   members (it gathers only per-member statistics; target: flat in the members).

Run: ``.venv/bin/python benchmarks/bench_study.py [--quick] [--repeat N]`` (``--quick``:
smaller grids, for a smoke test; ``--repeat``: time the studies of 1. and 3. N times and print
the range). The numbers vary with whatever else runs on the machine: it prints the load
average before and after.
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


def study(config, spec, results: Path, repeat: int = 1, **where) -> tuple[list[float], object]:
    """Wall times of ``repeat`` runs of the study, and the last run's result."""
    from stellarnet.runs.study import run_study

    walls = []
    for _ in range(repeat):
        shutil.rmtree(results, ignore_errors=True)
        started = time.perf_counter()
        result = run_study(config, spec, results, **where)
        walls.append(time.perf_counter() - started)
    return walls, result


def span(values: list[float], digits: int = 1, unit: str = " s") -> str:
    """``a`` or ``a-b`` (the range of the repeats)."""
    low, high = min(values), max(values)
    if len(values) == 1 or f"{low:.{digits}f}" == f"{high:.{digits}f}":
        return f"{low:.{digits}f}{unit}"
    return f"{low:.{digits}f}-{high:.{digits}f}{unit}"


def load() -> str:
    """The machine's cores and load average (1, 5, 15 min)."""
    one, five, fifteen = os.getloadavg()
    return f"{os.cpu_count()} cores, load average {one:.1f} {five:.1f} {fifteen:.1f}"


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
    parser.add_argument("--repeat", type=int, default=1, help="runs of studies 1. and 3.")
    args = parser.parse_args()
    from stellarnet.runs.config import load_experiment
    from stellarnet.runs.study_grid import StudySpec

    config = load_experiment("hr_relation")
    scale = 8 if args.quick else 1
    work = Path(tempfile.mkdtemp(prefix="bench_study_"))
    lines = [f"before: {load()}"]
    try:
        epochs = 2000 // (10 if args.quick else 1)
        single = single_run(config, epochs)
        spec = StudySpec((0.1, 0.3), seeds=256 // scale, epochs=epochs)
        local, result = study(config, spec, work / "long", args.repeat)
        members = 2 * spec.seeds
        per_member_epoch = [wall / members / epochs * 1e6 for wall in local]
        lines.append(
            f"1. {members} members x {epochs} epochs, all recorded: {span(local)} = "
            f"{span([wall / single for wall in local], 0, 'x')} one single run "
            f"({single:.3f} s, traced in a warm process); target <= 60x; "
            f"{span(per_member_epoch, 1, ' us')} per member-epoch"
        )

        seeds = 4096 // scale
        args_cli = ["study", "hr_relation", "--lr", "0.1", "0.3", "--seeds", str(seeds)]
        wall, _ = cli_wall([*args_cli, "--record", "all", "--results", str(work / "cli")])
        lines.append(
            f"2. {2 * seeds} members x 10 epochs, --record all, end to end (CLI, TF import "
            f"included): {wall:.1f} s; target <= 20 s"
        )

        on_dask, dask_result = study(config, spec, work / "dask", args.repeat, dask_workers=2)
        parts = dask_result.record["parts"]
        same = result.summary.equals(dask_result.summary)
        ratios = [d / min(local) for d in on_dask]
        extra = [(d - min(local)) / parts for d in on_dask]
        lines.append(
            f"3. {members} members x {epochs} epochs: local {span(local)}, LocalCluster of 2 "
            f"workers {span(on_dask)} = {span(ratios, 2, 'x')} the fastest local run "
            f"(target <= 1.5x); {span(extra, 2)} extra per part ({parts} parts; the cluster's "
            f"start and the workers' imports included); summaries equal: {same}"
        )
        lines.append(
            f"   empty task round trip on the cluster: {empty_task_round_trip() * 1e3:.1f} ms"
        )

        peaks = []
        for seeds in (64 // scale, 256 // scale):
            run = ["study", "hr_relation", "--lr", "0.1", "0.3", "--seeds", str(seeds)]
            run += ["--epochs", "50", "--dask-workers", "2", "--results", str(work / f"m{seeds}")]
            wall, peak = cli_wall(run, sample_memory=True)
            peaks.append(peak)
            lines.append(
                f"4. client peak RSS, {2 * seeds} members on Dask: {peak:.0f} MiB ({wall:.1f} s)"
            )
        lines.append(
            f"   4x the members: {peaks[1] / peaks[0]:.2f}x the client's peak RSS; target: flat"
        )
    finally:
        shutil.rmtree(work, ignore_errors=True)
    lines.append(f"after: {load()}")
    print("\n".join(lines))


if __name__ == "__main__":
    main()

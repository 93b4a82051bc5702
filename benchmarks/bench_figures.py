"""Time ``stellarnet figures`` against issue 19's targets (2-core machine, wall clock).

Three cases, each trained first with the real CLI into a temporary folder (training is not
timed), then drawn by ``stellarnet figures hr_relation --results <tmp>`` run as a subprocess,
so that each time is the whole command as a user waits for it, imports included:

* ``make figures`` after ``make experiment LR=0.3`` and ``make sweep`` (a 10-epoch run and a
  10-epoch sweep of LR 0.1 and 0.3: four folders): target 6 s;
* an 8-rate, 300-epoch sweep (``--lr 0.001 0.003 0.01 0.03 0.1 0.3 1 3``; nine folders):
  target 20 s;
* one 300-epoch run with its GIF: target 8 s.

Each case is drawn first with nothing fresh (the time the targets are about), then once more
with nothing stale (every folder skipped as up to date). The first draws are the best of
``--repeat`` tries, each on a fresh copy of the trained folders. Also printed: the CPU time
(user + system, the command and its worker processes), which does not depend on what else
the machine is running, and the load average before each case.

Run: ``.venv/bin/python benchmarks/bench_figures.py [--repeat N] [--jobs N]``.
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

STELLARNET = [sys.executable, "-m", "stellarnet", "-q"]
EIGHT_RATES = ["0.001", "0.003", "0.01", "0.03", "0.1", "0.3", "1", "3"]

CASES = {
    "`make figures` after `make experiment LR=0.3` and `make sweep` (4 folders)": (
        [
            ["experiment", "hr_relation", "--lr", "0.3", "--epochs", "10"],
            ["sweep", "hr_relation", "--lr", "0.1", "0.3", "--epochs", "10"],
        ],
        6.0,
    ),
    "8-rate 300-epoch sweep (9 folders)": (
        [["sweep", "hr_relation", "--lr", *EIGHT_RATES, "--epochs", "300"]],
        20.0,
    ),
    "300-epoch single run with its GIF": (
        [["experiment", "hr_relation", "--lr", "0.3", "--epochs", "300"]],
        8.0,
    ),
}


def run(args: list[str], cwd: Path) -> None:
    subprocess.run([*STELLARNET, *args], cwd=cwd, check=True, capture_output=True, text=True)


def children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def timed_figures(results: Path, cwd: Path, extra: list[str]) -> tuple[float, float, str]:
    """Wall and CPU seconds of one ``stellarnet figures`` command, and its output."""
    cpu = children_cpu()
    start = time.perf_counter()
    done = subprocess.run(
        [*STELLARNET, "figures", "hr_relation", "--results", str(results), *extra],
        cwd=cwd,
        check=True,
        capture_output=True,
        text=True,
    )
    return time.perf_counter() - start, children_cpu() - cpu, done.stdout


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=1, help="first draws per case (best)")
    parser.add_argument("--jobs", type=int, help="pass --jobs N to stellarnet figures")
    args = parser.parse_args()
    extra = [] if args.jobs is None else ["--jobs", str(args.jobs)]
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench-figures-") as tmp:
        cwd = Path(tmp)
        for case, (commands, target) in CASES.items():
            trained = cwd / f"trained-{len(rows)}"
            for command in commands:
                run([*command, "--results", str(trained)], cwd)
            load = os.getloadavg()[0]
            first = []
            for attempt in range(args.repeat):
                results = cwd / f"results-{len(rows)}-{attempt}"
                shutil.copytree(trained, results)
                first.append(timed_figures(results, cwd, extra))
            wall, cpu, out = min(first)
            again, _, out_again = timed_figures(results, cwd, extra)
            drawn = sum(1 for line in out.splitlines() if "/: " in line)
            fresh = sum(1 for line in out_again.splitlines() if "up to date" in line)
            rows.append((case, wall, cpu, target, again, drawn, fresh, load))
            print(f"{case}: {wall:.1f} s ({drawn} drawn), again {again:.2f} s", flush=True)
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    print(f"\n{cores} cores; Python {sys.version.split()[0]}; best of {args.repeat}\n")
    print("| case | measured (wall) | target | CPU (user + sys) | nothing stale | load |")
    print("|---|---|---|---|---|---|")
    for case, wall, cpu, target, again, drawn, fresh, load in rows:
        verdict = "ok" if wall <= target else "over"
        print(
            f"| {case} | {wall:.1f} s ({verdict}; {drawn} folder(s)) | <= {target:.0f} s "
            f"| {cpu:.1f} s | {again:.2f} s ({fresh} up to date) | {load:.1f} |"
        )


if __name__ == "__main__":
    main()

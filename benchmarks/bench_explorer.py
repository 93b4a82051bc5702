"""Size and time of ``stellarnet explore`` on saved results (prints; asserts nothing).

Usage: ``.venv/bin/python benchmarks/bench_explorer.py RESULTS_FOLDER [...]``. Each folder's
page is written by the real command in a fresh process (imports included, as a user waits
for it), best of 3, and its size printed; see docs/explorer.md for the budgets.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path


def main(folders: list[str]) -> int:
    print(f"{'results':60s} {'page MB':>8s} {'seconds':>8s}")
    for folder in folders:
        times = []
        for _ in range(3):
            start = time.perf_counter()
            subprocess.run(
                [sys.executable, "-m", "stellarnet", "-q", "explore", folder],
                check=True,
                capture_output=True,
            )
            times.append(time.perf_counter() - start)
        size = (Path(folder) / "explorer.html").stat().st_size / 1e6
        print(f"{folder:60s} {size:8.2f} {min(times):8.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))

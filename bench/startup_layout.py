"""Start-up before and after the layout work (issue 13): `sage --version` and `sage run "*help"`, two checkouts
side by side, alternating run by run, medians and ratios. Run: python bench/startup_layout.py BEFORE_DIR [runs]

BEFORE_DIR is a checkout of the commit before the layout move (f24407a), e.g.
`git worktree add --detach /tmp/sage-before f24407a`. AFTER is this checkout.
"""

from __future__ import annotations

import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

AFTER = Path(__file__).resolve().parents[1]
RESULTS = AFTER / "bench" / "results" / "startup-layout.md"
COMMANDS = {"sage --version": ["--version"], 'sage run "*help"': ["run", "*help"]}


def once(repo: Path, args: list[str], cwd: str) -> tuple[float, float]:
    """(wall seconds, CPU seconds of the child): CPU time is what the code costs; wall adds the machine's load."""
    env = {**os.environ, "PYTHONPATH": str(repo), "NO_COLOR": "1"}
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "sage_agent", *args], cwd=cwd, env=env, capture_output=True)
    elapsed = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode != 0:
        raise SystemExit(f"{repo}: sage {' '.join(args)} failed: {proc.stderr.decode()[-500:]}")
    return elapsed, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def main() -> None:
    before = Path(sys.argv[1]).resolve()
    runs = int(sys.argv[2]) if len(sys.argv) > 2 else 21
    cwd = tempfile.mkdtemp()
    load = os.getloadavg()[0]
    rows = []
    for name, args in COMMANDS.items():
        once(before, args, cwd), once(AFTER, args, cwd)  # warm the page cache and .pyc files
        samples: dict[str, list[tuple[float, float]]] = {"before": [], "after": []}
        for i in range(runs):  # alternate, and alternate which goes first
            order = [("before", before), ("after", AFTER)] if i % 2 == 0 else [("after", AFTER), ("before", before)]
            for label, repo in order:
                samples[label].append(once(repo, args, cwd))
        med = {k: [statistics.median(x[i] for x in v) for i in (0, 1)] for k, v in samples.items()}
        rows.append((name, *med["before"], *med["after"]))
    lines = ["# Start-up before and after the layout (issue 13)", "",
             f"Median of {runs} alternating runs each, {os.cpu_count()} cores, load average {load:.1f} at the start "
             f"(the machine is shared: 9 agents), Python {sys.version.split()[0]}. Before: f24407a; after: this tree.", "",
             "| command | wall before s | wall after s | ratio | CPU before s | CPU after s | ratio |",
             "|---|---|---|---|---|---|---|"]
    lines += [f"| `{n}` | {bw:.3f} | {aw:.3f} | {aw / bw:.2f}x | {bc:.3f} | {ac:.3f} | {ac / bc:.2f}x |"
              for n, bw, bc, aw, ac in rows]
    RESULTS.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()

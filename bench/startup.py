"""Start-up time: `sage --version` and `sage run "*help"`, side by side with `supabase --version` and `psql --version`.

Targets (issue 2): under 0.3 s and 0.6 s on this machine. Run: python bench/startup.py [runs]
"""

from __future__ import annotations

import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "bench" / "results" / "startup.md"


def timed(cmd: list[str], runs: int, cwd: str) -> float:
    env = {**os.environ, "PYTHONPATH": str(REPO), "NO_COLOR": "1"}
    samples = []
    subprocess.run(cmd, cwd=cwd, env=env, capture_output=True)  # warm the page cache
    for _ in range(runs):
        start = time.perf_counter()
        proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True)
        samples.append(time.perf_counter() - start)
        if proc.returncode != 0:
            raise SystemExit(f"{cmd} failed: {proc.stderr.decode()[-500:]}")
    return statistics.median(samples)


def main() -> None:
    runs = int(sys.argv[1]) if len(sys.argv) > 1 else 15
    cwd = tempfile.mkdtemp()
    sage = [sys.executable, "-m", "sage_agent"]
    rows = [("sage --version", timed(sage + ["--version"], runs, cwd), 0.3),
            ('sage run "*help"', timed(sage + ["run", "*help"], runs, cwd), 0.6)]
    peers = []
    cli = os.environ.get("SUPABASE_CLI") or shutil.which("supabase") or str(REPO / ".tools/node_modules/.bin/supabase")
    if Path(cli).exists():
        peers.append(("supabase --version", timed([cli, "--version"], runs, cwd)))
    if shutil.which("psql"):
        peers.append(("psql --version", timed(["psql", "--version"], runs, cwd)))
    lines = ["# Start-up", "", f"Median of {runs} runs, {os.cpu_count()} cores, Python {sys.version.split()[0]}.", "",
             "| command | median s | target s | met |", "|---|---|---|---|"]
    lines += [f"| `{name}` | {t:.3f} | {target} | {'yes' if t < target else 'NO'} |" for name, t, target in rows]
    if peers:
        lines += ["", "| peer | median s | sage --version / peer |", "|---|---|---|"]
        lines += [f"| `{name}` | {t:.3f} | {rows[0][1] / t:.2f}x |" for name, t in peers]
    RESULTS.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()

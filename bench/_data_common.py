"""Shared helpers for the data benchmarks: a throwaway server, timing, sessions (not a test module)."""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


@contextmanager
def bench_server() -> Iterator[object]:
    """An embedded PostgreSQL 18 in a temp dir with default durability settings (fsync on)."""
    from sage_agent.db.embedded import EmbeddedServer

    base = Path(tempfile.mkdtemp(prefix="sage-bench-"))
    server = EmbeddedServer(base / "pg", fast=False, port_seed=f"bench-{os.getpid()}")
    server.start()
    try:
        yield server
    finally:
        server.stop()
        subprocess.run(["rm", "-rf", str(base)], check=False)


def session(url: str, project: Path, *, yes: bool = True, confirm: tuple[str, ...] = ()):
    from sage_agent.db.env import Target
    from sage_agent.session.answers import FlagAnswers
    from sage_agent.session.machine import Session

    return Session(project=project, target=Target("local", url, "bench"),
                   answers=FlagAnswers(yes=yes, confirm_words=confirm))


def timed(fn) -> float:
    started = time.perf_counter()
    fn()
    return time.perf_counter() - started


def median(values: list[float]) -> float:
    return statistics.median(values)


def machine() -> str:
    cpu = "?"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{os.cpu_count()} cores ({cpu}), Python {sys.version.split()[0]}"


def sage_cli(args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PG", "SAGE_", "SUPABASE_", "DATABASE_URL"))}
    env["PYTHONPATH"] = str(REPO)
    return subprocess.run([sys.executable, "-m", "sage_agent", *args], cwd=cwd, env=env, capture_output=True,
                          text=True, check=True)


INTRO = """# Data: *load-csv, *backup, *restore

Side by side in one run against the peer tool on the same server (an embedded PostgreSQL 18 with
default durability, fsync on), alternating runs, median and best of N. Machine: 2 cores, shared with
other jobs while measured: single runs vary by up to 2x, so compare the medians and the best runs.

Targets: *load-csv >= 0.9x psql `\\copy` throughput (goal 1.0x); *backup and *restore overhead under 5%
against bare pg_dump / pg_restore.

Reproduce: `python bench/data_load_csv.py [ROWS] [ROUNDS]`, `python bench/data_backup.py [ROWS_PER_TABLE] [ROUNDS]`.
"""


def write_section(part: str, text: str, notes: str = "") -> None:
    """Keep each script's figures in bench/results/data-<part>.txt and assemble bench/results/data.md."""
    results = REPO / "bench" / "results"
    results.mkdir(parents=True, exist_ok=True)
    (results / f"data-{part}.txt").write_text(text.strip() + "\n" + (("\n" + notes.strip() + "\n") if notes else ""))
    sections = [INTRO]
    for name, title in (("load-csv", "## *load-csv vs psql \\copy"), ("backup", "## *backup / *restore vs pg_dump / pg_restore")):
        path = results / f"data-{name}.txt"
        if path.exists():
            sections.append(title + "\n\n" + path.read_text().strip() + "\n")
    (results / "data.md").write_text("\n".join(sections))

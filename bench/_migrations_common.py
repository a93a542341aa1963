"""Shared helpers for the migrations benchmarks (not a test): a scratch embedded server, sage/CLI runners."""

from __future__ import annotations

import os
import platform
import secrets
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def start_server(label: str):
    from sage_agent.db.embedded import EmbeddedServer

    root = Path(tempfile.mkdtemp(prefix=f"sage-bench-{label}-"))
    server = EmbeddedServer(root / "pg", fast=True, port_seed=f"bench-{label}-{secrets.token_hex(2)}")
    server.start()
    return server


def new_db(server, name: str) -> str:
    from sage_agent.db.shadow import create_database

    return create_database(server.url(), f"{name}_{secrets.token_hex(3)}")


def sage_env(extra: dict | None = None) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SUPABASE_", "DATABASE_URL", "PG", "SAGE_"))}
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    env["NO_COLOR"] = "1"
    env.update(extra or {})
    return env


def run_sage(args: list[str], cwd: Path, env: dict | None = None) -> tuple[float, subprocess.CompletedProcess]:
    started = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "sage_agent", *args], cwd=cwd, env=sage_env(env),
                          capture_output=True, text=True, stdin=subprocess.DEVNULL)
    return time.perf_counter() - started, proc


def supabase_cli() -> str | None:
    from sage_agent.db.supabase_cli import find_cli

    cli = find_cli(REPO) or (find_cli(Path("/work/main")) if Path("/work/main").exists() else None)
    return cli.path if cli else None


def machine() -> str:
    return f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}"

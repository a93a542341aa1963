"""Shared fixtures: one embedded PostgreSQL server per test session, one database per test.

Also a Debian PostgreSQL 15 server (skipped with a visible reason where absent) so version
differences are caught, and helpers to run `sage` in a subprocess and drive a Session.
"""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import subprocess
import sys
from pathlib import Path
from typing import Callable, Iterator

import pytest

REPO = Path(__file__).resolve().parents[1]
PG15_BIN = Path("/usr/lib/postgresql/15/bin")

# Tests script the model themselves; a real key on the machine must never reach the network.
for _name in ("ANTHROPIC_API_KEY", "ANTHROPIC_AUTH_TOKEN", "SAGE_PROVIDER", "SAGE_MODEL"):
    os.environ.pop(_name, None)

# A suite started in the background by a shell without job control (`pytest ... &`) inherits SIGINT as ignored, and
# so would every `sage` it spawns: the Ctrl-C tests need it delivered, as it is to a user at a terminal.
if signal.getsignal(signal.SIGINT) == signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)


@pytest.fixture(scope="session")
def pg_server() -> Iterator["EmbeddedServer"]:
    """Kept outside pytest's rotating basetemp, which a concurrent pytest run may prune."""
    import tempfile

    from sage_agent.db.embedded import EmbeddedServer

    base = Path(tempfile.mkdtemp(prefix="sage-test-pg-"))
    server = EmbeddedServer(base / "pg", fast=True)
    server.start()
    os.environ["SAGE_SHADOW_URL"] = server.url()
    yield server
    os.environ.pop("SAGE_SHADOW_URL", None)
    server.stop()
    shutil.rmtree(base, ignore_errors=True)


def new_database(admin_url: str) -> tuple[str, str]:
    """A fresh database (with the Supabase-compatible baseline) on that server: its name and URL; the caller drops it."""
    from sage_agent.db.shadow import create_database

    name = f"t_{secrets.token_hex(5)}"
    return name, create_database(admin_url, name)


@pytest.fixture
def db_url(pg_server) -> Iterator[str]:
    """A fresh database (with the Supabase-compatible baseline) for this test only."""
    from sage_agent.db.shadow import drop_database

    name, url = new_database(pg_server.url())
    yield url
    drop_database(pg_server.url(), name)


@pytest.fixture
def db(db_url):
    """An autocommit connection to this test's database."""
    import psycopg

    with psycopg.connect(db_url, autocommit=True) as conn:
        yield conn


@pytest.fixture(scope="session")
def pg15_server() -> Iterator[str]:
    """Debian's PostgreSQL 15 (pg_ctl in a temp dir). Yields an admin URL."""
    import tempfile

    from sage_agent.db.embedded import EmbeddedServer

    if not (PG15_BIN / "pg_ctl").exists():
        pytest.skip("Debian PostgreSQL 15 server not installed (apt-get install postgresql-15)")
    base = Path(tempfile.mkdtemp(prefix="sage-test-pg15-"))
    server = EmbeddedServer(base / "pg", fast=True, port_seed=str(base), major=15)
    assert server.bin_dir == PG15_BIN, server.bin_dir
    server.start()
    yield server.url()
    server.stop()
    shutil.rmtree(base, ignore_errors=True)


@pytest.fixture
def pg15_url(pg15_server) -> Iterator[str]:
    from sage_agent.db.shadow import drop_database

    name, url = new_database(pg15_server)
    yield url
    drop_database(pg15_server, name)


@pytest.fixture
def project(tmp_path) -> Path:
    """An empty project folder."""
    path = tmp_path / "project"
    path.mkdir()
    return path


def sage_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SUPABASE_", "DATABASE_URL", "PG", "SAGE_"))}
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    env["NO_COLOR"] = "1"
    env["COLUMNS"] = "200"
    if os.environ.get("SAGE_SHADOW_URL"):
        env["SAGE_SHADOW_URL"] = os.environ["SAGE_SHADOW_URL"]
    env.update(extra or {})
    return env


@pytest.fixture
def run_sage() -> Callable[..., subprocess.CompletedProcess]:
    """Run `sage ARGS...` in a subprocess (this checkout's code), no standard input."""

    def run(*args: str, cwd: Path, env: dict[str, str] | None = None, timeout: float = 120,
            input: str | None = None) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "sage_agent", *args], cwd=cwd, env=sage_env(env),
                              capture_output=True, text=True, timeout=timeout,
                              input=input, stdin=None if input is not None else subprocess.DEVNULL)

    return run


@pytest.fixture
def make_session(project) -> Callable[..., "Session"]:
    """A Session on a given database URL with scripted answers (a list of replies) or flags."""
    from sage_agent.db.env import Target
    from sage_agent.session.answers import FlagAnswers, PromptAnswers
    from sage_agent.session.machine import Session

    def make(url: str, answers: list[str] | None = None, *, yes: bool = False, confirm: tuple[str, ...] = (),
             env: str = "local", project_dir: Path | None = None) -> Session:
        if answers is not None:
            replies = list(answers)
            source = PromptAnswers(prompt=lambda message: replies.pop(0))
        else:
            source = FlagAnswers(yes=yes, confirm_words=confirm)
        return Session(project=project_dir or project, target=Target(env, url, "test"), answers=source)

    return make


@pytest.fixture(scope="session")
def supabase_cli() -> str:
    """The real Supabase CLI (installed by .ci/run into .tools/), or skip with the reason."""
    from sage_agent.db.supabase_cli import find_cli

    cli = find_cli(REPO)
    if cli is None:
        pytest.skip("Supabase CLI not installed: npm install --prefix .tools supabase (done by .ci/run)")
    return cli.path


@pytest.fixture
def demo_drop(monkeypatch, db_url, tmp_path):
    """A test-only destructive task `demo-drop` (typed word DROP), registered like tests/test_session.py does."""
    from test_session import demo_task, drop_op

    from sage_agent.catalog import tasks as tasks_mod
    from sage_agent.ops import registry

    task = demo_task(tmp_path)
    real = tasks_mod.load_tasks()
    # first, so that the tool budget never moves it into the run_command overflow
    monkeypatch.setattr(tasks_mod, "load_tasks", lambda directory=None: {"demo-drop": task, **real})
    with registry.registered(drop_op(db_url)):
        yield task

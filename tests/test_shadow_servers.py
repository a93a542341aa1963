"""Servers DB Sage starts only to host a shadow database stop when a headless run ends; *exit names what runs."""

from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path

import pytest

from sage_agent.db.embedded import project_server

MIGRATION = "create table public.items (id bigint primary key, name text);\n"


@pytest.fixture
def project():
    """A project outside pytest's basetemp: its local server runs as an unprivileged user, and a concurrent
    pytest run resets the permissions of that folder (see pg_server in conftest.py)."""
    path = Path(tempfile.mkdtemp(prefix="sage-test-shadowsrv-"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


def test_headless_dry_run_on_a_remote_target_leaves_no_server_behind(db_url, project, run_sage):
    env = {"SAGE_SHADOW_URL": ""}  # the shadow goes on the project's own local server
    folder = project / "supabase" / "migrations"
    folder.mkdir(parents=True)
    (folder / "20240101000000_items.sql").write_text(MIGRATION)
    server = project_server(project)
    try:
        res = run_sage("run", "*dry-run 20240101000000_items.sql", "--db-url", db_url, "--json", cwd=project,
                       env=env, timeout=240)
        doc = json.loads(res.stdout)
        assert res.returncode == 0, res.stdout + res.stderr
        assert (project / ".sage" / "pg" / "data").is_dir()  # the shadow did run on the project's server...
        assert not server.is_running()  # ...which the run stopped again, and said so
        assert ("stopped the local server started only for the shadow database (.sage/pg); the next run starts "
                "it again") in doc["notes"]
        # a server that was already running stays running, and nothing is said about it
        assert run_sage("db", "start", cwd=project, env=env, timeout=120).returncode == 0
        again = run_sage("run", "*dry-run 20240101000000_items.sql", "--db-url", db_url, "--json", cwd=project,
                         env=env, timeout=240)
        assert again.returncode == 0, again.stdout + again.stderr
        assert server.is_running()
        assert not any("stopped the local server" in n for n in json.loads(again.stdout)["notes"])
        # *exit says what is still up and how to stop it
        bye = run_sage("run", "*exit", cwd=project, env=env)
        assert bye.returncode == 0, bye.stderr
        assert f"Still running: the local server (.sage/pg, port {server.port})" in bye.stdout
        assert "`sage db stop` stops it" in bye.stdout
    finally:
        run_sage("db", "stop", cwd=project, env=env)
    gone = json.loads(run_sage("run", "*exit", "--json", cwd=project, env=env).stdout)
    assert gone["facts"]["servers_running"] == 0 and gone["notes"] == ["No DB Sage server is running for this project."]
    assert gone["next_steps"] == []


def test_embedded_target_keeps_its_server(project, run_sage):
    """The project's server as the target (the tour) is not a shadow-only server: it stays up after the run."""
    env = {"SAGE_SHADOW_URL": ""}
    try:
        res = run_sage("run", "*run-sql 'select 1 as one'", "--json", cwd=project, env=env, timeout=240)
        assert res.returncode == 0, res.stdout + res.stderr
        assert project_server(project).is_running()
        assert not any("stopped the local server" in n for n in json.loads(res.stdout)["notes"])
    finally:
        run_sage("db", "stop", cwd=project, env=env)

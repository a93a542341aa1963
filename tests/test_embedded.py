"""The embedded server's Supabase-compatible baseline, and the same checks on Debian PostgreSQL 15."""

import json

import psycopg


def test_baseline_supports_rls_by_impersonation(db):
    db.execute("create table todos (id bigint generated always as identity primary key, "
               "owner uuid not null default auth.uid(), title text)")
    db.execute("alter table todos enable row level security")
    db.execute("create policy own on todos for all to authenticated "
               "using ((select auth.uid()) = owner) with check ((select auth.uid()) = owner)")
    a, b = "11111111-1111-1111-1111-111111111111", "22222222-2222-2222-2222-222222222222"
    db.execute("insert into todos (owner, title) values (%s, 'a1'), (%s, 'b1'), (%s, 'b2')", (a, b, b))
    with db.transaction():
        db.execute("set local role authenticated")
        db.execute("select set_config('request.jwt.claims', %s, true)",
                   (json.dumps({"sub": a, "role": "authenticated"}),))
        assert db.execute("select auth.uid()::text, auth.role()").fetchone() == (a, "authenticated")
        assert db.execute("select title from todos").fetchall() == [("a1",)]
    with db.transaction():
        db.execute("set local role anon")
        assert db.execute("select count(*) from todos").fetchone()[0] == 0


def test_baseline_roles_and_schemas(db):
    roles = {r[0] for r in db.execute("select rolname from pg_roles").fetchall()}
    assert {"anon", "authenticated", "service_role", "authenticator"} <= roles
    assert db.execute("select rolbypassrls from pg_roles where rolname = 'service_role'").fetchone()[0]
    schemas = {r[0] for r in db.execute("select nspname from pg_namespace").fetchall()}
    assert {"auth", "extensions"} <= schemas


def test_shadow_databases_are_dropped(pg_server):
    from sage_agent.db.shadow import shadow_database

    with shadow_database(pg_server.url(), "t") as url:
        name = url.rsplit("/", 1)[1]
        with psycopg.connect(url) as conn:
            assert conn.execute("select to_regprocedure('auth.uid()') is not null").fetchone()[0]
    with psycopg.connect(pg_server.url()) as conn:
        assert conn.execute("select count(*) from pg_database where datname = %s", (name,)).fetchone()[0] == 0


def test_env_check_on_postgres_15(run_sage, project, pg15_url):
    proc = run_sage("run", "*env-check", "--db-url", pg15_url, "--json", cwd=project)
    assert proc.returncode == 0, proc.stderr
    facts = json.loads(proc.stdout)["facts"]
    assert facts["server_version"].startswith("15")
    assert facts["supabase"] == "compatible roles"


def test_pg_dump_choice_follows_the_server_version():
    from sage_agent.db.binaries import binary_major, find_binary

    assert binary_major(str(find_binary("pg_dump", 18))) >= 18
    assert binary_major(str(find_binary("pg_dump", 15))) >= 15


def test_a_running_server_keeps_its_port(tmp_path):
    """The live postmaster is the truth: a stale or wrong state file never moves a running server."""
    import json as _json

    from sage_agent.db.embedded import EmbeddedServer

    server = EmbeddedServer(tmp_path / "pg", fast=True)
    try:
        real = server.start().port
        server.state_file.write_text(_json.dumps({"port": real + 1}))
        assert server.is_running() and server.port == real
        assert server.start().port == real
        with psycopg.connect(server.url()) as conn:
            assert conn.execute("select 1").fetchone() == (1,)
    finally:
        server.stop()
    assert not server.is_running()


def test_stop_that_leaves_the_server_running_is_an_error(tmp_path, monkeypatch):
    """A shutdown that outlasts the wait (a slow checkpoint on a busy machine: pg_ctl gives up) must not be reported
    as stopped: `sage db stop` said "stopped" and exited 0, and *switch-major would have moved a live data folder.
    pg_ctl is replaced by one that gives up at once, as the real one does after its wait; the server is real."""
    import os
    import stat

    import pytest

    from sage_agent.db.embedded import EmbeddedError, EmbeddedServer

    server = EmbeddedServer(tmp_path / "pg", fast=True)
    real_bin = server.bin_dir
    try:
        server.start()
        slow = tmp_path / "bin"
        slow.mkdir()
        (slow / "pg_ctl").write_text("#!/bin/sh\necho 'waiting for server to shut down.... failed'\n"
                                     "echo 'pg_ctl: server does not shut down' >&2\nexit 1\n")
        (slow / "pg_ctl").chmod(stat.S_IRWXU | stat.S_IRGRP | stat.S_IXGRP | stat.S_IROTH | stat.S_IXOTH)
        os.chmod(slow, 0o755)
        monkeypatch.setattr(server, "bin_dir", slow)
        with pytest.raises(EmbeddedError) as info:
            server.stop()
        message = str(info.value)
        assert "is still running after 120s of waiting for it to stop (pg_ctl: server does not shut down)" in message
        assert "run `sage db stop` again" in message
        with psycopg.connect(server.url()) as conn:  # and it is: nothing pretended otherwise
            assert conn.execute("select 1").fetchone() == (1,)
    finally:
        monkeypatch.setattr(server, "bin_dir", real_bin)
        server.stop()
    assert not server.is_running()

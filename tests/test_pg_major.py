"""The local server follows the project's PostgreSQL major; archives cross majors with the right tools.

Real servers only: the embedded wheel's PostgreSQL 18 and Debian's PostgreSQL 15 (installed by .ci/run).
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import psycopg
import pytest

from conftest import PG15_BIN

needs_pg15 = pytest.mark.skipif(not (PG15_BIN / "pg_ctl").exists(),
                                reason="Debian PostgreSQL 15 not installed (apt-get install postgresql-15; .ci/run does)")


@pytest.fixture
def own_project():
    """A project folder outside pytest's numbered temp dirs: a concurrent pytest run prunes and chmods those,
    which the server's unprivileged user then cannot enter."""
    import shutil
    import tempfile

    path = Path(tempfile.mkdtemp(prefix="sage-test-major-")) / "project"
    path.mkdir()
    yield path
    shutil.rmtree(path.parent, ignore_errors=True)


def _json(proc: subprocess.CompletedProcess) -> dict:
    assert proc.stdout, proc.stderr
    return json.loads(proc.stdout)


@needs_pg15
def test_project_with_major_15_runs_its_local_server_on_debian_15_and_switches_keeping_data(own_project, run_sage):
    project = own_project
    (project / "supabase").mkdir()
    (project / "supabase" / "config.toml").write_text('project_id = "x"\n\n[db]\nport = 54322\nmajor_version = 15\n')
    try:
        check = _json(run_sage("run", "*env-check", "--json", cwd=project))
        assert check["facts"]["server_version"].startswith("15."), check["facts"]
        assert check["facts"]["project_major"] == 15
        assert check["facts"]["server_binaries"] == str(PG15_BIN)
        assert not [f for f in check["findings"] if f["rule"] == "server.major_mismatch"]
        made = run_sage("run", "*run-sql --write 'create table public.items (id int primary key, name text); "
                        "insert into public.items select g, g::text from generate_series(1, 300) g'", "--yes",
                        cwd=project)
        assert made.returncode == 0, made.stdout + made.stderr
        for _ in range(3):
            assert run_sage("run", "*run-sql 'select count(*) from public.items where name = $$7$$'",
                            cwd=project).returncode == 0
        # pg_stat_statements is there out of the box, and the cluster's own set-up is not in it
        hot = _json(run_sage("run", "*hotpaths", "--json", cwd=project))
        assert hot["data"]["enabled"] is True, hot
        queries = [r["query"] for r in hot["data"]["top"]["total"]]
        assert any("from public.items where name" in q for q in queries), queries
        assert not any("auth.users" in q or "create extension" in q.lower() for q in queries), queries

        # the project now asks for a major that is not installed: both majors and the way out are named
        wrong = _json(run_sage("run", "*env-check", "--json", cwd=project, env={"SAGE_PG_MAJOR": "17"}))
        mismatch = [f for f in wrong["findings"] if f["rule"] == "server.major_mismatch"]
        assert len(mismatch) == 1, wrong["findings"]
        assert "runs PostgreSQL 15 but the project wants 17 (SAGE_PG_MAJOR)" in mismatch[0]["message"]
        assert "apt-get install postgresql-17" in mismatch[0]["message"]

        # switching needs a confirmation; without one nothing changes
        refused = run_sage("db", "switch-major", "18", cwd=project)
        assert refused.returncode == 3, refused.stderr
        assert "nothing was changed" in refused.stderr
        assert (project / ".sage" / "pg" / "data" / "PG_VERSION").read_text().strip() == "15"
        switched = run_sage("db", "switch-major", "18", "--yes", cwd=project, timeout=300)
        assert switched.returncode == 0, switched.stderr
        assert "now runs PostgreSQL 18 (was 15)" in switched.stdout and "300 row(s)" in switched.stdout
        after = _json(run_sage("run", "*run-sql 'select count(*) as n from public.items'", "--json",
                               cwd=project, env={"SAGE_PG_MAJOR": "18"}))
        assert after["data"]["rows"] == [[300]]
        assert after["notes"] == []  # the server is the major asked for: no warning
        # the project's config.toml still says 15: every use of the local server says so
        again = _json(run_sage("run", "*env-check", "--json", cwd=project))
        assert again["facts"]["server_version"].startswith("18.")
        assert [f["message"] for f in again["findings"] if f["rule"] == "server.major_mismatch"] == [
            "the local server runs PostgreSQL 18 but the project wants 15 (supabase/config.toml): "
            "`sage db switch-major 15` recreates it on 15 (data kept by dump and restore)"]
    finally:
        run_sage("db", "stop", cwd=project)


def test_bad_major_setting_is_refused_with_its_source(project, run_sage):
    (project / "supabase").mkdir()
    (project / "supabase" / "config.toml").write_text("[db]\nmajor_version = 'fifteen'\n")
    proc = run_sage("db", "status", cwd=project)
    assert proc.returncode == 1
    assert "supabase/config.toml [db] major_version: 'fifteen' is not a PostgreSQL major version" in proc.stderr
    assert not (project / ".sage").exists()


@needs_pg15
def test_shadow_for_a_remote_target_runs_on_the_targets_major(own_project, pg15_url, monkeypatch):
    """With no SAGE_SHADOW_URL, a PostgreSQL 15 target gets its shadows on a local 15 server, not the 18 one."""
    from sage_agent.db.embedded import EmbeddedServer
    from sage_agent.db.env import Target
    from sage_agent.session.context import OpContext

    monkeypatch.delenv("SAGE_SHADOW_URL", raising=False)
    ctx = OpContext(project=own_project, target=Target("dev", pg15_url, "test"), task=None,
                    confirm_fn=lambda r: True)
    try:
        with psycopg.connect(ctx.admin_url, autocommit=True) as conn:
            assert conn.info.server_version // 10000 == 15
        assert (own_project / ".sage" / "pg15-shadow" / "data" / "PG_VERSION").read_text().strip() == "15"
        assert ctx.notices == []
    finally:
        EmbeddedServer(own_project / ".sage" / "pg15-shadow").stop()


@needs_pg15
def test_dry_run_of_a_pg15_target_on_an_18_shadow_says_which_major_it_tested_on(project, pg_server, pg15_url,
                                                                                 make_session):
    # pg_server sets SAGE_SHADOW_URL to the suite's PostgreSQL 18 server
    migrations = project / "supabase" / "migrations"
    migrations.mkdir(parents=True)
    (migrations / "20250101000000_add_t.sql").write_text("create table public.t (id int primary key);\n")
    outcome = make_session(pg15_url).run_line("*dry-run add_t")
    assert outcome.result is not None, outcome.error
    assert "tested on PostgreSQL 18 (SAGE_SHADOW_URL); the target runs PostgreSQL 15: point SAGE_SHADOW_URL at " \
           "a 15 server" in outcome.result.notes


def _backup(session, name: str, fmt: str) -> Path:
    outcome = session.run_line(f"*backup {name} --format {fmt}")
    assert outcome.exit_code == 0, outcome.error
    return next(Path(a) for a in outcome.result.artifacts if not a.endswith(".json"))


@needs_pg15
def test_pg18_backups_restore_into_pg15_and_what_cannot_says_which_versions_meet(db_url, db, pg15_server,
                                                                                  make_session):
    from sage_agent.db.urls import replace_dbname
    from sage_agent.ops.data.backup import raise_unreadable
    from sage_agent.ops.result import OpError

    db.execute("create table public.items (id bigint generated always as identity primary key, name text not null,"
               " tags text[] default '{}'); insert into public.items (name) select 'n' || g "
               "from generate_series(1, 120) g; create view public.named as select id, name from public.items; "
               "alter table public.items enable row level security; "
               "create policy items_read on public.items for select to authenticated using (true)")
    session = make_session(db_url, confirm=("RESTORE",))
    custom = _backup(session, "to15", "custom")
    plain = _backup(session, "to15plain", "plain")
    _backup(session, "to15dir", "directory")
    for name, into in (("to15", "from18_custom"), ("to15plain", "from18_plain"), ("to15dir", "from18_dir")):
        outcome = session.run_line(f"*restore {name} --into {replace_dbname(pg15_server, into)}")
        assert outcome.exit_code == 0, outcome.error
        assert outcome.result.data["verified"] is True
        with psycopg.connect(replace_dbname(pg15_server, into)) as conn:
            assert conn.info.server_version // 10000 == 15
            assert conn.execute("select count(*) from public.named").fetchone()[0] == 120
            assert conn.execute("select count(*) from pg_policies where policyname = 'items_read'").fetchone()[0] == 1
    assert plain.exists()

    # the old pg_restore cannot read the new archive format: the versions that meet, not "damaged"
    old = subprocess.run([str(PG15_BIN / "pg_restore"), "--list", str(custom)], capture_output=True, text=True)
    assert "unsupported version (1.16)" in old.stderr
    with pytest.raises(OpError) as info:
        raise_unreadable(custom, PG15_BIN / "pg_restore", old.stderr)
    assert str(info.value.message) == (f"{custom.name} is archive format 1.16, written by pg_dump 17 or newer; the "
                                       "pg_restore used (PostgreSQL 15) reads formats up to 1.14")
    assert "the file is fine: read it with pg_restore 17 or newer" in info.value.hint
    assert "damaged" not in str(info.value)

    # an object PostgreSQL 15 cannot hold: the restore fails whole, says why, and leaves nothing behind
    db.execute("create table public.gen (a int, b int generated always as (a * 2) virtual)")
    _backup(session, "virtual", "custom")
    failed = session.run_line(f"*restore virtual --into {replace_dbname(pg15_server, 'from18_virtual')}")
    assert failed.exit_code == 1
    assert "the backup comes from PostgreSQL 18: a restore into an older major (15) works only for objects 15 " \
           "supports. Restore into PostgreSQL 18 or newer" in failed.error, failed.error
    assert "damaged" not in failed.error
    with psycopg.connect(pg15_server, autocommit=True) as conn:
        assert not conn.execute("select 1 from pg_database where datname = 'from18_virtual'").fetchone()
        for name in ("from18_custom", "from18_plain", "from18_dir"):
            conn.execute(f"drop database {name} with (force)")


def test_the_local_servers_major_warning_is_said_once_and_only_by_commands_that_dump_or_test_on_it(own_project,
                                                                                                     run_sage):
    """A project that wants a major this machine has no server for: *locks and *vacuum do not repeat the warning,
    the first *snapshot (pg_dump) says it, the second in the same run does not."""
    (own_project / "supabase").mkdir()
    (own_project / "supabase" / "config.toml").write_text("[db]\nmajor_version = 17\n")
    try:
        proc = run_sage("run", "*locks", "*vacuum", "*snapshot first", "*snapshot second", cwd=own_project,
                        timeout=300)
        assert proc.returncode == 0, proc.stdout + proc.stderr
        shown = proc.stdout + proc.stderr
        reports = shown.split("$ sage run '")[1:]  # several lines: each report under its own heading
        assert [r.split("'")[0] for r in reports] == ["*locks", "*vacuum", "*snapshot first", "*snapshot second"]
        said = [r.split("'")[0] for r in reports if "apt-get install postgresql-17" in r]
        assert said == ["*snapshot first"], shown
        assert shown.count("apt-get install postgresql-17") == 1, shown
    finally:
        run_sage("db", "stop", cwd=own_project)

"""A real streaming hot standby (`pg_basebackup -R` from a primary this module starts, on another port):
*env-check says standby or primary and the lag; writes on the standby are refused before anything starts;
*smoke-test comprehensive reports slots and per-standby lag on the primary and passes on both; *monitor shows
the replication picture."""

from __future__ import annotations

import json
import time
from pathlib import Path

import psycopg
import pytest
from pgtopology import start_replica_pair


@pytest.fixture(scope="module")
def pair(pg_server):  # pg_server first: the shadow server exists before the pair's own clusters
    p = start_replica_pair()
    with psycopg.connect(p.primary.url(), autocommit=True) as conn:
        conn.execute("create table public.todos (id bigint generated always as identity primary key, title text);"
                     "alter table public.todos enable row level security;"
                     "create policy todos_read on public.todos for select to authenticated using (true);"
                     "insert into public.todos (title) values ('a');"
                     "create function public.touch() returns int language plpgsql as $$ begin return 1; end $$")
    wait_replayed(p)
    yield p
    p.stop()


def wait_replayed(p, timeout: float = 30) -> None:
    with psycopg.connect(p.primary.url(), autocommit=True) as prim:
        lsn = prim.execute("select pg_current_wal_lsn()").fetchone()[0]
    with psycopg.connect(p.standby.url(), autocommit=True) as stby:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if stby.execute("select pg_last_wal_replay_lsn() >= %s::pg_lsn", (lsn,)).fetchone()[0]:
                return
            time.sleep(0.05)
    raise AssertionError("the standby did not replay in time")


def sage_json(run_sage, project: Path, url: str, *lines: str) -> tuple[int, dict, str]:
    proc = run_sage("run", *lines, "--json", "--yes", "--db-url", url, cwd=project, timeout=120)
    return proc.returncode, (json.loads(proc.stdout) if proc.stdout.strip() else {}), proc.stdout + proc.stderr


def test_env_check_says_standby_or_primary_and_the_lag(pair, project, run_sage):
    code, doc, text = sage_json(run_sage, project, pair.standby.url(), "*env-check")
    assert code == 0, text
    facts = doc["facts"]
    assert facts["standby"] is True and facts["replication"].startswith("streaming from 127.0.0.1:")
    assert isinstance(facts["replay_lag_bytes"], int) and facts["replay_lag_bytes"] >= 0
    assert any(f["rule"] == "replication.standby" for f in doc["findings"])
    code, doc, text = sage_json(run_sage, project, pair.primary.url(), "*env-check")
    assert code == 0, text
    assert doc["facts"]["standby"] is False and doc["facts"]["standbys"] == 1
    assert isinstance(doc["facts"]["max_standby_lag_bytes"], int)


@pytest.mark.parametrize("line", ["*apply", "*run-sql --write \"insert into public.todos (title) values ('x')\"",
                                  "*load-csv rows.csv public.todos", "*seed", "*rollback some_snapshot"])
def test_writes_on_the_standby_are_refused_before_anything_starts(pair, project, run_sage, line):
    folder = project / "supabase" / "migrations"
    folder.mkdir(parents=True)
    (folder / "20240101000000_t.sql").write_text("create table public.t (id int);\n")
    (project / "supabase" / "seed.sql").write_text("insert into public.todos (title) values ('seeded');\n")
    (project / "rows.csv").write_text("title\nz\n")
    before = sorted(str(p.relative_to(project)) for p in project.rglob("*") if not str(p.relative_to(project)).startswith(".sage"))  # the audit trail records refusals
    code, doc, text = sage_json(run_sage, project, pair.standby.url(), line)
    assert code == 1, text
    assert "read-only hot standby" in text and "Nothing was started" in text and "primary" in text, text
    assert sorted(str(p.relative_to(project)) for p in project.rglob("*") if not str(p.relative_to(project)).startswith(".sage"))  # the audit trail records refusals == before  # no snapshot, no log
    with psycopg.connect(pair.primary.url(), autocommit=True) as conn:
        assert conn.execute("select to_regclass('public.t'), (select count(*) from public.todos)").fetchone() == (None, 1)


def test_smoke_test_comprehensive_reports_replication_and_passes_on_both(pair, project, run_sage):
    code, doc, text = sage_json(run_sage, project, pair.primary.url(), "*smoke-test p1 comprehensive")
    assert code == 0, text
    repl = next(c for c in doc["data"]["checks"] if c["name"] == "replication")
    assert repl["status"] == "pass"
    assert "primary: 1 standby(s), 0 replication slot(s)" in repl["detail"]
    assert "behind" in repl["detail"] and "replay lag" in repl["detail"]  # bytes and seconds per standby
    code, doc, text = sage_json(run_sage, project, pair.standby.url(), "*smoke-test s1 comprehensive")
    assert code == 0, text
    checks = {c["name"]: c for c in doc["data"]["checks"]}
    assert checks["replication"]["status"] == "pass" and "hot standby" in checks["replication"]["detail"]
    assert checks["functions compile"]["status"] == "skip" and "read-only hot standby" in checks["functions compile"]["detail"]


def test_an_inactive_slot_is_reported_with_the_wal_it_retains(pair, project, run_sage):
    with psycopg.connect(pair.primary.url(), autocommit=True) as conn:
        conn.execute("select pg_create_physical_replication_slot('sage_idle_slot', true)")
        try:
            conn.execute("create table public.churn as select g from generate_series(1, 20000) g; drop table public.churn")
            code, doc, text = sage_json(run_sage, project, pair.primary.url(), "*smoke-test p2 comprehensive",)
            repl = next(c for c in doc["data"]["checks"] if c["name"] == "replication")
            assert repl["status"] == "warn", repl
            assert "slot sage_idle_slot (physical) inactive, retains" in repl["detail"]
            code, doc, text = sage_json(run_sage, project, pair.primary.url(), "*monitor --once")
            assert any(f["rule"] == "monitor.inactive_slot" for f in doc["findings"]), text
        finally:
            conn.execute("select pg_drop_replication_slot('sage_idle_slot')")


def test_monitor_shows_the_replication_picture(pair, project, run_sage):
    code, doc, text = sage_json(run_sage, project, pair.primary.url(), "*monitor --once")
    assert code == 0, text
    table = next(t for t in doc["tables"] if t["title"].startswith("Replication"))
    assert table["title"] == "Replication (primary: standbys and slots)"
    assert [r[0] for r in table["rows"]] == ["standby"] and "streaming" in table["rows"][0][2]
    assert doc["facts"]["replication_role"] == "primary"
    code, doc, text = sage_json(run_sage, project, pair.standby.url(), "*monitor --once")
    assert code == 0, text
    assert doc["facts"]["replication_role"] == "standby" and "hot standby" in doc["summary"]
    table = next(t for t in doc["tables"] if t["title"].startswith("Replication"))
    assert table["rows"][0][0].startswith("streaming from 127.0.0.1:")

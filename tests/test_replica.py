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
    assert "replay_delay_s" not in facts and facts["last_replayed_commit_s_ago"] >= 0  # a time since, not a lag
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


def test_locks_on_the_standby_says_the_primary_has_its_own(pair, project, run_sage):
    """Each server has its own lock table: "no blocking" on a standby says nothing about the primary's writers."""
    code, doc, text = sage_json(run_sage, project, pair.standby.url(), "*locks")
    assert code == 0, text
    assert ("this is a read-only hot standby: only its own sessions' locks are shown; run *locks on the primary "
            "for the sessions that write") in doc["notes"]
    code, doc, text = sage_json(run_sage, project, pair.primary.url(), "*locks")
    assert code == 0 and not any("standby" in n for n in doc["notes"]), text


def test_watch_reports_standby_lag_on_the_primary_and_a_standby_round_is_clean(pair, project):
    """sage watch on both ends: a healthy standby's round runs every check (read-only: a write would fail
    there) and finds nothing the primary does not; with replay paused and WAL written, the primary's
    replication check alerts on the standby's lag and the standby's on its own, then both resolve."""
    from sage_agent.db.env import Target
    from sage_agent.ops.watch.checks import CHECK_NAMES, Thresholds
    from sage_agent.ops.watch.history import History, history_path
    from sage_agent.ops.watch.runner import run_round, watch_context

    def watch_round(url: str, name: str, number: int, thresholds: Thresholds):
        ctx = watch_context(project, Target("local", url, name), 10_000)
        with History(history_path(project)) as history:
            return run_round(ctx, list(CHECK_NAMES), thresholds, history, number=number, name=name)

    low = Thresholds(replication_lag_bytes=256 * 1024, replication_lag_s=3600)
    standby = watch_round(pair.standby.url(), "standby", 1, low)
    primary = watch_round(pair.primary.url(), "primary", 1, low)
    assert not standby.errors and not primary.errors, [r.error for r in standby.errors + primary.errors]
    on_standby = {r.name: r for r in standby.results}
    for check in ("locks", "long-queries", "idle-in-tx", "vacuum", "wraparound", "replication"):
        assert on_standby[check].observations == [], (check, on_standby[check].observations)
    audits = {r.name: r for r in primary.results}["audits"]
    assert sorted((o.key, o.message) for o in on_standby["audits"].observations) == \
        sorted((o.key, o.message) for o in audits.observations)  # the same schema: the same findings, no more
    healthy = {r.name: r for r in primary.results}["replication"]
    assert [o.key.split(" ")[0] for o in healthy.observations] == ["standby"] and not healthy.alerts

    with psycopg.connect(pair.standby.url(), autocommit=True) as stby, \
            psycopg.connect(pair.primary.url(), autocommit=True) as prim:
        stby.execute("select pg_wal_replay_pause()")
        try:
            prim.execute("create table public.watch_churn as select g, repeat('x', 200) as pad "
                         "from generate_series(1, 20000) g")
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline and not prim.execute(
                    "select coalesce(max(pg_wal_lsn_diff(pg_current_wal_lsn(), replay_lsn)), 0) > %s "
                    "from pg_stat_replication", (low.replication_lag_bytes,)).fetchone()[0]:
                time.sleep(0.1)
            while time.monotonic() < deadline and not stby.execute(
                    "select pg_wal_lsn_diff(pg_last_wal_receive_lsn(), pg_last_wal_replay_lsn()) > %s",
                    (low.replication_lag_bytes,)).fetchone()[0]:
                time.sleep(0.1)
            lagging = watch_round(pair.primary.url(), "primary", 2, low)
            behind = watch_round(pair.standby.url(), "standby", 2, low)
        finally:
            stby.execute("select pg_wal_replay_resume()")
            prim.execute("drop table if exists public.watch_churn")
    alerts = [o for o in lagging.alerts if o.check == "replication"]
    assert len(alerts) == 1 and alerts[0].key.startswith("standby ") and "behind" in alerts[0].message, alerts
    assert lagging.kind_of(alerts[0]) == "worse" and lagging.exit_code == 1
    assert {o.key for o in behind.alerts} == {"replay paused", "standby replay"}, behind.alerts
    assert not behind.errors
    wait_replayed(pair)
    caught_up = watch_round(pair.primary.url(), "primary", 3, low)
    assert not [o for o in caught_up.alerts if o.check == "replication"]
    recovered = watch_round(pair.standby.url(), "standby", 3, low)
    assert {c.observation.key for c in recovered.of_kind("resolved")} == {"replay paused", "standby replay"}

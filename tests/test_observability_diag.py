"""*locks, *vacuum, *monitor, *hotpaths against real situations, compared with `supabase inspect db`."""

from __future__ import annotations

import json
import os
import subprocess
import threading
import time

import psycopg
import pytest


def wait_until(check, timeout: float = 10.0, step: float = 0.05):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(step)
    raise AssertionError("condition not reached in time")


def inspect(cli: str, command: str, url: str, cwd) -> list[dict]:
    proc = subprocess.run([cli, "inspect", "db", command, "--db-url", url, "--output-format", "json"],
                          capture_output=True, text=True, timeout=120, cwd=cwd, stdin=subprocess.DEVNULL,
                          env={"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(cwd), "SUPABASE_TELEMETRY_DISABLED": "1",
                               "DO_NOT_TRACK": "1"})
    line = [l for l in proc.stdout.splitlines() if l.startswith("{")][-1]
    doc = json.loads(line)
    assert "rows" in doc, doc
    return doc["rows"]


@pytest.fixture
def blocked(db_url, db):
    """Connection A holds a row lock (idle in transaction); connection B blocks on it in a thread."""
    db.execute("create table acct (id int primary key, balance int)")
    db.execute("insert into acct values (1, 100), (2, 200)")
    a = psycopg.connect(db_url, application_name="holder")
    a.execute("update acct set balance = balance - 1 where id = 1")
    a_pid = a.info.backend_pid
    b = psycopg.connect(db_url, autocommit=True, application_name="waiter")
    b_pid = b.info.backend_pid
    errors: list[Exception] = []

    def run_b():
        try:
            b.execute("update acct set balance = balance + 1 where id = 1")
        except Exception as exc:  # noqa: BLE001
            errors.append(exc)

    thread = threading.Thread(target=run_b, daemon=True)
    thread.start()
    wait_until(lambda: db.execute("select %s = any(pg_blocking_pids(%s))", (a_pid, b_pid)).fetchone()[0])
    yield {"a": a, "b": b, "a_pid": a_pid, "b_pid": b_pid, "thread": thread, "errors": errors}
    try:
        a.rollback()
        a.close()
    except Exception:  # noqa: BLE001
        pass
    thread.join(10)
    b.close()


def test_locks_blocking_tree(make_session, db_url, blocked):
    out = make_session(db_url).run_line("*locks")
    assert out.exit_code == 0, out.error
    r = out.result
    assert r.status == "warning"
    edges = {(e["blocked_pid"], e["blocking_pid"]) for e in r.data["edges"]}
    assert (blocked["b_pid"], blocked["a_pid"]) in edges
    edge = next(e for e in r.data["edges"] if e["blocked_pid"] == blocked["b_pid"])
    assert edge["wanted_mode"] == "ShareLock" and "transaction" in edge["object"]
    assert r.data["roots"] == [blocked["a_pid"]]
    assert any(f.rule == "locks.idle_in_transaction_blocker" for f in r.findings)
    assert r.next_steps == [f"*locks --terminate {blocked['a_pid']}"]  # a cancel does nothing to an idle session
    tree = r.tables[0].rows
    assert tree[0][0] == str(blocked["a_pid"]) and tree[1][0].endswith(str(blocked["b_pid"]))


def test_locks_table_lock_conflict(make_session, db_url, db):
    db.execute("create table t (id int)")
    a = psycopg.connect(db_url)
    a.execute("lock table t in access exclusive mode")
    b = psycopg.connect(db_url, autocommit=True)
    b_pid = b.info.backend_pid
    thread = threading.Thread(target=lambda: b.execute("select * from t"), daemon=True)
    thread.start()
    try:
        wait_until(lambda: db.execute("select cardinality(pg_blocking_pids(%s)) > 0", (b_pid,)).fetchone()[0])
        out = make_session(db_url).run_line("*locks")
        edge = next(e for e in out.result.data["edges"] if e["blocked_pid"] == b_pid)
        assert edge["wanted_mode"] == "AccessShareLock" and edge["held_modes"] == ["AccessExclusiveLock"]
        assert "conflicts" in out.result.tables[0].rows[1][2]
    finally:
        a.rollback()
        a.close()
        thread.join(10)
        b.close()


def test_locks_terminate_needs_typed_word(make_session, db_url, db, blocked):
    a_pid = blocked["a_pid"]
    out = make_session(db_url, yes=True).run_line(f"*locks --terminate {a_pid}")
    assert out.exit_code == 3 and "TERMINATE" in out.error
    assert db.execute("select count(*) from pg_stat_activity where pid = %s", (a_pid,)).fetchone()[0] == 1
    out = make_session(db_url, yes=True).run_line(f"*locks --cancel {blocked['b_pid']}")  # b blocks nobody
    assert out.exit_code == 2 and "not blocking" in out.error
    out = make_session(db_url, confirm=("TERMINATE",)).run_line(f"*locks --terminate {a_pid}")
    assert out.exit_code == 0, out.error
    assert any("pg_terminate_backend" in n for n in out.result.notes)
    # what the person sees afterwards is the tree read again: the terminated pid is gone from it and from the hints
    assert out.result.summary.startswith(f"Terminated pid {a_pid}; now: no blocking"), out.result.summary
    assert out.result.data["roots"] == [] and out.result.tables == []
    assert all(str(a_pid) not in step for step in out.result.next_steps), out.result.next_steps
    assert out.result.facts["backend_gone"] is True
    blocked["thread"].join(10)
    assert not blocked["thread"].is_alive() and not blocked["errors"]
    assert db.execute("select balance from acct where id = 1").fetchone()[0] == 101  # a rolled back, b applied


def test_locks_terminate_declined_by_the_person_says_so_once(make_session, db_url, db, blocked):
    a_pid = blocked["a_pid"]
    out = make_session(db_url, answers=["terminate"]).run_line(f"*locks --terminate {a_pid}")  # not the word
    assert out.exit_code == 3 and out.result.status == "cancelled"
    assert out.error.endswith("(uncommitted work is lost). Nothing was changed."), out.error
    assert ".." not in out.error
    assert db.execute("select count(*) from pg_stat_activity where pid = %s", (a_pid,)).fetchone()[0] == 1


def test_locks_cancel_running_blocker(make_session, db_url, db):
    db.execute("create table q (id int primary key)")
    db.execute("insert into q values (1)")
    a = psycopg.connect(db_url, autocommit=True)
    a_pid = a.info.backend_pid
    errs = []
    ta = threading.Thread(target=lambda: _catch(errs, a.execute,
                                                "begin; update q set id = 1 where id = 1; select pg_sleep(30)"),
                          daemon=True)
    ta.start()
    wait_until(lambda: db.execute("select wait_event = 'PgSleep' from pg_stat_activity where pid = %s",
                                  (a_pid,)).fetchone())
    b = psycopg.connect(db_url, autocommit=True)
    tb = threading.Thread(target=lambda: b.execute("update q set id = 1 where id = 1"), daemon=True)
    tb.start()
    wait_until(lambda: db.execute("select %s = any(pg_blocking_pids(%s))", (a_pid, b.info.backend_pid)).fetchone()[0])
    shown = make_session(db_url).run_line("*locks").result
    assert shown.next_steps == [f"*locks --cancel {a_pid}", f"*locks --terminate {a_pid}"]  # a running statement
    assert not any("standby" in n for n in shown.notes)
    out = make_session(db_url).run_line(f"*locks --cancel {a_pid}")
    assert out.exit_code == 3  # yes/no confirmation needed
    out = make_session(db_url, yes=True).run_line(f"*locks --cancel {a_pid}")
    assert out.exit_code == 0, out.error
    ta.join(10)
    tb.join(10)
    assert errs and "canceling statement" in str(errs[0])
    a.close()
    b.close()


def _catch(errs, fn, *args):
    try:
        fn(*args)
    except Exception as exc:  # noqa: BLE001
        errs.append(exc)


def test_locks_match_supabase_inspect(make_session, db_url, blocked, supabase_cli, tmp_path):
    ours = make_session(db_url).run_line("*locks").result.data
    theirs = inspect(supabase_cli, "blocking", db_url, tmp_path)
    assert {(r["blocked_pid"], r["blocking_pid"]) for r in theirs} == \
        {(e["blocked_pid"], e["blocking_pid"]) for e in ours["edges"]}
    locks = inspect(supabase_cli, "locks", db_url, tmp_path)
    assert {blocked["a_pid"], blocked["b_pid"]} <= {r["pid"] for r in locks}


def test_no_blocking(make_session, db_url):
    out = make_session(db_url).run_line("*locks")
    assert out.exit_code == 0 and out.result.status == "ok" and out.result.data["edges"] == []
    out = make_session(db_url).run_line("*locks --cancel 1 --terminate 2")
    assert out.exit_code == 2


# --- vacuum -------------------------------------------------------------------------------------
@pytest.fixture
def dead(db_url, db):
    db.execute("create table churn (id int primary key, v int) with (autovacuum_enabled = false)")
    db.execute("create table calm (id int primary key)")
    with psycopg.connect(db_url, autocommit=True) as c:
        c.execute("insert into churn select g, 0 from generate_series(1, 2000) g")
        c.execute("analyze churn")
        c.execute("update churn set v = v + 1")
        c.execute("update churn set v = v + 1 where id <= 1000")
    wait_until(lambda: db.execute("select n_dead_tup >= 3000 from pg_stat_user_tables where relname = 'churn'")
               .fetchone()[0])
    return db


def test_vacuum_dead_tuples_and_thresholds(make_session, db_url, dead):
    out = make_session(db_url).run_line("*vacuum")
    assert out.exit_code == 0, out.error
    r = out.result
    row = next(t for t in r.data["tables"] if t["table"] == "public.churn")
    assert row["dead"] >= 3000 and row["vacuum_threshold"] == 450 and row["vacuum_pct"] > 600
    assert row["autovacuum_enabled"] is False
    assert r.tables[0].rows[0][0] == "public.churn"  # closest to (past) its threshold first
    found = {(f.rule, f.location) for f in r.findings}
    assert ("vacuum.over_threshold", "public.churn") in found
    assert ("vacuum.autovacuum_disabled", "public.churn") in found
    assert r.data["databases"] and all(d["xid_age"] >= 0 for d in r.data["databases"])
    one = make_session(db_url).run_line("*vacuum --table public.calm").result
    assert [t["table"] for t in one.data["tables"]] == ["public.calm"]
    assert make_session(db_url).run_line("*vacuum --table nope").exit_code == 1


def test_vacuum_matches_supabase_inspect(make_session, db_url, dead, supabase_cli, tmp_path):
    ours = {t["table"]: t for t in make_session(db_url).run_line("*vacuum").result.data["tables"]}
    theirs = {r["name"]: r for r in inspect(supabase_cli, "vacuum-stats", db_url, tmp_path)}
    assert set(theirs) <= set(ours) and "public.churn" in theirs
    assert int(theirs["public.churn"]["dead_rowcount"].replace(",", "").strip()) == ours["public.churn"]["dead"]
    assert int(theirs["public.churn"]["autovacuum_threshold"].replace(",", "").strip()) == \
        ours["public.churn"]["vacuum_threshold"]
    assert theirs["public.churn"]["expect_autovacuum"] == "yes"


# --- monitor ------------------------------------------------------------------------------------
def test_monitor_snapshot(make_session, db_url, db):
    idle = psycopg.connect(db_url, application_name="idler")
    idle.execute("select 1")  # leaves the transaction open: idle in transaction
    busy = psycopg.connect(db_url, autocommit=True, application_name="sleeper")
    t = threading.Thread(target=lambda: _catch([], busy.execute, "select pg_sleep(20)"), daemon=True)
    t.start()
    wait_until(lambda: db.execute("select count(*) from pg_stat_activity where application_name = 'sleeper' "
                                  "and state = 'active'").fetchone()[0])
    try:
        out = make_session(db_url).run_line("*monitor")
        assert out.exit_code == 0, out.error
        r = out.result
        pids = {s["pid"]: s for s in r.data["sessions"]}
        assert pids[idle.info.backend_pid]["state"] == "idle in transaction"
        assert pids[busy.info.backend_pid]["wait_event"] == "PgSleep"
        assert r.facts["max_connections"] >= 10 and r.facts["idle_in_transaction"] >= 1
        apps = {row[0] for row in r.tables[1].rows}
        assert {"idler", "sleeper"} <= apps
        assert any("pg_sleep" in row[5] for row in r.tables[2].rows)
        assert not r.notes  # headless: a single snapshot
        # a person at the REPL: refreshes `count` times
        out = make_session(db_url, answers=[]).run_line("*monitor --interval 0.05 --count 3")
        assert out.exit_code == 0 and "3 refreshes" in out.result.notes[0]
        assert make_session(db_url).run_line("*monitor --interval 0").exit_code == 2
    finally:
        busy.cancel_safe()
        t.join(10)
        idle.close()
        busy.close()


def test_monitor_says_in_words_what_it_did_not_find(db, db_url, monkeypatch):
    """A quiet server: each table with no rows is one line in words at 60 and 160 columns and in markdown, not
    an empty box; a table with rows is still a table."""
    import io

    from sage_agent.frontends.render import make_console, render_markdown, render_text
    from sage_agent.ops.observe.diagnostics import _monitor_result, activity_snapshot

    monkeypatch.setenv("SAGE_EXPANDED", "auto")
    snap = activity_snapshot(db)
    quiet = _monitor_result({**snap, "sessions": []}, 1, False)
    for width in (60, 160):
        console = make_console(width=width)
        console.file = io.StringIO()
        render_text(quiet, console)
        text = console.file.getvalue()
        assert "Active queries (longest first): no active queries" in text, text
        assert "Connections per state: no client connections" in text
        assert "Connections per application: no applications connected" in text
        assert "slots): no standbys and no replication slots" in " ".join(text.split())  # wraps at 60
        assert not any(box in text for box in "┏┃└"), text
    md = render_markdown(quiet)
    assert "## Active queries (longest first)\n\n_no active queries_" in md and "| pid |" not in md
    assert quiet.tables[2].rows == [] and quiet.model_dump()["tables"][2]["empty"] == "no active queries"
    idle = psycopg.connect(db_url, application_name="idler")
    try:
        busy = _monitor_result(activity_snapshot(db), 1, False)
        console = make_console(width=160)
        console.file = io.StringIO()
        render_text(busy, console)
        assert "┃ application" in console.file.getvalue() and "idler" in console.file.getvalue()
    finally:
        idle.close()


# --- hotpaths -----------------------------------------------------------------------------------
def test_hotpaths_missing_extension_says_how(make_session, db_url, db):
    db.execute("drop extension pg_stat_statements")  # new databases of the local server have it: take it away
    out = make_session(db_url).run_line("*hotpaths")
    assert out.exit_code == 0
    r = out.result
    assert r.status == "warning" and r.data["enabled"] is False
    assert any("create extension pg_stat_statements" in n for n in r.notes)
    assert any("Dashboard" in n for n in r.notes)  # the baseline has Supabase's roles


def _workload(url: str) -> None:
    with psycopg.connect(url, autocommit=True) as c:
        c.execute("create table if not exists hp (id int primary key, v int)")
        c.execute("insert into hp select g, g from generate_series(1, 20000) g on conflict do nothing")
        for i in range(30):
            c.execute("select count(*) from hp where v %% 7 = %s", (i % 7,))
        for i in range(200):
            c.execute("select v from hp where id = %s", (i,))


def test_hotpaths_on_pg15_with_supabase_outliers(make_session, pg15_url, supabase_cli, tmp_path):
    with psycopg.connect(pg15_url, autocommit=True) as c:
        c.execute("create extension if not exists pg_stat_statements with schema extensions")
        c.execute("select extensions.pg_stat_statements_reset()")
    _workload(pg15_url)
    out = make_session(pg15_url).run_line("*hotpaths --limit 5")
    assert out.exit_code == 0, out.error
    r = out.result
    assert r.data["enabled"] and r.facts["extension"] == "extensions"
    top_calls = r.data["top"]["calls"][0]
    assert "from hp where id" in top_calls["query"] and top_calls["calls"] == 200
    top_total = r.data["top"]["total"]
    assert any("from hp where v" in q["query"] for q in top_total[:3]), [q["query"] for q in top_total]
    theirs = inspect(supabase_cli, "outliers", pg15_url, tmp_path)
    their_queries = {" ".join(row["query"].split()) for row in theirs}
    assert " ".join(top_total[0]["query"].split()) in their_queries
    assert len(r.tables) == 5 and r.tables[0].rows[0][7]  # each row has a next step


def test_hotpaths_embedded(make_session, db_url, db):
    # out of the box: every new database of the local server has pg_stat_statements (as Supabase does)
    assert db.execute("select 1 from pg_extension where extname = 'pg_stat_statements'").fetchone()
    _workload(db_url)
    out = make_session(db_url).run_line("*hotpaths --by calls --limit 3")
    assert out.exit_code == 0, out.error
    assert len(out.result.tables) == 1 and out.result.data["top"]["calls"][0]["calls"] >= 200

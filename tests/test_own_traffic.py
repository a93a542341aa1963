"""Tuning out of the box: pg_stat_statements in every new database, DB Sage's own traffic and internal
databases left out of *hotpaths, *monitor, *locks and *vacuum, next steps that run as written."""

from __future__ import annotations

import threading

import psycopg
import pytest

from sage_agent.catalog.tasks import load_tasks
from sage_agent.session.parse import bind_values, split_command


def _query_of(line: str) -> str:
    """What DB Sage's own command-line parser makes of a suggested command line."""
    parsed = split_command(line)
    task = next(t for t in load_tasks().values() if parsed.name in (t.command, *t.aliases))
    values = bind_values(task, parsed)
    return values[task.positional_keys[0]]


def test_hotpaths_out_of_the_box_without_db_sages_own_statements(db_url, db, make_session):
    assert db.execute("select extnamespace::regnamespace::text from pg_extension "
                      "where extname = 'pg_stat_statements'").fetchone() == ("extensions",)
    # the server is shared by the whole suite: start from empty statistics, as a fresh server does (otherwise
    # pg_stat_statements.max evicts this test's once-run statement among thousands from earlier tests)
    db.execute("select extensions.pg_stat_statements_reset()")
    db.execute("create table public.items (id int primary key, name text); "
               "insert into public.items select g, 'n' || g from generate_series(1, 2000) g; analyze public.items")
    with psycopg.connect(db_url, application_name="shop-api", autocommit=True) as app:
        for _ in range(2):
            app.execute("select count(*), pg_sleep(0.11) from public.items where name <> 'x'")
        app.execute("""select id from public.items where name = 'it''s  "odd"' """)
    session = make_session(db_url)
    for line in ("*snapshot traffic", "*vacuum", "*locks", "*run-sql 'select 1'"):  # DB Sage and pg_dump at work
        assert session.run_line(line).exit_code == 0, line
    outcome = session.run_line("*hotpaths")
    result = outcome.result
    assert result is not None, outcome.error
    queries = [r["query"] for r in result.data["top"]["total"]]
    assert any(q.startswith("select count(*), pg_sleep($1) from public.items") for q in queries), queries
    assert not [q for q in queries if "pg_catalog" in q or "set_config" in q or "pg_stat_activity" in q
                or "TO stdout" in q or q.lower().startswith("fetch forward")], queries
    assert result.data["own_hidden"] > 0
    assert any("left out: --include-own shows them" in n for n in result.notes)

    # every suggested command runs as written: it reads back to the whole statement, quotes and all
    slow = next(r for r in result.data["top"]["total"] if "pg_sleep" in r["query"])
    commands = [step for step in result.next_steps] + [f.fix for f in result.findings if f.fix]
    commands += [row[-1] for table in result.tables for row in table.rows]
    runnable = [c for c in commands if c.startswith("*")]
    assert f"*explain '{slow['query']}'" in runnable
    for line in runnable:
        assert _query_of(line) in {r["query"] for r in result.data["top"]["total"]}, line
    odd = next(q for q in queries if "where name = $1" in q)
    assert _query_of(f"*optimize {__import__('shlex').quote(odd)}") == odd
    ran = session.run_line(next(c for c in runnable if c.startswith("*explain")))
    assert ran.exit_code == 0, ran.error

    everything = session.run_line("*hotpaths --include-own").result
    own = [r["query"] for r in everything.data["top"]["total"]]
    assert any("pg_catalog" in q for q in own), own
    assert everything.data["own_hidden"] == 0


def test_run_sql_suggests_the_whole_statement(db_url, make_session):
    long = "select n, 'a  b' as label from generate_series(1, 3) n where n > 0 and n < 100 and n <> 50 order by n desc"
    result = make_session(db_url).run_line(f'*run-sql "{long}"').result
    assert result.next_steps == [f"*explain {__import__('shlex').quote(long)}"]
    assert _query_of(result.next_steps[0]) == long


@pytest.fixture
def own_waits(db_url, db):
    """Two DB Sage sessions (application_name db-sage), one waiting for the other's lock."""
    db.execute("create table public.jobs (id int)")
    holder = psycopg.connect(db_url, application_name="db-sage")
    holder.execute("lock table public.jobs in access exclusive mode")
    waiter = psycopg.connect(db_url, application_name="db-sage", autocommit=True)
    thread = threading.Thread(target=lambda: waiter.execute("set lock_timeout = '20s'; lock table public.jobs"),
                              daemon=True)
    thread.start()
    for _ in range(100):
        if db.execute("select count(*) from pg_stat_activity where wait_event_type = 'Lock' "
                      "and datname = current_database()").fetchone()[0]:
            break
        threading.Event().wait(0.05)
    yield
    holder.rollback()
    thread.join(timeout=10)
    holder.close()
    waiter.close()


def test_locks_and_monitor_leave_db_sages_own_sessions_out(db_url, own_waits, make_session):
    session = make_session(db_url)
    locks = session.run_line("*locks").result
    assert locks.facts["blocked_sessions"] == 0
    assert any("1 wait(s) between DB Sage's own sessions" in n for n in locks.notes)
    shown = session.run_line("*locks --include-own").result
    assert shown.facts["blocked_sessions"] == 1
    monitor = session.run_line("*monitor --once").result
    apps = {row[0] for row in monitor.tables[1].rows}
    assert "db-sage" not in apps
    assert any("session(s) of DB Sage, pg_dump or shadow databases left out" in n for n in monitor.notes)
    assert "db-sage" in {row[0] for row in session.run_line("*monitor --once --include-own").result.tables[1].rows}


def test_vacuum_lists_no_internal_databases(db_url, pg_server, make_session):
    from sage_agent.db.shadow import create_database, drop_database

    create_database(pg_server.url(), "sage_tpl_vacuumtest")
    try:
        result = make_session(db_url).run_line("*vacuum").result
        names = {d["datname"] for d in result.data["databases"]}
        assert "sage_tpl_vacuumtest" not in names
        assert db_url.rsplit("/", 1)[1] in names
    finally:
        drop_database(pg_server.url(), "sage_tpl_vacuumtest")

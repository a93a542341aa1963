"""Who will block you, before you run: *dry-run and *apply's confirmation plan name the live sessions on the
target that hold or wait for a lock conflicting with the one a statement takes, with the verdict, and estimate
each rewrite/scan from the table's size and a rate measured on the shadow. Real PostgreSQL, real second
connections (idle in transaction, waiting), never a mock."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import psycopg
import pytest

from sage_agent.ops.migrations.applier import prepare_file
from sage_agent.ops.migrations.blockers import RATES_PATH, lock_needs, redact_query
from sage_agent.ops.migrations.history import LocalMigration
from sage_agent.session.machine import EXIT_CONFIRM, EXIT_FAILED, EXIT_OK
from migfiles import write_migration as write


@pytest.fixture
def orders(db):
    db.execute("create table public.orders (id int primary key, amount int, note text)")
    db.execute("create table public.customers (id int primary key)")
    db.execute("insert into public.orders select g, g, 'n' || g from generate_series(1, 100) g")
    return db


@pytest.fixture
def second(db_url):
    """Other connections to the target (an application's sessions); each rolled back and closed after."""
    conns: list[psycopg.Connection] = []

    def open_(application_name: str = "shop-api") -> psycopg.Connection:
        conn = psycopg.connect(db_url, application_name=application_name)
        conns.append(conn)
        return conn

    yield open_
    for conn in conns:
        try:
            conn.rollback()
        except psycopg.Error:
            pass
        conn.close()


def idle_reader(open_, application_name: str = "shop-api") -> int:
    """A session idle in transaction holding ACCESS SHARE on public.orders; its query holds a secret literal."""
    conn = open_(application_name)
    conn.execute("select * from public.orders where note = 'hunter2-secret'")
    return conn.info.backend_pid


def survey_of(outcome) -> dict:
    return outcome.result.data["survey"]


def test_dry_run_names_the_idle_in_transaction_session_and_the_verdict(project, make_session, db_url, orders, second):
    pid = idle_reader(second)
    write(project, "20240101000000_add_flag.sql", "alter table public.orders add column flag boolean;\n")
    outcome = make_session(db_url).run_line("*dry-run add_flag")
    assert outcome.exit_code == EXIT_OK, outcome.error
    (b,) = survey_of(outcome)["blockers"]
    assert (b["pid"], b["table"], b["lock"], b["mode"], b["granted"]) == \
        (pid, "public.orders", "ACCESS EXCLUSIVE", "ACCESS SHARE", True)
    assert b["state"] == "idle in transaction" and b["application"] == "shop-api" and b["xact_s"] >= 0
    expected = f"would queue behind pid {pid} for at least 5s and block every query on public.orders meanwhile"
    assert b["verdict"].startswith(expected)
    # the session's literal is not shown; the statement is
    assert "hunter2" not in json.dumps(outcome.result.data) and "hunter2" not in outcome.result.markdown
    assert b["query"] == "select * from public.orders where note = $1"
    assert expected in outcome.result.markdown and "## Who will block you (target, now)" in outcome.result.markdown
    (table,) = [t for t in outcome.result.tables if t.title == "Sessions in the way (target, now)"]
    assert table.rows[0][3] == pid and table.rows[0][5] == "idle in transaction"
    assert [f.rule for f in outcome.result.findings if f.rule.startswith("locks.")] == ["locks.would_queue"]
    # a file that only adds a nullable column is otherwise safe: the blocker makes it caution
    assert outcome.result.data["verdict"] == "caution"


def test_nothing_in_the_way_is_said_and_the_verdict_stays_safe(project, make_session, db_url, orders):
    write(project, "20240101000000_add_flag.sql", "alter table public.orders add column flag boolean;\n")
    outcome = make_session(db_url).run_line("*dry-run add_flag")
    assert outcome.exit_code == EXIT_OK, outcome.error
    assert survey_of(outcome)["blockers"] == [] and outcome.result.data["verdict"] == "safe"
    assert "No live session holds or waits for a lock that conflicts" in outcome.result.markdown


def test_a_non_conflicting_lock_is_not_reported(project, make_session, db_url, orders, second):
    idle_reader(second)  # ACCESS SHARE does not conflict with CREATE INDEX CONCURRENTLY's SHARE UPDATE EXCLUSIVE
    write(project, "20240101000000_idx.sql", "create index concurrently orders_amount on public.orders (amount);\n")
    outcome = make_session(db_url).run_line("*dry-run idx")
    assert outcome.exit_code == EXIT_OK, outcome.error
    data = survey_of(outcome)
    assert [(n["table"], n["lock"]) for n in data["locks"]] == [("public.orders", "SHARE UPDATE EXCLUSIVE")]
    assert data["blockers"] == []


def test_db_sages_own_sessions_are_not_reported(project, make_session, db_url, orders, second):
    idle_reader(second, application_name="db-sage:snapshot")
    write(project, "20240101000000_add_flag.sql", "alter table public.orders add column flag boolean;\n")
    outcome = make_session(db_url).run_line("*dry-run add_flag")
    data = survey_of(outcome)
    assert data["blockers"] == [] and data["own_sessions_left_out"] == 1
    assert "1 DB Sage session(s) with conflicting locks left out" in outcome.result.markdown


def test_a_waiter_ahead_in_the_queue_and_a_writer_a_concurrent_build_waits_for(project, make_session, db_url,
                                                                               orders, second):
    writer = second()
    writer.execute("update public.orders set amount = amount + 1 where id = 1")  # ROW EXCLUSIVE, idle in tx
    writer_pid = writer.info.backend_pid
    builder = second("ops-console")
    builder_pid = builder.info.backend_pid
    done = threading.Event()

    def build() -> None:  # a plain CREATE INDEX (SHARE) queues behind the writer
        try:
            builder.execute("set lock_timeout = '30s'")
            builder.execute("create index orders_note on public.orders (note)")
        except psycopg.Error:
            pass
        finally:
            done.set()

    thread = threading.Thread(target=build)
    thread.start()
    try:
        watch = psycopg.connect(db_url, autocommit=True)
        for _ in range(100):
            if watch.execute("select count(*) from pg_locks where pid = %s and not granted",
                             (builder_pid,)).fetchone()[0]:
                break
            time.sleep(0.05)
        watch.close()
        write(project, "20240101000000_idx.sql",
              "create index concurrently orders_amount on public.orders (amount);\n")
        outcome = make_session(db_url).run_line("*dry-run idx")
        got = {b["pid"]: b for b in survey_of(outcome)["blockers"]}
        assert set(got) == {writer_pid, builder_pid}
        assert got[builder_pid]["kind"] == "queue" and got[builder_pid]["granted"] is False
        assert got[builder_pid]["mode"] == "SHARE"
        assert "(itself waiting for SHARE)" in got[builder_pid]["verdict"]
        assert "block VACUUM, ANALYZE and schema changes on public.orders" in got[builder_pid]["verdict"]
        assert got[writer_pid]["kind"] == "waits" and got[writer_pid]["mode"] == "ROW EXCLUSIVE"
        assert "other queries on the table are not blocked meanwhile" in got[writer_pid]["verdict"]
    finally:
        writer.rollback()
        thread.join(timeout=30)
    assert done.is_set()


def test_apply_plan_shows_the_verdict_then_waits_and_fails_per_its_lock_timeout(project, make_session, db_url,
                                                                                orders, second):
    pid = idle_reader(second)
    write(project, "20240101000000_add_flag.sql", "alter table public.orders add column flag boolean;\n")
    seen: list[str] = []
    session = make_session(db_url, answers=["yes"])
    session.answers.show = seen.append
    outcome = session.run_line("*apply --snapshot=no --lock-timeout=300ms")
    verdict = (f"20240101000000_add_flag.sql:1 ACCESS EXCLUSIVE on public.orders: would queue behind pid {pid} for "
               "at least 300ms and block every query on public.orders meanwhile")
    assert verdict in seen[0]
    assert outcome.exit_code == EXIT_FAILED and "lock timeout" in outcome.result.summary
    assert any(n.startswith("seen before running: 20240101000000_add_flag.sql:1") and f"pid {pid}" in n
               for n in outcome.result.notes)
    assert [b["pid"] for b in outcome.result.data["survey"]["blockers"]] == [pid]
    check = psycopg.connect(db_url, autocommit=True)
    assert check.execute("select count(*) from information_schema.columns where table_name = 'orders' "
                         "and column_name = 'flag'").fetchone()[0] == 0
    check.close()


def test_apply_plan_without_blockers_has_no_blocker_line(project, make_session, db_url, orders):
    write(project, "20240101000000_add_flag.sql", "alter table public.orders add column flag boolean;\n")
    seen: list[str] = []
    session = make_session(db_url, answers=["yes"])
    session.answers.show = seen.append
    outcome = session.run_line("*apply --snapshot=no")
    assert outcome.exit_code == EXIT_OK, outcome.error
    assert "would queue" not in seen[0] and outcome.result.data["survey"]["blockers"] == []


def test_durations_come_from_the_size_and_a_rate_measured_on_the_shadow(project, make_session, db_url, db):
    db.execute("create table public.big (id int, pad text)")
    db.execute("insert into public.big select g, md5(g::text) from generate_series(1, 30000) g")
    db.execute("analyze public.big")
    write(project, "20240101000000_widen.sql", "alter table public.big alter column id type bigint;\n")
    outcome = make_session(db_url).run_line("*dry-run widen")
    data = survey_of(outcome)
    (e,) = data["estimates"]
    size = db.execute("select pg_total_relation_size('public.big')").fetchone()[0]
    assert (e["table"], e["effect"], e["lock"], e["bytes"], e["rows"]) == \
        ("public.big", "rewrites", "ACCESS EXCLUSIVE", size, 30000)
    assert data["rates"]["source"].startswith("rates measured on the shadow server")
    assert e["seconds"] == pytest.approx(size / data["rates"]["rewrite_bytes_per_s"], rel=0.01)
    assert "20240101000000_widen.sql:1 rewrites public.big" in outcome.result.markdown
    saved = json.loads((project / RATES_PATH).read_text())
    assert saved["rewrite"] == pytest.approx(data["rates"]["rewrite_bytes_per_s"], abs=1)
    # *apply runs nothing on a shadow: its plan reuses the rate the dry-run measured
    seen: list[str] = []
    session = make_session(db_url, answers=["UNSAFE", "no"])  # the rewrite is an error-level finding
    session.answers.show = seen.append
    assert session.run_line("*apply --snapshot=no").exit_code == EXIT_CONFIRM
    assert "20240101000000_widen.sql:1 rewrites public.big" in seen[-1]
    assert "durations: rates measured on the shadow server" in seen[-1] and "by *dry-run at" in seen[-1]


def test_an_empty_or_new_table_gets_no_estimate_and_no_rate_is_measured(project, make_session, db_url, db):
    db.execute("create table public.empty_box (id int)")
    write(project, "20240101000000_widen.sql", "alter table public.empty_box alter column id type bigint;\n"
          "create table public.fresh (id int);\nalter table public.fresh alter column id type bigint;\n")
    outcome = make_session(db_url).run_line("*dry-run widen")
    assert survey_of(outcome)["estimates"] == []
    assert not (project / RATES_PATH).exists()
    assert "scan rate on the shadow" not in outcome.result.data["timings"]


def plan_of(tmp_path: Path, text: str):
    path = tmp_path / "20240101000000_m.sql"
    path.write_text(text, encoding="utf-8")
    return prepare_file(LocalMigration("20240101000000", "m", path))


def test_lock_needs_read_from_the_parse_tree(tmp_path):
    needs = lock_needs(plan_of(tmp_path, """
alter table orders add constraint orders_customer_fk foreign key (customer_id) references public.customers (id);
alter table orders validate constraint orders_customer_fk;
update public.orders set amount = 0 where amount is null;
create table public.lines (id int, order_id int references orders (id));
drop table public.old_a, public.old_b;
alter table "Mixed"."Case" alter column n set not null;
"""))
    assert [(n.where.split(":")[1], n.table, n.lock, n.effect) for n in needs] == [
        ("2", "public.orders", "SHARE ROW EXCLUSIVE", "validates"),
        ("2", "public.customers", "SHARE ROW EXCLUSIVE", ""),
        ("3", "public.orders", "SHARE UPDATE EXCLUSIVE", "validates"),
        ("4", "public.orders", "ROW EXCLUSIVE", ""),
        ("5", "public.orders", "SHARE ROW EXCLUSIVE", ""),
        ("6", "public.old_a", "ACCESS EXCLUSIVE", ""),
        ("6", "public.old_b", "ACCESS EXCLUSIVE", ""),
        ("7", "Mixed.Case", "ACCESS EXCLUSIVE", "scans"),
    ]


def test_mixed_case_tables_are_found_on_the_target(project, make_session, db_url, db, second):
    db.execute('create schema "Mixed"; create table "Mixed"."Case" (n int)')
    conn = second()
    conn.execute('select * from "Mixed"."Case"')
    pid = conn.info.backend_pid
    write(project, "20240101000000_nn.sql", 'alter table "Mixed"."Case" alter column n set not null;\n')
    outcome = make_session(db_url).run_line("*dry-run nn")
    assert [(b["pid"], b["table"]) for b in survey_of(outcome)["blockers"]] == [(pid, "Mixed.Case")]


def test_redact_query_hides_literals_and_cuts_unparseable_text():
    assert redact_query("update t set token = 'abc' where id = 7") == "update t set token = $1 where id = $2"
    cut = redact_query("select 'x" + "y" * 500)  # cut by track_activity_query_size: not parseable
    assert len(cut) <= 160 and cut.endswith("…")
    assert redact_query("select 1 -- postgresql://u:pw@h/db") == "select $1 -- postgresql://u:***@h/db"
    assert redact_query(None) == ""

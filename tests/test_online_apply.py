"""*apply --online against real PostgreSQL: each blocking statement's online form ends in the schema the plain
file makes (normalized pg_dump), the plan shows every rewritten step, locks are retried naming the holder,
backfills run in resumable batches, and the Supabase CLI's history row waits for the finished file."""

from __future__ import annotations

import threading
import time

import psycopg
import pytest

from migfiles import failure, history
from migfiles import write_migration as write
from onlinekit import V1, plain_dump_of, recording_session

from sage_agent.session.machine import EXIT_FAILED, EXIT_OK

V2 = "20240102000000"
SEED = """
create table public.users (id bigint primary key, email text);
create table public.orders (id bigint primary key, user_id bigint, amount int, note text, code text);
insert into public.users select g, 'u' || g from generate_series(1, 200) g;
insert into public.orders select g, 1 + g % 200, g % 1000, case when g % 3 = 0 then null else 'n' end, 'c' || g
  from generate_series(1, 3000) g;
"""
ONLINE_FILE = """-- every kind of blocking statement *apply --online rewrites
create index orders_user_idx on public.orders (user_id);
create unique index on public.orders (code);
alter table public.orders add constraint orders_user_fk foreign key (user_id) references public.users (id);
alter table public.orders add check (amount >= 0);
alter table public.orders alter column amount set not null;
alter table public.users add unique (email);
alter table public.orders add column token uuid not null default gen_random_uuid();
update public.orders set note = 'none' where note is null;
create table public.audit (id bigint primary key, at timestamptz default now());
create index audit_at_idx on public.audit (at);
"""


def online_rows(conn) -> list[tuple]:
    if not conn.execute("select to_regclass('supabase_migrations.sage_online')").fetchone()[0]:
        return []
    return conn.execute("select version, done, status from supabase_migrations.sage_online").fetchall()


def invalid_indexes(conn) -> list[str]:
    return [r[0] for r in conn.execute("select indexrelid::regclass::text from pg_index where not indisvalid")]


def seed(url: str) -> None:
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(SEED)


def test_online_apply_ends_in_the_plain_schema_and_shows_every_step(project, make_session, db_url, db, pg_server):
    from sage_agent.ops.schema.compare import normalized_dump

    seed(db_url)
    write(project, f"{V1}_online.sql", ONLINE_FILE)
    session, plans = recording_session(project, db_url)
    outcome = session.run_line("*apply --online --snapshot=no")
    assert outcome.exit_code == EXIT_OK, outcome.result.summary if outcome.result else failure(outcome)
    plan = plans[-1]
    for expected in ("CREATE INDEX CONCURRENTLY orders_user_idx ON public.orders",
                     'CREATE UNIQUE INDEX CONCURRENTLY orders_code_idx ON public.orders',
                     "FOREIGN KEY (user_id) REFERENCES public.users (id) NOT VALID",
                     'VALIDATE CONSTRAINT "orders_user_fk"', "CHECK (amount >= 0) NOT VALID",
                     'CHECK ("amount" IS NOT NULL) NOT VALID', 'ALTER COLUMN "amount" SET NOT NULL',
                     'CREATE UNIQUE INDEX CONCURRENTLY "users_email_key" ON "public"."users" ("email")',
                     'ADD CONSTRAINT "users_email_key" UNIQUE USING INDEX "users_email_key"',
                     'ALTER TABLE public.orders ADD COLUMN token uuid; ALTER TABLE "public"."orders" ALTER COLUMN '
                     '"token" SET DEFAULT gen_random_uuid()',
                     "[backfill] update public.orders set note = 'none' where note is null (in primary-key batches"):
        assert expected in plan, (expected, plan)
    # the table created in the file keeps its plain index in the same transaction
    assert "create table public.audit (id bigint primary key, at timestamptz default now()); create index " \
           "audit_at_idx on public.audit (at)" in plan
    assert outcome.result.tables[0].rows[0][2] == "online"
    assert history(db) == [V1] and online_rows(db) == []
    assert db.execute("select count(*) from public.orders where token is null or note is null").fetchone()[0] == 0

    # the same file applied plainly on a copy: identical schema (the proof DB Sage uses)
    assert normalized_dump(db_url) == plain_dump_of(project, make_session, pg_server.url(), SEED, ONLINE_FILE)


def test_refused_statement_has_no_online_form_and_nothing_runs(project, make_session, db_url, db):
    seed(db_url)
    db.execute("create materialized view public.amounts as select id, amount from public.orders")
    write(project, f"{V1}_type.sql", "create index orders_note_idx on public.orders (note);\n"
                                     "alter table public.orders alter column amount type bigint;\n")
    outcome = make_session(db_url, yes=True).run_line("*apply --online --snapshot=no")
    assert outcome.exit_code == EXIT_FAILED
    assert f"{V1}_type.sql:2: no faithful online form for the type change of public.orders.amount: materialized " \
           "view public.amounts uses it" in failure(outcome)
    assert "nothing was changed" in failure(outcome)
    assert db.execute("select to_regclass('public.orders_note_idx')").fetchone()[0] is None
    assert history(db) == []


def test_directive_makes_one_file_online(project, make_session, db_url, db):
    seed(db_url)
    write(project, f"{V1}_plain.sql", "create index orders_note_idx on public.orders (note);\n")
    write(project, f"{V2}_online.sql", "-- sage:online\ncreate index orders_amount_idx on public.orders (amount);\n")
    outcome = make_session(db_url, yes=True, confirm=("UNSAFE",)).run_line("*apply --snapshot=no")
    assert outcome.exit_code == EXIT_OK, failure(outcome)
    assert [r[2] for r in outcome.result.tables[0].rows] == ["yes", "online"]
    assert history(db) == [V1, V2]


def test_lock_wait_is_retried_naming_the_holder(project, make_session, db_url, db, monkeypatch):
    seed(db_url)
    monkeypatch.setenv("SAGE_ONLINE_LOCK_TIMEOUT_MS", "200")
    monkeypatch.setenv("SAGE_ONLINE_BACKOFF_MS", "100")
    write(project, f"{V1}_check.sql", "alter table public.orders add constraint amount_pos check (amount >= 0);\n")
    holder = psycopg.connect(db_url)
    holder.execute("set application_name = 'long-report'")
    holder.execute("select count(*) from public.orders")  # holds ACCESS SHARE until the transaction ends
    pid = holder.info.backend_pid
    said: list[str] = []

    def sink(text: str) -> None:  # the holder lets go once a retry has named it (not after a guessed delay)
        said.append(text)
        if "lock not granted" in text and sum("lock not granted" in s for s in said) == 1:
            threading.Thread(target=holder.rollback).start()

    session = make_session(db_url, yes=True)
    session.message_sink = sink
    outcome = session.run_line("*apply --online --snapshot=no")
    holder.close()
    assert outcome.exit_code == EXIT_OK, failure(outcome)
    retries = [s for s in said if "lock not granted within 200 ms" in s]
    assert retries, said
    assert f"pid {pid} (idle in transaction" in retries[0] and "long-report" in retries[0]
    assert db.execute("select convalidated from pg_constraint where conname = 'amount_pos'").fetchone()[0] is True


def test_lock_retries_are_bounded_and_the_file_stays_in_progress(project, make_session, db_url, db, monkeypatch):
    seed(db_url)
    monkeypatch.setenv("SAGE_ONLINE_LOCK_TIMEOUT_MS", "100")
    monkeypatch.setenv("SAGE_ONLINE_BACKOFF_MS", "20")
    monkeypatch.setenv("SAGE_ONLINE_RETRIES", "2")
    write(project, f"{V1}_nn.sql", "alter table public.orders alter column amount set not null;\n")
    with psycopg.connect(db_url) as holder:
        holder.execute("lock table public.orders in access share mode")
        outcome = make_session(db_url, yes=True).run_line("*apply --online --snapshot=no")
        holder.rollback()
    assert outcome.exit_code == EXIT_FAILED
    assert "lock not granted within 100 ms on 3 attempts; held by pid" in failure(outcome)
    assert history(db) == []
    assert online_rows(db) == [(V1, 0, "failed")]
    listed = make_session(db_url).run_line("*migrations")
    assert listed.result.tables[0].rows[0][4] == "in progress (step 1 of 3: tx, failed)"
    again = make_session(db_url, yes=True).run_line("*apply --snapshot=no")  # continues online without the flag
    assert again.exit_code == EXIT_OK, failure(again)
    assert any("continues online" in n for n in again.result.notes)
    assert history(db) == [V1] and online_rows(db) == []
    assert db.execute("select attnotnull from pg_attribute where attrelid = 'public.orders'::regclass "
                      "and attname = 'amount'").fetchone()[0] is True
    assert db.execute("select count(*) from pg_constraint where conname like '%sage_nn'").fetchone()[0] == 0


def test_unique_index_failure_drops_its_invalid_index(project, make_session, db_url, db):
    seed(db_url)
    db.execute("update public.orders set code = 'dup' where id in (1, 2)")
    write(project, f"{V1}_uniq.sql", "create unique index orders_code_key on public.orders (code);\n")
    outcome = make_session(db_url, yes=True).run_line("*apply --online --snapshot=no")
    assert outcome.exit_code == EXIT_FAILED
    assert "could not create unique index" in failure(outcome)
    assert invalid_indexes(db) == [] and db.execute("select to_regclass('public.orders_code_key')").fetchone()[0] is None
    assert history(db) == []
    db.execute("update public.orders set code = 'c2' where id = 2")
    again = make_session(db_url, yes=True).run_line("*apply --snapshot=no")
    assert again.exit_code == EXIT_OK, failure(again)
    assert history(db) == [V1] and invalid_indexes(db) == []


def test_backfill_is_resumable_and_migrations_shows_progress(project, make_session, db_url, db, monkeypatch):
    seed(db_url)
    write(project, f"{V1}_fill.sql", "update public.orders set note = 'x' || id;\n")
    # a batch that fails half way (a row the UPDATE cannot write) stops the backfill after committed batches
    db.execute("alter table public.orders add constraint note_short check (length(note) < 5)")
    outcome = make_session(db_url, yes=True).run_line("*apply --online --snapshot=no --batch-rows 500")
    assert outcome.exit_code == EXIT_FAILED
    assert "violates check constraint" in failure(outcome)
    done = db.execute("select count(*) from public.orders where note = 'x' || id").fetchone()[0]
    assert done == 500  # ids 1-500 committed; the batch of ids 501-1000 failed at 'x1000' and was rolled back
    state = db.execute("select current from supabase_migrations.sage_online").fetchone()[0]
    assert state["last"] == "500" and state["rows_done"] == 500 and state["rows_total"] == 3000
    db.execute("alter table public.orders drop constraint note_short")
    listed = make_session(db_url).run_line("*migrations")
    assert listed.result.tables[0].rows[0][4] == "in progress (backfill 16%, failed)"
    again = make_session(db_url, yes=True).run_line("*apply --snapshot=no --batch-rows 500")
    assert again.exit_code == EXIT_OK, failure(again)
    assert db.execute("select count(*) from public.orders where note = 'x' || id").fetchone()[0] == 3000
    assert history(db) == [V1]


def test_bad_batch_rows_is_refused(project, make_session, db_url):
    write(project, f"{V1}_fill.sql", "select 1;\n")
    outcome = make_session(db_url, yes=True).run_line("*apply --online --batch-rows 0")
    assert outcome.exit_code == 2
    assert "batch_rows" in failure(outcome)


def test_ctrl_c_stops_a_backfill_at_a_batch_boundary(project, db_url, db, run_sage):
    import json
    import signal
    import subprocess
    import sys

    from conftest import sage_env

    seed(db_url)
    write(project, f"{V1}_fill.sql", "update public.orders set note = 'x' || id;\n")
    proc = subprocess.Popen([sys.executable, "-m", "sage_agent", "run", "*apply --online --snapshot=no --batch-rows 100 "
                             "--batch-pause-ms 30", "--yes", "--json", "--db-url", db_url], cwd=project,
                            env=sage_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        rows = db.execute("select current from supabase_migrations.sage_online").fetchall() \
            if db.execute("select to_regclass('supabase_migrations.sage_online')").fetchone()[0] else []
        if rows and rows[0][0].get("rows_done", 0) >= 300:
            break
        time.sleep(0.01)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, (out, err)
    result = json.loads(out)
    assert result["summary"] == f"Stopped {V1}_fill.sql at a batch boundary (Ctrl-C)"
    assert "*apply (continues where it stopped)" in result["next_steps"]
    current, status = db.execute("select current, status from supabase_migrations.sage_online").fetchone()
    assert status == "interrupted"
    assert current["rows_done"] % 100 == 0 and 300 <= current["rows_done"] < 3000
    # exactly the committed batches are written: the state and the table agree
    written = db.execute("select count(*) from public.orders where note = 'x' || id").fetchone()[0]
    assert written == current["rows_done"] == int(current["last"])
    assert history(db) == []
    listed = run_sage("run", "*migrations", "--json", "--db-url", db_url, cwd=project)
    status_text = json.loads(listed.stdout)["data"]["migrations"][0]["status"]
    assert status_text == f"in progress (backfill {current['rows_done'] * 100 // 3000}%, stopped)"
    again = run_sage("run", "*apply --snapshot=no", "--yes", "--json", "--db-url", db_url, cwd=project)
    assert again.returncode == 0, again.stdout + again.stderr
    assert db.execute("select count(*) from public.orders where note = 'x' || id").fetchone()[0] == 3000
    assert history(db) == [V1]


@pytest.mark.pg15
def test_online_apply_on_postgresql_15_ends_in_the_plain_schema(project, make_session, pg15_server, pg15_url):
    """PostgreSQL 15 has no named NOT NULL constraints and an older CONCURRENTLY: the same proof there."""
    from sage_agent.ops.schema.compare import normalized_dump

    seed(pg15_url)
    write(project, f"{V1}_online.sql", ONLINE_FILE)
    online = make_session(pg15_url, yes=True).run_line("*apply --online --snapshot=no")
    assert online.exit_code == EXIT_OK, failure(online)
    assert normalized_dump(pg15_url, 15) == plain_dump_of(project, make_session, pg15_server, SEED, ONLINE_FILE, 15)


@pytest.mark.parametrize("statement, reason", [
    ("update public.orders o set note = u.email from public.users u where u.id = o.user_id;",
     "this one has FROM, RETURNING, WITH, WHERE CURRENT OF or ONLY"),
    ("vacuum full public.orders;", "has no online form for this statement"),
    ("create index on public.orders (user_id, amount, note, code, id, user_id, amount, note, code, id);",
     "is longer than 63 bytes and PostgreSQL would shorten it"),
    ("alter table public.orders add column n uuid unique default gen_random_uuid();",
     "then each constraint in its own statement"),
])
def test_statements_without_an_online_form_are_refused(statement, reason, project, make_session, db_url, db):
    seed(db_url)
    write(project, f"{V1}_bad.sql", "create index orders_note_idx on public.orders (note);\n" + statement + "\n")
    outcome = make_session(db_url, yes=True, confirm=("UNSAFE",)).run_line("*apply --online --snapshot=no")
    assert outcome.exit_code == EXIT_FAILED
    assert reason in failure(outcome)
    assert db.execute("select to_regclass('public.orders_note_idx')").fetchone()[0] is None
    assert history(db) == [] and online_rows(db) == []


def test_backfill_without_a_single_column_primary_key_fails_clearly(project, make_session, db_url, db):
    db.execute("create table public.pairs (a int, b int, v text, primary key (a, b))")
    db.execute("insert into public.pairs select g, g, null from generate_series(1, 10) g")
    write(project, f"{V1}_fill.sql", "update public.pairs set v = 'x';\n")
    outcome = make_session(db_url, yes=True).run_line("*apply --online --snapshot=no")
    assert outcome.exit_code == EXIT_FAILED
    assert "has a primary key of 2 columns: add a single-column primary key first" in failure(outcome)
    assert db.execute("select count(*) from public.pairs where v is not null").fetchone()[0] == 0
    assert history(db) == []


def test_a_file_edited_after_its_online_apply_started_is_refused(project, make_session, db_url, db, monkeypatch):
    seed(db_url)
    monkeypatch.setenv("SAGE_ONLINE_LOCK_TIMEOUT_MS", "50")
    monkeypatch.setenv("SAGE_ONLINE_RETRIES", "0")
    write(project, f"{V1}_two.sql", "create index orders_note_idx on public.orders (note);\n"
                                    "alter table public.orders alter column amount set not null;\n")
    with psycopg.connect(db_url) as holder:
        holder.execute("select 1 from public.orders limit 1")  # ACCESS SHARE: SET NOT NULL's check must wait
        outcome = make_session(db_url, yes=True).run_line("*apply --online --snapshot=no")
        holder.rollback()
    assert outcome.exit_code == EXIT_FAILED
    assert online_rows(db) == [(V1, 1, "failed")]  # the index is built and recorded
    write(project, f"{V1}_two.sql", "create index orders_note_idx on public.orders (note);\n"
                                    "alter table public.orders alter column note set not null;\n")
    again = make_session(db_url, yes=True).run_line("*apply --snapshot=no")
    assert again.exit_code == EXIT_FAILED
    assert f"{V1}_two.sql changed after its online apply started (step 2 of 4 was next)" in failure(again)
    assert online_rows(db) == [(V1, 1, "failed")] and history(db) == []


def test_backfill_ends_under_a_stream_of_inserts_and_updates_only_rows_present_at_its_start(
        project, make_session, db_url, db):
    """Rows inserted after a backfill started are the application's (as after the plain UPDATE): a backfill that
    followed the newest keys would never end under steady inserts."""
    seed(db_url)
    write(project, f"{V1}_fill.sql", "update public.orders set note = 'x' || id;\n")
    inserted: list[int] = []

    def writer() -> None:
        with psycopg.connect(db_url, autocommit=True) as conn:
            for _ in range(3000):  # wait until the first batch is committed
                if conn.execute("select to_regclass('supabase_migrations.sage_online')").fetchone()[0] and \
                        conn.execute("select 1 from supabase_migrations.sage_online "
                                     "where (current->>'rows_done')::int > 0").fetchone():
                    break
                time.sleep(0.01)
            for n in range(20):  # 20,000 new rows, far faster than batches of 200 with a pause
                first = 3001 + n * 1000
                conn.execute("insert into public.orders (id, user_id, amount, note, code) select g, 1, 1, 'w', "
                             "'w' || g from generate_series(%s::int, %s::int) g", (first, first + 999))
                inserted.append(first + 999)

    thread = threading.Thread(target=writer)
    thread.start()
    outcome = make_session(db_url, yes=True).run_line("*apply --online --snapshot=no --batch-rows 200 "
                                                      "--batch-pause-ms 50")
    thread.join(timeout=60)
    assert outcome.exit_code == EXIT_OK, failure(outcome)
    assert len(inserted) == 20  # the stream really ran during the backfill
    assert db.execute("select count(*) from public.orders where id <= 3000 and note = 'x' || id").fetchone()[0] == 3000
    assert db.execute("select count(*) from public.orders where id > 3000 and note <> 'w'").fetchone()[0] == 0
    assert history(db) == [V1]


def test_a_drawn_backfill_progress_is_not_told_twice(project, make_session, db_url, db):
    """Where a front door draws progress (the REPL, a terminal), the backfill's 10% news lines are left out: a
    person read each step twice. Batches of 700 of 3,000 rows land on no 5% boundary: still one line each 5%."""
    import io

    from sage_agent.frontends.render import make_console, progress_printer

    seed(db_url)
    write(project, f"{V1}_fill.sql", "update public.orders set code = 'd' || id;\n")
    said: list[str] = []
    console = make_console(width=100)
    console.file = io.StringIO()
    session = make_session(db_url, yes=True)
    session.message_sink, session.progress_sink = said.append, progress_printer(console)
    outcome = session.run_line("*apply --online --snapshot=no --batch-rows 700")
    assert outcome.exit_code == EXIT_OK, failure(outcome)
    drawn = console.file.getvalue().splitlines()
    assert len([x for x in drawn if 'backfill "public"."orders"' in x and "rows/s" in x]) >= 4, drawn
    assert not [s for s in said if s.startswith("backfill ") and "% (" in s], said
    write(project, f"{V2}_fill.sql", "update public.orders set code = 'e' || id;\n")  # nothing drawn: told
    told: list[str] = []
    plain = make_session(db_url, yes=True)
    plain.message_sink = told.append
    assert plain.run_line("*apply --online --snapshot=no --batch-rows 700").exit_code == EXIT_OK
    assert [s for s in told if s.startswith('backfill "public"."orders": ') and "% (" in s], told


def test_headless_online_apply_without_yes_shows_the_plan_then_asks_for_yes(run_sage, project, db_url, db):
    """`sage run "*apply FILE --online"` without --yes: exit 3 as before, but the person reads the plan the REPL
    would show (each step, its lock and its bounds) and then what to do to go on; nothing was changed."""
    from onlinekit import SEED, TWO, type_of

    from sage_agent.session.machine import EXIT_CONFIRM

    db.execute(SEED)
    write(project, f"{V1}_change.sql", TWO)
    proc = run_sage("run", f"*apply {V1}_change.sql --online", "--db-url", db_url, cwd=project)
    assert proc.returncode == EXIT_CONFIRM, proc.stdout + proc.stderr
    lines = proc.stderr.splitlines()
    backfill = next(i for i, line in enumerate(lines) if "[backfill]" in line)
    assert 'UPDATE "public"."orders" SET "user_id_sage_new"' in lines[backfill]
    assert "lock: ROW EXCLUSIVE" in lines[backfill]
    swap = next(line for line in lines if 'swaps "public"."orders"."user_id"' in line)
    assert "waits at most 1000 ms for it, 8 retries with backoff" in swap
    assert "holds it at most statement_timeout=" in swap
    last = lines[-1]  # the plan first, then one error line that says what to do
    assert last.startswith("error: confirmation required: Apply 1 migration(s) to ") and last.endswith(
        "? Nothing was changed. Re-run with --yes to proceed, or run it in the REPL (sage) and answer there."), last
    assert lines.index(last) > backfill
    as_json = run_sage("run", f"*apply {V1}_change.sql --online", "--json", "--db-url", db_url, cwd=project)
    doc = __import__("json").loads(as_json.stdout)
    assert as_json.returncode == EXIT_CONFIRM and doc["exit_code"] == EXIT_CONFIRM
    assert "[backfill]" in doc["data"]["plan"] and doc["error"] == last.removeprefix("error: ")
    assert "postgres:postgres@" not in proc.stderr
    assert type_of(db, "user_id") == "integer" and "sage_new" not in str(db.execute(
        "select array_agg(attname) from pg_attribute where attrelid = 'public.orders'::regclass").fetchone())

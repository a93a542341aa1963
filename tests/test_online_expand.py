"""*apply --online of a column type change as expand/contract, against real PostgreSQL 18 and 15: after
--complete the schema is the plain file's (normalized pg_dump), concurrent writes during the backfill and
after the swap are kept, *rollback FILE swaps back keeping every row, and what cannot be carried over is
refused before anything runs."""

from __future__ import annotations

import json

import psycopg
import pytest
from migfiles import failure, history
from migfiles import write_migration as write
from onlinekit import (
    SEED,
    TWO,
    V1,
    Background,
    Writer,
    apply_and_complete,
    column_order_free,
    kept,
    online_plan,
    online_rows,
    plain_dump_of,
    recording_session,
    type_of,
)

from sage_agent.session.machine import EXIT_FAILED, EXIT_OK

CHANGE = "alter table public.orders alter column amount type bigint;\n"


def columns(conn) -> list[str]:
    return [r[0] for r in conn.execute("select attname from pg_attribute where attrelid = 'public.orders'::regclass "
                                       "and attnum > 0 and not attisdropped order by attnum")]


def test_type_change_expands_keeps_concurrent_writes_and_completes_to_the_plain_schema(
        project, make_session, db_url, db, pg_server, monkeypatch):
    from sage_agent.ops.schema.compare import normalized_dump

    monkeypatch.setenv("SAGE_ONLINE_BATCH_PAUSE_MS", "20")
    db.execute(SEED)
    write(project, f"{V1}_change.sql", CHANGE)
    with Writer(db_url) as writer:
        outcome = make_session(db_url, yes=True).run_line("*apply --online --snapshot=no --batch-rows 500")
        after_swap = dict(writer.written)
        writer.wait_until(lambda: len(writer.written) >= len(after_swap) + 20)  # writes after the swap: trigger too
    assert outcome.exit_code == EXIT_OK, failure(outcome)
    assert writer.errors == []
    assert len(after_swap) > 20  # the writer ran during the backfill
    assert type_of(db, "amount") == "bigint" and type_of(db, "amount_sage_old") == "integer"
    assert kept(db, writer.written)
    assert db.execute("select count(*) from public.orders where amount is distinct from amount_sage_old"
                      ).fetchone()[0] == 0
    # the history row is there (the change is visible), the state row waits for --complete
    assert history(db) == [V1] and online_rows(db) == [(V1, "expanded")]
    listed = make_session(db_url).run_line("*migrations")
    assert listed.result.tables[0].rows[0][4] == "expanded (contract pending)"
    assert any("--complete" in s for s in listed.result.next_steps)

    # --complete is destructive: --yes alone does not drop the old column
    refused = make_session(db_url, yes=True).run_line("*apply --complete")
    assert refused.exit_code != EXIT_OK
    assert type_of(db, "amount_sage_old") == "integer"
    done = make_session(db_url, yes=True, confirm=("COMPLETE",)).run_line("*apply --complete")
    assert done.exit_code == EXIT_OK, failure(done)
    assert online_rows(db) == [] and history(db) == [V1]
    assert columns(db) == ["id", "user_id", "note", "amount"]  # amount was last: the same order as the plain file
    assert normalized_dump(db_url) == plain_dump_of(project, make_session, pg_server.url(), SEED, CHANGE)
    assert make_session(db_url).run_line("*migrations").result.tables[0].rows[0][4] == "applied"


def test_rollback_of_an_expanded_change_is_instant_and_keeps_every_row(project, make_session, db_url, db):
    from sage_agent.ops.schema.compare import normalized_dump

    db.execute(SEED)
    before = normalized_dump(db_url)
    write(project, f"{V1}_change.sql", CHANGE)
    outcome = make_session(db_url, yes=True).run_line("*apply --online --snapshot=no")
    assert outcome.exit_code == EXIT_OK, failure(outcome)
    with Writer(db_url) as writer:  # writes after the swap reach the old column through the trigger
        writer.wait_until(lambda: len(writer.written) >= 50)
    assert writer.errors == []
    refused = make_session(db_url, yes=True).run_line(f"*rollback {V1}_change.sql")  # typed ROLLBACK only
    assert refused.exit_code != EXIT_OK and type_of(db, "amount") == "bigint"
    undone = make_session(db_url, confirm=("ROLLBACK",)).run_line(f"*rollback {V1}_change.sql")
    assert undone.exit_code == EXIT_OK, failure(undone)
    assert "pending again" in undone.result.summary
    assert type_of(db, "amount") == "integer" and kept(db, writer.written)
    assert history(db) == [] and online_rows(db) == []
    assert normalized_dump(db_url) == before  # the old column never moved: exactly the schema before
    assert make_session(db_url).run_line("*migrations").result.tables[0].rows[0][4] == "pending"
    again = make_session(db_url, yes=True).run_line("*apply --online --snapshot=no")  # and it can run again
    assert again.exit_code == EXIT_OK, failure(again)
    assert type_of(db, "amount") == "bigint"


def test_two_type_changes_with_using_end_in_the_plain_schema_but_for_column_order(project, make_session, db_url, db,
                                                                                  pg_server):
    from sage_agent.ops.schema.compare import normalized_dump

    db.execute(SEED)
    expected = dict(db.execute("select id, user_id * 2 from public.orders").fetchall())
    write(project, f"{V1}_change.sql", TWO)
    outcome = make_session(db_url, yes=True).run_line("*apply --online --snapshot=no")
    assert outcome.exit_code == EXIT_OK, failure(outcome)
    assert dict(db.execute("select id, user_id from public.orders").fetchall()) == expected
    # the index on both columns was built again on the new ones and carries its name
    assert "orders_big_idx_sage_old" in {r[0] for r in db.execute("select indexrelid::regclass::text from pg_index")}
    done = make_session(db_url, confirm=("COMPLETE",)).run_line(f"*apply --complete {V1}")
    assert done.exit_code == EXIT_OK, failure(done)
    assert columns(db) == ["id", "note", "user_id", "amount"]
    assert column_order_free(normalized_dump(db_url)) == column_order_free(
        plain_dump_of(project, make_session, pg_server.url(), SEED, TWO))
    assert normalized_dump(db_url) != plain_dump_of(project, make_session, pg_server.url(), SEED, TWO)  # only the order


@pytest.mark.parametrize("setup, reason", [
    ("create materialized view public.mv as select id, amount from public.orders",
     "materialized view public.mv uses it (it would have to be filled again)"),
    ("create view public.v as select id, amount from public.orders; create function public.f() returns setof public.v "
     "language sql as 'select * from public.v'", "function public.f() depends on the view public.v over it"),
    ("create rule orders_no_neg as on insert to public.orders where new.amount < 0 do instead nothing",
     "view or rule on public.orders uses it"),
    ("create unique index orders_amount_key on public.orders (amount, id); alter table public.orders add constraint "
     "orders_amount_key unique using index orders_amount_key", "UNIQUE constraint orders_amount_key uses it"),
    ("create table public.amounts (v int primary key); insert into public.amounts select generate_series(0, 999); "
     "alter table public.orders add constraint orders_amount_fk foreign key (amount) references public.amounts (v)",
     "foreign key orders_amount_fk uses it"),
    ("update public.orders set amount = id; alter table public.orders add constraint orders_amount_uq unique (amount);"
     " create table public.refs (a int constraint refs_a_fk references public.orders (amount))",
     "foreign key refs_a_fk on refs references it"),
    ("grant select (amount) on public.orders to public", "column privileges"),
    ("alter table public.orders alter column amount set statistics 500", "it has a statistics target"),
    ("alter table public.orders cluster on orders_amount_idx", "the table's CLUSTER or REPLICA IDENTITY index"),
])
def test_what_cannot_be_carried_over_is_refused_before_anything_runs(setup, reason, project, make_session, db_url,
                                                                     db):
    db.execute(SEED)
    db.execute(setup)
    write(project, f"{V1}_change.sql", CHANGE)
    outcome = make_session(db_url, yes=True).run_line("*apply --online --snapshot=no")
    assert outcome.exit_code == EXIT_FAILED
    text = failure(outcome)
    assert f"{V1}_change.sql:1: no faithful online form for the type change of public.orders.amount" in text
    assert reason in text and "nothing was changed" in text
    assert type_of(db, "amount") == "integer" and "amount_sage_new" not in columns(db)
    assert history(db) == [] and online_rows(db) == []


@pytest.mark.parametrize("before, kind", [
    ("alter table public.orders add constraint orders_amount_uq unique (amount, id);\n", "ALTER TABLE"),
    ("create materialized view public.v as select id, amount from public.orders;\n", "CREATE MATERIALIZED VIEW"),
    ('create policy p on public.orders using ("amount" > 0);\n', "CREATE POLICY"),
])
def test_what_the_file_itself_gives_the_column_first_is_refused_before_anything_runs(before, kind, project,
                                                                                    make_session, db_url, db):
    """The check of the database cannot see a UNIQUE constraint, materialized view or policy the same file adds:
    refused before it, not at the expand step after the index was built (a half-done file whose cause is in the
    file itself, which cannot be edited any more)."""
    db.execute(SEED)
    write(project, f"{V1}_change.sql", "create index orders_note_idx on public.orders (note);\n" + before + CHANGE)
    reason = f"line 2 of this file ({kind}) uses it before the type change"
    dry = make_session(db_url).run_line(f"*dry-run {V1} --online")
    assert dry.result.data["verdict"] == "unsafe"
    assert [f.location for f in dry.result.findings if f.rule == "online.no_form"] == [f"{V1}_change.sql:3"]
    assert reason in next(f.message for f in dry.result.findings if f.rule == "online.no_form")
    outcome = make_session(db_url, yes=True).run_line("*apply --online --snapshot=no")
    assert outcome.exit_code == EXIT_FAILED
    text = failure(outcome)
    assert f"{V1}_change.sql:3: no faithful online form for the type change of public.orders.amount: {reason}" in text
    assert "nothing was changed" in text and "goes after the type change, or in a later file" in text
    assert db.execute("select to_regclass('public.orders_note_idx')").fetchone()[0] is None  # step 1 never ran
    assert online_rows(db) == [] and history(db) == []


def test_the_file_s_own_statements_on_other_columns_or_after_the_change_run_online(project, make_session, db_url,
                                                                                  db):
    """Another column's CHECK, a CHECK on the column (the swap copies it) and a view after the change."""
    db.execute(SEED)
    write(project, f"{V1}_change.sql", "alter table public.orders add constraint note_len check (length(note) < 99);"
                                       "\nalter table public.orders add constraint amount_pos check (amount >= 0);\n"
                                       + CHANGE + "create view public.v as select id, amount from public.orders;\n")
    outcome = make_session(db_url, yes=True).run_line("*apply --online --snapshot=no")
    assert outcome.exit_code == EXIT_OK, failure(outcome)
    assert type_of(db, "amount") == "bigint" and online_rows(db) == [(V1, "expanded")]


@pytest.mark.pg15
def test_expand_contract_on_postgresql_15_ends_in_the_plain_schema(project, make_session, pg15_server, pg15_url):
    """PostgreSQL 15 has no named NOT NULL constraints: the swap and the rollback without renaming one."""
    from sage_agent.ops.schema.compare import normalized_dump

    with psycopg.connect(pg15_url, autocommit=True) as conn:
        conn.execute(SEED)
    before = normalized_dump(pg15_url, 15)
    write(project, f"{V1}_change.sql", CHANGE)
    with Writer(pg15_url) as writer:
        outcome = make_session(pg15_url, yes=True).run_line("*apply --online --snapshot=no --batch-rows 1000")
    assert outcome.exit_code == EXIT_OK, failure(outcome)
    with psycopg.connect(pg15_url, autocommit=True) as conn:
        assert writer.errors == [] and kept(conn, writer.written)
        undone = make_session(pg15_url, confirm=("ROLLBACK",)).run_line(f"*rollback {V1}")
        assert undone.exit_code == EXIT_OK, failure(undone)
        assert normalized_dump(pg15_url, 15) == before and kept(conn, writer.written)
        apply_and_complete(make_session, pg15_url)
        assert history(conn) == [V1] and online_rows(conn) == [] and kept(conn, writer.written)
    assert normalized_dump(pg15_url, 15) == plain_dump_of(project, make_session, pg15_server, SEED, CHANGE, 15)


def test_dry_run_online_shows_each_step_with_its_lock(project, make_session, db_url, db):
    db.execute(SEED)
    write(project, f"{V1}_change.sql", "create index orders_note_idx on public.orders (note);\n" + CHANGE)
    out = make_session(db_url).run_line(f"*dry-run {V1} --online")
    assert out.result is not None, out.error
    steps = next(t for t in out.result.tables if t.title == "Online steps (*apply --online)").rows
    assert [r[2] for r in steps] == ["index", "expand", "backfill", "expand_index", "expand_check", "swap"]
    locks = {r[2]: r[3] for r in steps}
    assert locks["index"] == 'SHARE UPDATE EXCLUSIVE on "public"."orders" for the build: reads and writes go on'
    assert locks["expand"] == 'ACCESS EXCLUSIVE on "public"."orders" briefly (catalog only, no scan)'
    assert locks["swap"].startswith('ACCESS EXCLUSIVE on "public"."orders" for one short transaction')
    assert locks["backfill"].startswith('ROW EXCLUSIVE on "public"."orders" and the row locks of one batch')
    assert steps[1][4].startswith('[transaction] ALTER TABLE "public"."orders" ADD COLUMN "amount_sage_new" bigint')
    assert "## Online steps (`*apply --online`)" in out.result.markdown
    assert any("expanded (contract pending)" in n for n in out.result.notes)
    # a dry-run changes nothing on the target, online or not
    assert online_rows(db) == [] and "amount_sage_new" not in columns(db)
    # without --online and without the directive: no online steps
    plain = make_session(db_url).run_line(f"*dry-run {V1}")
    assert all(t.title != "Online steps (*apply --online)" for t in plain.result.tables)


def test_dry_run_online_weighs_findings_as_apply_online_does(project, make_session, db_url, db):
    """The type change's lint error blocks the plain file; with --online the statement runs in its online form,
    as *apply --online weighs it, so the verdict is the same there and the next step is that command."""
    db.execute(SEED)
    write(project, f"{V1}_change.sql", CHANGE)
    plain = make_session(db_url).run_line(f"*dry-run {V1}")
    assert plain.result.data["verdict"] == "unsafe" and plain.exit_code == EXIT_FAILED
    assert plain.result.next_steps == [  # not the same *dry-run again: fix the file, see its online form, or
        # apply past the finding
        f"fix {V1}_change.sql per the findings above, then *dry-run {V1}_change.sql",
        f"*dry-run {V1}_change.sql --online",
        f"*apply {V1}_change.sql past the 1 error-level lint finding(s): type UNSAFE when it asks "
        f"(headless: sage run \"*apply {V1}_change.sql\" --yes --allow-unsafe)"]
    assert (f"the statement(s) on line(s) 1 have an online form (*apply --online: short locks, batches): "
            f"`*dry-run {V1}_change.sql --online` shows its steps and verdict") in plain.result.notes
    assert f"`*dry-run {V1}_change.sql --online` shows its online form" in plain.result.markdown
    assert all(t.title != "Online steps (*apply --online)" for t in plain.result.tables)  # only suggested
    online = make_session(db_url).run_line(f"*dry-run {V1} --online")
    assert online.result.data["verdict"] == "caution" and online.exit_code == EXIT_OK
    assert online.result.next_steps == [f"*apply {V1}_change.sql --online"]
    assert [f.rule for f in online.result.findings if f.severity == "error"] == ["changing-column-type"]  # shown
    assert "1 error-level lint finding(s) on line(s) 1 do not block: those statements run in their online form " \
           "(as in *apply --online)" in online.result.notes
    assert f"`*apply {V1}_change.sql --online`" in online.result.markdown
    total, shadow = (float(online.result.facts[k].rstrip("s")) for k in ("total", "shadow apply"))
    assert total >= shadow and total > 0  # the whole command, not a missing number shown as 0.00s


def test_dry_run_of_a_directive_file_shows_steps_and_what_is_refused(project, make_session, db_url, db):
    db.execute(SEED)
    db.execute("create materialized view public.amounts as select id, amount from public.orders")
    write(project, f"{V1}_change.sql", "-- sage:online\n" + CHANGE)
    out = make_session(db_url).run_line(f"*dry-run {V1}")
    assert out.result is not None, out.error
    assert any(t.title == "Online steps (*apply --online)" for t in out.result.tables)
    refused = [f for f in out.result.findings if f.rule == "online.no_form"]
    assert [f.location for f in refused] == [f"{V1}_change.sql:2"]
    assert "materialized view public.amounts uses it" in refused[0].message
    assert out.result.data["verdict"] == "unsafe"  # *apply --online refuses it



def test_plain_unsafe_dry_run_suggests_online_only_when_the_online_planner_takes_the_file(project, make_session,
                                                                                         db_url, db):
    """A type change of a column the same file adds: --online refuses it (no online form), so the plain UNSAFE
    dry-run does not suggest `*dry-run FILE --online` (it did for the file the planner takes: the test above)."""
    db.execute(SEED)
    write(project, f"{V1}_change.sql", "alter table public.orders add column code int default 0;\n"
                                       "alter table public.orders alter column code type bigint;\n")
    plain = make_session(db_url).run_line(f"*dry-run {V1}")
    assert plain.result.data["verdict"] == "unsafe" and plain.exit_code == EXIT_FAILED
    assert plain.result.next_steps == [
        f"fix {V1}_change.sql per the findings above, then *dry-run {V1}_change.sql",
        f"*apply {V1}_change.sql past the 1 error-level lint finding(s): type UNSAFE when it asks "
        f"(headless: sage run \"*apply {V1}_change.sql\" --yes --allow-unsafe)"]
    assert not any("online form" in n for n in plain.result.notes)
    assert not any(f.rule == "online.no_form" for f in plain.result.findings)  # the probe shows nothing
    refused = make_session(db_url).run_line(f"*dry-run {V1} --online")
    assert refused.result.data["verdict"] == "unsafe"
    assert [f.location for f in refused.result.findings if f.rule == "online.no_form"] == [f"{V1}_change.sql:2"]


BAD_CAST = "alter table public.orders alter column note type int using note::int;\n"


def test_rollback_of_a_file_stopped_mid_backfill_undoes_its_expand_steps(project, make_session, db_url, db):
    from sage_agent.ops.schema.compare import normalized_dump

    db.execute(SEED)
    db.execute("update public.orders set note = id::text where id <= 2000")  # the rest cannot be cast to int
    before = normalized_dump(db_url)
    write(project, f"{V1}_change.sql", BAD_CAST)
    outcome = make_session(db_url, yes=True).run_line("*apply --online --snapshot=no --batch-rows 500")
    assert outcome.exit_code == EXIT_FAILED
    assert 'invalid input syntax for type integer: "n2001"' in failure(outcome)
    assert online_rows(db) == [(V1, "failed")] and "note_sage_new" in columns(db)
    assert make_session(db_url).run_line("*migrations").result.tables[0].rows[0][4] == \
        "in progress (backfill 50%, failed)"
    undone = make_session(db_url, confirm=("ROLLBACK",)).run_line(f"*rollback {V1}")
    assert undone.exit_code == EXIT_OK, failure(undone)
    assert "nothing of it is left" in undone.result.summary
    assert online_rows(db) == [] and history(db) == [] and "note_sage_new" not in columns(db)
    assert normalized_dump(db_url) == before  # trigger, function and new column gone
    db.execute("insert into public.orders (id, note) values (9999, 'text again')")  # no trigger casts it now
    assert make_session(db_url).run_line("*migrations").result.tables[0].rows[0][4] == "pending"


def as_an_earlier_build_left_it(db, swap_text: list[str] | None = None) -> None:
    """Rewrite the state row the way DB Sage builds before file checksums wrote it (session 7, 3fb61f6): steps with
    their kind, line and text only, the checksum that of the step text; `swap_text`: the swap step worded as
    another build words it (its text changed; what it runs did not)."""
    import hashlib

    steps = db.execute("select steps from supabase_migrations.sage_online").fetchone()[0]
    old = [{"kind": s["kind"], "line": s["line"], "sql": s["sql"]} for s in steps]
    if swap_text is not None:
        assert old[-1]["kind"] == "swap"
        old[-1]["sql"] = swap_text
    checksum = hashlib.sha256("\n\x1e".join(f"{s['kind']}\x1f" + "\x1f".join(s["sql"]) for s in old).encode()
                              ).hexdigest()
    db.execute("update supabase_migrations.sage_online set steps = %s, checksum = %s", (json.dumps(old), checksum))


def test_a_file_started_by_an_earlier_build_continues_after_an_upgrade(project, make_session, db_url, db, pg_server):
    """A type change stopped mid-backfill by a build that knew the file by its step text, and whose swap step was
    worded differently: this build continues it (the same steps from the same lines, the expand's record the
    file's), records the row its own way, and ends in the plain file's schema."""
    from sage_agent.ops.schema.compare import normalized_dump

    seed = SEED + "update public.orders set note = id::text where id <= 2000;\n"
    db.execute(seed)
    write(project, f"{V1}_change.sql", BAD_CAST)
    outcome = make_session(db_url, yes=True).run_line("*apply --online --snapshot=no --batch-rows 500")
    assert outcome.exit_code == EXIT_FAILED and online_rows(db) == [(V1, "failed")]
    as_an_earlier_build_left_it(db, ["ALTER TABLE public.orders RENAME COLUMN note TO note_sage_old (older words)"])
    db.execute("update public.orders set note = id::text where id > 2000")  # the cause fixed
    again = make_session(db_url, yes=True).run_line("*apply --snapshot=no --batch-rows 500")
    assert again.exit_code == EXIT_OK, failure(again)
    assert history(db) == [V1] and online_rows(db) == [(V1, "expanded")] and type_of(db, "note") == "integer"
    checksum, steps = db.execute("select checksum, steps from supabase_migrations.sage_online").fetchone()
    assert checksum.startswith("file:") and steps[-1]["expand"]["column"] == "note"  # this build's row now
    done = make_session(db_url, confirm=("COMPLETE",)).run_line("*apply --complete")
    assert done.exit_code == EXIT_OK, failure(done)
    assert column_order_free(normalized_dump(db_url)) == column_order_free(
        plain_dump_of(project, make_session, pg_server.url(), seed + "update public.orders set note = id::text;\n",
                      BAD_CAST))


def test_a_resumed_file_continues_with_the_steps_recorded_when_it_started(project, make_session, db_url, db):
    """A row of this build keeps every step as planned when the file started: a build that words (or plans) the
    steps differently continues with the recorded ones, which the confirmation plan shows."""
    db.execute(SEED + "update public.orders set note = id::text where id <= 2000;\n")
    write(project, f"{V1}_change.sql", BAD_CAST)
    outcome = make_session(db_url, yes=True).run_line("*apply --online --snapshot=no --batch-rows 500")
    assert outcome.exit_code == EXIT_FAILED
    steps = db.execute("select steps from supabase_migrations.sage_online").fetchone()[0]
    assert steps[-1]["kind"] == "swap" and steps[-1]["expand"]["column"] == "note"
    steps[-1]["sql"] = ["the swap, as the build that started the file words it"]
    db.execute("update supabase_migrations.sage_online set steps = %s", (json.dumps(steps),))
    db.execute("update public.orders set note = id::text where id > 2000")
    session, plans = recording_session(project, db_url)
    again = session.run_line("*apply --snapshot=no")
    assert again.exit_code == EXIT_OK, failure(again)
    assert "5. line 1 [transaction] the swap, as the build that started the file words it;" in plans[0], plans[0]
    assert history(db) == [V1] and online_rows(db) == [(V1, "expanded")] and type_of(db, "note") == "integer"


@pytest.mark.parametrize("edit", ["the type", "another statement"])
def test_a_file_started_by_an_earlier_build_and_edited_since_is_refused(edit, project, make_session, db_url, db):
    """The same row of an earlier build, but the file was edited after it started (its type change's type, or a
    statement added before it): refused, nothing changed, the row left as it was."""
    db.execute(SEED + "update public.orders set note = id::text where id <= 2000;\n")
    write(project, f"{V1}_change.sql", BAD_CAST)
    outcome = make_session(db_url, yes=True).run_line("*apply --online --snapshot=no --batch-rows 500")
    assert outcome.exit_code == EXIT_FAILED
    as_an_earlier_build_left_it(db)
    row = db.execute("select checksum, steps, done, names from supabase_migrations.sage_online").fetchone()
    db.execute("update public.orders set note = id::text where id > 2000")
    write(project, f"{V1}_change.sql", BAD_CAST.replace("type int using note::int", "type bigint using note::bigint")
          if edit == "the type" else "create index orders_note_idx on public.orders (note);\n" + BAD_CAST)
    again = make_session(db_url, yes=True).run_line("*apply --snapshot=no")
    assert again.exit_code == EXIT_FAILED
    said = failure(again)
    assert (f"{V1}_change.sql changed after its online apply started (or an earlier build of DB Sage, which started "
            "it, planned it into other steps) (step 2 of 5 was next)") in said, said
    assert db.execute("select checksum, steps, done, names from supabase_migrations.sage_online").fetchone() == row
    assert history(db) == [] and type_of(db, "note") == "text"


def test_rollback_of_a_half_done_file_with_other_done_steps_says_how_to_go_on(project, make_session, db_url, db):
    db.execute(SEED)
    db.execute("update public.orders set note = id::text where id <= 2000")
    write(project, f"{V1}_change.sql", "create index orders_note_idx on public.orders (note);\n" + BAD_CAST)
    outcome = make_session(db_url, yes=True).run_line("*apply --online --snapshot=no --batch-rows 500")
    assert outcome.exit_code == EXIT_FAILED
    refused = make_session(db_url, confirm=("ROLLBACK",)).run_line(f"*rollback {V1}_change.sql")
    assert refused.exit_code == EXIT_FAILED
    text = failure(refused)
    assert f"{V1}_change.sql is half done online (in progress (backfill 50%, failed))" in text
    assert "its done steps step 1 (index, line 1) are not part of an expand/contract" in text
    assert "*apply continues it from step 3" in text
    assert "*rollback SNAPSHOT goes back to a snapshot taken before the file (*apply took none" in text
    assert "note_sage_new" in columns(db) and online_rows(db) == [(V1, "failed")]  # nothing changed
    db.execute("update public.orders set note = id::text")  # the cause fixed: *apply continues and expands
    again = make_session(db_url, yes=True).run_line("*apply --snapshot=no")
    assert again.exit_code == EXIT_OK, failure(again)
    assert type_of(db, "note") == "integer" and online_rows(db) == [(V1, "expanded")]


def test_snapshot_rollback_of_a_half_done_file_clears_its_progress_so_apply_starts_it_again(
        project, make_session, db_url, db):
    """The file ran with another one (snapshot `before_<first>_and_1_more`), stopped after its index step; the
    error names that snapshot, and rolling back to it leaves no progress row that would skip the index."""
    db.execute(SEED)
    write(project, "20231231000000_tags.sql", "create table public.tags (id bigint primary key);\n")
    write(project, f"{V1}_change.sql", "create index orders_note_idx on public.orders (note);\n"
                                       "update public.orders set amount = 1000 / (id - 2001);\n")  # a batch fails
    outcome = make_session(db_url, yes=True).run_line("*apply --online --batch-rows 500")
    assert outcome.exit_code == EXIT_FAILED and online_rows(db) == [(V1, "failed")]
    assert "division by zero" in failure(outcome)
    snapshot = "before_20231231000000_tags_and_1_more"
    refused = make_session(db_url, confirm=("ROLLBACK",)).run_line(f"*rollback {V1}")
    assert f"*rollback {snapshot} (the snapshot *apply took) goes back to before the file" in failure(refused)
    back = make_session(db_url, confirm=("ROLLBACK",)).run_line(f"*rollback {snapshot}")
    assert back.exit_code == EXIT_OK, failure(back)
    assert online_rows(db) == [] and history(db) == []
    assert [r[4] for r in make_session(db_url).run_line("*migrations").result.tables[0].rows] == ["pending"] * 2
    db.execute("delete from public.orders where id = 2001")  # the cause gone: the file runs from its first step
    again = make_session(db_url, yes=True).run_line("*apply --online --snapshot=no")
    assert again.exit_code == EXIT_OK, failure(again)
    assert db.execute("select to_regclass('public.orders_note_idx') is not null").fetchone()[0]
    assert history(db) == ["20231231000000", V1] and online_rows(db) == []


def test_snapshot_rollback_over_an_expanded_change_says_to_undo_it_first(project, make_session, db_url, db):
    db.execute(SEED)
    write(project, f"{V1}_change.sql", CHANGE)
    outcome = make_session(db_url, yes=True).run_line("*apply --online")  # takes the snapshot before_<file>
    assert outcome.exit_code == EXIT_OK, failure(outcome)
    assert outcome.result.next_steps[-1] == f"*apply --complete {V1}_change.sql"  # what is left, said at once
    assert f"{V1}_change.sql: expanded (contract pending): the old column and its sync trigger stay until *apply " \
           "--complete (typed COMPLETE) drops them" in " ".join(outcome.result.notes)
    snapshot = outcome.result.facts["snapshot"]
    refused = make_session(db_url, confirm=("ROLLBACK",)).run_line(f"*rollback {snapshot}")
    assert refused.exit_code == EXIT_FAILED
    assert f"online change(s) in the way of a rollback to {snapshot}: {V1}_change.sql (expanded (contract " \
           "pending)); nothing was changed" in failure(refused)
    assert type_of(db, "amount") == "bigint" and online_rows(db) == [(V1, "expanded")]
    undone = make_session(db_url, confirm=("ROLLBACK",)).run_line(f"*rollback {V1}_change.sql")
    assert undone.exit_code == EXIT_OK, failure(undone)


PK_SEED = """
create table public.orders (id {idtype} primary key, note text);
insert into public.orders (id, note) select g, 'n' || g from generate_series(1, 3000) g;
{setval}
create table public.items (id int primary key, order_id int constraint items_order_fk references public.orders (id)
  on delete cascade);
insert into public.items select g, g % 3000 + 1 from generate_series(1, 500) g;
"""
PK_CHANGE = "alter table public.orders alter column id type bigint;\n"


def pk_seed(serial: bool) -> str:
    return PK_SEED.format(idtype="serial" if serial else "int",
                          setval="select setval('public.orders_id_seq', 3000);" if serial else "")


class OrderWriter(Background):
    """Inserts orders (and items that reference them) from another connection; remembers the ids it wrote.
    Unprepared: a prepared `RETURNING id` fails after any type change of id ("cached plan must not change result
    type"), the plain ALTER's as much as the swap's."""

    def __init__(self, url: str, serial: bool = False):
        super().__init__(url)
        self.serial, self.ids, self.next_id = serial, [], 100_000

    def step(self, conn, n: int) -> None:
        self.next_id += 1
        if self.serial:
            oid = conn.execute("insert into public.orders (note) values ('w') returning id",
                               prepare=False).fetchone()[0]
        else:
            oid = conn.execute("insert into public.orders (id, note) values (%s, 'w') returning id",
                               (self.next_id,), prepare=False).fetchone()[0]
        conn.execute("insert into public.items values (%s, %s)", (self.next_id, oid))
        self.ids.append(oid)


def orders_kept(conn, ids: list[int]) -> bool:
    have = {r[0] for r in conn.execute("select o.id from public.orders o join public.items i on i.order_id = o.id "
                                       "where o.id = any(%s)", (ids,))}
    return have == set(ids) and conn.execute("select count(*) from public.orders").fetchone()[0] == 3000 + len(ids)


def fk_violation_caught(conn) -> bool:
    try:
        conn.execute("insert into public.items values (-1, 999999999)")
    except psycopg.errors.ForeignKeyViolation:
        return True
    conn.execute("delete from public.items where id = -1")
    return False


def test_primary_key_type_change_moves_the_key_and_its_foreign_keys(project, make_session, db_url, db, pg_server,
                                                                    monkeypatch):
    from sage_agent.ops.schema.compare import normalized_dump

    monkeypatch.setenv("SAGE_ONLINE_BATCH_PAUSE_MS", "20")
    db.execute(pk_seed(serial=False))
    write(project, f"{V1}_change.sql", PK_CHANGE)
    plan = online_plan(make_session, db_url)
    assert any("foreign key items_order_fk on items (order_id integer) is re-created NOT VALID" in n and
               "keeps its column type" in n for n in plan.notes), plan.notes
    with OrderWriter(db_url) as writer:
        outcome = make_session(db_url, yes=True).run_line("*apply --online --snapshot=no --batch-rows 500")
        during = len(writer.ids)
        writer.wait_until(lambda: len(writer.ids) >= during + 20)  # writes after the swap: the new key
    assert outcome.exit_code == EXIT_OK, failure(outcome)
    assert writer.errors == [] and during > 20
    assert type_of(db, "id") == "bigint" and type_of(db, "id_sage_old") == "integer"
    assert orders_kept(db, writer.ids)
    key = db.execute("select conname, pg_get_constraintdef(oid) from pg_constraint where conrelid = "
                     "'public.orders'::regclass and contype = 'p'").fetchone()
    assert key == ("orders_pkey", "PRIMARY KEY (id)")
    fk = db.execute("select convalidated, confkey from pg_constraint where conname = 'items_order_fk'").fetchone()
    assert fk[0] is True and fk[1] == [db.execute("select attnum from pg_attribute where attrelid = "
                                                  "'public.orders'::regclass and attname = 'id'").fetchone()[0]]
    assert fk_violation_caught(db)
    with pytest.raises(psycopg.errors.UniqueViolation):  # the key is enforced on the new column
        db.execute("insert into public.orders (id) values (1)")
    done = make_session(db_url, confirm=("COMPLETE",)).run_line("*apply --complete")
    assert done.exit_code == EXIT_OK, failure(done)
    assert fk_violation_caught(db) and orders_kept(db, writer.ids)
    assert column_order_free(normalized_dump(db_url)) == column_order_free(
        plain_dump_of(project, make_session, pg_server.url(), pk_seed(serial=False), PK_CHANGE))


def test_rollback_of_a_primary_key_change_puts_the_key_and_foreign_keys_back(project, make_session, db_url, db):
    from sage_agent.ops.schema.compare import normalized_dump

    db.execute(pk_seed(serial=False))
    before = normalized_dump(db_url)
    write(project, f"{V1}_change.sql", PK_CHANGE)
    outcome = make_session(db_url, yes=True).run_line("*apply --online --snapshot=no")
    assert outcome.exit_code == EXIT_OK, failure(outcome)
    with OrderWriter(db_url) as writer:
        writer.wait_until(lambda: len(writer.ids) >= 30)
    assert writer.errors == []
    undone = make_session(db_url, confirm=("ROLLBACK",)).run_line(f"*rollback {V1}_change.sql")
    assert undone.exit_code == EXIT_OK, failure(undone)
    assert type_of(db, "id") == "integer" and orders_kept(db, writer.ids)
    assert normalized_dump(db_url) == before  # key, foreign key (validated) and column exactly as before
    assert fk_violation_caught(db)
    assert history(db) == [] and online_rows(db) == []


def test_a_foreign_key_from_the_key_to_itself_stays_refused(project, make_session, db_url, db):
    """A self-referencing key from another column (a parent id) moves with the key (test_online_shapes.py); one
    from the key column itself cannot be re-created on the new column and stays refused."""
    db.execute(pk_seed(serial=False))
    db.execute("alter table public.orders add constraint orders_self_fk foreign key (id) references public.orders")
    write(project, f"{V1}_change.sql", PK_CHANGE)
    outcome = make_session(db_url, yes=True).run_line("*apply --online --snapshot=no")
    assert outcome.exit_code == EXIT_FAILED
    assert "foreign key orders_self_fk on orders references it (from the table itself)" in failure(outcome)
    assert history(db) == [] and online_rows(db) == [] and type_of(db, "id") == "integer"


@pytest.mark.pg15
def test_serial_primary_key_change_on_postgresql_15(project, make_session, pg15_server, pg15_url):
    """A serial key: its default and sequence (OWNED BY) move with the key, back on rollback, and stay after
    --complete (the old column's drop does not take the sequence)."""
    from sage_agent.ops.schema.compare import normalized_dump

    with psycopg.connect(pg15_url, autocommit=True) as conn:
        conn.execute(pk_seed(serial=True))
    before = normalized_dump(pg15_url, 15)
    write(project, f"{V1}_change.sql", PK_CHANGE)
    with OrderWriter(pg15_url, serial=True) as writer:
        outcome = make_session(pg15_url, yes=True).run_line("*apply --online --snapshot=no --batch-rows 1000")
        during = len(writer.ids)
        writer.wait_until(lambda: len(writer.ids) >= during + 20)
    assert outcome.exit_code == EXIT_OK, failure(outcome)
    with psycopg.connect(pg15_url, autocommit=True) as conn:
        assert writer.errors == [] and orders_kept(conn, writer.ids) and fk_violation_caught(conn)
        undone = make_session(pg15_url, confirm=("ROLLBACK",)).run_line(f"*rollback {V1}")
        assert undone.exit_code == EXIT_OK, failure(undone)
        assert orders_kept(conn, writer.ids) and fk_violation_caught(conn)
        assert normalized_dump(pg15_url, 15) == before
        apply_and_complete(make_session, pg15_url)
        assert conn.execute("select pg_get_serial_sequence('public.orders', 'id')").fetchone()[0] == \
            "public.orders_id_seq"
        assert conn.execute("insert into public.orders (note) values ('x') returning id").fetchone()[0] > 3000
        assert fk_violation_caught(conn)
    assert column_order_free(normalized_dump(pg15_url, 15)) == column_order_free(
        plain_dump_of(project, make_session, pg15_server, pk_seed(serial=True), PK_CHANGE, 15))


def test_the_plan_warns_clients_with_prepared_statements_and_they_are_the_ones_that_fail(project, make_session,
                                                                                          db_url, db):
    """A prepared statement that returns the column fails on every execution once its type changes; one that does
    not return it, and a client that does not prepare, go on. The plan says so before anything runs."""
    db.execute(SEED)
    write(project, f"{V1}_change.sql", CHANGE)
    warning = ("prepared statements: when orders.amount becomes bigint (at the swap; integer again at a "
               "*rollback), every client statement prepared earlier that returns amount fails with `cached plan must "
               "not change result type`")
    dry = make_session(db_url).run_line(f"*dry-run {V1} --online")
    assert any(n.startswith(warning) and "prepare_threshold=None" in n and "DEALLOCATE ALL" in n
               for n in dry.result.notes), dry.result.notes
    session, plans = recording_session(project, db_url)
    returns = "select id, amount from public.orders where id = %s"
    with psycopg.connect(db_url, autocommit=True, prepare_threshold=0) as prepared, \
            psycopg.connect(db_url, autocommit=True, prepare_threshold=0) as other, \
            psycopg.connect(db_url, autocommit=True, prepare_threshold=None) as unprepared:
        for conn, query in ((prepared, returns), (other, "select id, note from public.orders where id = %s"),
                            (unprepared, returns)):
            conn.execute(query, (1,)).fetchall()
        outcome = session.run_line("*apply --online --snapshot=no")
        assert outcome.exit_code == EXIT_OK, failure(outcome)
        assert f"  note: {warning}" in plans[0], plans[0]
        for _ in range(2):  # on every execution, not once
            with pytest.raises(psycopg.errors.FeatureNotSupported, match="cached plan must not change result type"):
                prepared.execute(returns, (1,))
        assert other.execute("select id, note from public.orders where id = %s", (1,)).fetchall() == [(1, "n1")]
        assert unprepared.execute(returns, (1,)).fetchall() == [(1, 1)]
        prepared.execute("deallocate all")  # what the warning advises: the statement is prepared again
        assert prepared.execute(returns, (1,)).fetchall() == [(1, 1)]


@pytest.mark.parametrize("text", [
    "alter table public.orders add column code int default 0;\n"
    "alter table public.orders alter column code type bigint;\n",
    "alter table orders add column code int;\nalter table orders alter column code type bigint using 0;\n",
    "alter table orders add column code text;\nupdate orders set code = '1';\n"
    "alter table orders alter column code type int;\n",
    "alter table orders add column code int;\nalter table orders alter column code type bigint, add column x int;\n",
])
def test_a_type_change_of_a_column_added_in_the_same_file_is_refused_with_the_reason(text, project, make_session,
                                                                                    db_url, db):
    """ALTER TYPE rewrites the whole table even when the new column is all NULL: under --online that is refused,
    naming the ADD COLUMN to give the final type to, before anything runs (and *dry-run says the same), unless it
    can be folded into the ADD COLUMN (the next test)."""
    db.execute(SEED)
    write(project, f"{V1}_change.sql", text)
    outcome = make_session(db_url, yes=True).run_line("*apply --online --snapshot=no")
    assert outcome.exit_code == EXIT_FAILED
    said = failure(outcome)
    line = text.count("\n")
    assert f"{V1}_change.sql:{line}: no online form for" in said, said
    assert "code is added by this same file (line 1) and then changes type" in said
    assert "rewrites the whole table under ACCESS EXCLUSIVE even when every value is NULL" in said
    assert "give the column its final type in the ADD COLUMN on line 1" in said and "nothing was changed" in said
    assert "code" not in columns(db) and history(db) == [] and online_rows(db) == []
    dry = make_session(db_url).run_line(f"*dry-run {V1} --online")
    refused = [f for f in dry.result.findings if f.rule == "online.no_form"]
    assert [f.location for f in refused] == [f"{V1}_change.sql:{line}"]
    assert "give the column its final type in the ADD COLUMN on line 1" in refused[0].message


@pytest.mark.parametrize("text", [
    "alter table public.orders add column code int;\nalter table public.orders alter column code type bigint;\n",
    "alter table orders add column code int, add column tag text;\nalter table orders alter column code type bigint;\n",
])
def test_a_bare_new_column_whose_type_changes_right_after_is_added_with_its_final_type(text, project, make_session,
                                                                                      db_url, db, pg_server):
    """The column is new and all NULL: *apply --online adds it as bigint (no rewrite, no expand/contract), and the
    schema is exactly the plain file's."""
    from sage_agent.ops.schema.compare import normalized_dump

    db.execute(SEED)
    write(project, f"{V1}_change.sql", text)
    dry = make_session(db_url).run_line(f"*dry-run {V1} --online")
    steps = next(t for t in dry.result.tables if t.title == "Online steps (*apply --online)").rows
    assert [r[2] for r in steps] == ["tx"] and "ADD COLUMN code bigint" in steps[0][4], steps
    assert not [f for f in dry.result.findings if f.rule == "online.no_form"]
    outcome = make_session(db_url, yes=True).run_line("*apply --online --snapshot=no")
    assert outcome.exit_code == EXIT_OK, failure(outcome)
    assert type_of(db, "code") == "bigint" and history(db) == [V1] and online_rows(db) == []
    assert normalized_dump(db_url) == plain_dump_of(project, make_session, pg_server.url(), SEED, text)


def test_snapshot_rollback_of_a_type_change_stopped_mid_backfill_is_proven_and_leaves_nothing(
        project, make_session, db_url, db):
    """The sync trigger's function lives in supabase_migrations, which the schema copy leaves out: the copy
    did not load (`schema "supabase_migrations" does not exist`) and neither the rollback nor *compare-schemas
    could prove anything while a type change was under way or expanded."""
    from sage_agent.ops.schema.compare import normalized_dump

    db.execute(SEED)
    db.execute("update public.orders set note = id::text where id <= 2000")  # the rest cannot be cast to int
    before = normalized_dump(db_url)
    write(project, f"{V1}_change.sql", BAD_CAST)
    outcome = make_session(db_url, yes=True).run_line("*apply --online --batch-rows 500")
    assert outcome.exit_code == EXIT_FAILED and "note_sage_new" in columns(db)
    snapshot = outcome.result.facts["snapshot"]
    compared = make_session(db_url).run_line(f"*compare-schemas local {snapshot}")
    assert compared.result.facts["proof"].startswith("proven"), compared.result.findings
    back = make_session(db_url, confirm=("ROLLBACK",)).run_line(f"*rollback {snapshot}")
    assert back.exit_code == EXIT_OK, failure(back)
    assert normalized_dump(db_url) == before and online_rows(db) == []
    assert db.execute("select count(*) from pg_proc p join pg_namespace n on n.oid = p.pronamespace "
                      "where n.nspname = 'supabase_migrations' and p.proname like 'sage_sync%'").fetchone()[0] == 0


def test_the_plan_names_the_online_lock_timeout_and_the_result_no_error_for_what_ran_online(project, make_session,
                                                                                          db_url, db):
    """What a person reads before typing y: the online steps' own lock_timeout (1 s, retried), not only the plain
    statements' 5 s; after the run, the rewrite finding is info (it ran online), not an ERROR under a ✔."""
    db.execute(SEED)
    write(project, f"{V1}_change.sql", CHANGE)
    session = make_session(db_url, answers=["y"])
    shown: list[str] = []
    session.answers.show = shown.append
    outcome = session.run_line("*apply --online --snapshot=no")
    assert outcome.exit_code == EXIT_OK, failure(outcome)
    plan = "\n".join(shown)
    assert "online steps: lock_timeout=1000ms each, retried up to 8 times with backoff" in plan, plan
    assert "lock_timeout=5000ms" not in plan  # no file here runs as written
    # each step's sentences whole (they were cut at 160 characters, inside a name: "keeps "amount_s...")
    flat = " ".join(plan.replace("│", " ").split())
    assert 'the trigger keeps "amount_sage_old" current until *apply --complete drops it' in flat, flat
    assert "identity, CHECK names, views; lock:" in flat and 's...' not in flat
    rewrite = next(f for f in outcome.result.findings if f.rule == "changing-column-type")
    assert rewrite.severity == "info" and rewrite.message.endswith("(ran in its online form: not under this lock)")
    assert not [f for f in outcome.result.findings if f.severity == "error"]


def test_complete_of_two_files_stopped_in_the_second_says_the_first_is_completed(project, make_session, db_url, db,
                                                                                  monkeypatch):
    """--complete contracts each file in its own transaction: the second file's stopped by a session holding its
    table, the first's already committed. The failure says which is done and which stays (not "nothing was
    changed"); *apply --complete again finishes the second."""
    db.execute(SEED + "create table public.extra (id bigint primary key, n int);\n"
               "insert into public.extra select g, g from generate_series(1, 100) g;\n")
    write(project, f"{V1}_change.sql", CHANGE)
    write(project, "20240102000000_extra.sql", "alter table public.extra alter column n type bigint;\n")
    assert make_session(db_url, yes=True).run_line("*apply --online --snapshot=no").exit_code == EXIT_OK
    assert online_rows(db) == [(V1, "expanded"), ("20240102000000", "expanded")]
    with psycopg.connect(db_url) as holder:
        holder.execute("lock table public.extra in access share mode")
        monkeypatch.setenv("SAGE_ONLINE_RETRIES", "0")
        monkeypatch.setenv("SAGE_ONLINE_LOCK_TIMEOUT_MS", "200")
        stopped = make_session(db_url, confirm=("COMPLETE",)).run_line("*apply --complete")
        holder.rollback()
    assert stopped.exit_code != EXIT_OK
    said = failure(stopped)
    assert "nothing was changed" not in said, said
    assert said.startswith("*apply --complete stopped in 20240102000000_extra.sql: "), said
    assert (f". done: {V1}_change.sql completed (old columns dropped); not done: 20240102000000_extra.sql's old "
            "columns and sync triggers stay\n  next: end that session (or wait for it), then *apply --complete "
            "again: it goes on with 20240102000000_extra.sql; or *rollback 20240102000000_extra.sql undoes it "
            "(instant, every row kept)") in said, said
    assert online_rows(db) == [("20240102000000", "expanded")]
    done = make_session(db_url, confirm=("COMPLETE",)).run_line("*apply --complete")
    assert done.exit_code == EXIT_OK, failure(done)
    assert online_rows(db) == [] and type_of(db, "amount") == "bigint"


def test_the_plan_names_what_the_swap_exchanges_its_lock_and_its_bound(project, db_url, db):
    """The confirmation plan's swap line says which column is exchanged for which, the lock and how long *apply
    waits for it and may hold it; with nothing confirmed, nothing changes."""
    from sage_agent.db.env import Target
    from sage_agent.session.answers import FlagAnswers
    from sage_agent.session.machine import EXIT_CONFIRM, Session

    db.execute(SEED)
    write(project, f"{V1}_change.sql", CHANGE)
    plans: list[str] = []

    class Refused(FlagAnswers):
        def confirm(self, request):
            plans.append(request.plan)
            return False

    outcome = Session(project=project, target=Target("local", db_url, "test"),
                      answers=Refused()).run_line("*apply --online --snapshot=no --lock-timeout 700ms")
    assert outcome.exit_code == EXIT_CONFIRM
    swap = next(line for line in plans[0].splitlines() if "[transaction] swaps" in line)
    assert ('swaps "public"."orders"."amount" for the bigint copy: ALTER TABLE "public"."orders" RENAME COLUMN '
            '"amount" TO "amount_sage_old", then RENAME COLUMN "amount_sage_new" TO "amount"') in swap, swap
    assert ('lock: ACCESS EXCLUSIVE on "public"."orders" for one short transaction (the renames and what moves with '
            'the column: catalog only, no scan); waits at most 700 ms for it, 8 retries with backoff, then stops '
            'naming the holder (*apply resumes here); holds it at most statement_timeout=') in swap, swap
    assert history(db) == [] and type_of(db, "amount") == "integer"

"""*apply --online of a column type change carries the shapes a plain ALTER TYPE carries, against real PostgreSQL
18 and 15: an identity column (its sequence continues, no id handed out twice), CHECK constraints on the column
(built again NOT VALID, validated, names kept) and a self-referencing foreign key. For each: after --complete the
normalized pg_dump equals the plain file's (column order aside), concurrent writes during the backfill and after
the swap are kept, and *rollback FILE restores the pre-apply dump exactly."""

from __future__ import annotations

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
    type_of,
)

from sage_agent.session.machine import EXIT_FAILED, EXIT_OK

CHANGE = "alter table public.orders alter column id type bigint;\n"
IDENTITY_SEED = """
create table public.orders (id int generated {kind} as identity (start with 10 cache 5) primary key, note text);
insert into public.orders (note) select 'n' || g from generate_series(1, 3000) g;
revoke update on sequence public.orders_id_seq from authenticated;
grant select on sequence public.orders_id_seq to public;
comment on sequence public.orders_id_seq is 'order ids';
create table public.items (id int primary key, order_id int constraint items_order_fk references public.orders (id));
insert into public.items select g, g + 9 from generate_series(1, 500) g;
"""


class IdentityWriter(Background):
    """Inserts orders with the identity's own ids (and an item referencing each) from another connection, and
    updates older ones. Unprepared: a prepared `RETURNING id` fails after any type change of id ("cached plan must
    not change result type"), the plain ALTER's as much as the swap's."""

    def __init__(self, url: str, items_from: int = 100_000):
        super().__init__(url)
        self.items_from, self.ids, self.notes = items_from, [], {}

    def step(self, conn, n: int) -> None:
        oid = conn.execute("insert into public.orders (note) values (%s) returning id", (f"w{n}",),
                           prepare=False).fetchone()[0]
        conn.execute("insert into public.items values (%s, %s)", (self.items_from + n, oid), prepare=False)
        self.ids.append(oid)
        self.notes[oid] = f"w{n}"
        key = 10 + n % 3000
        conn.execute("update public.orders set note = %s where id = %s", (f"u{n}", key), prepare=False)
        self.notes[key] = f"u{n}"

    def wait_for(self, count: int) -> None:
        self.wait_until(lambda: len(self.ids) >= count)


def identity_kept(conn, writer: IdentityWriter) -> None:
    """Every row the writer inserted is there once with its item, every note it wrote is the row's."""
    assert len(set(writer.ids)) == len(writer.ids)  # no id handed out twice
    have = dict(conn.execute("select o.id, o.note from public.orders o where o.id = any(%s)",
                             (list(writer.notes),)).fetchall())
    assert have == writer.notes
    items = {r[0] for r in conn.execute("select order_id from public.items where id > %s and id < %s",
                                        (writer.items_from, writer.items_from + 100_000))}
    assert items == set(writer.ids)


def next_id_continues(conn) -> None:
    top = conn.execute("select max(id) from public.orders").fetchone()[0]
    assert conn.execute("insert into public.orders (note) values ('next') returning id").fetchone()[0] > top
    conn.execute("delete from public.orders where note = 'next'")


def sequence_facts(conn) -> tuple:
    return conn.execute("select format_type(s.seqtypid, null), s.seqstart, s.seqmax, s.seqcache, "
                        "pg_get_serial_sequence('public.orders', 'id'), obj_description(s.seqrelid, 'pg_class') "
                        "from pg_sequence s where s.seqrelid = 'public.orders_id_seq'::regclass").fetchone()


def identity_round_trip(project, make_session, url: str, admin: str, kind: str, major: int | None) -> None:
    """apply online under a writer, rollback (exact pre-apply dump), apply again, --complete (the plain dump)."""
    from sage_agent.ops.schema.compare import normalized_dump

    seed = IDENTITY_SEED.format(kind=kind)
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(seed)
        before = normalized_dump(url, major)
        write(project, f"{V1}_change.sql", CHANGE)
        plan = online_plan(make_session, url)
        assert any("the identity moves to the new column" in n and "orders_id_seq" in n
                   for n in plan.notes), plan.notes
        with IdentityWriter(url) as writer:
            outcome = make_session(url, yes=True).run_line("*apply --online --snapshot=no --batch-rows 500")
            during = len(writer.ids)
            writer.wait_for(during + 20)  # inserts after the swap take ids from the new column's identity
        assert outcome.exit_code == EXIT_OK, failure(outcome)
        assert writer.errors == [] and during > 20
        identity_kept(conn, writer)
        assert type_of(conn, "id") == "bigint" and type_of(conn, "id_sage_old") == "integer"
        assert sequence_facts(conn) == ("bigint", 10, 2 ** 63 - 1, 5, "public.orders_id_seq", "order ids")
        assert conn.execute("select attidentity from pg_attribute where attrelid = 'public.orders'::regclass "
                            "and attname = 'id'").fetchone()[0] == ("a" if kind == "always" else "d")
        next_id_continues(conn)

        with IdentityWriter(url, items_from=200_000) as writer2:  # rollback under a writer: the old column takes the identity back
            writer2.wait_for(20)
            undone = make_session(url, confirm=("ROLLBACK",)).run_line(f"*rollback {V1}_change.sql")
            assert undone.exit_code == EXIT_OK, failure(undone)
            after = len(writer2.ids)
            writer2.wait_for(after + 20)
        assert writer2.errors == []
        identity_kept(conn, writer2)
        assert not set(writer.ids) & set(writer2.ids)
        assert conn.execute("select count(*) from public.orders").fetchone()[0] == \
            3000 + len(writer.ids) + len(writer2.ids)  # every row written under either writer is kept
        assert type_of(conn, "id") == "integer" and history(conn) == [] and online_rows(conn) == []
        assert sequence_facts(conn) == ("integer", 10, 2 ** 31 - 1, 5, "public.orders_id_seq", "order ids")
        next_id_continues(conn)
        assert normalized_dump(url, major) == before  # identity, sequence options, privileges, comment

        apply_and_complete(make_session, url)
        next_id_continues(conn)
        assert history(conn) == [V1] and online_rows(conn) == []
    assert column_order_free(normalized_dump(url, major)) == column_order_free(
        plain_dump_of(project, make_session, admin, seed, CHANGE, major))


def test_identity_key_moves_with_its_sequence_and_rolls_back(project, make_session, db_url, pg_server, monkeypatch):
    monkeypatch.setenv("SAGE_ONLINE_BATCH_PAUSE_MS", "20")
    identity_round_trip(project, make_session, db_url, pg_server.url(), "by default", None)


@pytest.mark.pg15
def test_identity_always_on_postgresql_15(project, make_session, pg15_server, pg15_url, monkeypatch):
    """PostgreSQL 15: no named NOT NULL constraints; GENERATED ALWAYS (the writer never gives an id)."""
    monkeypatch.setenv("SAGE_ONLINE_BATCH_PAUSE_MS", "20")
    identity_round_trip(project, make_session, pg15_url, pg15_server, "always", 15)


def test_identity_to_a_non_integer_type_is_refused_with_the_reason(project, make_session, db_url, db):
    db.execute(IDENTITY_SEED.format(kind="always"))
    write(project, f"{V1}_change.sql", "alter table public.orders alter column id type numeric;\n")
    outcome = make_session(db_url, yes=True).run_line("*apply --online --snapshot=no")
    assert outcome.exit_code == EXIT_FAILED
    assert "it is an identity column and numeric is not smallint, integer or bigint" in failure(outcome)
    assert type_of(db, "id") == "integer" and history(db) == [] and online_rows(db) == []


CHECKS = """
alter table public.orders add constraint orders_amount_pos check (amount >= 0);
alter table public.orders add constraint orders_amount_cap check (amount <= 2000000000 or note is null) not valid;
comment on constraint orders_amount_pos on public.orders is 'no refunds here';
"""
AMOUNT = "alter table public.orders alter column amount type bigint;\n"


def checks(conn) -> list[tuple]:
    return conn.execute("select conname, pg_get_constraintdef(oid), convalidated, "
                        "obj_description(oid, 'pg_constraint') from pg_constraint "
                        "where conrelid = 'public.orders'::regclass and contype = 'c' order by 1").fetchall()


def test_check_constraints_are_built_again_validated_and_keep_their_names(project, make_session, db_url, db,
                                                                          pg_server, monkeypatch):
    from sage_agent.ops.schema.compare import normalized_dump

    monkeypatch.setenv("SAGE_ONLINE_BATCH_PAUSE_MS", "20")
    db.execute(SEED + CHECKS)
    before, checks_before = normalized_dump(db_url), checks(db)
    write(project, f"{V1}_change.sql", AMOUNT)
    plan = online_plan(make_session, db_url)
    notes = "\n".join(plan.notes)
    assert "CHECK orders_amount_pos is built again on the new column NOT VALID before the swap and validated" in notes
    assert "CHECK orders_amount_cap is built again on the new column NOT VALID before the swap (it stays NOT " \
           "VALID; PostgreSQL checks every row the backfill updates against it" in notes
    with Writer(db_url) as writer:
        outcome = make_session(db_url, yes=True).run_line("*apply --online --snapshot=no --batch-rows 500")
        after_swap = len(writer.written)
        writer.wait_until(lambda: len(writer.written) >= after_swap + 20)
    assert outcome.exit_code == EXIT_OK, failure(outcome)
    assert writer.errors == [] and after_swap > 20 and kept(db, writer.written)
    assert type_of(db, "amount") == "bigint"
    # the copies on the new column took the names, definitions, validity and comment; the old ones wait
    assert [c for c in checks(db) if "sage" not in c[0]] == checks_before
    assert {c[0] for c in checks(db)} >= {"orders_amount_pos_sage_old", "orders_amount_cap_sage_old"}
    with pytest.raises(psycopg.errors.CheckViolation, match="orders_amount_pos"):  # enforced on the new column
        db.execute("update public.orders set amount = -1 where id = 2")

    undone = make_session(db_url, confirm=("ROLLBACK",)).run_line(f"*rollback {V1}_change.sql")
    assert undone.exit_code == EXIT_OK, failure(undone)
    assert type_of(db, "amount") == "integer" and kept(db, writer.written)
    assert normalized_dump(db_url) == before
    with pytest.raises(psycopg.errors.CheckViolation, match="orders_amount_pos"):
        db.execute("update public.orders set amount = -1 where id = 2")

    apply_and_complete(make_session, db_url)
    assert checks(db) == checks_before and kept(db, writer.written)
    # amount was the last column: the dump is the plain file's, column order included
    assert normalized_dump(db_url) == plain_dump_of(project, make_session, pg_server.url(), SEED + CHECKS, AMOUNT)


SELF_SEED = """
create table public.orders (id int primary key, note text,
  parent int constraint orders_parent_fk references public.orders (id) on delete set null);
insert into public.orders (id, note, parent) select g, 'n' || g, nullif(g / 2, 0) from generate_series(1, 3000) g;
create index orders_parent_idx on public.orders (parent);
"""


class TreeWriter(Background):
    """Inserts orders whose parent is an older order or the one inserted just before, from another connection."""

    def __init__(self, url: str, first: int):
        super().__init__(url)
        self.next, self.rows = first, {}

    def step(self, conn, n: int) -> None:
        key, self.next = self.next, self.next + 1
        parent = key - 1 if key % 2 and key - 1 in self.rows else key % 3000 + 1
        conn.execute("insert into public.orders (id, note, parent) values (%s, 'w', %s)", (key, parent),
                     prepare=False)
        self.rows[key] = parent

    def wait_for(self, count: int) -> None:
        self.wait_until(lambda: len(self.rows) >= count)


def tree_kept(conn, writer: TreeWriter) -> bool:
    rows = dict(conn.execute("select id, parent from public.orders where id = any(%s)", (list(writer.rows),)))
    return rows == writer.rows


def self_fk(conn) -> tuple:
    return conn.execute("select pg_get_constraintdef(oid), convalidated from pg_constraint "
                        "where conname = 'orders_parent_fk'").fetchone()


def orphan_refused(conn) -> bool:
    try:
        conn.execute("insert into public.orders (id, parent) values (-1, 999999999)")
    except psycopg.errors.ForeignKeyViolation:
        return True
    conn.execute("delete from public.orders where id = -1")
    return False


def test_self_referencing_foreign_key_moves_with_the_key(project, make_session, db_url, db, pg_server, monkeypatch):
    from sage_agent.ops.schema.compare import normalized_dump

    monkeypatch.setenv("SAGE_ONLINE_BATCH_PAUSE_MS", "20")
    db.execute(SELF_SEED)
    before = normalized_dump(db_url)
    write(project, f"{V1}_change.sql", CHANGE)
    plan = online_plan(make_session, db_url)
    assert any("foreign key orders_parent_fk on orders (parent integer) is re-created NOT VALID" in n
               for n in plan.notes), plan.notes
    with TreeWriter(db_url, 100_000) as writer:
        outcome = make_session(db_url, yes=True).run_line("*apply --online --snapshot=no --batch-rows 500")
        during = len(writer.rows)
        writer.wait_for(during + 20)  # children of new and old rows after the swap
    assert outcome.exit_code == EXIT_OK, failure(outcome)
    assert writer.errors == [] and during > 20 and tree_kept(db, writer)
    assert type_of(db, "id") == "bigint" and type_of(db, "parent") == "integer"
    assert self_fk(db) == ("FOREIGN KEY (parent) REFERENCES orders(id) ON DELETE SET NULL", True)
    assert orphan_refused(db)

    with TreeWriter(db_url, 200_000) as writer2:
        writer2.wait_for(10)
        undone = make_session(db_url, confirm=("ROLLBACK",)).run_line(f"*rollback {V1}_change.sql")
        assert undone.exit_code == EXIT_OK, failure(undone)
        writer2.wait_for(len(writer2.rows) + 10)
    assert writer2.errors == [] and tree_kept(db, writer) and tree_kept(db, writer2)
    assert self_fk(db) == ("FOREIGN KEY (parent) REFERENCES orders(id) ON DELETE SET NULL", True)
    assert orphan_refused(db)
    assert normalized_dump(db_url) == before

    apply_and_complete(make_session, db_url)
    assert orphan_refused(db) and tree_kept(db, writer)
    assert column_order_free(normalized_dump(db_url)) == column_order_free(
        plain_dump_of(project, make_session, pg_server.url(), SELF_SEED, CHANGE))


def test_a_check_on_two_changed_columns_follows_both_changes(project, make_session, db_url, db, pg_server):
    """The second change copies the check the first one built (not the old copy it kept), under names of its own."""
    from sage_agent.ops.schema.compare import normalized_dump
    seed = SEED + "alter table public.orders add constraint orders_user_amount check (user_id < amount + 1000);\n"
    db.execute(seed)
    before = normalized_dump(db_url)
    write(project, f"{V1}_change.sql", TWO)
    outcome = make_session(db_url, yes=True).run_line("*apply --online --snapshot=no")
    assert outcome.exit_code == EXIT_OK, failure(outcome)
    kept_checks = [c[0] for c in checks(db)]
    assert len(kept_checks) == 3 and "orders_user_amount" in kept_checks  # the live one and two old copies
    undone = make_session(db_url, confirm=("ROLLBACK",)).run_line(f"*rollback {V1}")
    assert undone.exit_code == EXIT_OK, failure(undone)
    assert normalized_dump(db_url) == before
    apply_and_complete(make_session, db_url)
    assert checks(db) == [("orders_user_amount", "CHECK ((user_id < (amount + 1000)))", True, None)]
    assert column_order_free(normalized_dump(db_url)) == column_order_free(
        plain_dump_of(project, make_session, pg_server.url(), seed, TWO))


VIEWS = """
create view public.order_amounts with (security_invoker = true) as
  select id, amount, amount + 1 as bumped from public.orders where amount > 5;
create view public.big_orders as select id, bumped from public.order_amounts where bumped > 100;
revoke all on public.order_amounts, public.big_orders from anon, authenticated;
grant select on public.order_amounts to anon;
grant select (id) on public.big_orders to authenticated;
alter view public.big_orders owner to service_role;
comment on view public.order_amounts is 'amounts';
comment on column public.order_amounts.bumped is 'plus one';
"""
VIEWS_DROPPED = "drop view public.big_orders;\ndrop view public.order_amounts;\n"


class ViewReader(Background):
    """Reads both views from another connection while *apply runs."""

    pause = 0.005

    def __init__(self, url: str):
        super().__init__(url)
        self.reads = 0

    def step(self, conn, n: int) -> None:
        conn.execute("select count(*) from public.big_orders", prepare=False).fetchone()
        conn.execute("select sum(bumped) from public.order_amounts", prepare=False).fetchone()
        self.reads += 1


def view_type(conn, view: str, column: str) -> str:
    return conn.execute("select format_type(atttypid, atttypmod) from pg_attribute where attrelid = %s::regclass "
                        "and attname = %s", (view, column)).fetchone()[0]


def views_round_trip(project, make_session, url: str, admin: str, major: int | None) -> None:
    """apply online under a writer and a reader of the views, rollback (the pre-apply dump), apply again,
    --complete (the dump of the file that drops the views, changes the type and makes them again)."""
    from sage_agent.ops.schema.compare import normalized_dump

    with psycopg.connect(url, autocommit=True) as db:
        db.execute(SEED + VIEWS)
        before = normalized_dump(url, major)
        write(project, f"{V1}_change.sql", AMOUNT)
        plan = online_plan(make_session, url)
        assert any("the view(s) public.order_amounts, public.big_orders are dropped and made again" in n
                   for n in plan.notes), plan.notes
        with Writer(url) as writer, ViewReader(url) as reader:
            outcome = make_session(url, yes=True).run_line("*apply --online --snapshot=no --batch-rows 500")
            reads = reader.reads
            reader.wait_until(lambda: reader.reads >= reads + 20)  # reads after the swap
        assert outcome.exit_code == EXIT_OK, failure(outcome)
        assert writer.errors == [] and reader.errors == [] and kept(db, writer.written)
        assert view_type(db, "public.order_amounts", "amount") == "bigint"
        assert view_type(db, "public.big_orders", "bumped") == "bigint"
        assert db.execute("select pg_get_userbyid(relowner), reloptions from pg_class where oid = "
                          "'public.big_orders'::regclass").fetchone() == ("service_role", None)
        assert db.execute("select reloptions from pg_class where oid = 'public.order_amounts'::regclass"
                          ).fetchone()[0] == ["security_invoker=true"]
        assert db.execute("select sum(bumped) from public.order_amounts").fetchone()[0] == \
            db.execute("select sum(amount + 1) from public.orders where amount > 5").fetchone()[0]

        with ViewReader(url) as reader:
            undone = make_session(url, confirm=("ROLLBACK",)).run_line(f"*rollback {V1}_change.sql")
            assert undone.exit_code == EXIT_OK, failure(undone)
            reads = reader.reads
            reader.wait_until(lambda: reader.reads >= reads + 10)
        assert reader.errors == [] and kept(db, writer.written)
        assert normalized_dump(url, major) == before  # definitions, options, privileges and comments as they were

        apply_and_complete(make_session, url)
    # the plain ALTER refuses a column used by a view: its file drops the views, changes the type, makes them again
    assert normalized_dump(url, major) == plain_dump_of(project, make_session, admin, SEED + VIEWS,
                                                        VIEWS_DROPPED + AMOUNT + VIEWS, major)


def test_views_over_the_column_are_made_again_in_the_swap(project, make_session, db_url, pg_server, monkeypatch):
    monkeypatch.setenv("SAGE_ONLINE_BATCH_PAUSE_MS", "20")
    views_round_trip(project, make_session, db_url, pg_server.url(), None)


@pytest.mark.pg15
def test_views_on_postgresql_15(project, make_session, pg15_server, pg15_url, monkeypatch):
    monkeypatch.setenv("SAGE_ONLINE_BATCH_PAUSE_MS", "20")
    views_round_trip(project, make_session, pg15_url, pg15_server, 15)


@pytest.mark.parametrize("setup, reason", [
    ("create view public.v as select id, amount from public.orders; create function public.vt() returns trigger "
     "language plpgsql as 'begin return new; end'; create trigger v_ins instead of insert on public.v for each row "
     "execute function public.vt()", "trigger v_ins on view public.v depends on the view public.v over it"),
    ("create view public.v as select id, amount from public.orders; create materialized view public.mv as "
     "select * from public.v", "materialized view public.mv uses it (it would have to be filled again)"),
])
def test_views_that_cannot_be_made_again_in_the_swap_are_refused(setup, reason, project, make_session, db_url, db):
    db.execute(SEED)
    db.execute(setup)
    write(project, f"{V1}_change.sql", AMOUNT)
    outcome = make_session(db_url, yes=True).run_line("*apply --online --snapshot=no")
    assert outcome.exit_code == EXIT_FAILED
    text = failure(outcome)
    assert "no faithful online form for the type change of public.orders.amount" in text
    assert reason in text and "nothing was changed" in text
    assert type_of(db, "amount") == "integer" and history(db) == [] and online_rows(db) == []


def test_a_file_written_for_the_plain_alter_has_its_view_statements_run_in_the_swap(project, make_session, db_url,
                                                                                   pg_server, monkeypatch):
    """The way a plain ALTER TYPE of a column a view uses must be written (drop the views, change the type, make them
    again with their grants and comments): under --online those statements run in the swap's transaction, as the
    file gives them, so a reader of the views never finds them gone; the result is the plain file's dump, and
    *rollback FILE makes the views again as they were before the file."""
    from sage_agent.ops.schema.compare import normalized_dump

    monkeypatch.setenv("SAGE_ONLINE_BATCH_PAUSE_MS", "20")
    text = VIEWS_DROPPED + AMOUNT + VIEWS
    db = psycopg.connect(db_url, autocommit=True)
    with db:
        db.execute(SEED + VIEWS)
        before = normalized_dump(db_url)
        write(project, f"{V1}_change.sql", text)
        dry = make_session(db_url).run_line(f"*dry-run {V1} --online")
        assert dry.result is not None, dry.error
        assert not [f for f in dry.result.findings if f.rule.startswith("online.")], dry.result.findings
        assert any(n.startswith("public.orders.amount: the file's own view statements (lines 1, 2, 5, 7, 8, 9, 10, "
                                "11, 12, 13: public.big_orders, public.order_amounts dropped and made again) run "
                                "in the swap's transaction") for n in dry.result.notes), dry.result.notes
        with Writer(db_url) as writer, ViewReader(db_url) as reader:
            outcome = make_session(db_url, yes=True).run_line("*apply --online --snapshot=no --batch-rows 500")
            reads = reader.reads
            reader.wait_until(lambda: reader.reads >= reads + 20)  # reads after the swap
        assert outcome.exit_code == EXIT_OK, failure(outcome)
        assert reader.errors == [] and writer.errors == [] and kept(db, writer.written)
        assert view_type(db, "public.big_orders", "bumped") == "bigint"
        undone = make_session(db_url, confirm=("ROLLBACK",)).run_line(f"*rollback {V1}_change.sql")
        assert undone.exit_code == EXIT_OK, failure(undone)
        assert normalized_dump(db_url) == before  # the views as they were before the file
        apply_and_complete(make_session, db_url)
    assert normalized_dump(db_url) == plain_dump_of(project, make_session, pg_server.url(), SEED + VIEWS, text)


# the file makes its views again so that they no longer read orders.amount (both, or only the inner one, with the
# outer one reading the column directly: then the old outer view needs the old inner one made first)
REMADE_WITHOUT_THE_COLUMN = {
    "neither reads it": "create view public.order_amounts as select id, note from public.orders where id > 5;\n"
                        "create view public.big_orders as select id from public.order_amounts where id > 100;\n",
    "only the outer one reads it": "create view public.order_amounts as select id, note from public.orders;\n"
                                   "create view public.big_orders as select id, amount as bumped from public.orders "
                                   "where amount > 100;\n",
}


@pytest.mark.parametrize("remade", sorted(REMADE_WITHOUT_THE_COLUMN))
def test_rollback_puts_back_the_views_a_file_made_again_without_the_column(remade, project, make_session, db_url,
                                                                           pg_server):
    """The file drops the views over the column and makes them again so that one or both no longer read it: the
    swap back finds only the views that read the column now, yet *rollback FILE makes every view the file dropped
    again as it was before the file (definitions, options, owner, privileges, comments)."""
    from sage_agent.ops.schema.compare import normalized_dump

    text = VIEWS_DROPPED + AMOUNT + REMADE_WITHOUT_THE_COLUMN[remade]
    with psycopg.connect(db_url, autocommit=True) as db:
        db.execute(SEED + VIEWS)
        before = normalized_dump(db_url)
        write(project, f"{V1}_change.sql", text)
        outcome = make_session(db_url, yes=True).run_line("*apply --online --snapshot=no")
        assert outcome.exit_code == EXIT_OK, failure(outcome)
        assert db.execute("select pg_get_viewdef('public.order_amounts'::regclass)").fetchone()[0].count("note") == 1
        undone = make_session(db_url, confirm=("ROLLBACK",)).run_line(f"*rollback {V1}_change.sql")
        assert undone.exit_code == EXIT_OK, failure(undone)
        assert normalized_dump(db_url) == before  # the views as they were before the file
        assert history(db) == [] and online_rows(db) == []
        apply_and_complete(make_session, db_url)
    assert column_order_free(normalized_dump(db_url)) == column_order_free(
        plain_dump_of(project, make_session, pg_server.url(), SEED + VIEWS, text))


SEVERAL = "alter table public.orders alter column amount type bigint, alter column user_id type bigint;\n"


def test_an_alter_with_several_subcommands_has_its_view_statements_run_in_its_last_swap(project, make_session,
                                                                                       db_url, pg_server, monkeypatch):
    """The plain file's DROP VIEW / ALTER TABLE (two type changes, the first of the column the views read) / CREATE
    VIEW: the subcommands run one after the other online (the first swap makes the views again from their
    definitions), the file's view statements in the swap of the last type change, so a reader never finds the
    views gone; *rollback FILE gives the pre-file dump, and *apply + --complete the plain file's."""
    from sage_agent.ops.schema.compare import normalized_dump

    monkeypatch.setenv("SAGE_ONLINE_BATCH_PAUSE_MS", "20")
    text = VIEWS_DROPPED + SEVERAL + VIEWS
    with psycopg.connect(db_url, autocommit=True) as db:
        db.execute(SEED + VIEWS)
        before = normalized_dump(db_url)
        write(project, f"{V1}_change.sql", text)
        dry = make_session(db_url).run_line(f"*dry-run {V1} --online")
        assert dry.result is not None, dry.error
        assert not [f for f in dry.result.findings if f.rule.startswith("online.")], dry.result.findings
        assert any(n.startswith("public.orders.user_id: the file's own view statements (lines 1, 2, 5, 7, 8, 9, 10, 11, 12, 13: ")
                   for n in dry.result.notes), "\n".join(dry.result.notes)
        with Writer(db_url) as writer, ViewReader(db_url) as reader:
            outcome = make_session(db_url, yes=True).run_line("*apply --online --snapshot=no --batch-rows 500")
            reads = reader.reads
            reader.wait_until(lambda: reader.reads >= reads + 20)  # reads after the swaps
        assert outcome.exit_code == EXIT_OK, failure(outcome)
        assert reader.errors == [] and writer.errors == [] and kept(db, writer.written)
        assert type_of(db, "user_id") == "bigint" and view_type(db, "public.big_orders", "bumped") == "bigint"
        undone = make_session(db_url, confirm=("ROLLBACK",)).run_line(f"*rollback {V1}_change.sql")
        assert undone.exit_code == EXIT_OK, failure(undone)
        assert normalized_dump(db_url) == before
        apply_and_complete(make_session, db_url)
    assert column_order_free(normalized_dump(db_url)) == column_order_free(
        plain_dump_of(project, make_session, pg_server.url(), SEED + VIEWS, text))


def test_an_alter_with_a_subcommand_after_its_type_change_and_view_statements_is_refused(project, make_session,
                                                                                        db_url, db):
    """The view statements would run in the swap, before a subcommand written after the type change (which the
    file's CREATE VIEW may need): refused by *dry-run --online and *apply before anything runs, saying how to write
    the file."""
    db.execute(SEED + VIEWS)
    write(project, f"{V1}_change.sql", VIEWS_DROPPED + "alter table public.orders alter column amount type bigint, "
          "add column extra int;\n" + VIEWS)
    reason = ("the view statements around this ALTER TABLE (lines 1, 2, 5, 7, 8, 9, 10, 11, 12, 13) would run in "
              "the swap of its last type change (ALTER COLUMN amount TYPE), so that a view is never gone while the "
              "backfill runs, but ADD COLUMN extra integer comes after it in the same statement")
    how = "put the type changes last in the ALTER TABLE, or move the other subcommands to an ALTER TABLE of their own"
    dry = make_session(db_url).run_line(f"*dry-run {V1} --online")
    assert dry.result is not None, dry.error
    refused = [f for f in dry.result.findings if f.rule == "online.no_form"]
    assert [(f.severity, f.location) for f in refused] == [("error", f"{V1}_change.sql:3")], refused
    assert reason in refused[0].message and how in refused[0].message, refused[0].message
    outcome = make_session(db_url, yes=True).run_line("*apply --online --snapshot=no")
    assert outcome.exit_code == EXIT_FAILED
    said = failure(outcome)
    assert reason in said and how in said and "nothing was changed" in said, said
    assert history(db) == [] and type_of(db, "amount") == "integer" and online_rows(db) == []
    assert db.execute("select count(*) from pg_views where viewname in ('order_amounts', 'big_orders')"
                      ).fetchone()[0] == 2


def test_a_view_the_file_drops_where_the_swap_cannot_take_the_drop_over_is_refused(project, make_session, db_url,
                                                                                    db):
    """A DROP VIEW of a view over the column that is not right before the type change (here a statement lies
    between), or whose view is not made again right after it, would leave the view gone through the whole backfill:
    *dry-run --online and *apply refuse the file before anything runs, naming the line and the way to write it."""
    db.execute(SEED)
    db.execute("create view public.totals as select id, amount from public.orders; "
               "create view public.other as select id, note from public.orders")
    write(project, f"{V1}_change.sql", "drop view public.other;\ndrop view if exists totals;\nselect 1;\n" + AMOUNT +
          "create view public.totals as select id, amount from public.orders;\n"
          "create view public.other as select id, note from public.orders;\n")
    reason = ("line 2 of this file drops the view public.totals, which uses public.orders.amount: under --online it "
              "would stay gone through the whole backfill")
    dry = make_session(db_url).run_line(f"*dry-run {V1} --online")
    assert dry.result is not None, dry.error
    refused = [f for f in dry.result.findings if f.rule == "online.no_form"]
    assert [(f.severity, f.location) for f in refused] == [("error", f"{V1}_change.sql:4")], refused
    assert reason in refused[0].message and "write the file that way" in refused[0].message
    assert "public.other" not in refused[0].message  # it does not use the column
    outcome = make_session(db_url, yes=True).run_line("*apply --online --snapshot=no")
    assert outcome.exit_code == EXIT_FAILED
    said = failure(outcome)
    assert reason in said and "nothing was changed" in said, said
    assert history(db) == [] and type_of(db, "amount") == "integer" and online_rows(db) == []
    assert db.execute("select count(*) from pg_views where viewname in ('totals', 'other')").fetchone()[0] == 2


def test_a_view_made_after_the_expand_moves_with_the_swap_and_back(project, make_session, db_url, db, pg_server):
    """The views the swap drops and makes again are read from the catalog in the swap's transaction, not when the
    change started: a view made while the file is half done (here: its backfill stopped at a row the cast refuses)
    reads the new column after the swap, *rollback FILE puts it back on the old one, and --complete (which drops
    the old column) succeeds, ending in the plain file's schema."""
    from sage_agent.ops.schema.compare import normalized_dump

    cast = "alter table public.orders alter column note type int using note::int;\n"
    view = ("create view public.order_notes as select id, note from public.orders where id > 10;\n"
            "revoke all on public.order_notes from anon, authenticated;\n"
            "grant select on public.order_notes to anon;\n")
    db.execute(SEED)
    db.execute("update public.orders set note = id::text where id <= 2000")  # the rest cannot be cast to int
    write(project, f"{V1}_change.sql", cast)
    stopped = make_session(db_url, yes=True).run_line("*apply --online --snapshot=no --batch-rows 500")
    assert stopped.exit_code == EXIT_FAILED
    assert 'invalid input syntax for type integer: "n2001"' in failure(stopped), failure(stopped)
    db.execute(view)  # made after the expand, on the old column
    db.execute("update public.orders set note = id::text where id > 2000")
    seed = SEED + "update public.orders set note = id::text;\n" + view
    before = plain_dump_of(project, make_session, pg_server.url(), seed, "select 1;\n")  # the view, no change
    done = make_session(db_url, yes=True).run_line("*apply --online --snapshot=no")
    assert done.exit_code == EXIT_OK, failure(done)
    assert view_type(db, "public.order_notes", "note") == "integer"
    undone = make_session(db_url, confirm=("ROLLBACK",)).run_line(f"*rollback {V1}_change.sql")
    assert undone.exit_code == EXIT_OK, failure(undone)
    assert view_type(db, "public.order_notes", "note") == "text"
    assert any(text == "DROP VIEW public.order_notes" for text in undone.result.data["statements"])
    assert normalized_dump(db_url) == before  # nothing of the change left; the view's privileges as they were
    again = make_session(db_url, yes=True).run_line("*apply --online --snapshot=no")
    assert again.exit_code == EXIT_OK, failure(again)
    completed = make_session(db_url, confirm=("COMPLETE",)).run_line("*apply --complete")
    assert completed.exit_code == EXIT_OK, failure(completed)
    assert column_order_free(normalized_dump(db_url)) == column_order_free(plain_dump_of(
        project, make_session, pg_server.url(), seed, "drop view public.order_notes;\n" + cast + view))

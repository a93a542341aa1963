"""One implementation of each job (issue 13): listing and counting tables (db.tables) for snapshots and backups,
reading a plain dump by its entry headers, identifiers through psycopg.sql (sqlkit.idents). Real PostgreSQL."""

from __future__ import annotations

import psycopg
import pytest

from sage_agent.db.tables import count_rows, list_tables
from sage_agent.ops.data.backup import views_in_backup
from sage_agent.session.machine import EXIT_OK
from sage_agent.sqlkit.idents import quoted, readable


@pytest.fixture
def shapes(db):
    db.execute("""
        create schema app;
        create table app.plain (id int primary key);
        insert into app.plain select generate_series(1, 5);
        create table app.parent (id int);
        create table app.child () inherits (app.parent);
        insert into app.parent values (1);
        insert into app.child values (2), (3);
        create table app.measures (id int, at date) partition by range (at);
        create table app.measures_2024 partition of app.measures for values from ('2024-01-01') to ('2025-01-01');
        insert into app.measures values (1, '2024-05-01'), (2, '2024-06-01');
        create table app."Mixed Case" (n int);
        insert into app."Mixed Case" values (1);
        create table app.big (id int primary key, pad text);
        insert into app.big select g, repeat('x', 200) from generate_series(1, 3000) g;
    """)
    db.execute("vacuum analyze app.big")  # all visible: counted through its index inside a transaction
    return db


def test_snapshot_listing_covers_ordinary_and_partitioned_tables_in_the_schemas(shapes):
    assert list_tables(shapes, ["app"]) == [
        ("app", "Mixed Case"), ("app", "big"), ("app", "child"), ("app", "measures"), ("app", "measures_2024"),
        ("app", "parent"), ("app", "plain")]
    assert list_tables(shapes, []) == []


def test_backup_listing_is_every_ordinary_table_pg_dump_dumps_the_data_of(shapes):
    tables = list_tables(shapes)
    assert ("app", "measures") not in tables and ("app", "measures_2024") in tables  # relkind r only
    assert not any(s in ("pg_catalog", "information_schema") or s.startswith("pg_") for s, _ in tables)
    assert ("app", "Mixed Case") in tables and tables == sorted(tables)


def test_counts_own_rows_or_with_inheritance_children_partitions_always(shapes):
    tables = list_tables(shapes, ["app"])
    own = count_rows(shapes, tables)
    assert own == {"app.Mixed Case": 1, "app.big": 3000, "app.child": 2, "app.measures": 2, "app.measures_2024": 2,
                   "app.parent": 1, "app.plain": 5}
    assert count_rows(shapes, tables, inherited=True)["app.parent"] == 3
    assert count_rows(shapes, []) == {}


def test_counts_inside_a_transaction_use_the_index_path_and_leave_seqscan_on(db_url, shapes):
    with psycopg.connect(db_url) as conn:  # not autocommit: SET LOCAL applies
        conn.execute("select 1")
        counts = count_rows(conn, [("app", "big"), ("app", "plain")])
        assert counts == {"app.big": 3000, "app.plain": 5}
        assert conn.execute("show enable_seqscan").fetchone()[0] == "on"


def test_a_plain_backup_names_its_quoted_views_by_their_entry_headers(make_session, db_url, db, project):
    db.execute('create table public.orders (id int); create view public."Big Orders" as select id from orders; '
               'create materialized view public.totals as select count(*) from orders')
    out = make_session(db_url).run_line("*backup views plain")
    assert out.exit_code == EXIT_OK, out.error
    artifact = project / "supabase" / "backups" / "views.sql"
    assert views_in_backup(None, artifact, "plain") == {"public.Big Orders", "public.totals"}


def test_identifiers_quote_as_postgres_does(db):
    for parts in [("public", "orders"), ("public", "Order Lines"), ("public", "user"), ("a\"b",), ("select",),
                  ("x1$",), ("_t",), ("1abc",)]:
        server = ".".join(db.execute("select quote_ident(%s)", (p,)).fetchone()[0] for p in parts)
        assert readable(*parts) == server, parts
    assert quoted("public", "orders") == '"public"."orders"' and quoted('a"b') == '"a""b"'


def test_rollback_recreates_triggers_and_policies_outside_the_snapshot_as_they_were(make_session, db_url, db):
    """Objects on auth.users that use public's functions die with public's DROP ... CASCADE; the rollback
    re-creates them from SQL composed with psycopg.sql: the same definition, the same enabled state."""
    db.execute("""
        create function public.audit() returns trigger language plpgsql as $$ begin return new; end $$;
        create function public."may see"(uid uuid) returns boolean language sql as $$ select uid is not null $$;
    """)
    session = make_session(db_url, confirm=("REPLACE",))
    assert session.run_line("*snapshot s1").exit_code == EXIT_OK
    db.execute("""
        create trigger "Audit Users" before update on auth.users for each row execute function public.audit();
        alter table auth.users disable trigger "Audit Users";
        create policy "users: own row" on auth.users as restrictive for update to authenticated, anon
            using (public."may see"(id)) with check (public."may see"(id));
    """)
    state = ("select (select array_agg((pg_get_triggerdef(t.oid), t.tgenabled::text)) from pg_trigger t "
             " where t.tgrelid = 'auth.users'::regclass and not t.tgisinternal), "
             "(select array_agg((policyname, permissive, roles::text, cmd, qual, with_check)) from pg_policies "
             " where schemaname = 'auth' and tablename = 'users')")
    before = db.execute(state).fetchone()
    out = session.run_line("*rollback s1 --replace")
    assert out.exit_code == EXIT_OK, out.error
    assert db.execute(state).fetchone() == before
    assert before[0] and before[1]

"""*compare-schemas holds the proof's dumps as digests of their statements (two 20,000-table dumps are ~70 MB
of text): the answer, and the statements it names, must be what comparing the dumps' text gives."""

from __future__ import annotations

from collections import Counter

import psycopg

from sage_agent.ops.schema.compare import (
    DumpDigest, digest_difference, dump_difference, normalized_dump, read_normalized, split_statements,
)

DUMP = """--
-- PostgreSQL database dump
--
SET statement_timeout = 0;
CREATE FUNCTION public.f() RETURNS integer
    LANGUAGE sql
    BEGIN ATOMIC
 SELECT 1;
 SELECT 2;
END;
GRANT SELECT ON TABLE public.t TO anon;
GRANT SELECT ON TABLE public.t TO anon;
CREATE TABLE public.t (
    a integer
);
"""


def test_digests_name_the_statements_the_text_comparison_names(tmp_path):
    """A multiset: a statement twice on one side and once on the other is one difference; a BEGIN ATOMIC body
    stays one statement; the storage policies' statements count too."""
    a, b = tmp_path / "a.sql", tmp_path / "b.sql"
    a.write_text(DUMP)
    b.write_text(DUMP.replace("GRANT SELECT ON TABLE public.t TO anon;\n", "", 1).replace(" SELECT 2;", " SELECT 3;")
                 + "COMMENT ON TABLE public.t IS 'x';\n")
    pa, pb = ["CREATE POLICY p ON storage.objects USING (true);"], [" "]
    want = dump_difference(read_normalized(a, pa), read_normalized(b, pb))
    got = digest_difference(DumpDigest.of(a, pa), DumpDigest.of(b, pb))
    assert got == want
    missing, extra = got
    assert missing == ["COMMENT ON TABLE public.t IS 'x'", "CREATE FUNCTION public.f() RETURNS integer\n"
                       "    LANGUAGE sql\n    BEGIN ATOMIC\n SELECT 1;\n SELECT 3;\nEND"]
    assert extra == ["CREATE FUNCTION public.f() RETURNS integer\n    LANGUAGE sql\n    BEGIN ATOMIC\n SELECT 1;\n"
                     " SELECT 2;\nEND", "CREATE POLICY p ON storage.objects USING (true);",
                     "GRANT SELECT ON TABLE public.t TO anon"]
    same = DumpDigest.of(a, pa)
    assert digest_difference(same, DumpDigest.of(a, pa)) == ([], [])
    assert sum(same.counts.values()) == len(read_normalized(a, pa)) == 5


def test_statements_split_as_before_on_the_edges():
    """split_statements gives each statement once its end is known: a trailing piece with no `;`, an empty
    statement, an END or an indented line right after a statement (they belong to it)."""
    assert split_statements(["CREATE a", "b;", "  c;", "END;", "d"]) == ["CREATE a\nb;\n  c;\nEND", "d"]
    assert split_statements([";", "  x;", "y;"]) == [";\n  x", "y"]
    assert split_statements(["-- only a comment", "SET x = 1;", ""]) == []
    assert split_statements(["x;", "  tail"]) == ["x;\n  tail"]


def test_proof_on_digests_names_what_the_plan_leaves(make_session, db_url, db, pg_server):
    """The model sees the function body; column order it does not. The plan fixes the body on the shadow copy;
    the digests of the result's dump and B's differ only in the table, which the answer names as text."""
    from sage_agent.db.shadow import create_database, drop_database

    body = "returns int language sql begin atomic select 1; select {}; end"
    db.execute("create table public.t (a int, c int, b int);"
               f"create function public.f() {body.format(2)}")
    other = create_database(pg_server.url(), "digest_b")
    try:
        with psycopg.connect(other, autocommit=True) as conn:
            conn.execute(f"create table public.t (a int, b int, c int); create function public.f() {body.format(3)}")
        out = make_session(db_url, yes=True).run_line(f"*compare-schemas local {other}")
        dump_a, dump_b = normalized_dump(db_url), normalized_dump(other)
    finally:
        drop_database(pg_server.url(), "digest_b")
    assert out.exit_code == 4, out.error
    data = out.result.data
    assert data["proven"] is False
    assert any("public.f" in s["sql"] and "select 3" in s["sql"].lower() for s in data["steps"])
    table_b = [s for s in dump_b if s.startswith("CREATE TABLE public.t ")]
    table_a = [s for s in dump_a if s.startswith("CREATE TABLE public.t ")]
    assert data["dump_missing"] == table_b and data["dump_extra"] == table_a
    assert len(table_b) == 1 and "b integer,\n    c integer" in table_b[0]
    # A and B themselves: their text difference, function included
    only_b, only_a = dump_difference(dump_a, dump_b)
    assert Counter(only_b) == Counter(table_b + [s for s in dump_b if "public.f()" in s and "3" in s])


def test_comments_of_every_kind_are_read(db):
    """The model reads comments from pg_description directly (not obj_description per row): each kind of
    object's comment, and a column's, is what PostgreSQL's own obj_description/col_description say."""
    from sage_agent.ops.schema.introspect import introspect

    db.execute("""
        create schema s; comment on schema s is 'schema c';
        create type s.mood as enum ('a'); comment on type s.mood is 'type c';
        create table s.t (id int primary key, v int check (v > 0)); comment on table s.t is 'table c';
        comment on column s.t.v is 'column c'; comment on constraint t_pkey on s.t is 'pk c';
        create index t_v on s.t (v); comment on index s.t_v is 'index c';
        create function s.f() returns trigger language plpgsql as $$ begin return new; end $$;
        comment on function s.f() is 'function c';
        create trigger tr before insert on s.t for each row execute function s.f();
        comment on trigger tr on s.t is 'trigger c';
        create policy p on s.t using (true); comment on policy p on s.t is 'policy c';
        create view s.v as select id from s.t; comment on view s.v is 'view c';
        comment on column s.t.id is null""")
    m = introspect(db)
    t = m.tables["s.t"]
    got = {"schema": m.schemas["s"].comment, "type": m.types["s.mood"].comment, "table": t.comment,
           "column": t.columns["v"].comment, "no comment": t.columns["id"].comment,
           "pk": m.constraints["s.t.t_pkey"].comment, "index": m.indexes["s.t_v"].comment,
           "function": m.functions["s.f()"].comment, "trigger": m.triggers["s.t.tr"].comment,
           "policy": m.policies["s.t.p"].comment, "view": m.views["s.v"].comment}
    want = dict(zip(got, db.execute("""
        select obj_description('s'::regnamespace, 'pg_namespace'), obj_description('s.mood'::regtype, 'pg_type'),
               obj_description('s.t'::regclass, 'pg_class'), col_description('s.t'::regclass, 2),
               col_description('s.t'::regclass, 1),
               obj_description((select oid from pg_constraint where conname = 't_pkey'), 'pg_constraint'),
               obj_description('s.t_v'::regclass, 'pg_class'), obj_description('s.f()'::regprocedure, 'pg_proc'),
               obj_description((select oid from pg_trigger where tgname = 'tr'), 'pg_trigger'),
               obj_description((select oid from pg_policy where polname = 'p'), 'pg_policy'),
               obj_description('s.v'::regclass, 'pg_class')""").fetchone()))
    assert got == want
    assert got["column"] == "column c" and got["no comment"] is None and got["trigger"] == "trigger c"


def _encoded_database(admin_url: str, name: str, encoding: str, ddl: str) -> str:
    """A database in `encoding` (C locale, from template0) holding `ddl` (run as UTF-8 text, or in DO blocks)."""
    from psycopg import sql

    from sage_agent.db.urls import replace_dbname

    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(sql.SQL("create database {} encoding {} lc_collate 'C' lc_ctype 'C' template template0").format(
            sql.Identifier(name), sql.Literal(encoding)))
    url = replace_dbname(admin_url, name)
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(ddl)
    return url


def _two_encoded_dumps(server_url: str, tmp_path, encoding: str, ddl: str, values: dict) -> tuple:
    """Two databases of `encoding` made from `ddl` formatted with each of `values` ({name: value}): their normalized
    dumps and the proof's digest difference (only_b, only_a); the databases are dropped again."""
    from sage_agent.db.shadow import drop_database
    from sage_agent.ops.schema.compare import dump_for_proof

    urls = {}
    try:
        for name, value in values.items():
            urls[name] = _encoded_database(server_url, name, encoding, ddl.format(value))
        dump_a, dump_b = (normalized_dump(url) for url in urls.values())
        digests = []
        for name, url in urls.items():
            out = tmp_path / f"{name}.sql"
            digests.append(DumpDigest.of(out, dump_for_proof(url, out)))
        only_b, only_a = digest_difference(*digests)
    finally:
        for name in values:
            drop_database(server_url, name)
    return dump_a, dump_b, only_b, only_a


def test_dumps_of_a_latin1_database_that_differ_in_one_accent_are_not_equal(pg_server, tmp_path):
    """Two LATIN1 databases whose schemas differ only in é / è (a column default and a comment): the proof's
    normalized dumps differ and name both statements, readable, by text and by digest. Decoded as UTF-8 with
    replacement, both bytes became the same character and the proof called the dumps equal."""
    ddl = ("create table public.menu (id int primary key, dish text default '{0}'); "
           "comment on table public.menu is 'plat du jour: {0}'")
    dump_a, dump_b, only_b, only_a = _two_encoded_dumps(pg_server.url(), tmp_path, "LATIN1", ddl,
                                                        {"latin_a": "café", "latin_b": "cafè"})
    assert dump_a != dump_b
    assert dump_difference(dump_a, dump_b) == (only_b, only_a)
    assert [s for s in only_a if "COMMENT" in s] == ["COMMENT ON TABLE public.menu IS 'plat du jour: café'"]
    assert [s for s in only_b if "COMMENT" in s] == ["COMMENT ON TABLE public.menu IS 'plat du jour: cafè'"]
    assert len(only_a) == len(only_b) == 2 and any("DEFAULT 'café'::text" in s for s in only_a)


def test_dumps_of_an_sql_ascii_database_keep_their_bytes(pg_server, tmp_path):
    """SQL_ASCII stores bytes unconverted: two dumps that differ only in one non-UTF-8 byte (0xe9 vs 0xe8 in a
    comment) differ by digest and by text; the statements shown replace the byte they cannot decode."""
    ddl = ("create table public.menu (id int primary key); "
           "do $$ begin execute 'comment on table public.menu is ' || quote_literal('caf' || chr({0})); end $$")
    dump_a, dump_b, only_b, only_a = _two_encoded_dumps(pg_server.url(), tmp_path, "SQL_ASCII", ddl,
                                                        {"ascii_a": 233, "ascii_b": 232})
    assert dump_a != dump_b
    shown = "COMMENT ON TABLE public.menu IS 'caf\ufffd'"
    assert only_a == only_b == [shown]
    assert dump_difference(dump_a, dump_b) == ([shown], [shown])

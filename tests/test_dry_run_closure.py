"""The closure load of a cold *dry-run: the shadow holds only what the file can touch (its tables, what depends on
them, what they need), and the report must be the one a full copy gives. Each case runs twice on the same
schema: once on the closure (SAGE_DRY_RUN_CLOSURE_MIN_RELATIONS=0), once on the whole schema (-1), and every
field a person reads is compared: verdict, exit code, summary, findings, impact, object changes, smoke checks,
error, and the report's sections."""

from __future__ import annotations

import json
import re

import pytest

from migfiles import write_migration as write
from sage_agent.db.shadow import drop_database
from sage_agent.db.tools import PgToolError
from sage_agent.ops.migrations import closure as cl
from sage_agent.ops.migrations.shadow_run import templates

SCHEMA = """
create type public.status as enum ('new', 'done');
create sequence public.counter;
create function public.touch() returns trigger language plpgsql as $$ begin return new; end $$;
do $$ begin for i in 1..30 loop
  execute format('create table public.a%s (id bigint generated always as identity primary key, owner uuid, '
                 'status public.status not null default ''new'', title text%s)', i,
                 case when i %% 3 = 0 then format(', prev_id bigint references public.a%s (id)', i - 1) else '' end);
  execute format('create index a%s_owner on public.a%s (owner)', i, i);
  execute format('alter table public.a%s enable row level security', i);
  execute format('create policy a%s_own on public.a%s for all to authenticated using ((select auth.uid()) = owner)',
                 i, i);
  execute format('grant select on public.a%s to anon', i);
  if i %% 5 = 0 then
    execute format('create view public.va%s as select id, title, status from public.a%s', i, i);
  end if;
end loop; end $$;
create function public.count_a12() returns bigint language sql as 'select count(*) from public.a12';
create function public.rows_a21() returns setof public.a21 language sql as 'select * from public.a21';
create statistics public.a3_stats on id, owner from public.a3;
create view public.vab as select a1.id, a2.title from public.a1 join public.a2 on a2.id = a1.id;
create view public.vva5 as select id from public.va5;
create policy a7_peek on public.a7 for select using (exists (select 1 from public.a8 x where x.id = a7.id));
alter table public.a10 alter column owner set default gen_random_uuid();
alter table public.a11 add column n bigint default nextval('public.counter');
alter table public.a20 add constraint a20_title check (length(title) < 100) not valid;
comment on table public.a4 is 'four';
create trigger a4_touch before update on public.a4 for each row execute function public.touch();
create table public.ev (id bigint not null, tenant int not null, v int, primary key (tenant, id))
  partition by hash (tenant);
create table public.ev_0 partition of public.ev for values with (modulus 3, remainder 0);
create table public.ev_1 partition of public.ev for values with (modulus 3, remainder 1);
create table public.ev_2 partition of public.ev for values with (modulus 3, remainder 2);
create index ev_v on public.ev (v);
create table public.lp (id bigint not null, region text not null, v int) partition by list (region);
create table public.lp_eu partition of public.lp for values in ('eu');
create table public.lp_us partition of public.lp for values in ('us');
create schema app;
create table app.items (id bigint primary key, a1_id bigint references public.a1 (id), label text);
create view app.item_titles as select i.id, a.title from app.items i join public.a1 a on a.id = i.a1_id;
analyze;
"""

CASES = {
    "fk_index_trigger_partitions": "alter table public.a4 add column ref bigint references public.a25 (id);\n"
                                   "create index a5_title on public.a5 (title);\n"
                                   "create trigger a15_touch before update on public.a15 for each row "
                                   "execute function public.touch();\n"
                                   "create table public.lp_asia (id bigint not null, region text not null, v int);\n"
                                   "alter table public.lp attach partition public.lp_asia for values in ('asia');\n"
                                   "alter table public.ev add column extra int;\n",
    "rename_column_under_views": "alter table public.a5 rename column title to name;\n",
    "rename_table_referenced_from_another_schema": "alter table public.a1 rename to a1_old;\n",
    "drop_with_dependents": "drop table public.a5 cascade;\n",
    "drop_refused_by_dependents": "drop table public.a8;\n",
    "policy_subquery_and_view_over_two_tables":
        "create policy a11_sel on public.a11 for select using (exists (select 1 from public.a12 x "
        "where x.id = a11.id));\n"
        "create view public.v_two as select a13.id, a14.title from public.a13 join public.a14 on a14.id = a13.id;\n",
    "type_change_under_a_view": "alter table public.a10 alter column title type varchar(200);\n",
    "enum_value": "alter type public.status add value 'archived';\n",
    "change_that_fails": "alter table public.a3 add column title text;\n",
    "multi_statement": "create table public.orders (id bigint primary key, a1_id bigint not null "
                       "references public.a1 (id), total int);\n"
                       "create index orders_a1 on public.orders (a1_id);\n"
                       "alter table public.orders enable row level security;\n"
                       "create policy orders_own on public.orders for select using (a1_id > 0);\n"
                       "comment on table public.orders is 'orders';\n"
                       "grant select on public.orders to authenticated;\n"
                       "alter table public.a9 drop column prev_id;\n"
                       "alter table public.a2 add column priority int not null default 0;\n"
                       "alter table public.a18 add column n bigint default nextval('public.counter');\n",
    "concurrently": "create index concurrently a17_title on public.a17 (title);\n",
    # last: these two end on a full copy of the schema (which later closure runs would then use)
    "view_calling_a_function_over_a_table": "create view public.v_cnt as select public.count_a12() as n;\n",
    "do_block": "do $$ begin perform 1; end $$;\n",
}
RERUN = {"view_calling_a_function_over_a_table"}  # the closure misses what a function reads: a full copy
FALLBACK = {"do_block"}  # statements whose reach is not read statically: the whole schema, said in a note
WHOLE = {"enum_value"}  # every table has a column of the enum: the closure is nearly all of the schema
OWN_NOTES = ("the shadow holds the closure", "the whole schema was loaded", "ran again on a full copy")


def _view(result) -> dict:
    """Everything a person reads in a dry-run result, minus timings and the closure's own note."""
    data = result.data
    markdown = re.sub(r"## (Timing|Notes)\n\n(- .*\n?)+", "", result.markdown or "")
    markdown = "\n".join(line for line in markdown.splitlines() if not any(n in line for n in OWN_NOTES))
    markdown = re.sub(r"\n{3,}", "\n\n", markdown)
    return {
        "status": result.status, "exit": result.exit_code,
        "summary": re.sub(r"in \d+\.\d+s", "in Ns", result.summary),
        "findings": [(f.rule, f.severity, f.message, f.location, f.detail) for f in result.findings],
        "notes": [n for n in result.notes if not n.startswith(OWN_NOTES)],
        "verdict": data["verdict"], "error": data["error"], "impact": data["impact"],
        "changes": sorted(map(tuple, data["changes"])), "checks": data["checks"],
        "markdown": re.sub(r"in \d+\.\d+s", "in Ns", markdown),
    }


def _run(make_session, db_url, monkeypatch, name: str, mode: str, admin: str | None = None):
    monkeypatch.setenv("SAGE_DRY_RUN_CLOSURE_MIN_RELATIONS", mode)
    if admin:  # cold: no full copy of the schema cached (an earlier fallback made one)
        for template, key, _used, _size in templates(admin, sizes=False):
            # RERUN cases find no bigger closure either: one made for an earlier file may hold the table the
            # function reads (whether it is still kept depends on the machine's template budget)
            if key and ("_c" not in key or name in RERUN):
                drop_database(admin, template)
    return make_session(db_url).run_line(f"*dry-run {name}").result


@pytest.fixture
def schema(db, project):
    db.execute(SCHEMA.replace("%%", "%"))
    for i, (name, text) in enumerate(CASES.items()):
        write(project, f"2024010100{i:04d}_{name}.sql", text)
    return db


def test_closure_reports_equal_the_full_load_reports(schema, project, make_session, db_url, monkeypatch, pg_server):
    closure = {name: _run(make_session, db_url, monkeypatch, name, "0", pg_server.url()) for name in CASES}
    full = {name: _run(make_session, db_url, monkeypatch, name, "-1") for name in CASES}
    differ = []
    for name in CASES:
        timings = closure[name].data["timings"]
        notes = " ".join(closure[name].notes)
        if name in FALLBACK:
            assert "the whole schema was loaded into the shadow" in notes, (name, notes)
        elif "ran again on a full copy" not in notes:
            # the two dumps (the closure's relations, the rest without relations), never the whole-schema archive
            # (but where the closure may be most of the schema)
            assert any(k.startswith(("pg_dump -t closure", "cached closure") + (("pg_dump -Fc | closure",)
                                    if name in WHOLE else ())) for k in timings), (name, timings, notes)
            loaded = re.search(r"(\d+) of (\d+) relations", notes)
            assert loaded and (name in WHOLE or int(loaded.group(1)) < int(loaded.group(2)) / 2), (name, notes)
        assert "pg_dump | load into the shadow" not in timings or name in FALLBACK or "ran again" in notes, name

        a, b = _view(closure[name]), _view(full[name])
        differ += [(name, k, a[k], b[k]) for k in a if a[k] != b[k]]
    assert not differ, differ
    # the cases really exercise what they say
    assert "ran again on a full copy" in " ".join(closure["view_calling_a_function_over_a_table"].notes)
    assert ("dropped", "view", "public.vva5") in map(tuple, full["drop_with_dependents"].data["changes"])
    assert "SQLSTATE 2BP01" in full["drop_refused_by_dependents"].data["error"]
    assert "a7_peek" in full["drop_refused_by_dependents"].data["error"]
    assert "SQLSTATE 42701" in full["change_that_fails"].data["error"]
    assert "SQLSTATE 0A000" in full["type_change_under_a_view"].data["error"]
    assert ("altered", "constraint", "app.items.items_a1_id_fkey") in \
        map(tuple, full["rename_table_referenced_from_another_schema"].data["changes"])
    assert ("altered", "view", "public.va5") in map(tuple, full["rename_column_under_views"].data["changes"])
    not_valid = {c["check"]: c for c in full["fk_index_trigger_partitions"].data["checks"]}["no NOT VALID constraints left"]
    assert not not_valid["passed"] and "public.a20.a20_title" in not_valid["detail"]
    # the target was only read
    assert schema.execute("select count(*) from pg_class where relname = 'orders'").fetchone()[0] == 0


def test_a_closure_without_dependents_gives_another_report(schema, project, make_session, db_url, monkeypatch):
    """The comparison has teeth: a closure that leaves out what depends on the tables (the foreign keys of
    other tables, views, policies) reports a drop that PostgreSQL would refuse as fine."""
    real = cl.compute

    def no_dependents(conn, names, schemas, history, total):
        out = real(conn, names, schemas, history, total)
        roots = {int(r[0]) for r in conn.execute("select oid from pg_class where relname = any(%s)",
                                                 (sorted(n for _, n in names.rels),)).fetchall()}
        own = {int(r[0]) for r in conn.execute(
            "select objid from pg_depend where refobjid = any(%s) and classid = 'pg_class'::regclass "
            "and deptype in ('a', 'i')", (sorted(roots),)).fetchall()}
        views = {int(r[0]) for r in conn.execute("select oid from pg_class where relkind = 'v'").fetchall()}
        return cl.Closure(roots | own | (out.relations & views), set(), out.roots, out.total_relations)

    real_select = cl.select_entries

    def own_parts_only(entries, closure):  # the parts of other tables that depend on the closure's are left out
        chosen = real_select(entries, closure)
        others = {e.dump_id for e in entries if e.catalog == 1259 and e.oid not in closure.relations}
        return [e for e in chosen if not (e.catalog in (2606, 3256) and others & set(e.deps))]

    monkeypatch.setattr(cl, "compute", no_dependents)
    monkeypatch.setattr(cl, "select_entries", own_parts_only)
    broken = _run(make_session, db_url, monkeypatch, "drop_refused_by_dependents", "0")  # before any full copy
    assert "the shadow holds the closure of the file" in " ".join(broken.notes)
    full = _run(make_session, db_url, monkeypatch, "drop_refused_by_dependents", "-1")
    assert _view(broken) != _view(full)
    assert full.data["error"] and not broken.data["error"]


def test_file_names_reads_the_reach_of_each_statement_kind():
    from sage_agent.sqlkit.split import split_sql

    def names(sql):
        return cl.file_names(split_sql(sql, "f.sql"))

    got = names("alter table public.t add column x int references s.u (id);\n"
                "drop table a.b, c cascade;\ndrop policy p on public.q;\n"
                "comment on column public.w.c is 'x';\nselect 1;\n")
    assert isinstance(got, str) and "line 5" in got and "Select" in got
    got = names("alter table public.t add column x int references s.u (id);\n"
                "drop table a.b, c cascade;\ndrop policy p on public.q;\n"
                "comment on column public.w.c is 'x';\n"
                "alter table public.v add column n bigint default nextval('public.seq');\n"
                "alter type public.mood add value 'meh';\ndrop function public.f(int);\n")
    assert {("public", "t"), ("s", "u"), ("a", "b"), (None, "c"), ("public", "q"), ("public", "w"),
            ("public", "v")} <= got.rels
    assert "public.seq" in got.strings and ("public", "mood") in got.types and ("public", "f") in got.procs
    for sql in ("do $$ begin end $$;", "insert into public.t values (1);", "alter schema s rename to s2;",
                "drop schema s cascade;", "grant select on all tables in schema public to anon;",
                "create function f() returns int language python as 'x';"):
        assert isinstance(names(sql), str), sql
    assert names("create function public.g() returns bigint language sql as "
                 "'select count(*) from public.big';").rels == {("public", "big")}


def test_the_two_dumps_restore_what_the_rest_of_the_schema_needs(schema, db_url, pg_server, monkeypatch):
    """`pg_dump -t` leaves out extended statistics and the dump without relations holds functions that need a
    table (`returns setof a21`): the closure template has both, the statistics rebuilt from the target and the
    table restored before the function. A relation needing such a function (no order of the two restores fits)
    takes the whole-schema archive, and says why."""
    from sage_agent.db.connect import connect

    def closure_of(table: str) -> cl.Closure:
        total = cl.relation_count(schema, ["public", "app"])
        return cl.compute(schema, cl.Names(rels={("public", table)}), ["public", "app"], False, total)

    closure = closure_of("a3")
    assert closure.whole is None and ("public", "a21") in closure.tables
    name, restored, total, whole = cl.build_template(pg_server.url(), db_url, ["public", "app"], False, 18,
                                                     "closure_test_two_dumps", closure, 2**40)
    try:
        assert whole is None and total is None and restored > 0
        with connect(pg_server.url(name), autocommit=True) as conn:
            assert conn.execute("select pg_get_statisticsobjdef(oid) from pg_statistic_ext "
                                "where stxname = 'a3_stats'").fetchone()[0] == \
                schema.execute("select pg_get_statisticsobjdef(oid) from pg_statistic_ext "
                               "where stxname = 'a3_stats'").fetchone()[0]
            assert conn.execute("select count(*) from public.rows_a21()").fetchone()[0] == 0
            tables = {r[0] for r in conn.execute("select relname from pg_class where relkind = 'r' "
                                                 "and relnamespace = 'public'::regnamespace").fetchall()}
            assert {"a3", "a21"} <= tables and "a22" not in tables
    finally:
        drop_database(pg_server.url(), name)

    # the two dumps' restore failing (here: made to fail) leaves the whole-schema archive, and the reason
    def fails(*_args, **_kwargs):
        raise PgToolError("pg_restore failed: relation \"public.a2\" does not exist")

    monkeypatch.setattr(cl, "_load_two_dumps", fails)
    name, restored, total, whole = cl.build_template(pg_server.url(), db_url, ["public", "app"], False, 18,
                                                     "closure_test_two_dumps_failed", closure, 2**40)
    try:
        assert whole.startswith("the restore of the two dumps failed") and "a2" in whole and total > restored
        with connect(pg_server.url(name), autocommit=True) as conn:
            assert conn.execute("select count(*) from public.rows_a21()").fetchone()[0] == 0
    finally:
        drop_database(pg_server.url(), name)
    with connect(pg_server.url(), autocommit=True) as conn:  # the first, half-restored database is gone
        assert conn.execute("select count(*) from pg_database where datname like 'sage\\_tpl\\_building\\_%'"
                            ).fetchone()[0] == 0

    schema.execute("create function public.first_a21(public.a21) returns int language sql as 'select 1'")
    schema.execute("alter table public.a4 add column n int check (public.first_a21(null) = 1)")
    assert "needs a function or type that itself needs a relation" in (closure_of("a4").whole or "")


def test_a_file_covered_by_an_earlier_closure_reuses_its_template(schema, project, make_session, db_url,
                                                                   monkeypatch, pg_server):
    """After a closure run, a different file whose closure that template holds (the view over a5, when a5 and
    its views were loaded) runs on it instead of a new closure load; a file reaching other tables loads its own.
    Both give the full load's report."""
    write(project, "20250101000001_cover_first.sql", "alter table public.a5 rename column title to name;\n")
    write(project, "20250101000002_cover_covered.sql", "comment on view public.va5 is 'five';\n")
    write(project, "20250101000003_cover_other.sql", "alter table public.a25 add column z int;\n")
    first = _run(make_session, db_url, monkeypatch, "cover_first", "0", pg_server.url())
    assert "relations loaded with all their parts" in " ".join(first.notes), first.notes
    # kept in the project's state folder, out of git like DB Sage's other state files
    covers = json.loads((project / "supabase" / ".sage" / "closure-templates.json").read_text())
    a5 = set(schema.execute("select 'public.a5'::regclass::oid::int, 'public.va5'::regclass::oid::int").fetchone())
    assert [a5 <= set(c["relations"]) for c in covers.values()] == [True]
    assert (project / "supabase" / ".sage" / ".gitignore").read_text() == "*\n"
    covered = _run(make_session, db_url, monkeypatch, "cover_covered", "0")
    assert "made for another file that holds all of them" in " ".join(covered.notes), covered.notes
    assert any(k.startswith("cached closure (catalog fingerprint unchanged, a closure that covers")
               for k in covered.data["timings"]), covered.data["timings"]
    other = _run(make_session, db_url, monkeypatch, "cover_other", "0")
    assert "relations loaded with all their parts" in " ".join(other.notes), other.notes
    for name, result in (("cover_covered", covered), ("cover_other", other)):
        assert _view(result) == _view(_run(make_session, db_url, monkeypatch, name, "-1")), name

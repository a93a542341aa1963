"""*compare-schemas through the session and the CLI: sources, proof, migration file, bad input."""

from __future__ import annotations

import json

import psycopg


def _write(project, rel: str, text: str):
    path = project / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def test_same_database_is_empty(make_session, db_url, db):
    db.execute("create table public.items (id int primary key, name text)")
    out = make_session(db_url, yes=True).run_line(f"*compare-schemas {db_url} local")
    assert out.exit_code == 0, out.error
    assert out.result.summary.startswith("No drift")
    assert out.result.data["steps"] == []


def test_prod_vs_migrations_proven_and_written(make_session, db_url, db, project):
    # the "production" database drifted: an extra column and a missing index
    db.execute("create table public.items (id bigint primary key, name text, legacy int)")
    _write(project, "supabase/migrations/20240101000000_items.sql",
           "create table public.items (id bigint primary key, name text not null);\n")
    _write(project, "supabase/migrations/20240102000000_idx.sql",
           "create index items_name on public.items (name);\nalter table public.items enable row level security;\n")
    session = make_session(db_url, yes=True)
    out = session.run_line("*compare-schemas local migrations --write-migration --name sync_prod")
    assert out.exit_code == 4, out.error
    res = out.result
    assert res.data["proven"] is True
    assert "PROVEN" in res.summary
    drift = {(d["kind"], d["object"], d["change"]) for d in res.data["drift"]}
    assert ("column", "public.items.legacy", "extra") in drift
    assert ("index", "public.items_name", "missing") in drift
    assert ("rls", "public.items", "different") in drift
    steps = res.data["steps"]
    drop = next(s for s in steps if "DROP COLUMN legacy" in s["sql"])
    assert drop["data_loss"] is True and drop["lock"] == "ACCESS EXCLUSIVE"
    assert next(s for s in steps if "ROW LEVEL SECURITY" in s["sql"])["authorization"] is True
    assert res.status == "warning"  # data loss is flagged
    files = sorted((project / "supabase" / "migrations").glob("*sync_prod.sql"))
    assert len(files) == 1 and "DROP COLUMN legacy" in files[0].read_text()
    # the real database was only read
    cols = [r[0] for r in db.execute("select attname from pg_attribute where attrelid = 'public.items'::regclass "
                                     "and attnum > 0 and not attisdropped").fetchall()]
    assert "legacy" in cols


def test_snapshot_that_does_not_load(make_session, db_url, project):
    _write(project, "supabase/snapshots/broken.sql", "create table public.a (id int);\ncreate tabel oops;\n")
    out = make_session(db_url, yes=True).run_line("*compare-schemas local broken")
    assert out.exit_code == 1
    assert "snapshot broken.sql does not load" in out.error
    assert "line 2" in out.error or ":2:" in out.error


def test_snapshot_file_source(make_session, db_url, db, project):
    db.execute("create table public.a (id int)")
    path = _write(project, "dump/a.sql", "create table public.a (id int, extra text);\n")
    out = make_session(db_url, yes=True).run_line(f"*compare-schemas local {path}")
    assert out.exit_code == 4, out.error
    assert out.result.data["proven"]
    assert any("ADD COLUMN extra text" in s["sql"] for s in out.result.data["steps"])


def test_unknown_environment_and_source(make_session, db_url):
    session = make_session(db_url, yes=True)
    out = session.run_line("*compare-schemas staging local")
    assert out.exit_code == 2
    assert "no database configured for environment 'staging'" in out.error
    out = session.run_line("*compare-schemas local nonsense_word")
    assert out.exit_code == 2
    assert "unknown source 'nonsense_word'" in out.error
    out = session.run_line("*compare-schemas local missing.sql")
    assert out.exit_code == 2 and "not found" in out.error


def test_drift_offers_the_line_that_writes_the_proven_plan(make_session, db_url, db, project):
    """The next step was `*compare-schemas ... with write_migration=yes to save the proven plan`: not a line that
    runs. It is this comparison again with --write-migration, and typing it writes the file."""
    db.execute("create table public.items (id bigint primary key, legacy int)")
    _write(project, "supabase/migrations/20240101000000_items.sql",
           "create table public.items (id bigint primary key);\n")
    session = make_session(db_url, yes=True)
    out = session.run_line("*compare-schemas local migrations")
    assert out.exit_code == 4, out.error
    assert out.result.next_steps == ["*compare-schemas local migrations --write-migration"]
    out = session.run_line(out.result.next_steps[0])
    assert out.exit_code == 4, out.error
    written = sorted((project / "supabase" / "migrations").glob("*_schema_sync.sql"))
    assert len(written) == 1 and "DROP COLUMN legacy" in written[0].read_text()
    assert out.result.next_steps == [f"*dry-run {written[0].name}"]


def test_unprovable_plan_is_not_shown_as_safe(make_session, db_url, db, project, pg_server):
    """B's view reads a managed schema (realtime) that A's world lacks: the plan fails on the shadow copy."""
    from sage_agent.db.shadow import create_database, drop_database

    db.execute("create table public.t (a int)")
    other = create_database(pg_server.url(), "unprovable_b")
    try:
        with psycopg.connect(other, autocommit=True) as conn:
            conn.execute("create table public.t (a int, b int not null);"
                         "create schema realtime; create table realtime.objects (id int);"
                         "create view public.v as select id from realtime.objects")
        out = make_session(db_url, yes=True).run_line(f"*compare-schemas local {other} --write-migration")
    finally:
        drop_database(pg_server.url(), "unprovable_b")
    assert out.exit_code == 4
    res = out.result
    assert res.status == "warning" and "NOT proven" in res.summary
    assert res.findings[0].rule == "proof.failed" and "realtime" in res.findings[0].message
    assert not (project / "supabase" / "migrations").exists()  # never written
    assert res.next_steps == []  # no offer to write a plan it refuses to write
    step = next(s for s in res.data["steps"] if "ADD COLUMN b" in s["sql"])
    assert "fails when the table has rows" in step["note"]


def test_cli_json(run_sage, db_url, db, project):
    db.execute("create table public.x (id int)")
    proc = run_sage("run", "*compare-schemas local local", "--json", cwd=project, env={"SAGE_LOCAL_DB_URL": db_url})
    assert proc.returncode == 0, proc.stdout + proc.stderr
    data = json.loads(proc.stdout)
    assert data["status"] == "ok" and data["data"]["steps"] == []


def test_own_snapshot_is_empty_diff(make_session, db_url, db, project):
    """A snapshot taken like *snapshot takes it (pg_dump -n public, quoted identifiers) equals its database."""
    import subprocess

    from sage_agent.db.binaries import find_binary
    from sage_agent.db.tools import tool_env

    db.execute("create type public.kind as enum ('a', 'b');"
               "create table public.items (id bigint generated always as identity primary key, k public.kind,"
               " name text not null default '', owner uuid);"
               "alter table public.items enable row level security;"
               "create policy mine on public.items for select to authenticated using ((select auth.uid()) = owner);"
               "create view public.names as select name from public.items;"
               "comment on table public.items is 'things'")
    folder = project / "supabase" / "snapshots"
    folder.mkdir(parents=True)
    subprocess.run([str(find_binary("pg_dump", 18)), "--schema-only", "--quote-all-identifiers", "-n", '"public"',
                    "-f", str(folder / "base.sql")], env=tool_env(db_url), check=True)
    out = make_session(db_url, yes=True).run_line("*compare-schemas local base")
    assert out.exit_code == 0, out.error
    assert out.result.data["drift"] == [], out.result.data["drift"]
    # and a change after the snapshot shows up as drift, with a proven plan back to the snapshot
    db.execute("alter table public.items add column extra int; drop policy mine on public.items")
    out = make_session(db_url, yes=True).run_line("*compare-schemas local base")
    assert out.result.data["proven"]
    sql = out.result.data["sql"]
    assert "DROP COLUMN extra" in sql and "CREATE POLICY mine" in sql


def test_source_that_cannot_be_copied_still_shows_drift(make_session, db_url, db, project, monkeypatch):
    """A uses a type from a managed schema the shadow lacks: no shadow copy, so the plan is shown NOT proven."""
    from sage_agent.ops.schema import compare as compare_mod
    monkeypatch.setattr(compare_mod, "TEMPLATE_COPY_MAX_BYTES", -1)  # force pg_dump + load (remote A)
    db.execute("create schema realtime; create type realtime.k as enum ('a'); create table public.t (k realtime.k)")
    (project / "supabase" / "migrations").mkdir(parents=True)
    out = make_session(db_url, yes=True).run_line("*compare-schemas local migrations")
    assert out.exit_code == 4, out.error
    res = out.result
    assert res.status == "warning" and "NOT proven" in res.summary
    assert res.findings[0].rule == "proof.no_shadow"
    assert any(d["object"] == "public.t" and d["change"] == "extra" for d in res.data["drift"])


def test_pg15_databases_compare_and_prove_on_the_pg18_shadow(make_session, pg15_server, project):
    """PG15 prints view definitions differently from the PG18 shadow: copies are compared, only real drift shows."""
    from sage_agent.db.shadow import create_database, drop_database

    urls = []
    try:
        for i, extra in enumerate(("", ", c text")):
            url = create_database(pg15_server, f"x15_{i}")
            with psycopg.connect(url, autocommit=True) as conn:
                conn.execute(f"create table public.t (a int, b int{extra});"
                             "create view public.v as select t.a, t.b from public.t where t.a > 0")
            urls.append(url)
        out = make_session(urls[0], yes=True).run_line(f"*compare-schemas {urls[0]} {urls[1]}")
    finally:
        for i in range(len(urls)):
            drop_database(pg15_server, f"x15_{i}")
    assert out.exit_code == 4, out.error
    res = out.result
    assert [(d["kind"], d["object"]) for d in res.data["drift"]] == [("column", "public.t.c")]
    assert res.data["proven"] is True
    assert any("PostgreSQL 15" in n for n in res.notes)


def test_plan_is_linted_with_sqlkit(make_session, db_url, db, pg_server):
    from sage_agent.db.shadow import create_database, drop_database

    db.execute("create table public.t (a int, b text)")
    other = create_database(pg_server.url(), "lint_b")
    try:
        with psycopg.connect(other, autocommit=True) as conn:
            conn.execute("create table public.t (a int, b text); create index t_b on public.t (b);"
                         "create table public.n (id int primary key)")
        out = make_session(db_url, yes=True).run_line(f"*compare-schemas local {other}")
    finally:
        drop_database(pg_server.url(), "lint_b")
    rules = {(f.rule, f.location) for f in out.result.findings}
    assert ("lint.require-concurrent-index-creation", "public.t_b") in rules
    assert not any(loc and loc.startswith("public.n") for _, loc in rules)  # a new table is not a risk


def test_enum_values_go_to_their_own_migration_file(make_session, db_url, db, project):
    db.execute("create type public.mood as enum ('sad', 'happy'); create table public.m (v public.mood)")
    mig = project / "supabase" / "migrations"
    _write(project, "supabase/migrations/20240101000000_mood.sql",
           "create type public.mood as enum ('sad', 'ok', 'happy');\n"
           "create table public.m (v public.mood default 'ok');\n")
    out = make_session(db_url, yes=True).run_line("*compare-schemas local migrations --write-migration --name mood")
    assert out.exit_code == 4, out.error
    assert out.result.data["proven"]
    written = sorted(p.name for p in mig.glob("*.sql") if not p.name.startswith("20240101"))
    assert len(written) == 2 and written[0].endswith("_mood_enum_values.sql") and written[1].endswith("_mood.sql")
    assert "ADD VALUE 'ok'" in (mig / written[0]).read_text()
    body = (mig / written[1]).read_text()
    assert "ADD VALUE" not in body and "SET DEFAULT 'ok'" in body and "lock_timeout" in body


def test_snapshot_of_itself_has_no_phantom_privileges(make_session, db_url, db, project):
    """The shadow that loads a snapshot adds no privileges of its own (the baseline's default privileges
    would grant anon EXECUTE on a SECURITY DEFINER function the user had locked down)."""
    import subprocess

    from sage_agent.db.binaries import find_binary
    from sage_agent.db.tools import tool_env

    db.execute("create table public.profiles (id uuid primary key, name text);"
               "create function public.handle_new_user() returns trigger language plpgsql security definer "
               "set search_path = '' as $$ begin return new; end $$;"
               "revoke execute on function public.handle_new_user() from public, anon, authenticated;"
               "revoke all on public.profiles from anon;"
               "create sequence public.counter;")
    folder = project / "supabase" / "snapshots"
    folder.mkdir(parents=True)
    subprocess.run([str(find_binary("pg_dump", 18)), "--schema-only", "-n", "public", "-f", str(folder / "now.sql")],
                   env=tool_env(db_url), check=True)
    out = make_session(db_url, yes=True).run_line("*compare-schemas local now")
    assert out.exit_code == 0, (out.error, out.result.data["drift"] if out.result else None)
    assert out.result.summary.startswith("No drift") and "dumps are equal" in out.result.summary
    assert out.result.data["drift"] == [] and out.result.data["dump_missing"] == []
    # and the other direction: the snapshot as A, the database as B
    out = make_session(db_url, yes=True).run_line("*compare-schemas now local")
    assert out.exit_code == 0 and out.result.data["steps"] == []


def test_no_drift_only_when_the_dumps_are_equal(make_session, db_url, db, pg_server):
    """Column order is outside the model (and PostgreSQL cannot reorder columns): the dumps differ, so the
    answer is drift (exit 4) with the differing statements, never 'No drift'."""
    from sage_agent.db.shadow import create_database, drop_database

    db.execute("create table public.t (a int, c int, b int)")
    other = create_database(pg_server.url(), "order_b")
    try:
        with psycopg.connect(other, autocommit=True) as conn:
            conn.execute("create table public.t (a int, b int, c int)")
        out = make_session(db_url, yes=True).run_line(f"*compare-schemas local {other}")
    finally:
        drop_database(pg_server.url(), "order_b")
    assert out.exit_code == 4
    res = out.result
    assert not res.summary.startswith("No drift") and "NOT PROVEN" in res.summary
    assert res.findings[0].rule == "proof.dump_differs"
    lines = [row[1] for table in res.tables for row in table.rows]
    assert any("b integer," in line and "c integer" in line for line in lines)


def test_type_change_without_a_cast_is_blocked(make_session, db_url, db, pg_server, project):
    from sage_agent.db.shadow import create_database, drop_database

    db.execute("create table public.ev (id int primary key, at bigint)")
    other = create_database(pg_server.url(), "cast_b")
    try:
        with psycopg.connect(other, autocommit=True) as conn:
            conn.execute("create table public.ev (id int primary key, at timestamp)")
        out = make_session(db_url, yes=True).run_line(f"*compare-schemas local {other} --write-migration")
    finally:
        drop_database(pg_server.url(), "cast_b")
    assert out.exit_code == 4
    res = out.result
    assert "BLOCKED" in res.summary and res.data["proven"] is False
    blocked = res.findings[0]
    assert blocked.rule == "plan.blocked" and "no cast from bigint to timestamp" in blocked.message
    step = next(s for s in res.data["steps"] if "TYPE timestamp" in s["sql"])
    assert step["blocked"] is True
    assert not (project / "supabase" / "migrations").exists()

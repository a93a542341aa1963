"""*snapshot: files, metadata, what is covered, bad names."""

import json

import pytest

from sage_agent.db.redact import redact
from sage_agent.session.machine import EXIT_OK, EXIT_USAGE


def setup_schema(db):
    db.execute("""
        create table public.items (id bigint generated always as identity primary key, name text not null);
        insert into public.items (name) values ('a'), ('b'), ('c');
        create schema app;
        create table app.notes (id int primary key, body text);
        insert into app.notes values (1, 'x');
        create schema supabase_migrations;
        create table supabase_migrations.schema_migrations (version text primary key, statements text[], name text);
        insert into supabase_migrations.schema_migrations values ('20250101000000', '{}', 'init');
    """)


def test_snapshot_files_and_metadata(make_session, db_url, db, project):
    setup_schema(db)
    session = make_session(db_url)
    out = session.run_line("*snapshot base")
    assert out.exit_code == EXIT_OK, out.error
    folder = project / "supabase" / "snapshots"
    assert (folder / ".gitignore").read_text().startswith("*")
    meta = json.loads((folder / "base.json").read_text())
    assert meta["name"] == "base" and meta["type"] == "schema-only"
    assert meta["tables"] == ["app.notes", "public.items"]
    assert meta["row_counts"] == {"app.notes": 1, "public.items": 3, "supabase_migrations.schema_migrations": 1}
    assert meta["schemas"] == ["app", "public"] and meta["history_included"] is True
    assert meta["server_version"].startswith("18")
    assert meta["db_url"] == redact(db_url) and ":***@" in meta["db_url"]  # the password never reaches the file
    assert "postgres:postgres@" not in (folder / "base.json").read_text()
    sql = (folder / "base.sql").read_text()
    import hashlib
    assert meta["sha256"] == hashlib.sha256((folder / "base.sql").read_bytes()).hexdigest()
    assert meta["size_bytes"] == (folder / "base.sql").stat().st_size
    assert '"public"."items"' in sql and '"app"."notes"' in sql
    assert "20250101000000" in sql  # the history travels with data even in schema-only mode
    assert "'a'" not in sql and "\ta\n" not in sql  # no user rows in schema-only
    assert '"auth"."users"' not in sql  # Supabase-managed schemas are not the user's
    assert out.result.facts["tables"] == 2


def test_snapshot_with_data_and_default_name(make_session, db_url, db, project):
    setup_schema(db)
    out = make_session(db_url).run_line("*snapshot --mode with-data")
    assert out.exit_code == EXIT_OK, out.error
    name = out.result.facts["name"]
    assert name.startswith("snapshot_") and len(name) == len("snapshot_20250101_120000")
    sql = (project / "supabase" / "snapshots" / f"{name}.sql").read_text()
    assert 'COPY "public"."items" ("id", "name") FROM stdin;\n1\ta\n2\tb\n3\tc\n\\.\n' in sql


@pytest.mark.parametrize("bad", ["../x", "a/b", "..", ".hidden", "a..b", "x" * 101, "a\\b", "semi;colon"])
def test_bad_names_rejected(make_session, db_url, project, bad):
    out = make_session(db_url).run_task(make_session(db_url).resolve("snapshot"), {"name": bad})
    assert out.exit_code == EXIT_USAGE, out.error
    assert "invalid snapshot name" in out.error
    folder = project / "supabase" / "snapshots"
    assert not folder.exists() or not list(folder.glob("*.sql"))
    assert not (project.parent / "x.sql").exists()


def test_empty_and_existing_name(make_session, db_url, db, project):
    from sage_agent.ops.result import OpError
    from sage_agent.ops.snapshots.store import validate_name

    with pytest.raises(OpError, match="empty"):
        validate_name("  ")
    session = make_session(db_url)
    assert session.run_line("*snapshot one").exit_code == EXIT_OK
    before = (project / "supabase/snapshots/one.sql").read_bytes()
    db.execute("create table public.later (id int)")
    out = session.run_line("*snapshot one")
    assert out.exit_code == EXIT_USAGE and "already exists" in out.error
    assert (project / "supabase/snapshots/one.sql").read_bytes() == before


def test_take_snapshot_api(make_session, db_url, db, project):
    from sage_agent.ops.snapshots.store import list_snapshots, load_snapshot_meta, take_snapshot

    setup_schema(db)
    session = make_session(db_url)
    session.run_line("*snapshot first")
    ctx = session.last_context
    meta = take_snapshot(ctx, with_data=True, prefix="before_apply")
    assert meta.name.startswith("before_apply_") and meta.type == "with-data" and meta.sql_path.is_file()
    again = take_snapshot(ctx, with_data=True, prefix="before_apply")
    assert again.name != meta.name
    loaded = load_snapshot_meta(project, meta.name)
    assert loaded.sha256 == meta.sha256 and loaded.row_counts == meta.row_counts
    assert [m.name for m in list_snapshots(project)][0] == "first"


def test_dump_inventory_compare():
    from sage_agent.ops.snapshots.dumpdiff import compare, describe, inventory, normalize_dump

    a = """\\restrict abc
--
-- Name: t; Type: TABLE; Schema: public; Owner: postgres
--
CREATE TABLE "public"."t" ("id" integer);
--
-- Data for Name: t; Type: TABLE DATA; Schema: public; Owner: postgres
--
COPY "public"."t" ("id") FROM stdin;
1
\\.
--
-- Name: TABLE "t"; Type: ACL; Schema: public; Owner: postgres
--
GRANT ALL ON TABLE "public"."t" TO "anon";
\\unrestrict abc
"""
    b = a.replace('("id" integer)', '("id" bigint)').replace("abc", "xyz")
    inv_a, inv_b = inventory(a.splitlines()), inventory(b.splitlines())
    assert ("DATA TABLE DATA", "public", "t") not in inv_a
    diff = compare(inv_a, inv_b)
    assert diff == {"added": [], "removed": [], "changed": [("TABLE", "public", "t")]}
    assert describe(("ACL", "public", 'TABLE "t"')) == "grants on table public.t"
    assert normalize_dump(a.replace("abc", "zzz")) == normalize_dump(a)

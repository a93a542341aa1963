"""The user's part of Supabase Storage in snapshots and *compare-schemas: the RLS policies on storage tables
are kept, planned and proven; the platform's storage objects (tables, functions, triggers) never appear."""

from __future__ import annotations

import psycopg

from sage_agent.db.shadow import create_database, drop_database

EXIT_OK = 0

POLICIES = """
create function public.is_editor() returns boolean language sql stable as 'select true';
insert into storage.buckets (id, name, public) values ('avatars', 'avatars', false);
create policy "Avatars readable" on storage.objects for select to authenticated using (bucket_id = 'avatars');
create policy editors_write on storage.objects for insert to authenticated
  with check (bucket_id = 'avatars' and public.is_editor());
comment on policy editors_write on storage.objects is 'editors upload avatars';
"""


def _policies(db) -> dict[str, str]:
    rows = db.execute("select policyname, coalesce(qual, '') || '|' || coalesce(with_check, '') from pg_policies "
                      "where schemaname = 'storage' order by 1").fetchall()
    return dict(rows)


def test_snapshot_keeps_storage_policies_and_nothing_else_of_storage(make_session, db_url, db, project):
    db.execute(POLICIES)
    out = make_session(db_url).run_line("*snapshot s1")
    assert out.exit_code == EXIT_OK, out.error
    text = (project / "supabase/snapshots/s1.sql").read_text()
    assert 'CREATE POLICY "Avatars readable" ON "storage"."objects"' in text
    assert 'CREATE POLICY "editors_write" ON "storage"."objects"' in text
    assert "COMMENT ON POLICY \"editors_write\" ON \"storage\".\"objects\" IS 'editors upload avatars'" in text
    # the platform's storage schema stays out: no tables, functions, triggers or grants of its own
    for platform in ('CREATE TABLE "storage".', 'CREATE FUNCTION "storage".', 'CREATE TRIGGER',
                     'ON TABLE "storage"', "INSERT INTO \"storage\""):
        assert platform not in text, platform
    meta = (project / "supabase/snapshots/s1.json").read_text()
    assert '"storage_policies": 2' in meta


def test_rollback_puts_the_snapshots_storage_policies_back(make_session, db_url, db, project):
    db.execute(POLICIES)
    before = _policies(db)
    session = make_session(db_url, confirm=("REPLACE",))
    assert session.run_line("*snapshot s1").exit_code == EXIT_OK
    # after the snapshot: one policy re-made, one changed, one added. editors_write uses public.is_editor():
    # the rollback's DROP SCHEMA public CASCADE takes it along, and the snapshot's copy must come back once
    db.execute("""drop policy "Avatars readable" on storage.objects;
                  create policy "Avatars readable" on storage.objects for select to anon using (true);
                  alter policy editors_write on storage.objects with check (public.is_editor());
                  create policy later on storage.buckets for select to authenticated using (true)""")
    out = session.run_line("*rollback s1 --replace")
    assert out.exit_code == EXIT_OK, out.error
    assert _policies(db) == before
    assert db.execute("select obj_description(oid, 'pg_policy') from pg_policy where polname = 'editors_write'"
                      ).fetchone()[0] == "editors upload avatars"
    # the bucket (a row) and the platform's objects are untouched
    assert db.execute("select count(*) from storage.buckets").fetchone()[0] == 1


def test_compare_schemas_plans_and_proves_storage_policies(make_session, db_url, db, pg_server):
    db.execute("create function public.is_editor() returns boolean language sql stable as 'select true'")
    other = create_database(pg_server.url(), "t_storage_b")
    try:
        with psycopg.connect(other, autocommit=True) as b:
            b.execute(POLICIES)
        out = make_session(db_url, yes=True).run_line(f"*compare-schemas local {other}")
        assert out.exit_code == 4, out.error
        data = out.result.data
        drift = {(d["kind"], d["object"], d["change"]) for d in data["drift"]}
        assert drift == {("policy", 'storage.objects."Avatars readable"', "missing"),
                         ("policy", "storage.objects.editors_write", "missing")}
        sql = "\n".join(s["sql"] for s in data["steps"])
        assert 'CREATE POLICY "Avatars readable" ON storage.objects' in sql
        assert "COMMENT ON POLICY editors_write ON storage.objects" in sql
        assert data["proven"] is True, out.result.summary
        # and the other way: B's policies are extra in A
        out = make_session(other, yes=True).run_line(f"*compare-schemas local {db_url}")
        assert out.exit_code == 4, out.error
        assert {s["sql"] for s in out.result.data["steps"] if s["kind"] == "policy"} == {
            'DROP POLICY "Avatars readable" ON storage.objects', "DROP POLICY editors_write ON storage.objects"}
        assert out.result.data["proven"] is True
    finally:
        drop_database(pg_server.url(), "t_storage_b")


def test_database_equals_its_own_snapshot_with_storage_policies(make_session, db_url, db, project):
    db.execute(POLICIES)
    session = make_session(db_url, yes=True)
    assert session.run_line("*snapshot s1").exit_code == EXIT_OK
    out = session.run_line("*compare-schemas local s1")
    assert out.exit_code == EXIT_OK, (out.error, out.result and out.result.data["drift"])
    assert out.result.summary.startswith("No drift")
    # a policy changed since the snapshot is drift, and the plan back is proven
    db.execute('alter policy "Avatars readable" on storage.objects using (bucket_id = \'other\')')
    out = session.run_line("*compare-schemas local s1")
    assert out.exit_code == 4, out.error
    assert [(d["kind"], d["change"]) for d in out.result.data["drift"]] == [("policy", "different")]
    assert out.result.data["proven"] is True


def test_proof_dump_and_schema_copy_carry_storage_policies(db_url, db, pg_server, tmp_path):
    from sage_agent.db.shadow import load_sql_file
    from sage_agent.ops.schema.compare import dump_schema, neutralize_privileges, normalized_dump

    assert not [s for s in normalized_dump(db_url) if "storage" in s]
    db.execute(POLICIES)
    dump = normalized_dump(db_url)
    assert [s for s in dump if "storage" in s] == [
        'COMMENT ON POLICY editors_write ON storage.objects IS \'editors upload avatars\'',
        'CREATE POLICY "Avatars readable" ON storage.objects FOR SELECT TO authenticated'
        " USING ((bucket_id = 'avatars'::text))",
        "CREATE POLICY editors_write ON storage.objects FOR INSERT TO authenticated"
        " WITH CHECK (((bucket_id = 'avatars'::text) AND public.is_editor()))"]
    # the pg_dump copy of a schema (a proof's shadow when A is on another server) loads them too
    dump_schema(db_url, tmp_path / "a.sql")
    copy = create_database(pg_server.url(), "t_storage_copy")
    try:
        neutralize_privileges(copy)
        load_sql_file(copy, tmp_path / "a.sql")
        assert normalized_dump(copy) == dump
    finally:
        drop_database(pg_server.url(), "t_storage_copy")

"""Proof by impersonation and *policy-apply end to end on real databases."""

from __future__ import annotations

SCHEMA = """
create table public.todos (id bigint generated always as identity primary key,
  user_id uuid not null references auth.users (id), title text not null, done boolean not null default false);
alter table public.todos enable row level security;
create policy todos_own on public.todos for all to authenticated
  using ((select auth.uid()) = user_id) with check ((select auth.uid()) = user_id);
create table public.notes (id bigint generated always as identity primary key,
  owner_id uuid not null references auth.users (id), body varchar(200) not null, created_at timestamptz not null default now());
"""


def test_verify_finds_a_planted_leak_and_never_writes_the_target(make_session, db_url, db):
    db.execute(SCHEMA)
    db.execute("create policy leak on public.todos for select to authenticated using (true)")
    before = db.execute("select count(*) from public.todos").fetchone()[0]
    out = make_session(db_url).run_line("*rls-audit --verify")
    assert out.exit_code == 0, out.error
    leaks = out.result.data["proof"]["leaks"]
    assert "authenticated user A can read 5 of user B's rows in public.todos" in leaks
    assert "authenticated user B can read 5 of user A's rows in public.todos" in leaks
    assert not any("update" in x or "delete" in x for x in leaks if "todos" in x)  # writes stay owner-only
    assert any(x.startswith("anon can read 10 of 10 rows in public.notes") for x in leaks)  # RLS off
    matrix = {(r[0], r[1]): r for r in out.result.data["proof"]["matrix"]}
    assert matrix[("public.todos", "anon")][2] == 0
    assert matrix[("public.todos", "user A")][3] == "allowed" and matrix[("public.todos", "user A")][4] == "denied"
    # the target is untouched: no synthetic users, no rows
    assert db.execute("select count(*) from public.todos").fetchone()[0] == before == 0
    assert db.execute("select count(*) from auth.users").fetchone()[0] == 0


def test_policy_apply_end_to_end(make_session, db_url, db, project):
    db.execute(SCHEMA)
    out = make_session(db_url, yes=True).run_line("*policy-apply notes --owner-column owner_id")
    assert out.exit_code == 0, out.error
    files = list((project / "supabase" / "migrations").glob("*_rls_notes.sql"))
    assert len(files) == 1 and "create policy" in files[0].read_text()
    version = files[0].name.split("_")[0]
    row = db.execute("select name, array_length(statements, 1) from supabase_migrations.schema_migrations "
                     "where version = %s", (version,)).fetchone()
    assert row[0] == "rls_notes" and row[1] > 5
    assert db.execute("select relrowsecurity from pg_class where oid = 'public.notes'::regclass").fetchone()[0]
    assert db.execute("select count(*) from pg_policies where tablename = 'notes'").fetchone()[0] == 4
    matrix = {r[1]: r for r in out.result.data["matrix"]}
    assert matrix["user A"][2] == 5 and matrix["user A"][3] == "allowed" and matrix["user A"][4] == "denied"
    # the audit now proves no leak on notes
    audit = make_session(db_url).run_line("*rls-audit --verify")
    assert not [x for x in audit.result.data["proof"]["leaks"] if "notes" in x]


def test_policy_apply_granular_with_roles_and_commands(make_session, db_url, db, project):
    db.execute(SCHEMA)
    out = make_session(db_url, yes=True).run_line(
        "*policy-apply notes granular --owner-column owner_id --commands select,insert")
    assert out.exit_code == 0, out.error
    cmds = {r[0] for r in db.execute("select cmd from pg_policies where tablename = 'notes'").fetchall()}
    assert cmds == {"SELECT", "INSERT"}


def test_policy_apply_bad_input_writes_nothing(make_session, db_url, db, project):
    db.execute(SCHEMA)
    session = make_session(db_url, yes=True)
    for line, message in (("*policy-apply nosuch", "table public.nosuch does not exist"),
                          ("*policy-apply notes --schema nope", "unknown schema: nope"),
                          ("*policy-apply notes", "has no owner column 'user_id'"),
                          ("*policy-apply notes --owner-column body", "is character varying, not uuid"),
                          ("*policy-apply notes bogus", "mode: choose one of kiss, granular")):
        out = session.run_line(line)
        assert out.exit_code == 2, (line, out.error)
        assert message in out.error, (line, out.error)
    assert not (project / "supabase" / "migrations").exists()
    assert db.execute("select count(*) from pg_policies where tablename = 'notes'").fetchone()[0] == 0
    assert db.execute("select to_regclass('supabase_migrations.schema_migrations')").fetchone()[0] is None


def test_policy_apply_needs_confirmation_headless(make_session, db_url, db, project):
    db.execute(SCHEMA)
    out = make_session(db_url).run_line("*policy-apply notes --owner-column owner_id")
    assert out.exit_code == 3 and "--yes" in out.error
    assert not list((project / "supabase" / "migrations").glob("*.sql")) if (project / "supabase").exists() else True
    assert db.execute("select count(*) from pg_policies where tablename = 'notes'").fetchone()[0] == 0


def test_policy_apply_asks_for_the_owner_column_interactively(make_session, db_url, db, project):
    db.execute(SCHEMA)
    session = make_session(db_url, answers=["owner_id", "y"])
    out = session.run_line("*policy-apply notes")
    assert out.exit_code == 0, out.error
    assert "owner_id" in out.result.data["sql"]
    assert db.execute("select count(*) from pg_policies where tablename = 'notes'").fetchone()[0] == 4


TENANT_SCHEMA = """
create table public.docs (id bigint generated always as identity primary key,
  owner_id uuid not null references auth.users (id), tenant_id uuid not null, body text not null);
"""


def test_policy_apply_with_a_tenant_column_is_proven_with_tenant_claims(make_session, db_url, db, project):
    """Users A and B are in two tenants: members see their own tenant's rows (5), never the other's."""
    db.execute(TENANT_SCHEMA)
    out = make_session(db_url, yes=True).run_line(
        "*policy-apply docs granular --owner-column owner_id --tenant-column tenant_id")
    assert out.exit_code == 0, out.error
    matrix = {r[1]: r for r in out.result.data["matrix"]}
    # without a tenant claim the policy would deny everyone (0 rows, own insert denied): it is exercised instead
    assert matrix["user A"][2] == 5 and matrix["user A"][3] == "allowed" and matrix["user A"][4] == "denied"
    assert matrix["user B"][5] == 0 and matrix["user B"][6] == 0
    assert any("tenant column tenant_id" in n for n in out.result.notes)
    # *rls-audit --verify finds the tenant column itself (named in the policies) and sees no leak
    audit = make_session(db_url).run_line("*rls-audit --verify")
    assert not [x for x in audit.result.data["proof"]["leaks"] if "docs" in x]


def test_verify_catches_a_cross_tenant_leak(make_session, db_url, db):
    """A read policy that checks the tenant claim against itself, not the row, lets every tenant read all rows."""
    db.execute(TENANT_SCHEMA)
    db.execute("alter table public.docs enable row level security;"
               "create policy docs_read on public.docs for select to authenticated "
               "using (((select auth.jwt()) ->> 'tenant_id') is not null and tenant_id is not null);"
               "create policy docs_write on public.docs for insert to authenticated "
               "with check (((select auth.jwt()) ->> 'tenant_id')::uuid = tenant_id and (select auth.uid()) = owner_id);")
    out = make_session(db_url).run_line("*rls-audit --verify")
    leaks = out.result.data["proof"]["leaks"]
    assert "authenticated user A can read 5 of user B's rows in public.docs" in leaks
    matrix = {(r[0], r[1]): r for r in out.result.data["proof"]["matrix"]}
    assert matrix[("public.docs", "user A")][3] == "allowed"  # own tenant, own row
    assert matrix[("public.docs", "user A")][4] == "denied"  # a row for user B in tenant B

"""*rls-audit lints on real schemas: each lint positive and negative, plain-PostgreSQL skips, and the same
findings as the real `supabase db advisors` for every lint name both implement."""

from __future__ import annotations

import json
import subprocess

import pytest

from sage_agent.ops.security.lints import LINTS, SECURITY_LINTS, run_lints

# Every lint fires at least once on this schema (object names say which lint they trigger).
POSITIVE = """
create table public.no_rls (id bigint primary key, password text);
create table public.pol_no_rls (id bigint primary key, user_id uuid);
create policy p on public.pol_no_rls for select using (user_id = auth.uid());
alter table public.pol_no_rls disable row level security;
create table public.rls_no_pol (id bigint primary key);
alter table public.rls_no_pol enable row level security;
create table public.always_true (id bigint primary key, user_id uuid);
alter table public.always_true enable row level security;
create policy always_true_del on public.always_true for delete to authenticated using (true);
create policy sel_a on public.always_true for select to authenticated using ((select auth.uid()) = user_id);
create policy sel_b on public.always_true for select to authenticated using ((select auth.uid()) is not null);
create table public.initplan (id bigint primary key, user_id uuid);
alter table public.initplan enable row level security;
create policy slow on public.initplan for select to authenticated using (auth.uid() = user_id);
create table public.meta (id bigint primary key, user_id uuid);
alter table public.meta enable row level security;
create policy meta_pol on public.meta for select to authenticated
  using (((select auth.jwt()) -> 'user_metadata' ->> 'role') = 'admin');
create view public.users_view as select id, email from auth.users;
create view public.definer_view as select id from public.rls_no_pol;
create function public.mutable() returns int language sql as 'select 1';
create function public.definer() returns int language sql security definer set search_path = '' as 'select 1';
grant execute on function public.definer() to anon, authenticated;
create extension if not exists pg_trgm schema public;
create materialized view public.mv as select 1 as x;
create extension if not exists postgres_fdw;
create server loop foreign data wrapper postgres_fdw;
create foreign table public.ft (x int) server loop;
grant select on public.mv, public.ft, public.users_view, public.definer_view to anon, authenticated;
"""

# A well-configured schema: none of the security lints fire.
NEGATIVE = """
create table public.todos (id bigint generated always as identity primary key,
  user_id uuid not null references auth.users (id), title text not null);
create index on public.todos (user_id);
alter table public.todos enable row level security;
create policy todos_select on public.todos for select to authenticated using ((select auth.uid()) = user_id);
create policy todos_insert on public.todos for insert to authenticated with check ((select auth.uid()) = user_id);
create view public.todo_titles with (security_invoker = true) as select id, title from public.todos;
create function public.safe() returns int language sql set search_path = '' as 'select 1';
create function public.definer() returns int language sql security definer set search_path = '' as 'select 1';
revoke execute on function public.definer() from public, anon, authenticated;
create schema private;
create materialized view private.mv as select 1 as x;
"""


def _names(run) -> dict[str, set[str]]:
    out: dict[str, set[str]] = {}
    for f in run.lints:
        out.setdefault(f["name"], set()).add(f"{f['metadata']['schema']}.{f['metadata']['name']}")
    return out


def test_every_security_lint_fires_on_its_positive_case(db):
    db.execute(POSITIVE)
    run = run_lints(db, list(LINTS))
    found = _names(run)
    expected = {
        "rls_disabled_in_public": "public.no_rls", "policy_exists_rls_disabled": "public.pol_no_rls",
        "rls_enabled_no_policy": "public.rls_no_pol", "rls_policy_always_true": "public.always_true",
        "multiple_permissive_policies": "public.always_true", "auth_rls_initplan": "public.initplan",
        "rls_references_user_metadata": "public.meta", "auth_users_exposed": "public.users_view",
        "security_definer_view": "public.definer_view", "function_search_path_mutable": "public.mutable",
        "anon_security_definer_function_executable": "public.definer",
        "authenticated_security_definer_function_executable": "public.definer",
        "sensitive_columns_exposed": "public.no_rls", "extension_in_public": "public.pg_trgm",
        "materialized_view_in_api": "public.mv", "foreign_table_in_api": "public.ft",
    }
    for name, obj in expected.items():
        assert obj in found.get(name, set()), (name, found.get(name))
    lint = next(f for f in run.lints if f["name"] == "rls_disabled_in_public")
    assert set(lint) == {"name", "title", "level", "facing", "categories", "description", "detail", "remediation",
                         "metadata", "cache_key"}
    assert lint["metadata"] == {"schema": "public", "name": "no_rls", "type": "table"}
    assert lint["level"] == "ERROR" and lint["cache_key"] == "rls_disabled_in_public_public_no_rls"


def test_no_security_lint_fires_on_a_clean_schema(db):
    db.execute(NEGATIVE)
    run = run_lints(db, SECURITY_LINTS)
    assert run.lints == [], [f["cache_key"] for f in run.lints]
    assert run.skipped == {}


def test_exposed_schemas_follow_pgrst_setting(db):
    db.execute("create schema api; create table api.t (id int primary key); grant usage on schema api to anon;"
               "grant select on api.t to anon")
    assert "rls_disabled_in_public" not in _names(run_lints(db, ["rls_disabled_in_public"]))
    assert "api.t" in _names(run_lints(db, ["rls_disabled_in_public"], ["public", "api"]))["rls_disabled_in_public"]
    db.execute("select set_config('pgrst.db_schemas', 'public, api', false)")
    assert "api.t" in _names(run_lints(db, ["rls_disabled_in_public"]))["rls_disabled_in_public"]


def test_plain_postgres_without_supabase_roles_skips_with_reason(db, monkeypatch):
    import sage_agent.ops.security.lints as lints

    db.execute("create table public.t (id int primary key, user_id uuid); create policy p on public.t using (true)")
    monkeypatch.setattr(lints, "roles_present", lambda conn: set())
    run = lints.run_lints(db, SECURITY_LINTS)
    assert "rls_disabled_in_public" in run.skipped and "anon/authenticated" in run.skipped["rls_disabled_in_public"]
    assert "policy_exists_rls_disabled" in _names(run)  # what applies still runs


def test_rls_audit_json_and_unknown_schema(run_sage, project, db_url, db):
    db.execute(POSITIVE)
    proc = run_sage("run", "*rls-audit", "--json", "--db-url", db_url, cwd=project)
    doc = json.loads(proc.stdout)
    assert doc["operation"] == "db-rls-audit"
    names = {f["name"] for f in doc["data"]["lints"]}
    assert {"rls_disabled_in_public", "auth_users_exposed"} <= names
    cov = {c["table"]: c for c in doc["data"]["coverage"]}
    assert cov["always_true"]["rls"] and cov["always_true"]["policies"]["authenticated"]["delete"] == 1
    assert cov["no_rls"]["grants"]["anon"] == "SIUD"
    proc = run_sage("run", "*rls-audit nosuch", "--db-url", db_url, cwd=project)
    assert proc.returncode == 2 and "unknown schema: nosuch" in proc.stderr + proc.stdout


def _cli_findings(cli: str, url: str, cwd) -> set[tuple[str, str]]:
    proc = subprocess.run([cli, "db", "advisors", "--db-url", url, "--level", "info", "--output-format", "json"],
                          capture_output=True, text=True, cwd=cwd, timeout=120)
    assert proc.returncode == 0, proc.stderr
    return {(r["name"], r["cacheKey"]) for r in json.loads(proc.stdout)["results"]}


@pytest.mark.parametrize("schema", [POSITIVE, NEGATIVE], ids=["positive", "negative"])
def test_matches_supabase_db_advisors(supabase_cli, db_url, db, project, schema):
    """The real CLI (3.x) runs splinter against --db-url; every lint name both implement must agree exactly."""
    db.execute(schema)
    db.execute("create table public.parent (id bigint primary key); create table public.child (id bigint primary key,"
               " parent_id bigint references public.parent (id)); create index i1 on public.child (id, parent_id);"
               " create index i2 on public.child (id, parent_id); create table public.nopk (x int)")
    cli = _cli_findings(supabase_cli, db_url, project)
    ours = {(f["name"], f["cache_key"]) for f in run_lints(db, list(LINTS)).lints}
    common = {n for n, _ in cli} & set(LINTS)
    assert {"rls_disabled_in_public", "no_primary_key", "unindexed_foreign_keys", "duplicate_index"} <= common
    for name in sorted(set(LINTS)):
        mine = {k for n, k in ours if n == name}
        theirs = {k for n, k in cli if n == name}
        if name in {n for n, _ in cli} or mine:
            # lints the CLI 3.1 does not ship (anon/authenticated_security_definer_function_executable) are ours only
            if name.endswith("_security_definer_function_executable"):
                continue
            assert mine == theirs, (name, mine ^ theirs)


def test_lints_and_proof_on_postgres_15(pg15_url, make_session):
    import psycopg

    with psycopg.connect(pg15_url, autocommit=True) as conn:
        conn.execute(POSITIVE.split("create extension if not exists pg_trgm")[0])
        run = run_lints(conn, SECURITY_LINTS)
    found = _names(run)
    assert "public.definer_view" in found["security_definer_view"]
    assert "public.no_rls" in found["rls_disabled_in_public"]
    out = make_session(pg15_url).run_line("*rls-audit --verify")
    assert out.exit_code == 0, out.error
    assert "anon can read 10 of 10 rows in public.no_rls" in out.result.data["proof"]["leaks"]


def test_insecure_queue_matches_supabase_db_advisors(supabase_cli, db_url, db, project):
    """The CLI 3.x ships splinter's queue lint: on pgmq-shaped queue tables, with pgmq_public exposed for the
    database (as "Expose Queues via PostgREST" does), both report the same findings."""
    import psycopg

    db.execute("""create schema pgmq; create schema pgmq_public;
        create table pgmq.q_jobs (msg_id bigint primary key, read_ct int, enqueued_at timestamptz, vt timestamptz,
                                  message jsonb);
        create table pgmq.q_mail (msg_id bigint primary key, message jsonb);
        create table pgmq.a_jobs (msg_id bigint primary key, message jsonb);
        create table pgmq.qstats (n int);
        alter table pgmq.q_mail enable row level security;
        grant usage on schema pgmq, pgmq_public to anon, authenticated;
        grant select on pgmq.q_jobs, pgmq.q_mail, pgmq.a_jobs, pgmq.qstats to authenticated""")
    name = db.execute("select current_database()").fetchone()[0]
    db.execute(f"alter database {name} set pgrst.db_schemas = 'public, pgmq_public'")
    # the CLI sets pgrst.db_schemas from the project's [api] schemas for the lint session
    config = project / "supabase" / "config.toml"
    config.parent.mkdir(parents=True, exist_ok=True)
    config.write_text('project_id = "queues"\n\n[api]\nschemas = ["public", "graphql_public", "pgmq_public"]\n')
    cli = {k for n, k in _cli_findings(supabase_cli, db_url, project) if n == "insecure_queue_exposed_in_api"}
    with psycopg.connect(db_url, autocommit=True) as fresh:  # sees the database's setting
        ours = {f["cache_key"] for f in run_lints(fresh, ["insecure_queue_exposed_in_api"]).lints}
    # `like 'q_%'`: the underscore is a wildcard there, so qstats counts as a queue for both
    assert ours == cli == {"rls_disabled_in_public_pgmq_q_jobs", "rls_disabled_in_public_pgmq_qstats"}


def _rls_disabled(findings) -> set[str]:
    return {k for n, k in findings if n == "rls_disabled_in_public"}


def _cli_start(cli: str, url: str, cwd) -> subprocess.Popen:
    return subprocess.Popen([cli, "db", "advisors", "--db-url", url, "--level", "info", "--output-format", "json"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=cwd,
                            stdin=subprocess.DEVNULL)


def _cli_wait(proc: subprocess.Popen) -> set[tuple[str, str]]:
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    return {(r["name"], r["cacheKey"]) for r in json.loads(out)["results"]}


def test_a_local_project_lints_the_schemas_its_config_toml_exposes_as_the_cli(supabase_cli, make_session, db_url,
                                                                              db, project):
    """`supabase db advisors` (CLI 3.1) sets pgrst.db_schemas to config.toml's [api] schemas for a local
    database, and to nothing when [api] is disabled. *rls-audit on the project's local database reads the same
    file: the project is made by the real `supabase init`, then its schemas line is edited as a user would.
    The three configurations are three copies of the project, and the CLI lints them at the same time (each
    run is ~2 s of the CLI's own start-up CPU; the CLI sets the setting in its own session only)."""
    import shutil

    subprocess.run([supabase_cli, "init"], cwd=project, capture_output=True, text=True, timeout=120, check=True)
    written = (project / "supabase" / "config.toml").read_text()
    assert 'schemas = ["public", "graphql_public"]' in written  # what the CLI writes today
    db.execute("create table public.open (id int); create schema private; create table private.secrets (id int);"
               "grant usage on schema private to anon; grant select on private.secrets, public.open to anon")
    edited = {"as_written": written,  # public and graphql_public
              # private exposed, public not (pgrst.db_schemas is unset on this database)
              "private": written.replace('schemas = ["public", "graphql_public"]', 'schemas = ["graphql_public", " private"]'),
              "disabled": written.replace("[api]\nenabled = true", "[api]\nenabled = false", 1)}
    assert len(set(edited.values())) == 3  # each edit took
    dirs = {}
    for case, text in edited.items():
        dirs[case] = project if case == "as_written" else project.parent / f"project_{case}"
        if case != "as_written":
            shutil.copytree(project, dirs[case])
        (dirs[case] / "supabase" / "config.toml").write_text(text)
    running = {case: _cli_start(supabase_cli, db_url, d) for case, d in dirs.items()}
    ours, notes = {}, {}
    for case, d in dirs.items():
        out = make_session(db_url, project_dir=d).run_line("*rls-audit")
        assert out.exit_code == 0, out.error
        ours[case] = _rls_disabled({(f["name"], f["cache_key"]) for f in out.result.data["lints"]})
        notes[case] = out.result.notes
    cli = {case: _rls_disabled(_cli_wait(proc)) for case, proc in running.items()}
    assert ours["as_written"] == cli["as_written"] == {"rls_disabled_in_public_public_open"}
    assert notes["as_written"][0] == ("API-exposed schemas: public, graphql_public (supabase/config.toml [api] "
                                      "schemas, as `supabase db advisors` reads them for a local project)")
    assert ours["private"] == cli["private"] == {"rls_disabled_in_public_private_secrets"}
    assert ours["disabled"] == cli["disabled"] == set()
    assert notes["disabled"][0] == "API-exposed schemas: none ([api] enabled = false in supabase/config.toml)"
    # another environment is not this project's local stack: the database's own setting decides, [api] disabled
    out = make_session(db_url, env="prod", project_dir=dirs["disabled"]).run_line("*rls-audit")
    assert _rls_disabled({(f["name"], f["cache_key"]) for f in out.result.data["lints"]}) == {
        "rls_disabled_in_public_public_open"}

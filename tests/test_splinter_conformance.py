"""Conformance with splinter (supabase/splinter): each scenario its public tests (test/sql/*.sql with
test/expected/*.out) check, rewritten in our own SQL, with the findings splinter expects there: every one it
reports and none it does not. Each scenario runs in a transaction rolled back afterwards, as splinter's do."""

from __future__ import annotations

import pytest

from sage_agent.ops.security.lints import run_lints


def _findings(db, lint: str, exposed: list[str] | None = None) -> list[str]:
    run = run_lints(db, [lint], exposed)
    assert lint not in run.skipped, run.skipped
    return sorted(f["cache_key"] for f in run.lints)


@pytest.fixture
def tx(db):
    """Splinter's tests run inside begin ... rollback; we do the same on the test's own database."""
    db.execute("begin")
    yield db
    db.execute("rollback")


def test_0018_unsupported_reg_types_flags_seven_of_ten_reg_columns(tx):
    tx.execute("""create table public.reg_cols (id int primary key,
      ok1 regclass, ok2 regrole, ok3 regtype,
      b1 regcollation, b2 regconfig, b3 regdictionary, b4 regnamespace, b5 regoper, b6 regproc, b7 regprocedure)""")
    run = run_lints(tx, ["unsupported_reg_types"])
    keys = sorted(f["cache_key"] for f in run.lints)
    assert keys == [f"unsupported_reg_types_public_reg_cols_b{i}" for i in range(1, 8)]
    first = next(f for f in run.lints if f["metadata"]["column"] == "b1")
    assert first["detail"] == "Table \\`public.reg_cols\\` has a column \\`b1\\` with unsupported reg* type \\`regcollation\\`."
    assert first["level"] == "WARN" and first["metadata"]["schema"] == "public"


def test_0021_fkey_to_auth_unique_flags_unique_not_primary_key(tx):
    assert _findings(tx, "fkey_to_auth_unique") == []
    # auth.users.phone has a unique constraint on Supabase (email only a partial unique index: no FK can use it)
    tx.execute("create table public.profile (id uuid primary key,"
               " phone text not null references auth.users(phone))")
    expected = ["fkey_to_auth_unique_public_profile_profile_phone_fkey"]
    assert _findings(tx, "fkey_to_auth_unique") == expected
    # a foreign key to auth.users' primary key is the supported pattern: still one finding
    tx.execute("alter table public.profile add constraint profile_user_fk foreign key (id) references auth.users(id)")
    assert _findings(tx, "fkey_to_auth_unique") == expected
    tx.execute("drop table public.profile")
    assert _findings(tx, "fkey_to_auth_unique") == []


def test_0022_extension_versions_outdated(tx):
    available = tx.execute("select default_version from pg_available_extensions where name = 'amcheck'").fetchone()
    assert available is not None, "the embedded server ships contrib amcheck"
    assert _findings(tx, "extension_versions_outdated") == []
    tx.execute("create extension amcheck version '1.0'")
    run = run_lints(tx, ["extension_versions_outdated"])
    assert [f["cache_key"] for f in run.lints] == ["extension_versions_outdated_amcheck_1.0"]
    assert run.lints[0]["detail"].startswith(f"Extension `amcheck` is using version `1.0` but version `{available[0]}`")
    tx.execute("drop extension amcheck")
    # a version that is not in pg_available_extension_versions (pg_upgrade residue) is ignored
    tx.execute("create extension amcheck")
    tx.execute("update pg_extension set extversion = 'foo' where extname = 'amcheck'")
    assert _findings(tx, "extension_versions_outdated") == []


# storage.buckets and storage.objects (RLS on) come with every database's Supabase baseline
STORAGE = "select 1"

# (scenario, SQL after STORAGE, expected bucket ids) — one per case splinter's 0025 test checks.
BUCKET_SCENARIOS = [
    ("insert policy only", "insert into storage.buckets (id, name, public) values ('pub', 'Pub', true);"
     "create policy ins on storage.objects for insert to authenticated with check (bucket_id = 'pub')", []),
    ("select scoped to a prefix", "insert into storage.buckets (id, name, public) values ('pre', 'Pre', true);"
     "create policy s on storage.objects for select to authenticated using (bucket_id = 'pre' and name like 'p/%')", []),
    ("regex metacharacters matched literally", r"insert into storage.buckets (id, name, public) values ('a|b[1]^{x}\z', 'Meta', true);"
     r"create policy s on storage.objects for select to authenticated using (bucket_id = 'a|b[1]^{x}\z')",
     [r"a|b[1]^{x}\z"]),
    ("restrictive only", "insert into storage.buckets (id, name, public) values ('res', 'Res', true);"
     "create policy s on storage.objects as restrictive for select to authenticated using (bucket_id = 'res')", []),
    ("always true", "insert into storage.buckets (id, name, public) values ('tru', 'Tru', true);"
     "create policy s on storage.objects for select to authenticated using (true)", ["tru"]),
    ("for all", "insert into storage.buckets (id, name, public) values ('all', 'All', true);"
     "create policy s on storage.objects for all to authenticated using (bucket_id = 'all')", ["all"]),
    ("exact bucket match", "insert into storage.buckets (id, name, public) values ('l.b+1', 'LB', true);"
     "create policy s on storage.objects for select to authenticated using (bucket_id = 'l.b+1')", ["l.b+1"]),
    ("policy dropped", "insert into storage.buckets (id, name, public) values ('gone', 'Gone', true);"
     "create policy s on storage.objects for select to authenticated using (bucket_id = 'gone');"
     "drop policy s on storage.objects", []),
    ("private bucket", "insert into storage.buckets (id, name, public) values ('priv', 'Priv', false);"
     "create policy s on storage.objects for select to authenticated using (bucket_id = 'priv')", []),
    ("two buckets", "insert into storage.buckets (id, name, public) values ('alpha', 'A', true), ('omega', 'O', true);"
     "create policy a on storage.objects for select to authenticated using (bucket_id = 'alpha');"
     "create policy o on storage.objects for select to authenticated using (bucket_id = 'omega')", ["alpha", "omega"]),
]


def test_0025_no_findings_without_storage(db):
    run = run_lints(db, ["public_bucket_allows_listing"])
    assert run.lints == [] and run.skipped == {}


@pytest.mark.parametrize("scenario,sql,buckets", BUCKET_SCENARIOS, ids=[s[0] for s in BUCKET_SCENARIOS])
def test_0025_public_bucket_allows_listing(tx, scenario, sql, buckets):
    tx.execute(STORAGE)
    for stmt in sql.split(";"):
        tx.execute(stmt)
    assert _findings(tx, "public_bucket_allows_listing") == sorted(f"public_bucket_allows_listing_{b}" for b in buckets)


def test_0025_policies_on_one_bucket_aggregate(tx):
    tx.execute(STORAGE)
    tx.execute("insert into storage.buckets (id, name, public) values ('multi', 'Multi', true)")
    tx.execute("create policy pa on storage.objects for select to authenticated using (bucket_id = 'multi')")
    tx.execute("create policy pb on storage.objects for select to authenticated using ((bucket_id = 'multi'))")
    [f] = run_lints(tx, ["public_bucket_allows_listing"]).lints
    assert f["metadata"]["policy_count"] == 2 and f["metadata"]["policy_names"] == ["pa", "pb"]
    assert f["detail"].startswith("Public bucket `Multi` has 2 broad SELECT policies on `storage.objects` (pa, pb)")


# Staged scenarios from splinter's tests of lints DB Sage already had: each step's SQL, then the objects
# (metadata name) splinter's expected output lists after it.
STAGED = {
    "rls_disabled_in_public": [
        ("select 1", []),
        ("create table public.foo (it int primary key)", ["foo"]),
        ("alter table public.foo enable row level security", []),
        ("create schema xyz; create table xyz.bar (it int primary key)", []),  # xyz is not exposed
        # partitioned tables: splinter checks relkind 'r', so the partitions are findings, not the parent
        ("/* own */ create table public.ev (id int, at date) partition by range (at);"
         "create table public.ev_2026 partition of public.ev for values from ('2026-01-01') to ('2027-01-01')",
         ["ev_2026"]),
    ],
    "no_primary_key": [
        ("select 1", []),
        ("create table public.foo (id int primary key); create table public.bar (id int)", ["bar"]),
    ],
    "rls_enabled_no_policy": [
        ("create table public.blog (id int primary key); alter table public.blog enable row level security",
         ["blog"]),
        ("create policy none_shall_pass on public.blog for select using (false)", []),
    ],
    "policy_exists_rls_disabled": [
        ("create table public.blog (id int primary key);"
         "create policy sel on public.blog for select using (true);"
         "create policy al on public.blog for all using (true)", ["blog"]),
        ("alter table public.blog enable row level security", []),
    ],
    "unindexed_foreign_keys": [
        ("create table public.aaa (id int primary key);"
         "create table public.bbb (id int primary key, aaa_id int references public.aaa (id))", ["bbb"]),
        ("create index on public.bbb (aaa_id)", []),
        ("drop table public.bbb, public.aaa;"
         "create table public.aaa (foo int, bar int, primary key (foo, bar));"
         "create table public.bbb (id int primary key, foo int, bar int,"
         " foreign key (foo, bar) references public.aaa (foo, bar))", ["bbb"]),
        ("create index on public.bbb (bar, foo)", ["bbb"]),  # wrong column order does not cover
        ("create index on public.bbb (foo, bar)", []),
        ("create table public.tenant (id uuid primary key, name text not null);"
         "create table public.account (tenant_id uuid not null references public.tenant (id),"
         " user_id uuid not null, primary key (tenant_id, user_id))", []),  # covered by the primary key's prefix
    ],
    "duplicate_index": [
        ("create table public.blog (id int primary key); create index ix_1 on public.blog (id)", []),
        ("create index ix_2 on public.blog (id)", ["blog"]),
        ("create index ix_3 on public.blog (id)", ["blog"]),
        ("drop index public.ix_3; drop index public.ix_2", []),
    ],
    "function_search_path_mutable": [
        ("select 1", []),
        ("create function public.abc() returns int language sql as 'select 1'", ["abc"]),
        ("create or replace function public.abc() returns int set search_path = '' language sql as 'select 1'", []),
        ("create or replace function public.abc() returns int set search_path = 'public' language sql"
         " as 'select 1'", []),
    ],
    "extension_in_public": [
        ("select 1", []),
        ("create extension ltree schema public", ["ltree"]),
        ("create schema if not exists extensions; alter extension ltree set schema extensions", []),
    ],
}


@pytest.mark.parametrize("lint", sorted(STAGED))
def test_staged_scenarios_match_splinter(tx, lint):
    for sql, expected in STAGED[lint]:
        for stmt in sql.split(";"):
            tx.execute(stmt)
        run = run_lints(tx, [lint])
        assert lint not in run.skipped, run.skipped
        assert sorted(f["metadata"]["name"] for f in run.lints) == expected, sql


def test_duplicate_index_lists_every_copy(tx):
    tx.execute("create table public.blog (id int primary key)")
    for ix in ("ix_1", "ix_2", "ix_3"):
        tx.execute(f"create index {ix} on public.blog (id)")
    [f] = run_lints(tx, ["duplicate_index"]).lints
    assert "{ix_1,ix_2,ix_3}" in f["detail"]


# --- scenarios compared by cache key ----------------------------------------------------------------------------
# Each lint's steps from splinter's test/sql/<lint>.sql, in our SQL, and the cache keys its test/expected/<lint>.out
# lists after each step (the full set: every finding splinter reports there and none other). Differences from
# splinter's fixture are written where they matter: our database carries the Supabase baseline, whose default
# privileges grant tables and functions in public to anon and authenticated directly (splinter's fixture grants
# SELECT to PUBLIC), and whose auth.users has RLS enabled (the fixture's has not). Steps of our own, beyond
# splinter's, start with /* own */ (bench/splinter_conformance.py counts them apart).
_Q = "rls_disabled_in_public_pgmq_"  # splinter's queue lint reuses this cache key prefix
_SD = "security_definer_function_executable_public_"
SCENARIOS: dict[str, list[tuple[str, list[str]]]] = {
    "auth_users_exposed": [
        ("set local pgrst.db_schemas = 'public'; savepoint a", []),
        ("create materialized view public.foo as select * from auth.users", ["auth_users_exposed_public_foo"]),
        ("rollback to savepoint a; create view public.bar as select * from auth.users",
         ["auth_users_exposed_public_bar"]),
        ("rollback to savepoint a; alter table auth.users disable row level security;"
         "create view public.baz with (security_invoker = on) as select * from auth.users",
         ["auth_users_exposed_public_baz"]),
        ("alter table auth.users enable row level security", []),
        # our own: a view whose grants were revoked is not exposed
        ("/* own */ rollback to savepoint a; create view public.qux as select id from auth.users;"
         "revoke all on public.qux from anon, authenticated", []),
    ],
    "auth_rls_initplan": [
        ("savepoint a", []),
        ("create table public.foo (id int primary key, user_id uuid, jwt jsonb, role text, email text);"
         "create policy bad_policy_uid on public.foo for select to authenticated using (user_id = auth.uid());"
         "create policy bad_policy_jwt on public.foo for insert to authenticated with check (jwt = auth.jwt());"
         "create policy bad_policy_role on public.foo for update to authenticated with check (role = auth.role());"
         "create policy bad_policy_email on public.foo for delete to authenticated using (email = auth.email());"
         "create policy bad_policy_current_setting on public.foo for delete to authenticated"
         " using (email =   current_setting(  'role'  ));"
         "create policy good_policy_uid on public.foo for select to authenticated using (user_id = (select auth.uid()));"
         "create policy good_policy_jwt on public.foo for insert to authenticated with check (jwt = (select auth.jwt()));"
         "create policy good_policy_role on public.foo for update to authenticated"
         " with check (role = (select auth.role()));"
         "create policy good_policy_email on public.foo for delete to authenticated"
         " using (email = (select auth.email()));"
         "create policy good_policy_current_setting on public.foo for delete to authenticated"
         " using (email = (select current_setting('role')))", []),  # RLS is not enabled yet
        ("alter table public.foo enable row level security",
         [f"auth_rls_init_plan_public_foo_bad_policy_{p}" for p in ("uid", "jwt", "role", "email", "current_setting")]),
        # realtime is a platform schema, but realtime.messages' policies are user-written: checked
        ("rollback to savepoint a; create schema if not exists realtime;"
         "create table realtime.messages (id int primary key);"
         "create policy realtime_check on realtime.messages for insert to authenticated with check ('foo' = auth.role());"
         "alter table realtime.messages enable row level security",
         ["auth_rls_init_plan_realtime_messages_realtime_check"]),
    ],
    "unused_index": [
        ("select 1", []),
        ("create table public.foo (id int primary key, foo text unique, bar text);"
         "create index some_unused_index on public.foo (bar)", ["unused_index_public_foo_some_unused_index"]),
    ],
    "multiple_permissive_policies": [
        ("select 1", []),
        # splinter's fixture has only anon and authenticated besides the superuser, so its policies for PUBLIC
        # apply to exactly those two; our cluster has more roles (see the test below), so the roles are named
        ("create table public.blog (id int primary key); alter table public.blog enable row level security;"
         "create policy select_own_posts on public.blog for select to anon, authenticated using (true);"
         "create policy all_own_posts on public.blog for all to anon, authenticated using (true)",
         ["multiple_permissive_policies_public_blog_anon_SELECT",
          "multiple_permissive_policies_public_blog_authenticated_SELECT"]),
        ("drop policy select_own_posts on public.blog; drop policy all_own_posts on public.blog;"
         "create policy select_own_posts on public.blog as restrictive for select to anon, authenticated using (true);"
         "create policy all_own_posts on public.blog as restrictive for all to anon, authenticated using (true)", []),
    ],
    "security_definer_view": [
        ("set local pgrst.db_schemas = 'public'", []),
        ("create view public.my_view as select 1 as one", ["security_definer_view_public_my_view"]),
        ("create or replace view public.my_view with (security_invoker = on) as select 1 as one", []),
    ],
    "rls_references_user_metadata": [
        ("select 1", []),
        ("create table public.foo (id int primary key, user_id uuid, jwt jsonb, role text, email text);"
         "create policy bad_policy_1 on public.foo for select to authenticated"
         " using (((select auth.jwt()) ->> 'user_metadata')::bool);"
         "create policy bad_policy_2 on public.foo for insert to authenticated"
         " with check ((current_setting($$request.jwt.claims$$, true)::json ->> 'user_metadata')::boolean);"
         "create policy ok_policy_1 on public.foo for select to authenticated"
         " using (((select auth.jwt()) ->> 'is_acessible')::bool)",
         ["rls_references_user_metadata_public_foo_bad_policy_1",
          "rls_references_user_metadata_public_foo_bad_policy_2"]),
    ],
    "materialized_view_in_api": [
        ("set local pgrst.db_schemas = 'public'", []),
        ("create materialized view public.my_view as select 1 as one", ["materialized_view_in_api_public_my_view"]),
        ("revoke select on public.my_view from anon, authenticated, public", []),
    ],
    "foreign_table_in_api": [
        ("set local pgrst.db_schemas = 'public'; create extension if not exists postgres_fdw schema extensions", []),
        ("create server foreign_server foreign data wrapper postgres_fdw"
         " options (host 'foreignhost', port '5432', dbname 'foreign_db');"
         "create user mapping for current_user server foreign_server"
         " options (user 'foreign_user', password 'foreign_password');"
         "create foreign table public.fdw_table (id integer, data text) server foreign_server"
         " options (table_name 'foreign_table')", ["foreign_table_in_api_public_fdw_table"]),
        # PostgREST exposing no schema: nothing is on the API
        ("savepoint a; set local pgrst.db_schemas = ''", []),
        ("rollback to savepoint a", ["foreign_table_in_api_public_fdw_table"]),
        ("revoke select on public.fdw_table from anon, authenticated, public", []),
    ],
    "sensitive_columns_exposed": [
        ("set local pgrst.db_schemas = 'public'", []),
        ("create table public.users (id int primary key, username text not null, password text not null, ssn text)",
         ["sensitive_columns_exposed_public_users"]),
        ("create table public.payments (id int primary key, user_id int references public.users (id),"
         " credit_card text, cvv text, amount numeric)",
         ["sensitive_columns_exposed_public_payments", "sensitive_columns_exposed_public_users"]),
        ("alter table public.users enable row level security", ["sensitive_columns_exposed_public_payments"]),
        ("alter table public.payments enable row level security", []),
        ("create table public.posts (id int primary key, title text, content text, created_at timestamptz"
         " default now())", []),
        ("create schema private_schema;"
         "create table private_schema.secrets (id int primary key, api_key text, secret_token text)", []),
    ],
    "rls_policy_always_true": [
        ("set local pgrst.db_schemas = 'public'", []),
        ("create table public.posts (id int primary key, user_id uuid, title text);"
         "alter table public.posts enable row level security;"
         "create policy select_using_true on public.posts for select to authenticated using (true)", []),
        ("drop policy select_using_true on public.posts;"
         "create policy update_using_true on public.posts for update to authenticated using (true)",
         ["rls_policy_always_true_public_posts_update_using_true"]),
        ("drop policy update_using_true on public.posts;"
         "create policy delete_using_true on public.posts for delete to authenticated using (true)",
         ["rls_policy_always_true_public_posts_delete_using_true"]),
        ("drop policy delete_using_true on public.posts;"
         "create policy all_using_true on public.posts for all to authenticated using (true)",
         ["rls_policy_always_true_public_posts_all_using_true"]),
        ("drop policy all_using_true on public.posts;"
         "create policy insert_with_check_true on public.posts for insert to authenticated with check (true)",
         ["rls_policy_always_true_public_posts_insert_with_check_true"]),
        ("drop policy insert_with_check_true on public.posts;"
         "create policy insert_with_check_1eq1 on public.posts for insert to authenticated with check (1=1)",
         ["rls_policy_always_true_public_posts_insert_with_check_1eq1"]),
        ("drop policy insert_with_check_1eq1 on public.posts;"
         "create policy update_with_check_true on public.posts for update to authenticated"
         " using (user_id = auth.uid()) with check (true)",
         ["rls_policy_always_true_public_posts_update_with_check_true"]),
        ("drop policy update_with_check_true on public.posts;"
         "create policy update_both_true on public.posts for update to authenticated using (true) with check (true)",
         ["rls_policy_always_true_public_posts_update_both_true"]),
        ('drop policy update_both_true on public.posts;'
         'create policy "update_using_TRUE_spaces" on public.posts for update to authenticated using (  TRUE  )',
         ["rls_policy_always_true_public_posts_update_using_TRUE_spaces"]),
        ('drop policy "update_using_TRUE_spaces" on public.posts;'
         "create policy restrictive_true on public.posts as restrictive for update to authenticated using (true)", []),
        ("drop policy restrictive_true on public.posts; create role splinter_custom_role;"
         "create policy custom_role_policy on public.posts for update to splinter_custom_role using (true)", []),
        ("drop policy custom_role_policy on public.posts;"
         "create policy anon_update_true on public.posts for update to anon using (true)",
         ["rls_policy_always_true_public_posts_anon_update_true"]),
        ("drop policy anon_update_true on public.posts;"
         "create policy public_update_true on public.posts for update using (true)",
         ["rls_policy_always_true_public_posts_public_update_true"]),
        ("drop policy public_update_true on public.posts; create table public.no_rls_table (id int primary key);"
         "create policy no_rls_policy on public.no_rls_table for update to authenticated using (true)", []),
        ("drop table public.no_rls_table;"
         "create policy proper_policy on public.posts for update to authenticated"
         " using (user_id = auth.uid()) with check (user_id = auth.uid())", []),
        ("drop policy proper_policy on public.posts;"
         "create policy all_proper_using_no_with_check on public.posts for all to authenticated"
         " using (user_id = auth.uid())", []),
        ("drop policy all_proper_using_no_with_check on public.posts;"
         "create policy all_true_using_no_with_check on public.posts for all to authenticated using (true)",
         ["rls_policy_always_true_public_posts_all_true_using_no_with_check"]),
        ("drop policy all_true_using_no_with_check on public.posts;"
         "create policy insert_no_with_check on public.posts for insert to authenticated",
         ["rls_policy_always_true_public_posts_insert_no_with_check"]),
    ],
    "insecure_queue_exposed_in_api": [
        ("set local pgrst.db_schemas = 'public'", []),
        # the catalog objects the lint reads, as pgmq makes them: queue tables pgmq.q_<queue> without RLS, and
        # the pgmq_public schema that "Expose Queues via PostgREST" adds to the exposed schemas
        ("create schema pgmq; create schema pgmq_public;"
         "create table pgmq.q_foo (id int); create table pgmq.q_bar (id int);"
         "set local pgrst.db_schemas = 'public,pgmq_public';"
         "grant usage on schema pgmq to anon, authenticated; grant usage on schema pgmq_public to anon, authenticated;"
         "grant select on pgmq.q_foo to anon, authenticated; grant select on pgmq.q_bar to anon, authenticated",
         [_Q + "q_bar", _Q + "q_foo"]),
        ("savepoint a; revoke select on pgmq.q_foo from anon, authenticated;"
         "revoke select on pgmq.q_bar from anon, authenticated", []),
        ("rollback to savepoint a", [_Q + "q_bar", _Q + "q_foo"]),
        # queues not exposed (splinter's step meant this; its file sets the same list again): nothing
        ("/* own */ set local pgrst.db_schemas = 'public'", []),
        ("rollback to savepoint a", [_Q + "q_bar", _Q + "q_foo"]),
        ("alter table pgmq.q_foo enable row level security; alter table pgmq.q_bar enable row level security", []),
        # our own: pgmq's archive (a_<queue>) and metadata tables are not queues, even readable;
        # splinter's `like 'q_%'` takes `_` as a wildcard, so any q-name of two or more characters counts
        ("/* own */ create table pgmq.a_foo (id int); create table pgmq.meta (queue_name text); create table pgmq.qstats (n int);"
         "grant select on pgmq.a_foo, pgmq.meta, pgmq.qstats to anon", [_Q + "qstats"]),
    ],
    "anon_security_definer_function_executable": [
        ("set local pgrst.db_schemas = 'public'; savepoint a", []),
        ("create function public.invoker_func() returns int language sql security invoker as $$ select 1 $$", []),
        ("rollback to savepoint a; create function public.priv_op(target_id int) returns int language sql"
         " security definer as $$ select target_id $$", ["anon_" + _SD + "priv_op_target_id integer"]),
        ("revoke execute on function public.priv_op(int) from anon, public", []),
        ("rollback to savepoint a;"
         "create function public.dispatch(target_id int) returns int language sql security definer"
         " as $$ select target_id $$;"
         "create function public.dispatch(target_id int, label text) returns int language sql security definer"
         " as $$ select target_id $$",
         ["anon_" + _SD + "dispatch_target_id integer", "anon_" + _SD + "dispatch_target_id integer, label text"]),
        ("rollback to savepoint a; create function public.admin_only() returns int language sql security definer"
         " as $$ select 1 $$; revoke execute on function public.admin_only() from public, anon", []),
        ("rollback to savepoint a; create function auth.system_definer() returns int language sql security definer"
         " as $$ select 1 $$", []),
        # our own: a schema PostgREST does not expose has no /rest/v1/rpc/ path
        ("/* own */ rollback to savepoint a; create schema internal; grant usage on schema internal to anon;"
         "create function internal.definer() returns int language sql security definer as $$ select 1 $$", []),
    ],
}

# 0029 mirrors 0028 for authenticated; its test's steps differ where the revoked role differs
SCENARIOS["authenticated_security_definer_function_executable"] = [
    ("set local pgrst.db_schemas = 'public'; savepoint a", []),
    ("create function public.invoker_func() returns int language sql security invoker as $$ select 1 $$", []),
    ("rollback to savepoint a; create function public.priv_op(target_id int) returns int language sql"
     " security definer as $$ select target_id $$", ["authenticated_" + _SD + "priv_op_target_id integer"]),
    ("revoke execute on function public.priv_op(int) from authenticated, public", []),
    ("rollback to savepoint a;"
     "create function public.dispatch(target_id int) returns int language sql security definer"
     " as $$ select target_id $$;"
     "create function public.dispatch(target_id int, label text) returns int language sql security definer"
     " as $$ select target_id $$",
     ["authenticated_" + _SD + "dispatch_target_id integer",
      "authenticated_" + _SD + "dispatch_target_id integer, label text"]),
    # revoked from anon only: authenticated keeps EXECUTE (the 0028 negative case is this lint's positive)
    ("rollback to savepoint a; create function public.admin_only() returns int language sql security definer"
     " as $$ select 1 $$; revoke execute on function public.admin_only() from public, anon",
     ["authenticated_" + _SD + "admin_only_"]),
    ("/* own */ revoke execute on function public.admin_only() from authenticated", []),
    ("rollback to savepoint a; create function auth.system_definer() returns int language sql security definer"
     " as $$ select 1 $$", []),
]


def _run_steps(tx, lint: str, steps: list[tuple[str, list[str]]]) -> None:
    for sql, expected in steps:
        for stmt in sql.split(";"):
            if stmt.strip():
                tx.execute(stmt)
        assert _findings(tx, lint) == sorted(expected), sql


@pytest.mark.parametrize("lint", sorted(SCENARIOS))
def test_scenarios_match_splinter_cache_keys(tx, lint):
    _run_steps(tx, lint, SCENARIOS[lint])


def test_0006_policies_for_public_apply_to_every_role_rls_binds(tx):
    """A policy without TO applies to every role: splinter lists each role RLS binds, not the superuser, the
    BYPASSRLS service_role or the supabase_*_admin roles. Roles are cluster-wide (other tests add their own),
    so the findings are compared for the roles the Supabase baseline creates."""
    tx.execute("create table public.blog (id int primary key); alter table public.blog enable row level security")
    tx.execute("create policy select_own_posts on public.blog for select using (true)")
    tx.execute("create policy all_own_posts on public.blog for all using (true)")
    baseline_roles = ("anon", "authenticated", "authenticator", "service_role", "postgres", "supabase_auth_admin",
                      "supabase_storage_admin")
    keys = [k for k in _findings(tx, "multiple_permissive_policies")
            if k.removeprefix("multiple_permissive_policies_public_blog_").rsplit("_", 1)[0] in baseline_roles]
    assert keys == [f"multiple_permissive_policies_public_blog_{r}_SELECT"
                    for r in ("anon", "authenticated", "authenticator")]


def test_0019_insecure_queue_finding_shape(tx):
    tx.execute("create schema pgmq")
    # a queue table as pgmq.create('jobs') makes it
    tx.execute("create table pgmq.q_jobs (msg_id bigint generated always as identity primary key,"
               " read_ct int not null default 0, enqueued_at timestamptz not null default now(),"
               " vt timestamptz not null, message jsonb)")
    tx.execute("grant usage on schema pgmq to anon; grant select on pgmq.q_jobs to anon")
    assert run_lints(tx, ["insecure_queue_exposed_in_api"], ["public"]).lints == []
    [f] = run_lints(tx, ["insecure_queue_exposed_in_api"], ["public", "pgmq_public"]).lints
    assert f["title"] == "Insecure Queue Exposed in API" and f["level"] == "ERROR"
    assert f["detail"] == "Table \\`pgmq.q_jobs\\` is public, but RLS has not been enabled."
    assert f["metadata"] == {"schema": "pgmq", "name": "q_jobs", "type": "table"}
    assert f["remediation"].endswith("?lint=0019_insecure_queue_exposed_in_api")
    assert f["cache_key"] == "rls_disabled_in_public_pgmq_q_jobs"


# --- pg_graphql (0026, 0027) ------------------------------------------------------------------------------------
# Both lints fire only where `pg_extension` has a row named pg_graphql. The real extension (Rust, pgrx) ships in
# Supabase's image only: no Debian or PyPI package, so no local server has it. The lints read nothing else of it,
# so the tests install an extension of that name from a control file in a test-only folder that PostgreSQL 18's
# extension_control_path points to: CREATE EXTENSION records it in pg_extension exactly as it records the real
# one (its script only creates the graphql schema, which is one of the excluded platform schemas). What the lints
# then check (privileges of anon/authenticated, relkinds, platform schemas) are real catalog objects.
GRAPHQL_CONTROL = """# DB Sage test stand-in: the pg_extension row that splinter's pg_graphql lints check for
comment = 'pg_graphql stand-in for DB Sage tests (catalog entry only, no GraphQL)'
default_version = '1.5.11'
relocatable = false
schema = graphql
superuser = true
"""


def allow_graphql_standin(conn, server_base) -> None:
    """Write the stand-in control file under the server's folder and add it to this transaction's
    extension_control_path: `create extension pg_graphql` then works in the transaction."""
    folder = server_base / "test-extensions"
    (folder / "extension").mkdir(parents=True, exist_ok=True)
    (folder / "extension" / "pg_graphql.control").write_text(GRAPHQL_CONTROL)
    (folder / "extension" / "pg_graphql--1.5.11.sql").write_text("-- stand-in: no objects\n")
    path = conn.execute("show extension_control_path").fetchone()[0]
    conn.execute("select set_config('extension_control_path', %s, true)", (f"{path}:{folder}",))


@pytest.fixture
def graphql(tx, pg_server):
    allow_graphql_standin(tx, pg_server.base_dir)
    return tx


GRAPHQL_ROLES = {"pg_graphql_anon_table_exposed": ("anon", "authenticated"),
                 "pg_graphql_authenticated_table_exposed": ("authenticated", "anon")}


def graphql_steps(lint: str) -> list[tuple[str, list[str]]]:
    """Splinter's 0026/0027 steps for one of the two roles (the fixture `graphql` must be in place)."""
    role, other = GRAPHQL_ROLES[lint]
    key = lint + "_public_"
    steps = [
        # without the extension there is no /graphql/v1: nothing, though the role can read the table
        ("savepoint a; create table public.products (id int primary key, name text)", []),
        ("rollback to savepoint a; create extension pg_graphql; savepoint b", []),
        ("create table public.internal_api_keys (id int primary key, service text, key_hash text);"
         "create view public.api_key_summary as select id, service from public.internal_api_keys;"
         "create materialized view public.api_key_archive as select id, service from public.internal_api_keys",
         [key + "api_key_archive", key + "api_key_summary", key + "internal_api_keys"]),
        (f"revoke all on public.internal_api_keys from {role}, public;"
         f"revoke all on public.api_key_summary from {role}, public;"
         f"revoke all on public.api_key_archive from {role}, public", []),
        ("rollback to savepoint b; create extension if not exists postgres_fdw schema extensions;"
         "create server fdw_test foreign data wrapper postgres_fdw options (host 'localhost', dbname 'postgres');"
         "create foreign table public.foreign_secrets (id int, secret text) server fdw_test",
         [key + "foreign_secrets"]),
        # partitioned parents are not in the GraphQL schema, their partitions are
        ("rollback to savepoint b; create table public.parted (id int, region text) partition by list (region);"
         "create table public.parted_us partition of public.parted for values in ('us')", [key + "parted_us"]),
        # only the other role can read it
        (f"rollback to savepoint b; create table public.other_only (id int primary key);"
         f"revoke select on public.other_only from public, {role}; grant select on public.other_only to {other}", []),
        # one column granted is enough for introspection
        (f"rollback to savepoint b; create table public.col_grant_only (id int primary key, secret text);"
         f"revoke select on public.col_grant_only from public, anon, authenticated;"
         f"grant select (id) on public.col_grant_only to {role}", [key + "col_grant_only"]),
        # our own: RLS hides rows, not the table's shape; platform schemas are left out
        ("/* own */ rollback to savepoint b; create table public.with_rls (id int primary key);"
         "alter table public.with_rls enable row level security;"
         "create policy own on public.with_rls for select using (false);"
         f"create table storage.user_made (id int); grant select on storage.user_made to {role}",
         [key + "with_rls"]),
    ]
    return steps


@pytest.mark.parametrize("lint", sorted(GRAPHQL_ROLES))
def test_0026_0027_pg_graphql_table_exposed(graphql, lint):
    _run_steps(graphql, lint, graphql_steps(lint))


def test_0026_finding_shape(graphql):
    graphql.execute("create extension pg_graphql")
    graphql.execute("create view public.v as select 1 as one")
    [f] = run_lints(graphql, ["pg_graphql_anon_table_exposed"]).lints
    assert f["title"] == "Public Can See Object in GraphQL Schema" and f["level"] == "WARN"
    assert f["detail"] == ("view `public.v` is visible in the GraphQL schema because the `anon` role can `SELECT` it."
                           " Revoke `SELECT` from `anon` if it should not be discoverable without signing in.")
    assert f["metadata"] == {"schema": "public", "name": "v", "type": "view"}
    assert f["remediation"].endswith("?lint=0026_pg_graphql_anon_table_exposed")
    [g] = run_lints(graphql, ["pg_graphql_authenticated_table_exposed"]).lints
    assert g["detail"].startswith("view `public.v` is visible in the GraphQL schema to signed-in users because the "
                                  "`authenticated` role can `SELECT` it.")

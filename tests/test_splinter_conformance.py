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
        ("create table public.ev (id int, at date) partition by range (at);"
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

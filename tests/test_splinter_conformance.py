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
    tx.execute("create table public.profile (id uuid primary key,"
               " email varchar(255) not null references auth.users(email))")
    expected = ["fkey_to_auth_unique_public_profile_profile_email_fkey"]
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

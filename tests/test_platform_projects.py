"""Supabase-shaped projects of our own (tests/fixtures/supabase_projects/): auth triggers on auth.users, storage
buckets and object policies, pgcrypto and uuid-ossp defaults, SECURITY DEFINER helpers, the realtime
publication, seeds writing auth.users and auth.identities. Each applies with *apply + *seed on the embedded
PostgreSQL 18 and on Debian's PostgreSQL 15, and leaves the ledger (schema_migrations and seed_files) and the
schema that the real `supabase db push --include-seed` leaves on a twin database."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from sage_agent.db.supabase_cli import SupabaseCli

FIXTURES = Path(__file__).parent / "fixtures" / "supabase_projects"
PROJECTS = sorted(p.name for p in FIXTURES.iterdir() if (p / "supabase" / "migrations").is_dir())


def ledger(url: str) -> tuple[list[tuple], list[tuple]]:
    import psycopg

    with psycopg.connect(url) as conn:
        rows = conn.execute("select version, name, statements from supabase_migrations.schema_migrations "
                            "order by version").fetchall()
        seeds = conn.execute("select path, hash from supabase_migrations.seed_files order by path").fetchall()
    return rows, seeds


def schema_dump(url: str, major: int) -> list[str]:
    """pg_dump --schema-only of the whole database, privileges included, without its per-run lines."""
    from sage_agent.db.tools import run_pg_tool

    text = run_pg_tool("pg_dump", url, ["--schema-only", "--no-password"], server_major=major).stdout
    return [ln for ln in text.splitlines() if not ln.startswith(("\\restrict", "\\unrestrict"))]


# What each project relies on, checked on the seeded data (the same on both servers).
CHECKS: dict[str, list[tuple[str, object]]] = {
    "saas_starter": [
        ("select count(*) from public.profiles", 2),  # made by the trigger on auth.users
        ("select full_name from public.profiles where id = 'd0c0a1a5-0000-4000-8000-000000000001'", "Alice"),
        ("select bool_and(encrypted_password = extensions.crypt('password123', encrypted_password)) from auth.users",
         True),
        ("select bool_and(encrypted_password like '$2a$06$%') from auth.users", True),
        ("select email from auth.identities where user_id = 'd0c0a1a5-0000-4000-8000-000000000002'",
         "bob@example.com"),  # a generated column
        ("select length(decode(invite_code, 'base64')) from public.teams", 9),
    ],
    "file_uploads": [
        ("select array[storage.foldername(name)::text, storage.filename(name), storage.extension(name)] "
         "from storage.objects", ["{f11e0000-0000-4000-8000-000000000001}", "me.png", "png"]),
        ("select path_tokens from storage.objects", ["f11e0000-0000-4000-8000-000000000001", "me.png"]),
        ("select file_name from public.attachments", "me.png"),
        ("select count(*) from pg_policies where schemaname = 'storage' and tablename = 'objects'", 4),
        ("select public from storage.buckets where id = 'avatars'", True),
    ],
    "realtime_chat": [
        ("select array_agg(tablename::text order by tablename) from pg_publication_tables "
         "where pubname = 'supabase_realtime'", ["messages", "rooms"]),
        ("select count(distinct length(slug)) from public.rooms where slug not in ('general', 'random')", 0),
    ],
    "api_keys": [
        ("select public.verify_api_key('sk_test', 'hunter2') = 'a91c0000-0000-4000-8000-000000000001'", True),
        ("select public.verify_api_key('sk_test', 'wrong') is null", True),
        ("select key_hash = sha256(convert_to('sk_test.hunter2', 'UTF8')) from public.api_keys", True),
        ("select public.sign_webhook('{}', 'k')", "add853b103fbcc936a194f9eb15e29c4ff08af6e47d5d1bca4f20218e31e4fff"),
    ],
    "multi_tenant": [
        ("select public_id::text from public.projects", "7e8dc04b-6d05-5b23-b8d2-01640ad456b2"),  # the real module's v5
        ("select get_byte(uuid_send(id), 6) >> 4 from public.projects", 1),  # a version-1 UUID
        ("select public.custom_access_token_hook('{\"user_id\": \"0a600000-0000-4000-8000-000000000001\", "
         "\"claims\": {}}') -> 'claims' -> 'org_ids' ->> 0", "0a600000-0000-4000-8000-0000000000aa"),
        ("select has_function_privilege('supabase_auth_admin', 'public.custom_access_token_hook(jsonb)', 'execute')",
         True),
        ("select has_function_privilege('authenticated', 'public.custom_access_token_hook(jsonb)', 'execute')",
         False),
    ],
    "todo_app": [
        ("select statements from supabase_migrations.schema_migrations where version = '20240802000000'",
         ["-- placeholder kept from a reverted change"]),
        ("select count(*) from public.todos", 1),
    ],
}


def copy_project(name: str, dest: Path) -> Path:
    shutil.copytree(FIXTURES / name, dest)
    return dest


_CLI_LEDGERS: dict[str, tuple[list[tuple], list[tuple]]] = {}  # project -> what `supabase db push` recorded


def sage_apply(name: str, url: str, tmp_path: Path, make_session) -> Path:
    project = copy_project(name, tmp_path / "sage")
    applied = make_session(url, yes=True, project_dir=project).run_line("*apply --snapshot=no")
    assert applied.exit_code == 0, applied.error
    seeded = make_session(url, yes=True, project_dir=project).run_line("*seed --snapshot=no")
    assert seeded.exit_code == 0, seeded.error
    return project


def cli_push(name: str, url: str, tmp_path: Path, cli: SupabaseCli) -> tuple[list[tuple], list[tuple]]:
    project = copy_project(name, tmp_path / "cli")
    proc = cli.run(["db", "push", "--include-seed", "--db-url", url, "--yes"], cwd=project, timeout=240)
    assert "Finished supabase db push" in proc.stdout + proc.stderr, proc.stdout + proc.stderr
    _CLI_LEDGERS[name] = ledger(url)
    return _CLI_LEDGERS[name]


def check_ledger_and_data(name: str, project: Path, url: str, cli_ledger) -> None:
    import psycopg

    rows, seeds = ledger(url)
    files = sorted(p.name for p in (project / "supabase" / "migrations").glob("*.sql"))
    assert [r[0] + "_" + r[1] + ".sql" for r in rows] == files
    assert (rows, seeds) == cli_ledger  # row for row: version, name, statements; seed path and hash
    assert len(seeds) == 1
    with psycopg.connect(url) as conn:
        for query, expected in CHECKS.get(name, []):
            assert conn.execute(query).fetchone()[0] == expected, query


@pytest.fixture
def cli(supabase_cli) -> SupabaseCli:
    return SupabaseCli(supabase_cli, "real")


@pytest.fixture
def twin_url(pg_server):
    import secrets

    from sage_agent.db.shadow import create_database, drop_database

    name = "t_twin_" + secrets.token_hex(4)
    url = create_database(pg_server.url(), name)
    yield url
    drop_database(pg_server.url(), name)


@pytest.fixture
def twin15_url(pg15_server):
    import secrets

    from sage_agent.db.shadow import create_database, drop_database

    name = "t_twin_" + secrets.token_hex(4)
    url = create_database(pg15_server, name)
    yield url
    drop_database(pg15_server, name)


def test_there_are_six_fixture_projects():
    assert PROJECTS == ["api_keys", "file_uploads", "multi_tenant", "realtime_chat", "saas_starter", "todo_app"]


@pytest.mark.supabase_cli
@pytest.mark.parametrize("name", PROJECTS)
def test_project_applies_on_embedded_like_db_push(name, db_url, twin_url, tmp_path, make_session, cli):
    project = sage_apply(name, db_url, tmp_path, make_session)
    cli_ledger = cli_push(name, twin_url, tmp_path, cli)
    check_ledger_and_data(name, project, db_url, cli_ledger)
    assert schema_dump(db_url, 18) == schema_dump(twin_url, 18)  # the same schema, privileges included


@pytest.mark.pg15
@pytest.mark.supabase_cli
@pytest.mark.parametrize("name", PROJECTS)
def test_project_applies_on_pg15_like_db_push(name, pg15_url, tmp_path, make_session, cli, request):
    """The ledger does not depend on the server: the CLI's rows from the embedded run (or from a push to a
    PostgreSQL 15 twin when that test did not run) are the reference."""
    project = sage_apply(name, pg15_url, tmp_path, make_session)
    cli_ledger = _CLI_LEDGERS.get(name) or cli_push(name, request.getfixturevalue("twin15_url"), tmp_path, cli)
    check_ledger_and_data(name, project, pg15_url, cli_ledger)

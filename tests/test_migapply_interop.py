"""Concurrent appliers (real subprocesses) and interop with the real Supabase CLI, both directions."""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from sage_agent.db.supabase_cli import SupabaseCli
from migfiles import write_migration as write


def pending_set(project: Path, n: int) -> None:
    for i in range(n):
        write(project, f"2024010100{i:04d}_m{i}.sql",
              f"create table public.t{i} (id bigint generated always as identity primary key, v text);\n"
              f"insert into public.t{i} (v) values ('x');\n")


@pytest.mark.parametrize("workers", [2, 8])
def test_concurrent_appliers_apply_each_migration_once(project, run_sage, db_url, db, workers):
    pending_set(project, 6)
    args = ["run", "*apply --snapshot=no", "--yes", "--db-url", db_url, "--json"]
    if workers == 2:
        args[1] = "*apply"  # with the default snapshot
    with ThreadPoolExecutor(workers) as pool:
        procs = list(pool.map(lambda _: run_sage(*args, cwd=project, timeout=240), range(workers)))
    for proc in procs:
        assert proc.returncode == 0, proc.stdout + proc.stderr
    docs = [json.loads(p.stdout) for p in procs]
    assert sum(d["facts"]["applied"] for d in docs) == 6
    rows = db.execute("select version from supabase_migrations.schema_migrations order by 1").fetchall()
    assert [r[0] for r in rows] == [f"2024010100{i:04d}" for i in range(6)]
    for i in range(6):  # each ran exactly once: one row each
        assert db.execute(f"select count(*) from public.t{i}").fetchone()[0] == 1
    log = (project / "supabase" / ".sage" / "migration-log.jsonl").read_text().splitlines()
    assert len(log) == 6


@pytest.fixture
def cli(supabase_cli) -> SupabaseCli:
    return SupabaseCli(supabase_cli, "real")


def _cli_list(cli: SupabaseCli, project: Path, url: str) -> dict[str, str]:
    proc = cli.run(["migration", "list", "--db-url", url, "--output-format", "json"], cwd=project, timeout=120)
    doc = json.loads(proc.stdout)
    return {m["local"] or m["remote"]: ("applied" if m["local"] and m["remote"] else
                                        "pending" if m["local"] else "remote only") for m in doc["migrations"]}


TRICKY = """-- tricky: comments, quotes, dollar quotes, E-strings
create table public.notes (id bigint primary key, body text default 'a;b', "odd;name" int);
create function public.add(a int, b int) returns int language sql
begin atomic
  select a + b;
end;
create function public.greet() returns text language plpgsql as $fn$
begin
  return 'hi;there';
end;
$fn$;
insert into public.notes (id, body) values (1, E'it\\'s; fine');;
-- the end
"""


@pytest.mark.supabase_cli
def test_apply_then_cli_sees_applied(cli, project, make_session, db_url, db):
    write(project, "20240101000000_tricky.sql", TRICKY)
    write(project, "20240102000000_second.sql", "create index concurrently notes_body_idx on public.notes (body);\n")
    outcome = make_session(db_url, yes=True).run_line("*apply --snapshot=no")
    assert outcome.exit_code == 0, outcome.error
    assert _cli_list(cli, project, db_url) == {"20240101000000": "applied", "20240102000000": "applied"}
    # the CLI finds nothing to push: it agrees on every version
    proc = cli.run(["db", "push", "--db-url", db_url, "--yes"], cwd=project, timeout=120)
    assert "up to date" in (proc.stdout + proc.stderr).lower()


@pytest.mark.supabase_cli
def test_cli_push_then_apply_sees_applied(cli, project, make_session, db_url, db):
    write(project, "20240101000000_tricky.sql", TRICKY)
    cli.run(["db", "push", "--db-url", db_url, "--yes"], cwd=project, timeout=120)
    stored = db.execute("select statements from supabase_migrations.schema_migrations").fetchone()[0]
    from sage_agent.ops.migrations.history import list_local

    local, _ = list_local(project)
    assert local[0].statements() == stored  # byte-for-byte what the CLI stores
    write(project, "20240102000000_after.sql", "create table public.after_cli (id int);\n")
    outcome = make_session(db_url, yes=True).run_line("*apply --snapshot=no")
    assert outcome.exit_code == 0, outcome.error
    assert outcome.result.data["applied"] == ["20240102000000_after.sql"]  # the CLI's one was not re-run
    assert db.execute("select count(*) from public.notes").fetchone()[0] == 1
    listing = make_session(db_url).run_line("*migrations")
    assert [r[4] for r in listing.result.tables[0].rows] == ["applied", "applied"]
    assert _cli_list(cli, project, db_url) == {"20240101000000": "applied", "20240102000000": "applied"}
    # a file edited after the CLI pushed it is drift for *apply
    path = project / "supabase" / "migrations" / "20240101000000_tricky.sql"
    path.write_text(TRICKY.replace("'a;b'", "'c;d'"))
    write(project, "20240103000000_more.sql", "create table public.more (id int);\n")
    outcome = make_session(db_url, yes=True).run_line("*apply --snapshot=no")
    assert outcome.exit_code == 1 and "drift" in outcome.error


@pytest.mark.supabase_cli
def test_migration_new_uses_the_cli(supabase_cli, project, make_session, db_url, monkeypatch):
    monkeypatch.setenv("SUPABASE_CLI", supabase_cli)
    (project / "supabase").mkdir()
    outcome = make_session(db_url).run_line("*migration-new add_things")
    assert outcome.exit_code == 0, outcome.error
    assert outcome.result.facts["method"].startswith("supabase CLI")
    assert (project / outcome.result.data["path"]).exists()

"""Ledger edge cases: two files with one version, empty and comment-only files (as the real Supabase CLI records
them), one verdict for *dry-run and *apply, nothing stray on stderr, snapshot retention and atomic snapshots."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import psycopg
import pytest

from sage_agent.db.supabase_cli import SupabaseCli
from sage_agent.session.machine import EXIT_CONFIRM, EXIT_FAILED, EXIT_OK
from migfiles import write_migration as write


def history(url: str) -> list[tuple]:
    with psycopg.connect(url) as conn:
        if conn.execute("select to_regclass('supabase_migrations.schema_migrations')").fetchone()[0] is None:
            return []
        return conn.execute("select version, name, statements from supabase_migrations.schema_migrations "
                            "order by version").fetchall()


def test_version_collision_is_an_error_before_anything_is_applied(project, make_session, db_url, db):
    write(project, "20240101000000_first.sql", "create table public.first (id int);\n")
    write(project, "20240102000000_a.sql", "create table public.a (id int);\n")
    write(project, "20240102000000_b.sql", "create table public.b (id int);\n")
    for line in ("*apply --snapshot=no", "*migrations", "*dry-run first"):
        outcome = make_session(db_url, yes=True).run_line(line)
        assert outcome.exit_code == EXIT_FAILED, line
        assert "version 20240102000000 is used by two files: 20240102000000_a.sql and 20240102000000_b.sql" \
            in outcome.error, line
    assert history(db_url) == []
    assert db.execute("select to_regclass('public.first')").fetchone()[0] is None
    os.rename(project / "supabase" / "migrations" / "20240102000000_b.sql",
              project / "supabase" / "migrations" / "20240103000000_b.sql")
    assert make_session(db_url, yes=True).run_line("*apply --snapshot=no").exit_code == EXIT_OK
    assert [r[0] for r in history(db_url)] == ["20240101000000", "20240102000000", "20240103000000"]


EMPTY_FILES = {
    "20240101000000_comment.sql": "-- only a comment\n",
    "20240102000000_empty.sql": "",
    "20240103000000_real.sql": "create table public.after_empty (id int);\n",
    "20240104000000_blank.sql": "\n\n  \n",
    "20240105000000_block.sql": "/* a block comment */\n-- and a line\n",
}


def test_empty_files_are_recorded_like_the_cli(project, make_session, db_url):
    for name, text in EMPTY_FILES.items():
        write(project, name, text)
    outcome = make_session(db_url, yes=True).run_line("*apply --snapshot=no")
    assert outcome.exit_code == EXIT_OK, outcome.error
    assert outcome.result.facts["applied"] == 5
    assert any("20240102000000_empty.sql has no SQL statements" in n for n in outcome.result.notes)
    # what `supabase db push` 3.1.0 writes for the same files (checked against the real CLI below)
    assert history(db_url) == [
        ("20240101000000", "comment", ["-- only a comment"]),
        ("20240102000000", "empty", []),
        ("20240103000000", "real", ["create table public.after_empty (id int)"]),
        ("20240104000000", "blank", []),
        ("20240105000000", "block", ["/* a block comment */\n-- and a line"]),
    ]
    listing = make_session(db_url).run_line("*migrations")
    assert [r[4] for r in listing.result.tables[0].rows] == ["applied"] * 5  # and none of them is drift
    dry = make_session(db_url).run_line("*dry-run empty")
    assert dry.exit_code == EXIT_OK and dry.result.data["error"] is None


@pytest.mark.supabase_cli
def test_empty_files_match_the_real_cli(supabase_cli, tmp_path, make_session, db_url, pg_server):
    from sage_agent.db.shadow import create_database, drop_database

    ours, theirs = tmp_path / "ours", tmp_path / "theirs"
    for project in (ours, theirs):
        for name, text in EMPTY_FILES.items():
            write(project, name, text)
    assert make_session(db_url, yes=True, project_dir=ours).run_line("*apply --snapshot=no").exit_code == EXIT_OK
    twin = create_database(pg_server.url(), "t_empty_twin")
    try:
        SupabaseCli(supabase_cli, "real").run(["db", "push", "--db-url", twin, "--yes"], cwd=theirs, timeout=120)
        assert history(db_url) == history(twin)
    finally:
        drop_database(pg_server.url(), "t_empty_twin")


# --- one verdict ----------------------------------------------------------------------------------------------
def test_a_lock_on_a_table_the_file_creates_is_safe_for_both(project, make_session, db_url, db):
    write(project, "20240101000000_t.sql",
          "create table public.t (id int);\nalter table public.t add primary key (id);\n")
    dry = make_session(db_url).run_line("*dry-run t")
    assert dry.exit_code == EXIT_OK and dry.result.data["verdict"] != "unsafe"
    assert "adding-serial-primary-key-field" in json.dumps(dry.result.model_dump(mode="json"))
    # one answer only: *apply asks its plan question, not an "unsafe statements" one
    seen: list[str] = []
    session = make_session(db_url, answers=["yes"])
    session.answers.show = seen.append
    applied = session.run_line("*apply --snapshot=no")
    assert applied.exit_code == EXIT_OK, applied.error
    assert len(seen) == 1 and "20240101000000_t.sql: 2 statement(s)" in seen[0]
    assert "adding-serial-primary-key-field" not in seen[0]
    assert db.execute("select to_regclass('public.t')").fetchone()[0] == "t"


def test_a_lock_on_a_populated_table_is_unsafe_for_both(project, make_session, db_url, db):
    db.execute("create table public.t (id int); insert into public.t values (1)")
    write(project, "20240101000000_pk.sql", "alter table public.t add primary key (id);\n")
    dry = make_session(db_url).run_line("*dry-run pk")
    assert dry.exit_code == EXIT_FAILED and dry.result.data["verdict"] == "unsafe"
    seen: list[str] = []
    session = make_session(db_url, answers=["no"])
    session.answers.show = seen.append
    applied = session.run_line("*apply --snapshot=no")
    assert applied.exit_code == EXIT_CONFIRM
    assert "20240101000000_pk.sql:1 adding-serial-primary-key-field" in seen[0] and history(db_url) == []


def test_a_failed_apply_prints_nothing_stray(project, run_sage, db_url):
    write(project, "20240101000000_bad.sql",
          "select 1/0;\ncreate table public.s2 (id int);\ncreate table public.s3 (id int);\n")
    proc = run_sage("run", "*apply --snapshot=no", "--yes", "--db-url", db_url, cwd=project)
    assert proc.returncode == 1
    assert "division by zero" in proc.stdout
    assert "error ignored" not in proc.stderr and "Pipeline" not in proc.stderr
    assert proc.stderr.strip().splitlines() == ["applying 20240101000000_bad.sql (3 statements)"]


# --- snapshots: retention and atomic writes --------------------------------------------------------------------
def fake_snapshot(folder: Path, name: str, created_at: str) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{name}.sql").write_text("-- dump\n")
    (folder / f"{name}.json").write_text(json.dumps({
        "name": name, "created_at": created_at, "type": "schema-only", "file": f"{name}.sql"}))


def names(folder: Path) -> list[str]:
    return sorted(p.stem for p in folder.glob("*.json"))


def test_prune_keeps_the_newest_automatic_snapshots_and_every_named_one(project, make_session, db_url):
    folder = project / "supabase" / "snapshots"
    for day in range(1, 6):
        fake_snapshot(folder, f"before_m{day}", f"2024-01-0{day}T00:00:00Z")
    fake_snapshot(folder, "release_1", "2023-01-01T00:00:00Z")
    (project / "supabase" / "migrations").mkdir(parents=True)
    out = make_session(db_url).run_line("*snapshot --prune --keep 2")
    assert out.exit_code == EXIT_OK, out.error
    assert out.result.data["removed"] == ["before_m1", "before_m2", "before_m3"]
    assert names(folder) == ["before_m4", "before_m5", "release_1"]
    assert not (folder / "before_m1.sql").exists()
    out = make_session(db_url).run_line("*snapshot --prune --keep 0")
    assert out.result.data["removed"] == [] and names(folder) == ["before_m4", "before_m5", "release_1"]


def test_prune_by_age_and_leftovers(project, monkeypatch):
    from sage_agent.ops.snapshots.retention import prune_snapshots

    folder = project / "supabase" / "snapshots"
    fake_snapshot(folder, "before_old", "2024-01-01T00:00:00Z")
    fake_snapshot(folder, "before_new", "2024-03-01T00:00:00Z")
    (folder / "before_killed.sql").write_text("-- a dump whose .json never came")
    (folder / ".before_x.sql.partial").write_text("-- half a dump")
    (folder / ".before_running.sql.partial").write_text("-- being written right now")
    stale = time.time() - 7200
    for p in (folder / "before_killed.sql", folder / ".before_x.sql.partial"):
        os.utime(p, (stale, stale))
    monkeypatch.setenv("SAGE_SNAPSHOT_MAX_AGE_DAYS", "30")
    now = time.mktime((2024, 3, 10, 0, 0, 0, 0, 0, 0))
    report = prune_snapshots(project, now=now)
    assert report.removed == ["before_old"] and names(folder) == ["before_new"]
    assert sorted(report.leftovers) == [".before_x.sql.partial", "before_killed.sql"]
    assert (folder / ".before_running.sql.partial").exists()  # young: maybe another process's snapshot
    monkeypatch.setenv("SAGE_SNAPSHOT_KEEP", "many")  # a bad number means the default, as for every setting
    monkeypatch.delenv("SAGE_SNAPSHOT_MAX_AGE_DAYS")
    assert prune_snapshots(project).keep == 30 and names(folder) == ["before_new"]


def test_apply_prunes_automatic_snapshots_to_the_setting(project, make_session, db_url, monkeypatch):
    monkeypatch.setenv("SAGE_SNAPSHOT_KEEP", "2")
    folder = project / "supabase" / "snapshots"
    fake_snapshot(folder, "before_ancient", "2020-01-01T00:00:00Z")
    fake_snapshot(folder, "mine", "2020-01-01T00:00:00Z")
    for i in range(3):
        write(project, f"2024010100000{i}_m{i}.sql", f"create table public.m{i} (id int);\n")
        assert make_session(db_url, yes=True).run_line("*apply").exit_code == EXIT_OK
    assert names(folder) == ["before_20240101000001_m1", "before_20240101000002_m2", "mine"]


def test_a_failed_snapshot_leaves_no_files(project, make_session, db_url, monkeypatch):
    from sage_agent.ops.snapshots import store

    real_replace = os.replace
    calls = []

    def replace(src, dst):
        calls.append(Path(dst).name)
        if str(dst).endswith(".json"):
            raise OSError("disk full")
        return real_replace(src, dst)

    monkeypatch.setattr(store.os, "replace", replace)
    out = make_session(db_url).run_line("*snapshot s1")
    assert out.exit_code != EXIT_OK
    assert calls == ["s1.sql", "s1.json"]
    folder = project / "supabase" / "snapshots"
    assert sorted(p.name for p in folder.iterdir()) == [".gitignore"]
    monkeypatch.undo()
    assert make_session(db_url).run_line("*snapshot s1").exit_code == EXIT_OK
    assert sorted(p.name for p in folder.iterdir()) == [".gitignore", "s1.json", "s1.sql"]

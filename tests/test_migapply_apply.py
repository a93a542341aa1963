"""*apply, *migrations, *migration-new, *repair against a real PostgreSQL database."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import psycopg
import pytest

from sage_agent.session.machine import EXIT_CONFIRM, EXIT_FAILED, EXIT_OK, EXIT_USAGE
from migfiles import write_migration as write


def history(db) -> list[tuple]:
    if not db.execute("select to_regclass('supabase_migrations.schema_migrations')").fetchone()[0]:
        return []
    return db.execute("select version, name, statements from supabase_migrations.schema_migrations "
                      "order by version").fetchall()


def exists(db, name: str) -> bool:
    return db.execute("select to_regclass(%s) is not null", (name,)).fetchone()[0]


def schema_state(db) -> list[tuple]:
    return db.execute("select c.relname, c.relkind from pg_class c join pg_namespace n on n.oid = c.relnamespace "
                      "where n.nspname = 'public' order by 1").fetchall()


def log_lines(project: Path) -> list[dict]:
    path = project / "supabase" / ".sage" / "migration-log.jsonl"
    return [json.loads(x) for x in path.read_text().splitlines()] if path.exists() else []


@pytest.fixture
def three(project):
    write(project, "20240101000000_users.sql", "create table public.users (id bigint primary key, email text);\n")
    write(project, "20240102000000_posts.sql",
          "-- posts\ncreate table public.posts (id bigint primary key, user_id bigint references public.users);\n"
          "create index posts_user_idx on public.posts (user_id);\n")
    write(project, "20240103000000_fn.sql",
          "create function public.hello() returns text language plpgsql as $$\nbegin\n  return 'hi;there';\nend;\n$$;\n")
    (project / "supabase" / "migrations" / "notes.txt").write_text("not a migration")
    return project


def test_apply_pending_then_noop(three, make_session, db_url, db):
    outcome = make_session(db_url, yes=True).run_line("*apply --snapshot=no")
    assert outcome.exit_code == EXIT_OK, outcome.error
    assert outcome.result.facts["applied"] == 3
    rows = history(db)
    assert [r[0] for r in rows] == ["20240101000000", "20240102000000", "20240103000000"]
    assert rows[1][1] == "posts"
    # statements stored as the Supabase CLI stores them: trimmed chunks, leading comments kept, no ';'
    assert rows[1][2] == ["-- posts\ncreate table public.posts (id bigint primary key, user_id bigint references "
                          "public.users)", "create index posts_user_idx on public.posts (user_id)"]
    assert db.execute("select public.hello()").fetchone()[0] == "hi;there"
    assert any("notes.txt" in n for n in outcome.result.notes)
    entries = log_lines(three)
    assert [e["migration"] for e in entries] == ["20240101000000_users.sql", "20240102000000_posts.sql",
                                                 "20240103000000_fn.sql"]
    assert set(entries[0]) >= {"migration", "applied_at", "status", "snapshot", "rollback_available"}
    assert entries[0]["status"] == "success" and entries[0]["rollback_available"] is False
    again = make_session(db_url, yes=True).run_line("*apply")
    assert again.exit_code == EXIT_OK
    assert "up to date" in again.result.summary
    assert len(history(db)) == 3 and len(log_lines(three)) == 3


def test_apply_names_the_files_and_a_smoke_test_not_yet_run(three, make_session, db_url, db):
    first = make_session(db_url, yes=True).run_line("*apply 20240101000000_users.sql --snapshot=no")
    assert first.exit_code == EXIT_OK, first.error
    assert "supabase/migrations/20240101000000_users.sql" in first.result.artifacts
    assert first.result.next_steps[0] == "*smoke-test v1.0"
    make_session(db_url).run_line("*smoke-test v1.0")  # fails on the table without RLS; its report is written
    assert (three / "supabase" / "tests" / "smoke-test-v1.0.md").is_file()
    second = make_session(db_url, yes=True).run_line("*apply --snapshot=no")
    assert second.exit_code == EXIT_OK, second.error
    assert second.result.next_steps[0] == "*smoke-test v1.1"  # v1.0's report exists: not suggested again
    assert "supabase/migrations/20240103000000_fn.sql" in second.result.artifacts
    assert "supabase/migrations/20240101000000_users.sql" not in second.result.artifacts


def test_apply_takes_snapshot_and_confirmation_shows_plan(three, make_session, db_url, db):
    seen = []
    session = make_session(db_url, answers=["yes"])
    session.answers.show = seen.append
    outcome = session.run_line("*apply 20240101000000")
    assert outcome.exit_code == EXIT_OK, outcome.error
    assert "20240101000000_users.sql: 1 statement(s), one transaction" in seen[0]
    snap = outcome.result.data["snapshot"]
    assert snap == "before_20240101000000_users"
    assert (three / "supabase" / "snapshots" / f"{snap}.sql").exists()
    assert log_lines(three)[0]["snapshot"] == snap and log_lines(three)[0]["rollback_available"] is True
    assert [r[0] for r in history(db)] == ["20240101000000"]


def test_declined_and_headless_without_yes_change_nothing(three, make_session, db_url, db):
    outcome = make_session(db_url, answers=["no"]).run_line("*apply --snapshot=no")
    assert outcome.exit_code == EXIT_CONFIRM
    outcome = make_session(db_url).run_line("*apply --snapshot=no")
    assert outcome.exit_code == EXIT_CONFIRM and "--yes" in outcome.error
    assert history(db) == [] and schema_state(db) == []


def test_drift_is_refused(three, make_session, db_url, db):
    assert make_session(db_url, yes=True).run_line("*apply --snapshot=no").exit_code == EXIT_OK
    # a comment-only edit is not drift
    path = three / "supabase" / "migrations" / "20240101000000_users.sql"
    path.write_text("-- the users\ncreate table public.users (id bigint primary key, email text);\n")
    write(three, "20240104000000_more.sql", "create table public.more (id int);\n")
    path2 = three / "supabase" / "migrations" / "20240102000000_posts.sql"
    path2.write_text(path2.read_text().replace("user_id)", "user_id, id)"))
    outcome = make_session(db_url, yes=True).run_line("*apply --snapshot=no")
    assert outcome.exit_code == EXIT_FAILED
    assert "drift" in outcome.error and "20240102000000_posts.sql" in outcome.error
    assert "20240101000000_users.sql" not in outcome.error
    assert "*repair 20240102000000 applied" in outcome.error
    assert not exists(db, "public.more")
    listing = make_session(db_url).run_line("*migrations")
    statuses = {r[0] or r[1]: r[4] for r in listing.result.tables[0].rows}
    assert statuses["20240102000000"] == "drift" and statuses["20240101000000"] == "applied"
    assert statuses["20240104000000"] == "pending"
    # accept the edited file as applied, then the new one applies
    assert make_session(db_url, yes=True).run_line("*repair 20240102000000 applied").exit_code == EXIT_OK
    assert make_session(db_url, yes=True).run_line("*apply --snapshot=no").exit_code == EXIT_OK
    assert exists(db, "public.more")


def test_out_of_order_refused_unless_include_all(three, make_session, db_url, db):
    assert make_session(db_url, yes=True).run_line("*apply --snapshot=no").exit_code == EXIT_OK
    write(three, "20231231000000_early.sql", "create table public.early (id int);\n")
    outcome = make_session(db_url, yes=True).run_line("*apply --snapshot=no")
    assert outcome.exit_code == 2  # a decision (NeedsInput): headless names the flag, the REPL asks
    assert "20231231000000_early.sql" in outcome.error and "--include-all" in outcome.error
    assert not exists(db, "public.early")
    outcome = make_session(db_url, yes=True).run_line("*apply --snapshot=no --include-all")
    assert outcome.exit_code == EXIT_OK, outcome.error
    assert exists(db, "public.early") and "20231231000000" in [r[0] for r in history(db)]


def test_remote_version_missing_locally(three, make_session, db_url, db):
    assert make_session(db_url, yes=True).run_line("*apply --snapshot=no").exit_code == EXIT_OK
    (three / "supabase" / "migrations" / "20240102000000_posts.sql").unlink()
    write(three, "20240105000000_x.sql", "create table public.x (id int);\n")
    outcome = make_session(db_url, yes=True).run_line("*apply --snapshot=no")
    assert outcome.exit_code == EXIT_FAILED
    assert "20240102000000" in outcome.error and "*repair 20240102000000 reverted" in outcome.error
    assert not exists(db, "public.x")
    assert make_session(db_url, yes=True).run_line("*repair 20240102000000 reverted").exit_code == EXIT_OK
    assert "20240102000000" not in [r[0] for r in history(db)]
    assert exists(db, "public.posts")  # repair never touches the schema
    assert make_session(db_url, yes=True).run_line("*apply --snapshot=no").exit_code == EXIT_OK
    assert exists(db, "public.x")


def test_failing_statement_reports_line_and_changes_nothing(project, make_session, db_url, db):
    write(project, "20240101000000_ok.sql", "create table public.ok (id int);\n")
    write(project, "20240102000000_bad.sql",
          "create table public.t1 (id int);\n\ninsert into public.t1 values (1);\n"
          "insert into public.t1\n  values ('not a number');\ncreate table public.t2 (id int);\n")
    write(project, "20240103000000_after.sql", "create table public.after (id int);\n")
    outcome = make_session(db_url, yes=True).run_line("*apply --snapshot=no")
    assert outcome.exit_code == EXIT_FAILED
    result = outcome.result
    assert "20240102000000_bad.sql:5" in result.summary
    assert "invalid input syntax for type integer" in result.summary
    assert exists(db, "public.ok")
    assert not exists(db, "public.t1") and not exists(db, "public.t2") and not exists(db, "public.after")
    assert [r[0] for r in history(db)] == ["20240101000000"]
    assert [e["status"] for e in log_lines(project)] == ["success", "failed"]
    assert log_lines(project)[1]["line"] == 5


def test_non_transactional_file_runs_outside_a_transaction(project, make_session, db_url, db):
    write(project, "20240101000000_t.sql", "create table public.t (id int, v int);\n")
    write(project, "20240102000000_idx.sql", "create index concurrently t_v_idx on public.t (v);\n"
                                             "create index concurrently if not exists t_id_idx on public.t (id);\n")
    seen = []
    session = make_session(db_url, answers=["yes"])
    session.answers.show = seen.append
    outcome = session.run_line("*apply --snapshot=no")
    assert outcome.exit_code == EXIT_OK, outcome.error
    assert "20240102000000_idx.sql: 2 statement(s), NO transaction" in seen[-1]
    assert exists(db, "public.t_v_idx") and exists(db, "public.t_id_idx")
    assert [r[0] for r in history(db)] == ["20240101000000", "20240102000000"]


def test_non_transactional_failure_reports_what_ran(project, make_session, db_url, db):
    write(project, "20240101000000_t.sql", "create table public.t (id int, v int);\n")
    write(project, "20240102000000_idx.sql", "create index concurrently t_v_idx on public.t (v);\n"
                                             "create index concurrently t_w_idx on public.t (w);\n")
    outcome = make_session(db_url, yes=True).run_line("*apply --snapshot=no")
    assert outcome.exit_code == EXIT_FAILED
    assert "20240102000000_idx.sql:2" in outcome.result.summary
    assert outcome.result.data["applied_statements"] == [1]
    assert any("already applied: line 1" in n for n in outcome.result.notes)
    assert exists(db, "public.t_v_idx")
    assert [r[0] for r in history(db)] == ["20240101000000"]


def test_terminated_backend_mid_migration(project, make_session, db_url, db):
    write(project, "20240101000000_slow.sql",
          "create table public.slow (id int);\ncreate index slow_idx on public.slow (id);\n"
          "select pg_sleep(30);\ncreate table public.slow2 (id int);\n")
    found = {}

    def killer():
        with psycopg.connect(db_url, autocommit=True) as conn:
            for _ in range(300):
                row = conn.execute("select pid from pg_stat_activity where application_name = 'db-sage:apply' "
                                   "and datname = current_database() and query like '%%pg_sleep%%'").fetchone()
                if row:
                    found["pid"] = row[0]
                    conn.execute("select pg_terminate_backend(%s)", (row[0],))
                    return
                time.sleep(0.05)

    thread = threading.Thread(target=killer)
    thread.start()
    outcome = make_session(db_url, yes=True).run_line("*apply --snapshot=no")
    thread.join()
    assert found, "the applying backend was never seen"
    assert outcome.exit_code == EXIT_FAILED
    assert "connection to the server was lost" in outcome.result.summary
    assert outcome.result.data["connection_lost"] is True
    assert not exists(db, "public.slow") and not exists(db, "public.slow2")
    assert history(db) == []
    (project / "supabase" / "migrations" / "20240101000000_slow.sql").write_text(
        "create table public.slow (id int);\ncreate index slow_idx on public.slow (id);\n"
        "create table public.slow2 (id int);\n")
    again = make_session(db_url, yes=True).run_line("*apply --snapshot=no")
    assert again.exit_code == EXIT_OK, again.error
    assert exists(db, "public.slow2") and [r[0] for r in history(db)] == ["20240101000000"]


@pytest.mark.parametrize("text,needle", [
    ("create function f() returns int language sql as $$ select 1;\n", "unterminated dollar-quoted string"),
    ("create table public.a (id int);\ncreate tabel public.b (id int);\n", ":2"),
])
def test_bad_files_are_clear_errors(project, make_session, db_url, db, text, needle):
    write(project, "20240101000000_ok.sql", "create table public.ok (id int);\n")
    write(project, "20240102000000_bad.sql", text)
    outcome = make_session(db_url, yes=True).run_line("*apply --snapshot=no")
    assert outcome.exit_code == EXIT_FAILED
    assert "20240102000000_bad.sql" in outcome.error and needle in outcome.error
    assert history(db) == [] and schema_state(db) == []


def test_binary_missing_file_and_missing_folder(project, make_session, db_url, db, tmp_path):
    write(project, "20240101000000_bin.sql", "x")
    (project / "supabase" / "migrations" / "20240101000000_bin.sql").write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00")
    outcome = make_session(db_url, yes=True).run_line("*apply --snapshot=no")
    assert outcome.exit_code == EXIT_USAGE and "binary" in outcome.error
    outcome = make_session(db_url, yes=True).run_line("*apply no_such_thing --snapshot=no")
    assert outcome.exit_code == EXIT_USAGE and "no migration file matches 'no_such_thing'" in outcome.error
    empty = tmp_path / "empty"
    empty.mkdir()
    outcome = make_session(db_url, yes=True, project_dir=empty).run_line("*apply")
    assert outcome.exit_code == EXIT_FAILED and "no supabase/ folder" in outcome.error and "*bootstrap" in outcome.error
    assert history(db) == [] and schema_state(db) == []


def test_begin_commit_in_file_stay_in_one_transaction(project, make_session, db_url, db):
    write(project, "20240101000000_tx.sql", "begin;\ncreate table public.a (id int);\ncommit;\n")
    write(project, "20240102000000_bad.sql", "begin;\ncreate table public.b (id int);\nselect 1/0;\ncommit;\n")
    outcome = make_session(db_url, yes=True).run_line("*apply --snapshot=no")
    assert outcome.exit_code == EXIT_FAILED and "20240102000000_bad.sql:3" in outcome.result.summary
    assert exists(db, "public.a") and not exists(db, "public.b")
    assert [r[0] for r in history(db)] == ["20240101000000"]
    assert history(db)[0][2] == ["begin", "create table public.a (id int)", "commit"]


def test_unsafe_lint_needs_its_own_confirmation(project, make_session, db_url, db):
    db.execute("create table public.big (id int)")
    db.execute("insert into public.big values (1)")  # not empty: the drop stays an error (graded by size)
    write(project, "20240101000000_drop.sql", "drop table public.big;\n")
    seen = []
    session = make_session(db_url, answers=["no"])
    session.answers.show = seen.append
    outcome = session.run_line("*apply --snapshot=no")
    assert outcome.exit_code == EXIT_CONFIRM
    assert "ban-drop-table" in seen[0] and "20240101000000_drop.sql:1" in seen[0]
    assert exists(db, "public.big") and history(db) == []


def test_migrations_listing_and_repair(three, make_session, db_url, db):
    listing = make_session(db_url).run_line("*migrations")
    assert listing.exit_code == EXIT_OK
    assert [r[4] for r in listing.result.tables[0].rows] == ["pending"] * 3
    assert not exists(db, "supabase_migrations.schema_migrations")  # listing never creates the ledger
    outcome = make_session(db_url, yes=True).run_line("*repair 20240101000000 applied")
    assert outcome.exit_code == EXIT_OK, outcome.error
    assert history(db)[0][:2] == ("20240101000000", "users")
    assert not exists(db, "public.users")
    assert make_session(db_url, yes=True).run_line("*repair 20249999000000 applied").exit_code == EXIT_FAILED
    assert make_session(db_url, yes=True).run_line("*repair abc applied").exit_code == 2
    assert make_session(db_url, yes=True).run_line("*repair 20240101000000 maybe").exit_code == 2
    listing = make_session(db_url).run_line("*migrations")
    assert [r[4] for r in listing.result.tables[0].rows] == ["applied", "pending", "pending"]
    assert listing.result.tables[0].rows[0][2] == "2024-01-01 00:00:00"


def test_migration_new(project, make_session, db_url, monkeypatch):
    monkeypatch.setenv("SUPABASE_CLI", "/nonexistent")
    monkeypatch.setattr("sage_agent.db.supabase_cli.shutil.which", lambda name: None)
    monkeypatch.setattr("sage_agent.db.supabase_cli.Path.resolve", lambda self: Path("/nonexistent/x/y/z"),
                        raising=False)
    (project / "supabase").mkdir()
    outcome = make_session(db_url).run_line('*migration-new add_todos --sql "create table public.todos (id int);"')
    assert outcome.exit_code == EXIT_OK, outcome.error
    path = project / outcome.result.data["path"]
    assert path.parent == project / "supabase" / "migrations"
    assert path.name.endswith("_add_todos.sql") and len(path.name.split("_")[0]) == 14
    assert path.read_text() == "create table public.todos (id int);\n"
    second = make_session(db_url).run_line("*migration-new other")
    assert second.result.data["version"] != outcome.result.data["version"]
    assert make_session(db_url).run_line("*migration-new Bad-Name").exit_code == 2
    assert make_session(db_url).run_line("*migration-new ../evil").exit_code == 2
    assert sorted(p.name.split("_", 1)[1] for p in path.parent.iterdir()) == ["add_todos.sql", "other.sql"]



def test_migration_new_with_a_name_already_used_suggests_a_next_step_that_works(project, make_session, db_url,
                                                                                monkeypatch):
    """A second `*migration-new add_todos` suggested `*dry-run add_todos`, which then failed with exit code 2
    ("'add_todos' matches 2 migrations"). The next step names the new file by its version, and a note says why."""
    monkeypatch.setenv("SUPABASE_CLI", "/nonexistent")
    monkeypatch.setattr("sage_agent.db.supabase_cli.shutil.which", lambda name: None)
    monkeypatch.setattr("sage_agent.db.supabase_cli.Path.resolve", lambda self: Path("/nonexistent/x/y/z"),
                        raising=False)
    (project / "supabase").mkdir()
    session = make_session(db_url)
    first = session.run_line('*migration-new add_todos --sql "create table public.todos (id int);"')
    assert first.result.next_steps == ["*dry-run add_todos", "*apply"] and first.result.notes == []
    second = session.run_line('*migration-new add_todos --sql "create table public.tags (id int);"')
    version = second.result.data["version"]
    assert second.result.next_steps == [f"*dry-run {version}", "*apply"]
    assert second.result.notes == [f"{first.result.data['version']}_add_todos.sql is also named add_todos: give this "
                                   f"one by its version ({version})"]
    monkeypatch.undo()  # the real Path.resolve again: *dry-run finds pg_dump through it
    dry = session.run_line(second.result.next_steps[0])  # the suggested step runs as shown
    assert dry.exit_code == EXIT_OK, dry.error
    assert dry.result.summary.startswith(f"{version}_add_todos.sql")

def test_lock_wait_is_bounded(project, make_session, db_url, db, monkeypatch):
    from sage_agent.ops.migrations.applier import APPLY_LOCK_KEY

    write(project, "20240101000000_a.sql", "create table public.a (id int);\n")
    monkeypatch.setenv("SAGE_APPLY_LOCK_WAIT_S", "1")
    with psycopg.connect(db_url, autocommit=True, application_name="other-applier") as holder:
        holder.execute("select pg_advisory_lock(%s)", (APPLY_LOCK_KEY,))
        said = []
        session = make_session(db_url, yes=True)
        session.message_sink = said.append
        outcome = session.run_line("*apply --snapshot=no")
    assert outcome.exit_code == EXIT_FAILED
    assert "another *apply is still running" in outcome.error and "other-applier" in outcome.error
    assert any("waiting up to 1s" in s for s in said)
    assert history(db) == [] and not exists(db, "public.a")


def test_timeouts_are_server_side_and_validated(project, make_session, db_url, db):
    write(project, "20240101000000_slow.sql", "create table public.s (id int);\nselect pg_sleep(3);\n")
    outcome = make_session(db_url, yes=True).run_line("*apply --snapshot=no --statement-timeout 300ms")
    assert outcome.exit_code == EXIT_FAILED
    assert "statement timeout" in outcome.result.summary and "20240101000000_slow.sql:2" in outcome.result.summary
    assert history(db) == [] and not exists(db, "public.s")
    bad = make_session(db_url, yes=True).run_line("*apply --snapshot=no --lock-timeout forever")
    assert bad.exit_code == 2 and "lock_timeout" in bad.error


def test_atomic_as_a_name_is_not_a_function_body(project, make_session, db_url, db):
    # CLI 3.x treats ATOMIC as a body opener only after BEGIN; a table named atomic splits normally
    write(project, "20240101000000_x.sql", "create table atomic (c int);\ninsert into atomic values (1);\n"
                                           "create function one() returns int language sql\nbegin atomic\n"
                                           "  select 1;\nend;\n")
    outcome = make_session(db_url, yes=True).run_line("*apply --snapshot=no")
    assert outcome.exit_code == EXIT_OK, outcome.error
    assert db.execute("select count(*) from public.atomic").fetchone()[0] == 1
    assert history(db)[0][2] == ["create table atomic (c int)", "insert into atomic values (1)",
                                 "create function one() returns int language sql\nbegin atomic\n  select 1;\nend"]


def test_cli_no_transaction_header_is_honoured(project, make_session, db_url, db):
    write(project, "20240101000000_t.sql", "create table public.t (v int);\n")
    write(project, "20240102000000_vac.sql", "-- pg-delta: transaction=false\nvacuum public.t;\n"
                                             "create index concurrently t_v_idx on public.t (v);\n")
    outcome = make_session(db_url, yes=True).run_line("*apply --snapshot=no")
    assert outcome.exit_code == EXIT_OK, outcome.error
    assert [r[3] for r in outcome.result.tables[0].rows] == ["success", "success"]
    assert outcome.result.tables[0].rows[1][2] == "no"
    assert exists(db, "public.t_v_idx")


def test_fast_path_covers_every_non_transactional_statement_kind():
    """prepare_file only asks sqlkit.classify about these node types; keep the list in step with classify."""
    import importlib
    import inspect
    import re

    from sage_agent.ops.migrations.applier import _MAYBE_SPECIAL

    classify_module = importlib.import_module("sage_agent.sqlkit.classify")
    body = inspect.getsource(classify_module._transactional)
    assert set(re.findall(r"ast\.(\w+Stmt)", body)) <= _MAYBE_SPECIAL


def test_out_of_order_is_asked_at_the_repl(three, project, db_url, db, make_session):
    """At the REPL the older file is a question (default no), not a failure; yes applies it."""
    assert make_session(db_url, yes=True).run_line("*apply --snapshot=no").exit_code == EXIT_OK
    write(three, "20231231000000_early.sql", "create table public.early (id int);\n")
    asked: list[str] = []
    replies = ["yes", "y", "y", "y"]
    from sage_agent.db.env import Target
    from sage_agent.session.answers import PromptAnswers
    from sage_agent.session.machine import Session

    session = Session(project=project, target=Target("local", db_url, "test"),
                      answers=PromptAnswers(prompt=lambda m: (asked.append(m), replies.pop(0))[1]))
    outcome = session.run_line("*apply --snapshot=no")
    assert outcome.exit_code == EXIT_OK, outcome.error
    assert asked[0] == "Apply them anyway (check they do not depend on newer ones)? (yes/no, default no): "
    assert exists(db, "public.early")


def test_migrations_with_nothing_anywhere_says_how_to_start(project, make_session, db_url):
    """`*migrations` in a new folder said `0 local, 0 applied, 0 pending` and `Migrations: none`, and no next step:
    before *bootstrap it offers *bootstrap, after it *migration-new NAME."""
    out = make_session(db_url).run_line("*migrations")
    assert out.exit_code == EXIT_OK and out.result.summary == "0 local, 0 applied, 0 pending"
    assert out.result.next_steps == ["*bootstrap"]
    (project / "supabase" / "migrations").mkdir(parents=True)
    assert make_session(db_url).run_line("*migrations").result.next_steps == ["*migration-new NAME"]

"""*apply past error-level lint findings only with the typed word UNSAFE (REPL) or `sage run --allow-unsafe`;
`--yes` answers yes/no only, and headless output lists every finding that stopped it. *dry-run with no file
runs every pending file in order on one shadow, with the same verdict policy as *apply."""

from __future__ import annotations

import json

from sage_agent.session.machine import EXIT_CONFIRM, EXIT_FAILED, EXIT_OK
from migfiles import write_migration as write


def exists(db, name: str) -> bool:
    return db.execute("select to_regclass(%s) is not null", (name,)).fetchone()[0]


def history(db) -> list[str]:
    if not exists(db, "supabase_migrations.schema_migrations"):
        return []
    return [r[0] for r in db.execute("select version from supabase_migrations.schema_migrations order by 1")]


UNSAFE_FILE = "drop table public.big;\nalter table public.keep alter column id type bigint;\n"


def test_headless_yes_does_not_pass_error_findings_and_lists_each(run_sage, project, db_url, db):
    db.execute("create table public.big (id int)")
    db.execute("insert into public.big values (1)")
    db.execute("create table public.keep (id int)")
    db.execute("insert into public.keep values (1)")
    write(project, "20240101000000_risky.sql", UNSAFE_FILE)
    proc = run_sage("run", "*apply --snapshot=no", "--yes", "--db-url", db_url, "--json", cwd=project)
    assert proc.returncode == EXIT_CONFIRM, proc.stdout + proc.stderr
    error = json.loads(proc.stdout)["error"]
    assert "Re-run with --allow-unsafe" in error
    assert "20240101000000_risky.sql:1 ban-drop-table" in error
    assert "20240101000000_risky.sql:2 changing-column-type" in error
    assert exists(db, "public.big") and history(db) == []
    proc = run_sage("run", "*apply --snapshot=no", "--db-url", db_url, cwd=project)  # no --yes either
    assert proc.returncode == EXIT_CONFIRM and "ban-drop-table" in proc.stderr + proc.stdout
    proc = run_sage("run", "*apply --snapshot=no", "--yes", "--allow-unsafe", "--db-url", db_url, "--json",
                    cwd=project)
    assert proc.returncode == EXIT_OK, proc.stdout + proc.stderr
    doc = json.loads(proc.stdout)
    assert not exists(db, "public.big") and history(db) == ["20240101000000"]
    assert {(f["rule"], f["severity"]) for f in doc["findings"]} >= {("ban-drop-table", "error"),
                                                                     ("changing-column-type", "error")}
    assert any("UNSAFE confirmed" in n for n in doc["notes"])


def test_allow_unsafe_still_needs_the_yes_no_answer(run_sage, project, db_url, db):
    db.execute("create table public.big (id int)")
    db.execute("insert into public.big values (1)")  # an empty table's drop is only info (graded by size)
    write(project, "20240101000000_drop.sql", "drop table public.big;\n")
    proc = run_sage("run", "*apply --snapshot=no", "--allow-unsafe", "--db-url", db_url, cwd=project)
    assert proc.returncode == EXIT_CONFIRM and "--yes" in proc.stderr + proc.stdout
    assert exists(db, "public.big")


def test_repl_needs_the_typed_word(project, make_session, db_url, db):
    db.execute("create table public.big (id int)")
    db.execute("insert into public.big values (1)")  # an empty table's drop is only info (graded by size)
    write(project, "20240101000000_drop.sql", "drop table public.big;\n")
    shown: list[str] = []
    yes_only = make_session(db_url, answers=["y", "y"])
    yes_only.answers.show = shown.append
    outcome = yes_only.run_line("*apply --snapshot=no")
    assert outcome.exit_code == EXIT_CONFIRM
    assert "20240101000000_drop.sql:1 ban-drop-table" in shown[0]
    assert exists(db, "public.big") and history(db) == []
    typed = make_session(db_url, answers=["UNSAFE", "y"])
    outcome = typed.run_line("*apply --snapshot=no")
    assert outcome.exit_code == EXIT_OK, outcome.error
    assert not exists(db, "public.big") and history(db) == ["20240101000000"]


def test_dry_run_of_every_pending_file_on_one_shadow(project, make_session, db_url, db):
    write(project, "20240101000000_projects.sql",
          "create table if not exists public.projects (id bigint generated always as identity primary key, "
          "name text not null);\n")
    write(project, "20240102000000_tasks.sql",
          "create table if not exists public.tasks (id bigint generated always as identity primary key, "
          "project_id bigint not null references public.projects (id));\n")
    write(project, "20240103000000_notes.sql",
          "alter table public.projects add column if not exists note text;\n")
    outcome = make_session(db_url).run_line("*dry-run")
    result = outcome.result
    assert result is not None, outcome.error
    files = result.data["files"]
    assert [f["file"] for f in files] == ["20240101000000_projects.sql", "20240102000000_tasks.sql",
                                          "20240103000000_notes.sql"]
    assert all(f["error"] is None for f in files), files  # tasks references projects: it passes
    assert result.data["verdict"] in ("safe", "caution")
    assert outcome.exit_code == EXIT_OK
    report = (project / "supabase" / "tests" / "dry-run-pending.md").read_text()
    for name in ("20240101000000_projects.sql", "20240102000000_tasks.sql", "20240103000000_notes.sql"):
        assert f"## Dry Run Report - {name}" in report
    assert not exists(db, "public.projects")  # the target is only read
    assert history(db) == []


def test_dry_run_chain_stops_at_a_failing_file_and_shares_the_verdict_with_apply(project, make_session, db_url,
                                                                                  db):
    db.execute("create table public.big (id int)")
    db.execute("insert into public.big values (1)")
    write(project, "20240101000000_ok.sql", "create table if not exists public.a (id bigint primary key);\n")
    write(project, "20240102000000_broken.sql", "insert into public.missing values (1);\n")
    write(project, "20240103000000_after.sql", "create table if not exists public.b (id bigint primary key);\n")
    outcome = make_session(db_url).run_line("*dry-run")
    assert outcome.exit_code == EXIT_FAILED
    files = {f["file"]: f for f in outcome.result.data["files"]}
    assert files["20240101000000_ok.sql"]["error"] is None
    assert 'relation "public.missing" does not exist' in files["20240102000000_broken.sql"]["error"]
    assert files["20240102000000_broken.sql"]["verdict"] == "unsafe"
    assert files["20240103000000_after.sql"]["verdict"] == "unsafe"
    assert "NOT RUN" in outcome.result.summary or any("not run on the shadow" in n for n in outcome.result.notes)
    # an error-level lint finding: unsafe in the dry-run, and *apply asks for UNSAFE
    for name in ("20240101000000_ok.sql", "20240102000000_broken.sql", "20240103000000_after.sql"):
        (project / "supabase" / "migrations" / name).unlink()
    write(project, "20240104000000_drop.sql", "drop table public.big;\n")
    dry = make_session(db_url).run_line("*dry-run")
    assert dry.result.data["verdict"] == "unsafe"
    assert make_session(db_url, yes=True).run_line("*apply --snapshot=no").exit_code == EXIT_CONFIRM
    assert exists(db, "public.big")


def test_dry_run_with_nothing_pending(project, make_session, db_url):
    (project / "supabase" / "migrations").mkdir(parents=True)
    outcome = make_session(db_url).run_line("*dry-run")
    assert outcome.exit_code == EXIT_OK and "No pending migrations" in outcome.result.summary


def test_apply_and_dry_run_grade_by_the_real_table_size_alike(project, make_session, db_url, db):
    """The same policy: dropping an empty table is info in both (no UNSAFE needed); once it has a row it is
    an error in both (dry-run UNSAFE, *apply asks for the typed word)."""
    db.execute("create table public.gone (id int)")
    write(project, "20240101000000_drop.sql", "drop table public.gone;\n")
    assert make_session(db_url).run_line("*dry-run").result.data["verdict"] != "unsafe"
    db.execute("insert into public.gone values (1)")
    db.execute("analyze public.gone")
    assert make_session(db_url).run_line("*dry-run").result.data["verdict"] == "unsafe"
    assert make_session(db_url, yes=True).run_line("*apply --snapshot=no").exit_code == EXIT_CONFIRM
    db.execute("truncate public.gone")
    db.execute("analyze public.gone")
    outcome = make_session(db_url, yes=True).run_line("*apply --snapshot=no")
    assert outcome.exit_code == EXIT_OK, outcome.error
    assert not exists(db, "public.gone")


def test_a_table_an_earlier_pending_file_creates_is_empty_for_the_later_ones(project, make_session, db_url, db):
    """File 2 creates public.tasks, file 3 adds a NOT NULL column without a default: on the target the table
    does not exist yet, so it is empty when file 3 runs. The finding is info in *dry-run and in *apply (which
    applied the chain with --yes alone; it used to want --allow-unsafe). When a file writes rows into the table
    before, the error stays, and the shadow shows the ALTER failing."""
    write(project, "20240101000000_projects.sql", "create table public.projects (id bigint primary key);\n")
    write(project, "20240102000000_tasks.sql", "create table public.tasks (id bigint primary key, "
                                               "project_id bigint references public.projects (id));\n")
    write(project, "20240103000000_title.sql", "alter table public.tasks add column title text not null;\n")
    one = make_session(db_url).run_line("*dry-run 20240103000000_title.sql")  # alone: public.tasks is missing
    assert one.exit_code == EXIT_FAILED and 'relation "public.tasks" does not exist' in one.result.summary
    assert one.result.notes[0].startswith("2 pending file(s) come before 20240103000000_title.sql "
                                          "(20240101000000_projects.sql, 20240102000000_tasks.sql)")
    assert one.result.next_steps[0] == "*dry-run"  # the chain, not the same command again
    dry = make_session(db_url).run_line("*dry-run")
    assert dry.exit_code == EXIT_OK and dry.result.data["verdict"] != "unsafe", dry.result.summary
    finding = next(f for f in dry.result.findings if f.rule == "adding-required-field")
    assert finding.severity == "info"
    assert "public.tasks is created by 20240102000000_tasks.sql, pending before this file" in finding.message
    outcome = make_session(db_url, yes=True).run_line("*apply --snapshot=no")
    assert outcome.exit_code == EXIT_OK, outcome.error
    assert history(db)[-1] == "20240103000000"

    write(project, "20240104000000_notes.sql", "create table public.notes (id bigint primary key);\n"
                                               "insert into public.notes values (1);\n")
    write(project, "20240105000000_body.sql", "alter table public.notes add column body text not null;\n")
    dry = make_session(db_url).run_line("*dry-run")
    assert dry.exit_code == EXIT_FAILED
    finding = next(f for f in dry.result.findings if f.rule == "adding-required-field")
    assert finding.severity == "error" and "created by" not in finding.message
    body = next(f for f in dry.result.data["files"] if f["file"] == "20240105000000_body.sql")
    assert 'column "body" of relation "notes" contains null values' in body["error"]
    assert make_session(db_url, yes=True).run_line("*apply --snapshot=no").exit_code == EXIT_CONFIRM


def test_unsafe_dry_run_suggests_what_moves_on_not_the_same_dry_run(run_sage, project, db_url, db):
    """An UNSAFE *dry-run by error-level lint findings only: the next steps are fixing the file, or *apply past
    the findings with the typed word (headless --allow-unsafe), as *apply asks; the headless line it gives works."""
    db.execute("create table public.big (id int)")
    db.execute("insert into public.big values (1)")
    write(project, "20240101000000_drop.sql", "drop table public.big;\n")
    for line, apply in (("*dry-run 20240101000000_drop.sql", "*apply 20240101000000_drop.sql"),
                        ("*dry-run", "*apply")):
        proc = run_sage("run", line, "--db-url", db_url, "--json", cwd=project)
        assert proc.returncode == EXIT_FAILED, proc.stdout + proc.stderr
        steps = json.loads(proc.stdout)["next_steps"]
        assert line not in steps
        assert steps[0].startswith("fix 20240101000000_drop.sql per the findings above, then *dry-run")
        assert steps[1] == (f"{apply} past the 1 error-level lint finding(s): type UNSAFE when it asks "
                            f"(headless: sage run \"{apply}\" --yes --allow-unsafe)")
    proc = run_sage("run", "*apply 20240101000000_drop.sql --snapshot=no", "--yes", "--allow-unsafe",
                    "--db-url", db_url, cwd=project)
    assert proc.returncode == EXIT_OK, proc.stdout + proc.stderr
    assert not exists(db, "public.big")


def test_dry_run_of_a_file_that_fails_suggests_fixing_it_only(run_sage, project, db_url, db):
    write(project, "20240101000000_bad.sql", "alter table public.nope add column a int;\n")
    proc = run_sage("run", "*dry-run 20240101000000_bad.sql", "--db-url", db_url, "--json", cwd=project)
    assert proc.returncode == EXIT_FAILED, proc.stdout + proc.stderr
    assert json.loads(proc.stdout)["next_steps"] == [
        "fix 20240101000000_bad.sql per the findings above, then *dry-run 20240101000000_bad.sql"]


def test_chain_dry_run_at_60_columns_names_each_file_whole(run_sage, project, db_url, db):
    """*dry-run with several pending files at 60 columns: each file name and each finding name on one line, the
    failing file's detail gives its line (not the name again, which wrapped mid-name); at 160 columns too."""
    db.execute("create table public.big (id int)")
    db.execute("insert into public.big values (1)")
    write(project, "20240101000000_drop_big.sql", "drop table public.big;\n")
    write(project, "20240102000000_add_tags.sql", "alter table public.nope add column a bigint;\n")
    write(project, "20240103000000_more.sql", "create table public.more (id bigint primary key);\n")
    for width in ("60", "160"):
        proc = run_sage("run", "*dry-run", "--db-url", db_url, cwd=project, env={"COLUMNS": width})
        assert proc.returncode == EXIT_FAILED, proc.stdout + proc.stderr
        lines = proc.stdout.splitlines()
        assert max(len(line) for line in lines) <= int(width)
        for name in ("20240101000000_drop_big.sql", "20240102000000_add_tags.sql", "20240103000000_more.sql",
                     "ban-drop-table", "apply.failed"):
            assert any(name in line for line in lines), name
        table = lines[lines.index("Pending migrations (in order, one shadow)"):lines.index("Impact on the target")]
        details = " ".join(line.rstrip(" │").rsplit("│", 1)[-1].strip() for line in table if line.startswith("│"))
        assert "fails on the shadow at line 1: relation \"public.nope\" does not exist" in details
        assert "20240102000000 failed before it" in details
        assert [line.split("│")[1].strip() for line in table if line.startswith("│ 2024")] == [
            "20240101000000_drop_big.sql", "20240102000000_add_tags.sql", "20240103000000_more.sql"]


def test_chain_dry_run_suggests_online_when_each_unsafe_file_has_an_online_form(run_sage, project, db_url, db):
    db.execute("create table public.items (id bigint primary key, name text)")
    db.execute("insert into public.items select g, 'n' || g from generate_series(1, 100) g")
    write(project, "20240101000000_name.sql", "alter table public.items alter column name set not null;\n")
    proc = run_sage("run", "*dry-run", "--db-url", db_url, "--json", cwd=project)
    assert proc.returncode == EXIT_FAILED, proc.stdout + proc.stderr
    assert json.loads(proc.stdout)["next_steps"] == [
        "fix 20240101000000_name.sql per the findings above, then *dry-run", "*dry-run --online",
        "*apply past the 1 error-level lint finding(s): type UNSAFE when it asks "
        "(headless: sage run \"*apply\" --yes --allow-unsafe)"]
    online = run_sage("run", "*dry-run --online", "--db-url", db_url, "--json", cwd=project)
    assert online.returncode == EXIT_OK, online.stdout + online.stderr
    assert json.loads(online.stdout)["next_steps"] == ["*apply --online"]

"""*dry-run grades lint findings by the real table: a rewrite of an empty table is info (the verdict is not
UNSAFE for it), one of a table above SAGE_LINT_ERROR_MB is an error with the estimated duration."""
from __future__ import annotations


from sage_agent.session.machine import EXIT_FAILED
from migfiles import write_migration as write


def seed(db) -> None:
    db.execute("create table public.empty_box (id int, n int)")
    db.execute("create table public.full_box (id int, n int)")
    db.execute("insert into public.full_box select g, g from generate_series(1, 20000) g")
    db.execute("analyze public.full_box")


def _finding(result, rule: str, table_hint: str):
    return [f for f in result.findings if f.rule == rule and table_hint in f.message]


def test_rewrite_of_an_empty_table_is_info(project, make_session, db_url, db):
    seed(db)
    write(project, "20240101000000_widen.sql", "alter table public.empty_box alter column n type bigint;\n")
    outcome = make_session(db_url).run_line("*dry-run widen")
    (f,) = _finding(outcome.result, "changing-column-type", "empty_box")
    assert f.severity == "info" and "is empty" in f.message
    assert outcome.result.data["verdict"] != "unsafe", outcome.result.findings


def test_rewrite_of_a_table_above_the_threshold_is_an_error(project, make_session, db_url, db, monkeypatch):
    seed(db)
    monkeypatch.setenv("SAGE_LINT_ERROR_MB", "0.1")  # full_box is ~1 MB
    write(project, "20240101000000_widen.sql", "alter table public.full_box alter column n type bigint;\n")
    outcome = make_session(db_url).run_line("*dry-run widen")
    (f,) = _finding(outcome.result, "changing-column-type", "full_box")
    assert f.severity == "error" and "20,000 rows" in f.message and "s under ACCESS EXCLUSIVE" in f.message
    assert outcome.exit_code == EXIT_FAILED and outcome.result.data["verdict"] == "unsafe"

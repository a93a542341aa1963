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


def _impact_rows(result, table: str) -> list[str]:
    return [r[3] for r in result.data["impact"] if r[1] == table and r[2] == "rewrites"]


def test_a_table_loaded_and_never_analyzed_shows_its_counted_rows(project, make_session, db_url, db):
    """reltuples is -1 until the first ANALYZE: the rows are counted (the old count stopped at 100,001 and
    the report said "~100k rows" for 300,000)."""
    db.execute("create table public.fresh (id int, n int) with (autovacuum_enabled = off)")
    db.execute("insert into public.fresh select g, g from generate_series(1, 300000) g")
    assert db.execute("select reltuples from pg_class where oid = 'public.fresh'::regclass").fetchone()[0] < 0
    write(project, "20240101000000_widen.sql", "alter table public.fresh alter column n type bigint;\n")
    outcome = make_session(db_url).run_line("*dry-run widen")
    assert _impact_rows(outcome.result, "public.fresh") == ["300,000 rows"]
    (f,) = _finding(outcome.result, "changing-column-type", "fresh")
    assert f.severity == "error" and "is empty" not in f.message


def test_a_table_analyzed_empty_then_loaded_is_not_graded_empty(project, make_session, db_url, db):
    """ANALYZE on the empty table left reltuples 0; 50,000 rows were loaded since. The finding keeps the rule's
    severity (it used to become info, "is empty") and the impact shows the real rows."""
    db.execute("create table public.loaded (id int, n int) with (autovacuum_enabled = off)")
    db.execute("analyze public.loaded")
    db.execute("insert into public.loaded select g, g from generate_series(1, 50000) g")
    write(project, "20240101000000_widen.sql", "alter table public.loaded alter column n type bigint;\n")
    outcome = make_session(db_url).run_line("*dry-run widen")
    (f,) = _finding(outcome.result, "changing-column-type", "loaded")
    assert f.severity == "error" and "is empty" not in f.message
    assert _impact_rows(outcome.result, "public.loaded") == ["50,000 rows"]


def test_stale_statistics_are_scaled_to_the_current_size(project, make_session, db_url, db):
    """Analyzed at 20,000 rows, then grown to 60,000: the figure follows the table's pages, as the planner's does."""
    db.execute("create table public.grown (id int, n int) with (autovacuum_enabled = off)")
    db.execute("insert into public.grown select g, g from generate_series(1, 20000) g")
    db.execute("analyze public.grown")
    db.execute("insert into public.grown select g, g from generate_series(1, 40000) g")
    write(project, "20240101000000_widen.sql", "alter table public.grown alter column n type bigint;\n")
    outcome = make_session(db_url).run_line("*dry-run widen")
    assert _impact_rows(outcome.result, "public.grown") == ["~60k rows"]


def test_a_partitioned_table_counts_its_partitions(project, make_session, db_url, db):
    """A partitioned table has no storage of its own: its size and rows are its partitions'."""
    db.execute("create table public.parted (id int, n int) partition by range (id)")
    db.execute("create table public.parted_1 partition of public.parted for values from (0) to (5000)")
    db.execute("create table public.parted_2 partition of public.parted for values from (5000) to (10001)")
    db.execute("insert into public.parted select g, g from generate_series(1, 10000) g")
    db.execute("analyze public.parted")
    write(project, "20240101000000_widen.sql", "alter table public.parted alter column n type bigint;\n")
    outcome = make_session(db_url).run_line("*dry-run widen")
    rows = [r for r in outcome.result.data["impact"] if r[1] == "public.parted" and r[2] == "rewrites"]
    assert [r[3] for r in rows] == ["~10k rows"] and rows[0][4].endswith(("kB", "MB"))


def test_beyond_the_count_cap_the_figure_says_it_is_an_estimate(project, make_session, db_url, db, monkeypatch):
    """Too big to count (the cap is lowered here): the planner's estimate from the size, and the report says so."""
    from sage_agent.ops.migrations import shadow_run

    monkeypatch.setattr(shadow_run, "COUNT_CAP", 1000)
    db.execute("create table public.huge (id int, n int) with (autovacuum_enabled = off)")
    db.execute("insert into public.huge select g, g from generate_series(1, 30000) g")
    write(project, "20240101000000_widen.sql", "alter table public.huge alter column n type bigint;\n")
    outcome = make_session(db_url).run_line("*dry-run widen")
    (text,) = _impact_rows(outcome.result, "public.huge")
    assert text.endswith("k rows (never analyzed: estimated from its size)"), text
    low = int(text.split("k rows")[0].lstrip("~"))
    assert 15 <= low <= 60, text  # the planner's guess from the pages, not the 1,001 rows counted

"""*dry-run: never touches the target; impact with real sizes; object changes; verdicts; the report."""

from __future__ import annotations


from sage_agent.session.machine import EXIT_FAILED, EXIT_OK, EXIT_USAGE
from migfiles import write_migration as write


def dump(url: str) -> str:
    from sage_agent.db.tools import run_pg_tool

    text = run_pg_tool("pg_dump", url, ["--schema-only", "--no-password"], server_major=18).stdout + \
        run_pg_tool("pg_dump", url, ["--data-only", "-n", "supabase_migrations", "--no-password"],
                    server_major=18).stdout
    return "\n".join(line for line in text.splitlines() if not line.startswith(("\\restrict", "\\unrestrict")))


def seed_target(db) -> None:
    db.execute("create schema supabase_migrations")
    db.execute("create table supabase_migrations.schema_migrations (version text primary key, statements text[], "
               "name text)")
    db.execute("insert into supabase_migrations.schema_migrations values ('20240101000000', '{x}', 'orders')")
    db.execute("create table public.orders (id bigint primary key, total int, note text)")
    db.execute("insert into public.orders select g, g % 100, 'n' from generate_series(1, 20000) g")
    db.execute("analyze public.orders")
    db.execute("create view public.order_notes as select id, note from public.orders")
    db.execute("create table public.items (id int)")


def test_dry_run_reports_impact_and_never_changes_the_target(project, make_session, db_url, db):
    seed_target(db)
    write(project, "20240101000000_orders.sql", "select 1;\n")
    write(project, "20240102000000_change.sql",
          "alter table public.orders alter column total type bigint;\n"
          "alter table public.orders add constraint total_pos check (total >= 0);\n"
          "create table public.todos (id bigint primary key, title text);\n"
          "drop table public.items;\n")
    before = dump(db_url)
    outcome = make_session(db_url).run_line("*dry-run change")
    assert outcome.exit_code == EXIT_FAILED  # unsafe: drop table
    result = outcome.result
    assert result.data["verdict"] == "unsafe"
    impact = {(r[1], r[2]): r for r in result.data["impact"]}
    row = impact[("public.orders", "rewrites")]
    assert row[3] == "~20k rows" and row[4].endswith(("kB", "MB")) and row[5] == "ACCESS EXCLUSIVE"
    assert ("public.orders", "scans") in impact
    changes = {(c[0], c[1], c[2]) for c in result.data["changes"]}
    assert ("created", "table", "public.todos") in changes
    assert ("dropped", "table", "public.items") in changes
    assert ("altered", "table", "public.orders") in changes
    assert ("created", "constraint", "public.orders.total_pos") in changes
    checks = {c["check"]: c for c in result.data["checks"]}
    assert checks["new tables in public have row-level security"]["passed"] is False
    report = project / "supabase" / "tests" / "dry-run-20240102000000_change.md"
    text = report.read_text()
    assert "rewrites public.orders, ~20k rows" in text and "ACCESS EXCLUSIVE" in text
    assert "ban-drop-table" in text and "UNSAFE" in text
    assert dump(db_url) == before  # the target is untouched
    assert "postgres:postgres@" not in text


def test_dry_run_safe_file_and_failures(project, make_session, db_url, db):
    seed_target(db)
    write(project, "20240101000000_orders.sql", "select 1;\n")
    write(project, "20240102000000_safe.sql",
          "create table public.tags (id bigint generated always as identity primary key, name text not null);\n"
          "alter table public.tags enable row level security;\n")
    write(project, "20240103000000_broken.sql",
          "create table public.a (id int);\n\nalter table public.nope add column x int;\n")
    write(project, "20240104000000_syntax.sql", "create table public.b (id int);\ncreate tabel x;\n")
    before = dump(db_url)
    outcome = make_session(db_url).run_line("*dry-run 20240102000000_safe.sql")
    assert outcome.exit_code == EXIT_OK, outcome.error
    assert outcome.result.data["verdict"] in ("safe", "caution")
    assert ("created", "table", "public.tags") in {tuple(c) for c in outcome.result.data["changes"]}
    broken = make_session(db_url).run_line("*test-migration broken")
    assert broken.exit_code == EXIT_FAILED
    assert "20240103000000_broken.sql:3" in broken.result.summary and "does not exist" in broken.result.summary
    syntax = make_session(db_url).run_line("*dry-run syntax")
    assert syntax.exit_code == EXIT_FAILED and "20240104000000_syntax.sql:2" in syntax.result.summary
    missing = make_session(db_url).run_line("*dry-run nothing_like_this")
    assert missing.exit_code == EXIT_USAGE and "no migration file matches" in missing.error
    assert dump(db_url) == before


def test_apply_and_dry_run_on_postgres_15(project, make_session, pg_server, pg15_url):
    # pg_server sets SAGE_SHADOW_URL: shadows go to the session server, no per-project embedded server
    import psycopg

    write(project, "20240101000000_base.sql", "create table public.orders (id bigint primary key, total int);\n"
                                              "insert into public.orders select g, g from generate_series(1, 500) g;\n")
    write(project, "20240102000000_idx.sql", "create index concurrently orders_total_idx on public.orders (total);\n")
    outcome = make_session(pg15_url, yes=True).run_line("*apply --snapshot=no")
    assert outcome.exit_code == EXIT_OK, outcome.error
    write(project, "20240103000000_change.sql", "alter table public.orders alter column total type bigint;\n")
    dry = make_session(pg15_url).run_line("*dry-run change")
    assert dry.result is not None, dry.error
    assert ("altered", "table", "public.orders") in {tuple(c) for c in dry.result.data["changes"]}
    assert any(r[1] == "public.orders" and r[2] == "rewrites" and r[3] == "~500 rows" for r in dry.result.data["impact"])
    with psycopg.connect(pg15_url) as conn:
        assert conn.execute("select count(*) from supabase_migrations.schema_migrations").fetchone()[0] == 2
        assert conn.execute("select format_type(atttypid, atttypmod) from pg_attribute "
                            "where attrelid = 'public.orders'::regclass and attname = 'total'").fetchone()[0] == "integer"


def test_a_finding_says_which_lock_it_takes_not_a_bare_lock_mode(project, make_session, db_url, db):
    """The tour's *dry-run add_todos showed `SHARE ROW EXCLUSIVE` alone on a line under each finding: it now says
    what it is (`takes SHARE ROW EXCLUSIVE`), and what else the statement does (`rewrites the table`)."""
    import io

    from sage_agent.frontends.render import make_console, render_text

    seed_target(db)
    write(project, "20240101000000_orders.sql", "select 1;\n")
    write(project, "20240102000000_change.sql", "alter table public.orders alter column total type bigint;\n")
    result = make_session(db_url).run_line("*dry-run change").result
    details = {f.rule: f.detail for f in result.findings}
    assert details["changing-column-type"] == "takes ACCESS EXCLUSIVE, rewrites the table"
    out = io.StringIO()
    console = make_console(width=60)
    console.file = out
    render_text(result, console)
    lines = out.getvalue().splitlines()
    assert "          takes ACCESS EXCLUSIVE, rewrites the table" in lines
    assert "          ACCESS EXCLUSIVE" not in lines

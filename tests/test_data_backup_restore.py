"""*backup and *restore against real databases: round trips in every format, damage, refusal, new database."""

from __future__ import annotations

import json
import secrets
import subprocess
from pathlib import Path

import psycopg
import pytest

from sage_agent.db.redact import redact
from sage_agent.session.machine import EXIT_CONFIRM, EXIT_OK, EXIT_USAGE

SCHEMA = """
create table customers (id bigint generated always as identity primary key, name text not null,
                        tags text[], meta jsonb, created_at timestamptz not null default now());
create table orders (id bigserial primary key, customer_id bigint not null references customers(id),
                     amount numeric(12,2) check (amount >= 0), note text);
create index orders_customer_idx on orders (customer_id);
create view big_orders as select * from orders where amount > 100;
alter table orders enable row level security;
create policy own_orders on orders for select to authenticated using (true);
insert into customers (name, tags, meta) select 'c' || g, array['a', 'b' || g], jsonb_build_object('g', g)
  from generate_series(1, 300) g;
insert into orders (customer_id, amount, note) select 1 + g % 300, g * 1.5, case when g % 7 = 0 then null
  else 'note ' || g end from generate_series(1, 1000) g;
create table empty_one (x int);
"""


def fingerprint(url: str) -> dict[str, object]:
    """Row counts and a checksum of every user table's contents."""
    with psycopg.connect(url, autocommit=True) as conn:
        tables = conn.execute(
            "select format('%I.%I', schemaname, tablename) from pg_tables where schemaname in ('public', 'auth') "
            "order by 1").fetchall()
        out = {}
        for (t,) in tables:
            out[t] = conn.execute(f"select count(*), md5(coalesce(string_agg(x::text, '|' order by x::text), '')) "
                                  f"from {t} x").fetchone()
        return out


def schema_dump(url: str) -> str:
    from sage_agent.db.binaries import find_binary
    from sage_agent.db.tools import tool_env

    proc = subprocess.run([str(find_binary("pg_dump", 18)), "--schema-only", "--no-owner"], env=tool_env(url),
                          capture_output=True, text=True, check=True)
    lines = [l for l in proc.stdout.splitlines()
             if not l.startswith(("\\restrict", "\\unrestrict", "-- Dumped", "-- Started", "-- Completed"))]
    return "\n".join(lines)


def new_db_url(pg_server) -> tuple[str, str]:
    from sage_agent.db.urls import replace_dbname

    name = f"t_new_{secrets.token_hex(4)}"
    return name, replace_dbname(pg_server.url(), name)


@pytest.fixture
def source(db_url, db):
    db.execute(SCHEMA)
    return db_url


@pytest.mark.parametrize("fmt", ["custom", "plain", "directory"])
def test_round_trip_every_format(fmt, make_session, source, pg_server, project):
    from sage_agent.db.shadow import drop_database

    out = make_session(source).run_line(f"*backup first {fmt}" + (" --jobs 2" if fmt == "directory" else ""))
    assert out.exit_code == EXIT_OK, out.error or out.result.summary
    ext = {"custom": ".dump", "plain": ".sql", "directory": ".dir"}[fmt]
    artifact = project / "supabase" / "backups" / f"first{ext}"
    meta = json.loads((project / "supabase" / "backups" / "first.json").read_text())
    assert artifact.exists() and meta["format"] == fmt and len(meta["sha256"]) == 64
    assert {t["name"]: t["rows"] for t in meta["tables"] if t["schema"] == "public"} == \
        {"customers": 300, "orders": 1000, "empty_one": 0}
    assert meta["consistent_snapshot"] is True
    assert meta["url"] == redact(source) and ":***@" in meta["url"]  # the password never reaches the file
    name, target = new_db_url(pg_server)
    try:
        out = make_session(source, confirm=("RESTORE",)).run_line(f"*restore first --into {target}")
        assert out.exit_code == EXIT_OK, out.error or out.result.summary
        assert out.result.data["created_database"] is True and out.result.data["verified"] is True
        assert fingerprint(target) == fingerprint(source)
        assert schema_dump(target) == schema_dump(source)
    finally:
        drop_database(pg_server.url(), name)


def test_restore_over_existing_data_makes_a_safety_backup(make_session, source, db, project):
    assert make_session(source).run_line("*backup snap").exit_code == EXIT_OK
    before = fingerprint(source)
    db.execute("delete from orders where id > 10; update customers set name = 'changed'; create table extra (y int)")
    out = make_session(source, confirm=("RESTORE",)).run_line("*restore snap")
    assert out.exit_code == EXIT_OK, out.error or out.result.summary
    safety = out.result.data["safety_backup"]
    assert safety and safety.startswith("before-restore-")
    assert (project / "supabase" / "backups" / f"{safety}.dump").is_file()
    fp = fingerprint(source)
    assert fp.pop("public.extra")[0] == 0
    assert fp == before
    plan_rows = {r[0]: r for r in out.result.tables[0].rows}
    assert plan_rows["public.orders"][1:] == [1000, 1000, "ok"]


def test_restore_needs_the_typed_word(make_session, source, db, project):
    assert make_session(source).run_line("*backup w").exit_code == EXIT_OK
    db.execute("delete from orders")
    out = make_session(source, yes=True).run_line("*restore w")
    assert out.exit_code == EXIT_CONFIRM and "--confirm RESTORE" in out.error
    assert db.execute("select count(*) from orders").fetchone()[0] == 0
    out = make_session(source, answers=["restore"]).run_line("*restore w")  # wrong case is not the word
    assert out.exit_code == EXIT_CONFIRM
    assert db.execute("select count(*) from orders").fetchone()[0] == 0
    assert not list((project / "supabase" / "backups").glob("before-restore-*"))


def test_truncated_backup_is_refused_and_target_unchanged(make_session, source, db, project):
    assert make_session(source).run_line("*backup t1").exit_code == EXIT_OK
    dump = project / "supabase" / "backups" / "t1.dump"
    data = dump.read_bytes()
    dump.write_bytes(data[: len(data) // 2])
    db.execute("delete from orders where id > 500")
    out = make_session(source, confirm=("RESTORE",)).run_line("*restore t1")
    assert out.exit_code == 1
    assert "damaged or was changed" in out.error and "expected" in out.error
    assert db.execute("select count(*) from orders").fetchone()[0] == 500


def test_truncated_archive_with_forged_metadata_is_refused(make_session, source, db, project):
    assert make_session(source).run_line("*backup t2").exit_code == EXIT_OK
    folder = project / "supabase" / "backups"
    dump = folder / "t2.dump"
    dump.write_bytes(dump.read_bytes()[:3000])
    from sage_agent.ops.data.backup import checksum

    meta = json.loads((folder / "t2.json").read_text())
    meta["sha256"], meta["size"], _ = checksum(dump)
    (folder / "t2.json").write_text(json.dumps(meta))
    out = make_session(source, confirm=("RESTORE",)).run_line("*restore t2")
    assert out.exit_code == 1
    assert "not a readable pg_dump archive" in out.error
    assert db.execute("select count(*) from orders").fetchone()[0] == 1000


def test_foreign_files_are_refused(make_session, source, db, project):
    notes = project / "notes.dump"
    notes.write_text("hello, not a backup\n")
    out = make_session(source, confirm=("RESTORE",)).run_line(f"*restore {notes}")
    assert out.exit_code == EXIT_USAGE and "is not a DB Sage backup" in out.error
    (project / "notes.json").write_text('{"hello": 1}')
    out = make_session(source, confirm=("RESTORE",)).run_line(f"*restore {notes}")
    assert out.exit_code == EXIT_USAGE and "not a DB Sage backup metadata file" in out.error
    out = make_session(source, confirm=("RESTORE",)).run_line("*restore nosuch")
    assert out.exit_code == EXIT_USAGE and "no backup named 'nosuch'" in out.error
    assert db.execute("select count(*) from orders").fetchone()[0] == 1000


def test_backup_names_are_checked(make_session, source, project):
    for bad in ("../evil", "a/b", ".hidden", "x.json"):
        out = make_session(source).run_line(f"*backup {bad}")
        assert out.exit_code == EXIT_USAGE and "bad backup name" in out.error, bad
    assert make_session(source).run_line("*backup same").exit_code == EXIT_OK
    out = make_session(source).run_line("*backup same")
    assert out.exit_code == EXIT_USAGE and "already exists" in out.error
    out = make_session(source).run_line("*backup p plain --jobs 2")
    assert out.exit_code == EXIT_USAGE and "directory" in out.error
    assert not (project / "supabase" / "backups" / "p.sql").exists()


def test_password_never_on_the_command_line(make_session, pg_server, db_url, db, project, monkeypatch):
    from sage_agent.db.urls import conninfo_params, to_url
    from sage_agent.ops.data import backup as data_backup
    role = f"sage_t_{secrets.token_hex(3)}"
    password = f"Pw-{secrets.token_hex(8)}"
    db.execute(f"create role {role} login superuser password '{password}'")
    try:
        params = conninfo_params(db_url)
        params.update(user=role, password=password)
        url = to_url(params)
        seen = []
        real = data_backup.Popen

        def watch(args, **kw):
            proc = real(args, **kw)
            try:
                cmdline = Path(f"/proc/{proc.pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
            except OSError:
                cmdline = ""
            seen.append((list(args), cmdline, kw["env"]))
            return proc

        monkeypatch.setattr(data_backup, "Popen", watch)
        out = make_session(url).run_line("*backup secretive")
        assert out.exit_code == EXIT_OK, out.error or out.result.summary
        [(argv, cmdline, env)] = seen
        assert "pg_dump" in argv[0]
        assert all(password not in a for a in argv) and password not in cmdline
        assert env["PGPASSWORD"] == password
        text = (project / "supabase" / "backups" / "secretive.json").read_text()
        assert password not in text
    finally:
        db.execute(f"drop owned by {role}; drop role {role}")


def test_backup_reports_progress_per_table(make_session, source):
    session = make_session(source)
    seen = []
    session.progress_sink = lambda desc, done, total, detail: seen.append((desc, done, total, detail))
    out = session.run_line("*backup progress")
    assert out.exit_code == EXIT_OK
    details = {d for _, _, _, d in seen}
    assert {"public.customers", "public.orders"} <= details
    assert seen[-1][1] == seen[-1][2]  # every table reported


def test_failed_restore_rolls_back_and_keeps_the_safety_backup(make_session, source, db, project):
    assert make_session(source).run_line("*backup rb").exit_code == EXIT_OK
    db.execute("delete from orders where id > 100")
    # a SQL-body function made after the backup blocks DROP TABLE orders: pg_restore fails part-way
    db.execute("create function orders_count() returns bigint language sql begin atomic select count(*) from orders; end")
    out = make_session(source, confirm=("RESTORE",)).run_line("*restore rb")
    assert out.exit_code == 1
    assert "restore failed and was rolled back" in out.error and "before-restore-" in out.error
    assert db.execute("select count(*) from orders").fetchone()[0] == 100
    assert list((project / "supabase" / "backups").glob("before-restore-*.dump"))


def test_restore_into_environment_and_production_needs_its_word(make_session, source, pg_server, project,
                                                                monkeypatch):
    from sage_agent.db.shadow import drop_database

    assert make_session(source).run_line("*backup envs").exit_code == EXIT_OK
    name, target = new_db_url(pg_server)
    monkeypatch.setenv("SAGE_DEV_DB_URL", target)
    monkeypatch.setenv("SAGE_PROD_DB_URL", target)
    try:
        out = make_session(source, confirm=("RESTORE",)).run_line("*restore envs --into prod")
        assert out.exit_code == EXIT_CONFIRM and "PRODUCTION" in out.error
        out = make_session(source, confirm=("RESTORE",)).run_line("*restore envs --into dev")
        assert out.exit_code == EXIT_OK, out.error or out.result.summary
        assert out.result.facts["environment"] == "dev" and out.result.data["created_database"]
        assert fingerprint(target) == fingerprint(source)
    finally:
        drop_database(pg_server.url(), name)


def test_headless_restore_without_the_word_exits_3(run_sage, source, db, project):
    out = run_sage("run", "*backup cli", "--db-url", source, cwd=project)
    assert out.returncode == 0, out.stderr
    db.execute("delete from orders")
    out = run_sage("run", "*restore cli", "--db-url", source, "--yes", cwd=project)
    assert out.returncode == 3 and "--confirm RESTORE" in out.stderr
    assert db.execute("select count(*) from orders").fetchone()[0] == 0
    out = run_sage("run", "*restore cli", "--db-url", source, "--confirm", "RESTORE", "--json", cwd=project)
    assert out.returncode == 0, out.stdout + out.stderr
    doc = json.loads(out.stdout)
    assert doc["data"]["verified"] is True
    assert db.execute("select count(*) from orders").fetchone()[0] == 1000


def test_round_trip_on_postgresql_15(make_session, pg15_server, pg15_url, project):
    from sage_agent.db.shadow import drop_database
    from sage_agent.db.urls import replace_dbname

    with psycopg.connect(pg15_url, autocommit=True) as conn:
        conn.execute("create table k (id int primary key, v text); insert into k select g, 'v' || g "
                     "from generate_series(1, 50) g")
    out = make_session(pg15_url).run_line("*backup pg15")
    assert out.exit_code == EXIT_OK, out.error or out.result.summary
    assert out.result.data["server_major"] == 15
    name = f"t_new_{secrets.token_hex(4)}"
    target = replace_dbname(pg15_server, name)
    try:
        out = make_session(pg15_url, confirm=("RESTORE",)).run_line(f"*restore pg15 --into {target}")
        assert out.exit_code == EXIT_OK, out.error or out.result.summary
        assert fingerprint(target)["public.k"] == fingerprint(pg15_url)["public.k"]
    finally:
        drop_database(pg15_server, name)


def test_restore_blocked_by_a_lock_fails_fast_and_changes_nothing(make_session, source, db, project, monkeypatch):
    assert make_session(source).run_line("*backup locked").exit_code == EXIT_OK
    db.execute("delete from orders where id > 10")
    monkeypatch.setenv("SAGE_LOCK_TIMEOUT_MS", "300")
    with psycopg.connect(source) as holder:  # an open transaction reading orders
        holder.execute("select count(*) from orders").fetchone()
        out = make_session(source, confirm=("RESTORE",)).run_line("*restore locked")
        holder.rollback()
    assert out.exit_code == 1
    assert "lock" in out.error and "rolled back" in out.error
    assert db.execute("select count(*) from orders").fetchone()[0] == 10


def test_restore_verifies_counts_and_reports_a_difference_from_an_exact_count(make_session, source, pg_server,
                                                                              project):
    """Counts come from the server's insert counters of the restore; a table whose counters disagree with the
    backup is counted with count(*), so the difference reported is the real one."""
    from sage_agent.db.shadow import drop_database

    assert make_session(source).run_line("*backup counted").exit_code == EXIT_OK
    name, target = new_db_url(pg_server)
    try:
        out = make_session(source, confirm=("RESTORE",)).run_line(f"*restore counted --into {target}")
        assert out.exit_code == EXIT_OK, out.error or out.result.summary
        assert out.result.data["counts"]["public.orders"] == 1000
        note = next(n for n in out.result.notes if n.startswith("row counts:"))
        assert "0 counted with count(*)" in note, note  # every table matched by its counters
    finally:
        drop_database(pg_server.url(), name)
    # the metadata claims 7 more orders than the archive holds: the exact count shows the truth
    meta_path = project / "supabase" / "backups" / "counted.json"
    meta = json.loads(meta_path.read_text())
    for t in meta["tables"]:
        if t["name"] == "orders":
            t["rows"] = 1007
    meta_path.write_text(json.dumps(meta))
    name, target = new_db_url(pg_server)
    try:
        out = make_session(source, confirm=("RESTORE",)).run_line(f"*restore counted --into {target}")
        assert out.result.status == "failed" and out.result.data["verified"] is False
        assert [f.location for f in out.result.findings] == ["public.orders"]
        assert "1000 rows after the restore, 1007 in the backup" in out.result.findings[0].message
        assert any("1 counted with count(*)" in n for n in out.result.notes)
    finally:
        drop_database(pg_server.url(), name)


def test_objects_made_after_the_backup_that_block_the_restore_are_named_before_anything_runs(
        make_session, source, db, project):
    """A foreign key or a view made after the backup stops pg_restore --clean from dropping the tables it replaces.
    *restore finds them first: nothing changes, no safety backup is taken, and the fix names each one."""
    assert make_session(source).run_line("*backup base").exit_code == EXIT_OK
    db.execute("create table shipments (id int primary key, order_id bigint references orders (id));"
               "insert into shipments values (1, 1);"
               "create view recent_customers as select id, name from customers where id > 250;")
    before = fingerprint(source)
    out = make_session(source, confirm=("RESTORE",)).run_line("*restore base")
    assert out.exit_code == 1
    assert "foreign key on public.shipments" in out.error and "view on public.recent_customers" in out.error
    assert "nothing was changed" in out.error
    assert 'alter table "public"."shipments" drop constraint "shipments_order_id_fkey";' in out.error
    assert 'drop view "public"."recent_customers";' in out.error
    assert fingerprint(source) == before
    assert not list((project / "supabase" / "backups").glob("before-restore-*"))
    # the fix it names works: the restore then goes through
    db.execute("alter table public.shipments drop constraint shipments_order_id_fkey; drop view public.recent_customers")
    out = make_session(source, confirm=("RESTORE",)).run_line("*restore base")
    assert out.exit_code == EXIT_OK, out.error or out.result.summary
    assert out.result.data["verified"] is True


@pytest.mark.parametrize("fmt", ["plain", "custom"])
def test_restore_over_a_database_with_the_backups_own_views_is_not_blocked(fmt, make_session, source, db, project):
    """The backup's own view (big_orders) is re-created by it; only views made after the backup block it."""
    assert make_session(source).run_line(f"*backup own_{fmt} {fmt}").exit_code == EXIT_OK
    db.execute("delete from orders where id > 500")
    out = make_session(source, confirm=("RESTORE",)).run_line(f"*restore own_{fmt}")
    assert out.exit_code == EXIT_OK, out.error or out.result.summary
    assert db.execute("select count(*) from orders").fetchone()[0] == 1000
    db.execute("create view later_view as select id from orders")
    out = make_session(source, confirm=("RESTORE",)).run_line(f"*restore own_{fmt}")
    assert out.exit_code == 1 and "view on public.later_view" in out.error
    assert "big_orders" not in out.error


def test_files_written_are_shown_relative_to_the_project_at_60_columns(run_sage, source, project):
    """*backup listed its files as absolute paths: at 60 columns `📄` stood alone and the path broke mid-name.
    They are shown as the rest of the output names them, relative to the project; --json keeps the full path."""
    out = run_sage("run", "*backup narrow", "--db-url", source, cwd=project, env={"COLUMNS": "60"})
    assert out.returncode == 0, out.stderr
    shown = out.stdout.splitlines()
    assert "📄 supabase/backups/narrow.dump" in shown
    assert "📄 supabase/backups/narrow.json" in shown
    assert str(project) not in out.stdout
    doc = json.loads(run_sage("run", "*backup narrow2", "--db-url", source, "--json", cwd=project).stdout)
    assert doc["artifacts"][0] == str(project / "supabase" / "backups" / "narrow2.dump")


@pytest.mark.parametrize("width", [60, 160])
def test_restore_progress_lines_fit_the_terminal(make_session, source, db, width):
    """The REPL's progress lines of a *restore with a long backup name and a long table name: each fits the
    terminal's width (a wrapped line broke the name across two lines at 60 columns); shortened in the middle, the
    start and end of each name, the percentage and the detail stay. At 160 columns nothing is shortened."""
    import io

    from sage_agent.frontends.render import make_console, progress_printer

    name = "nightly_before_the_big_customer_migration"
    db.execute("create table public.customer_orders_archive_2024 (id int primary key)")
    assert make_session(source).run_line(f"*backup {name}").exit_code == EXIT_OK
    console = make_console(width=width)
    console.file = io.StringIO()
    session = make_session(source, confirm=("RESTORE",))
    session.progress_sink = progress_printer(console)
    out = session.run_line(f"*restore {name}")
    assert out.exit_code == EXIT_OK, out.error
    lines = console.file.getvalue().splitlines()
    restoring = [line for line in lines if line.startswith("  Restoring ")]
    archive = [line for line in lines if "customer_orders_archive_2024" in line]
    assert len(restoring) == 1 and len(archive) == 1, lines
    assert all(len(line) <= width for line in lines), lines
    if width == 60:
        assert restoring[0] == "  Restoring nightly_before…e_big_customer_migration restored"
        assert archive[0].endswith("% public.customer_orders_archive_2024") and "…" in archive[0], archive
    else:
        assert restoring[0] == f"  Restoring {name} restored"
        assert archive[0].startswith("  Safety backup of the target ") and "…" not in "\n".join(lines)

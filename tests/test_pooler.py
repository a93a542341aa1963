"""Through a real, stock PgBouncer (Debian's `pgbouncer`, transaction mode, no ignore_startup_parameters) in front
of the test server: every read command connects and leaves nothing on the pooled backends (checked on every
server connection after each command); commands that need a session refuse without a direct URL, naming the
variable, and use the direct URL when given; detection says what the pooler is and how it knows."""

from __future__ import annotations

import json
from pathlib import Path

import psycopg
import pytest
from pgtopology import assert_clean, pgbouncer_binary, start_pgbouncer, via

from sage_agent.db.redact import redact
from sage_agent.db.urls import conninfo_params, replace_dbname, to_url

pytestmark = pytest.mark.skipif(pgbouncer_binary() is None,
                                reason="pgbouncer is not installed (apt-get install pgbouncer; .ci/run installs it)")

@pytest.fixture(scope="module")
def bouncer(pg_server):
    b = start_pgbouncer(pg_server.port, pool_size=3)
    yield b
    b.stop()


@pytest.fixture(scope="module")
def session_bouncer(pg_server):
    b = start_pgbouncer(pg_server.port, pool_mode="session", pool_size=3)
    yield b
    b.stop()


def sage_json(run_sage, project: Path, line: str, *args: str, env: dict | None = None) -> tuple[int, dict, str]:
    proc = run_sage("run", line, "--json", "--yes", *args, cwd=project, env=env, timeout=120)
    try:
        doc = json.loads(proc.stdout) if proc.stdout.strip() else {}
    except ValueError:
        doc = {}
    return proc.returncode, doc, proc.stdout + proc.stderr


def write_migration(project: Path, name: str, text: str) -> None:
    folder = project / "supabase" / "migrations"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / name).write_text(text)


# --- connections ---------------------------------------------------------------------------------------
def test_stock_pgbouncer_refuses_options_and_db_sage_connects_without_them(bouncer, db_url):
    from sage_agent.db.connect import connect

    with pytest.raises(psycopg.OperationalError, match="unsupported startup parameter: options"):
        psycopg.connect(via(bouncer, db_url), options="-c statement_timeout=1000")
    with connect(via(bouncer, db_url), statement_timeout_ms=1234, lock_timeout_ms=321) as conn:
        assert conn.pooled
        assert conn.execute("select current_setting('statement_timeout'), current_setting('lock_timeout')"
                            ).fetchone() == ("1234ms", "321ms")
    with connect(db_url, statement_timeout_ms=1234) as conn:
        assert not conn.pooled
        assert conn.execute("select current_setting('statement_timeout')").fetchone() == ("1234ms",)
    assert_clean(bouncer, db_url)


def test_timeouts_bound_every_transaction_through_the_pooler_and_end_with_it(bouncer, db_url, db):
    from sage_agent.db.connect import connect

    db.execute("create table public.held (n int)")
    with psycopg.connect(db_url) as holder:
        holder.execute("lock table public.held in access exclusive mode")
        for autocommit in (False, True):
            with connect(via(bouncer, db_url), autocommit=autocommit, lock_timeout_ms=200) as conn:
                with pytest.raises(psycopg.errors.LockNotAvailable):
                    conn.execute("select * from public.held")
                if not autocommit:
                    conn.rollback()
                with conn.transaction():  # an explicit transaction gets them too
                    assert conn.execute("select current_setting('lock_timeout')").fetchone() == ("200ms",)
        holder.rollback()
    assert_clean(bouncer, db_url)


def test_no_server_side_prepared_statements_through_the_pooler(bouncer, db_url):
    from sage_agent.db.connect import connect

    with connect(via(bouncer, db_url), autocommit=True) as conn:
        for i in range(12):  # psycopg prepares from the 5th execution of one query on a direct connection
            conn.execute("select %s::int + 1", (i,))
    with connect(db_url, autocommit=True) as conn:
        for i in range(12):
            conn.execute("select %s::int + 1", (i,))
        assert conn.execute("select count(*) from pg_prepared_statements").fetchone()[0] >= 1  # the control
    assert_clean(bouncer, db_url)


# --- detection -----------------------------------------------------------------------------------------
def test_detection_names_the_mode_and_its_evidence(bouncer, session_bouncer, pg_server, db_url):
    from sage_agent.db.pooler import detect

    direct = detect(db_url, refresh=True)
    assert (direct.mode, direct.pooled) == ("direct", False)
    pooled = detect(via(bouncer, db_url), refresh=True)
    assert (pooled.mode, pooled.pooler, pooled.shares_backends) == ("transaction", "PgBouncer", True)
    assert "admin console" in pooled.evidence
    session = detect(via(session_bouncer, db_url), refresh=True)
    assert (session.mode, session.shares_backends) == ("session", False)


def test_without_the_admin_console_backend_pids_across_transactions_decide(bouncer, session_bouncer, pg_server,
                                                                          db_url):
    """A user PgBouncer does not let into its console: the pid probe tells transaction from session pooling."""
    from sage_agent.db.pooler import detect

    with psycopg.connect(pg_server.url(), autocommit=True) as admin:
        admin.execute("do $$ begin if not exists (select from pg_roles where rolname = 'pool_app') then "
                      "create role pool_app login password 'pool_app_pw'; end if; end $$")
    for b in (bouncer, session_bouncer):
        with open(b.base / "userlist.txt", "a") as fh:
            fh.write('"pool_app" "pool_app_pw"\n')
        with b.admin() as a:
            a.execute("RELOAD")

    def as_app(b) -> str:
        params = conninfo_params(via(b, db_url))
        params.update(user="pool_app", password="pool_app_pw")
        return to_url(params)

    found = detect(as_app(bouncer), refresh=True)
    assert found.mode == "transaction" and "pg_backend_pid() changed" in found.evidence
    assert detect(as_app(session_bouncer), refresh=True).mode == "session"


# --- commands ------------------------------------------------------------------------------------------
READS = ["*env-check", "*schema-audit", "*rls-audit", "*smoke-test v1 comprehensive", "*monitor --once",
         "*run-sql \"select count(*) from public.todos\"", "*vacuum-status", "*migrations"]


def test_read_commands_work_through_the_pooler_and_leave_every_backend_clean(bouncer, db_url, db, project,
                                                                            run_sage):
    db.execute("create table public.todos (id bigint generated always as identity primary key, title text);"
               "insert into public.todos (title) values ('a'), ('b');"
               "alter table public.todos enable row level security;"
               "create policy todos_read on public.todos for select to authenticated using (true);"
               "create function public.touch() returns int language plpgsql as $$ begin return 1; end $$")
    (project / "supabase" / "migrations").mkdir(parents=True)
    url = via(bouncer, db_url)
    for line in READS:
        code, doc, text = sage_json(run_sage, project, line, "--db-url", url)
        assert code == 0, (line, text)
        assert_clean(bouncer, db_url)
    # the application's next query on any backend still finds its tables (no search_path='' left behind)
    for _ in range(4):
        with psycopg.connect(url, prepare_threshold=None) as app:
            assert app.execute("select count(*) from todos").fetchone()[0] == 2


def test_env_check_reports_the_pooler_and_the_direct_url(bouncer, db_url, project, run_sage):
    url = via(bouncer, db_url)
    code, doc, text = sage_json(run_sage, project, "*env-check", "--db-url", url)
    assert code == 0, text
    facts = doc["facts"]
    assert facts["pooling"] == "transaction (PgBouncer)" and facts["direct_url"] == "not set"
    (fix,) = [f["fix"] for f in doc["findings"] if f["rule"] == "pooler.no_direct_url"]
    # the URL came from --db-url: the hint names the flag once, not "set --direct-url (or pass --direct-url)"
    assert fix == ("Start sage with --direct-url URL (or set SUPABASE_DB_URL_DIRECT with --env dev/staging/prod) to "
                   "the direct connection")
    code, doc, text = sage_json(run_sage, project, "*env-check", "--db-url", url, "--direct-url", db_url)
    assert code == 0, text
    assert doc["facts"]["direct_url_connects"] is True and doc["facts"]["direct_url_pooling"] == "direct"
    assert doc["facts"]["direct_url"] == redact(db_url)
    assert not any(f["rule"].startswith(("pooler.", "direct_url.")) for f in doc["findings"])
    bad = replace_dbname(db_url, "no_such_database_here")
    code, doc, text = sage_json(run_sage, project, "*env-check", "--db-url", url, "--direct-url", bad)
    assert doc["facts"]["direct_url_connects"] is False
    assert any(f["rule"] == "direct_url.missing_database" for f in doc["findings"])
    # the direct URL given is itself a transaction pooler: said, as an error
    code, doc, text = sage_json(run_sage, project, "*env-check", "--db-url", url, "--direct-url", url)
    assert any(f["rule"] == "direct_url.pooled" for f in doc["findings"])


SESSION_LINES = ["*apply", "*snapshot before_x", "*backup b1", "*load-csv rows.csv public.items",
                 "*rollback some_snapshot"]


def test_session_commands_refuse_without_a_direct_url_and_change_nothing(bouncer, db_url, db, project, run_sage):
    db.execute("create table public.items (n int)")
    write_migration(project, "20240101000000_t.sql", "create table public.t (id int);\n")
    (project / "rows.csv").write_text("n\n1\n")
    url = via(bouncer, db_url)
    before = sorted(str(p.relative_to(project)) for p in project.rglob("*") if not str(p.relative_to(project)).startswith(".sage"))  # the audit trail records refusals
    for line in SESSION_LINES:
        code, doc, text = sage_json(run_sage, project, line, "--db-url", url)
        assert code == 1, (line, text)
        assert "needs a database session" in text and "--direct-url" in text, (line, text)
        assert "Nothing was changed" in text
        assert_clean(bouncer, db_url)
    assert sorted(str(p.relative_to(project)) for p in project.rglob("*") if not str(p.relative_to(project)).startswith(".sage"))  # the audit trail records refusals == before
    assert db.execute("select to_regclass('public.t'), to_regclass('supabase_migrations.schema_migrations'), "
                      "(select count(*) from public.items)").fetchone() == (None, None, 0)
    # --env dev with only the pooler URL in SUPABASE_DB_URL: the message names SUPABASE_DB_URL_DIRECT
    code, doc, text = sage_json(run_sage, project, "*apply", "--env", "dev", env={"SUPABASE_DB_URL": url})
    assert code == 1 and "Set SUPABASE_DB_URL_DIRECT" in text, text


def test_session_commands_use_the_direct_url_when_given(bouncer, db_url, db, project, run_sage):
    db.execute("create table public.items (n int)")
    write_migration(project, "20240101000000_t.sql", "create table public.t (id int);\ninsert into public.t values (1);\n")
    (project / "rows.csv").write_text("n\n1\n2\n")
    url = via(bouncer, db_url)
    for line in ["*apply --snapshot=no", "*backup b1", "*load-csv rows.csv public.items", "*snapshot s1"]:
        code, doc, text = sage_json(run_sage, project, line, "--db-url", url, "--direct-url", db_url)
        assert code == 0, (line, text)
        assert_clean(bouncer, db_url)
    assert db.execute("select (select count(*) from public.t), (select count(*) from public.items), "
                      "(select count(*) from supabase_migrations.schema_migrations)").fetchone() == (1, 2, 1)
    # via SUPABASE_DB_URL + SUPABASE_DB_URL_DIRECT (--env dev): migrations go direct, and *migrations reads fine
    write_migration(project, "20240102000000_u.sql", "create table public.u (id int);\n")
    code, doc, text = sage_json(run_sage, project, "*apply --snapshot=no", "--env", "dev",
                                env={"SUPABASE_DB_URL": url, "SUPABASE_DB_URL_DIRECT": db_url})
    assert code == 0, text
    assert db.execute("select to_regclass('public.u') is not null").fetchone()[0]
    assert_clean(bouncer, db_url)


def test_a_pooled_url_with_options_gets_an_actionable_error(bouncer, db_url, project, run_sage):
    url = via(bouncer, db_url) + "?options=-c%20statement_timeout%3D1000"
    code, doc, text = sage_json(run_sage, project, "*env-check", "--db-url", url)
    assert code == 1
    assert "unsupported startup parameter" in text and "remove `options=`" in text


def test_concurrent_appliers_through_the_pooler_apply_each_file_exactly_once(bouncer, db_url, db, project):
    """Six `*apply` processes at once through the pooler with the direct URL: the migration lock is exclusive
    (it lives on the direct session), every file runs once, and no process outlives its bound."""
    import subprocess
    import sys

    from conftest import sage_env

    db.execute("create table public.hits (n int not null)")
    for i in range(3):
        write_migration(project, f"2024010{i + 1}000000_m{i}.sql",
                        f"create table public.m{i} (n int);\n" + ("select pg_sleep(0.3);\n" if i == 1 else "")
                        + f"insert into public.hits values ({i});\n")
    cmd = [sys.executable, "-m", "sage_agent", "run", "*apply --snapshot=no", "--yes", "--json",
           "--db-url", via(bouncer, db_url), "--direct-url", db_url]
    procs = [subprocess.Popen(cmd, cwd=project, env=sage_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              stdin=subprocess.DEVNULL, text=True) for _ in range(6)]
    results = [(p.communicate(timeout=180), p.returncode) for p in procs]
    assert [code for _, code in results] == [0] * 6, [out for out, _ in results]
    applied = sum(json.loads(out)["facts"]["applied"] for (out, _), _ in results)
    assert applied == 3
    assert [r[0] for r in db.execute("select n from public.hits order by n")] == [0, 1, 2]
    assert db.execute("select count(*) from supabase_migrations.schema_migrations").fetchone()[0] == 3
    assert_clean(bouncer, db_url)

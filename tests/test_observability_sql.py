"""The read-only SQL path (sqlexec) and *run-sql / *explain / *optimize against real servers."""

from __future__ import annotations

import json

import psycopg
import pytest

from sage_agent.ops.observe.sqlexec import SqlFailed, SqlRefused, run_read_only


@pytest.fixture
def tdb(db):
    db.execute("create table t (id int primary key, v text)")
    db.execute("insert into t select g, 'v' || g from generate_series(1, 50) g")
    db.execute("create sequence s")
    return db


def count(db, table="t") -> int:
    return db.execute(f"select count(*) from {table}").fetchone()[0]


def test_read_only_rows_and_truncation(db_url, tdb):
    res = run_read_only(db_url, "select id, v from t order by id", row_limit=5, timeout_ms=5000)
    assert res.columns == ["id", "v"]
    assert res.rows[0] == [1, "v1"] and len(res.rows) == 5
    assert res.truncated is True and res.total_rows is None
    full = run_read_only(db_url, "select count(*) from t", row_limit=5)
    assert full.rows == [[50]] and full.truncated is False and full.total_rows == 1
    assert run_read_only(db_url, "show server_version_num").rows[0][0].startswith("1")


@pytest.mark.parametrize("sql,reason", [
    ("SELECT 1; DROP TABLE t", "multiple_statements"),
    ("select '--'; drop table t;", "multiple_statements"),
    ("SELECT pg_terminate_backend(pg_backend_pid())", "denied_function"),
    ("select * from t where pg_catalog.pg_cancel_backend(1)", "denied_function"),
    ("select pg_read_file('/etc/passwd')", "denied_function"),
    ("select lo_export(1, '/tmp/x')", "denied_function"),
    ("select set_config('statement_timeout', '0', false)", "denied_function"),
    ("select nextval('s')", "denied_function"),
    ("select * from query_to_xml('select pg_terminate_backend(1)', true, true, '')", "denied_function"),
    ("with d as (delete from t returning *) select count(*) from d", "writable_cte"),
    ("with u as (update t set v = 'x' returning id) select * from u", "writable_cte"),
    ("select * from t for update", "row_locks"),
    ("select * into t2 from t", "select_into"),
    ("drop table t", "not_read_only"),
    ("delete from t", "not_read_only"),
    ("explain analyze delete from t", "not_read_only"),
    ("COMMIT; DROP TABLE t", "multiple_statements"),
    ("selec * from t", "syntax"),
    ("   ", "empty"),
])
def test_refusals_change_nothing(db_url, tdb, sql, reason):
    before = tdb.execute("select nextval('s')").fetchone()[0]
    with pytest.raises(SqlRefused) as info:
        run_read_only(db_url, sql)
    assert info.value.reason == reason
    assert info.value.exit_code == 2
    assert count(tdb) == 50
    assert tdb.execute("select to_regclass('t2') is null").fetchone()[0]
    assert tdb.execute("select v from t where id = 1").fetchone()[0] == "v1"
    assert tdb.execute("select nextval('s')").fetchone()[0] == before + 1


def test_volatile_user_function_refused(db_url, tdb):
    tdb.execute("create function public.wipe() returns int language plpgsql as $$ begin return 1; end $$")
    with pytest.raises(SqlRefused) as info:
        run_read_only(db_url, "select public.wipe()")
    assert info.value.reason == "volatile_function"


def test_the_volatile_check_sees_a_function_replaced_on_a_reused_connection(db_url, tdb):
    """The check is a prepared statement on a reused direct connection (its plan kept): it still runs every call,
    so a function made volatile by another session since the last call is refused."""
    from sage_agent.db.connect import connect

    tdb.execute("create function public.answer() returns int language sql stable as $$ select 42 $$")
    conn = connect(db_url, autocommit=True)
    try:
        for _ in range(7):  # past psycopg's prepare threshold (5)
            assert run_read_only(conn, "select public.answer()").rows == [[42]]
        assert conn.execute("select count(*) from pg_prepared_statements where name like 'sage_volatile_%'").fetchone()[0] == 1
        tdb.execute("create or replace function public.answer() returns int language sql volatile as $$ select 42 $$")
        with pytest.raises(SqlRefused) as info:
            run_read_only(conn, "select public.answer()")
        assert info.value.reason == "volatile_function" and "public.answer" in info.value.message
        assert conn.info.transaction_status == psycopg.pq.TransactionStatus.IDLE
    finally:
        conn.close()


def test_server_errors_are_clear(db_url, tdb):
    with pytest.raises(SqlFailed) as info:
        run_read_only(db_url, "select * from missing_table")
    assert "missing_table" in info.value.message and info.value.exit_code == 1
    with pytest.raises(SqlFailed) as info:
        run_read_only(db_url, "select pg_sleep(5)", timeout_ms=200)
    assert "timeout" in info.value.message


def test_run_sql_command_read_json_and_csv(make_session, db_url, tdb, project):
    session = make_session(db_url)
    out = session.run_line('*run-sql "select id, v from t order by id" --limit 3 --csv out/rows.csv')
    assert out.exit_code == 0, out.error
    assert out.result.tables[0].truncated is True
    assert out.result.data["rows"] == [[1, "v1"], [2, "v2"], [3, "v3"]]
    assert (project / "out" / "rows.csv").read_text().splitlines() == ["id,v", "1,v1", "2,v2", "3,v3"]
    out = session.run_line('*run-sql "update t set v = 1"')
    assert out.exit_code == 2 and "--write" in out.error
    assert count(tdb) == 50


def test_run_sql_file_input(make_session, db_url, tdb, project):
    (project / "q.sql").write_text("-- count\nselect count(*) as n from t;\n")
    out = make_session(db_url).run_line("*run-sql q.sql")
    assert out.exit_code == 0 and out.result.data["rows"] == [[50]]


def test_run_sql_write_confirmations(make_session, db_url, tdb):
    # ordinary write: yes/no confirmation (headless without --yes: exit 3, nothing changed)
    out = make_session(db_url).run_line('*run-sql "update t set v = \'w\' where id = 1" --write')
    assert out.exit_code == 3 and tdb.execute("select v from t where id = 1").fetchone()[0] == "v1"
    out = make_session(db_url, yes=True).run_line('*run-sql "update t set v = \'w\' where id = 1" --write')
    assert out.exit_code == 0 and out.result.data["statements"][0]["rows_affected"] == 1
    # destructive (DELETE without WHERE): --yes is not enough, the typed word is needed
    out = make_session(db_url, yes=True).run_line('*run-sql "delete from t" --write')
    assert out.exit_code == 3 and "EXECUTE" in out.error and count(tdb) == 50
    # person types the wrong word: declined
    out = make_session(db_url, answers=["nope"]).run_line('*run-sql "truncate t" --write')
    assert out.exit_code == 3 and count(tdb) == 50
    out = make_session(db_url, confirm=("EXECUTE",)).run_line('*run-sql "delete from t" --write')
    assert out.exit_code == 0 and count(tdb) == 0


def test_run_sql_write_failure_rolls_back(make_session, db_url, tdb):
    out = make_session(db_url, yes=True).run_line(
        '*run-sql "insert into t values (100, \'a\'); insert into t values (1, \'dup\')" --write')
    assert out.exit_code == 1 and "rolled back" in out.error and "line 1" in out.error
    assert count(tdb) == 50
    out = make_session(db_url, yes=True).run_line('*run-sql "begin; delete from t where id = 1; commit" --write')
    assert out.exit_code == 2 and count(tdb) == 50


def test_run_sql_headless_json(run_sage, pg_server, db_url, tdb, project):
    proc = run_sage("run", "*run-sql \"select id from t order by id\" --limit 2", "--json", "--db-url", db_url,
                    cwd=project)
    doc = json.loads(proc.stdout)
    assert proc.returncode == 0 and doc["data"]["rows"] == [[1], [2]] and doc["data"]["truncated"] is True
    proc = run_sage("run", "*run-sql \"select 1; drop table t\"", "--json", "--db-url", db_url, cwd=project)
    assert proc.returncode == 2 and "one per call" in json.loads(proc.stdout)["error"]
    assert count(tdb) == 50


# --- explain ------------------------------------------------------------------------------------
@pytest.fixture
def big(db):
    db.execute("create table big (id int primary key, cat int, a int, b int, name text)")
    db.execute("insert into big select g, g % 100, g % 100, g % 100, 'n' || g from generate_series(1, 100000) g")
    db.execute("create table child (id int primary key, big_id int, amount int)")
    db.execute("insert into child select g, g, g from generate_series(1, 20000) g")
    db.execute("analyze big")
    db.execute("analyze child")
    return db


def rules(result) -> set[str]:
    return {f.rule for f in result.findings}


def test_explain_analyze_findings_on_100k_rows(make_session, db_url, big):
    out = make_session(db_url).run_line('*explain "select * from big where cat = 5 and a = 5 and b = 5" --analyze')
    assert out.exit_code == 0, out.error
    r = out.result
    assert {"plan.seq_scan_large", "plan.filter_discards", "plan.misestimate"} <= rules(r)
    assert r.facts["actual_rows"] == 1000 and r.facts["execution_ms"] > 0
    assert r.tables[0].columns[:5] == ["node", "cost", "est rows", "actual rows", "loops"]
    assert any("Seq Scan on big" in row[0] for row in r.tables[0].rows)
    assert "Rows Removed by Filter" in "\n".join(r.data["plan_text"])


def test_explain_join_without_index(make_session, db_url, big):
    out = make_session(db_url).run_line(
        '*explain "select b.name, c.amount from child c join big b on b.id = c.id join big b2 on b2.cat = c.big_id"')
    assert out.exit_code == 0, out.error
    found = [f for f in out.result.findings if f.rule == "plan.join_without_index"]
    assert any("big.cat" in f.message for f in found), out.result.findings


def test_explain_refusals(make_session, db_url, big):
    session = make_session(db_url)
    for line, needle in [('*explain "create index on big (cat)"', "cannot be explained"),
                         ('*explain "explain select 1"', "without EXPLAIN"),
                         ('*explain "select 1; select 2"', "exactly one"),
                         ('*explain "select * frm big"', "does not parse"),
                         ('*explain "select * from big where id = $1" --analyze', "needs values")]:
        out = session.run_line(line)
        assert out.exit_code == 2 and needle in out.error, (line, out.error)
    out = session.run_line('*explain "select * from nope"')
    assert out.exit_code == 1 and "nope" in out.error
    assert big.execute("select count(*) from pg_indexes where tablename = 'big'").fetchone()[0] == 1


def test_explain_analyze_of_delete_is_rolled_back(make_session, db_url, big):
    out = make_session(db_url).run_line('*explain "delete from child where id <= 100" --analyze')
    assert out.exit_code == 3  # needs a confirmation: it executes the DELETE
    out = make_session(db_url, yes=True).run_line('*explain "delete from child where id <= 100" --analyze')
    assert out.exit_code == 0, out.error
    assert out.result.facts["actual_rows"] == 0 and any("rolled back" in n for n in out.result.notes)
    assert big.execute("select count(*) from child").fetchone()[0] == 20000
    out = make_session(db_url).run_line('*explain "delete from child where id <= 100"')  # plain: no confirmation
    assert out.exit_code == 0 and big.execute("select count(*) from child").fetchone()[0] == 20000


def test_explain_generic_plan_for_params(make_session, db_url, pg15_url, big):
    import psycopg

    out = make_session(db_url).run_line('*explain "select * from big where id = $1 and cat = $2"')
    assert out.exit_code == 0, out.error
    assert any("GENERIC_PLAN" in n for n in out.result.notes)
    assert "Index Scan" in out.result.tables[0].rows[0][0]
    with psycopg.connect(pg15_url, autocommit=True) as c15:
        c15.execute("create table p (id int primary key, v int)")
    out = make_session(pg15_url).run_line('*explain "select * from p where id = $1"')
    assert out.exit_code == 0, out.error
    assert any("force_generic_plan" in n for n in out.result.notes)
    assert "Index Scan" in out.result.tables[0].rows[0][0]


# --- optimize -----------------------------------------------------------------------------------
OPT_QUERY = ('*optimize "select * from big b join child c on c.big_id = b.id '
             'where b.cat = 5 and lower(b.name) = \'n5\' order by b.id offset 5000"')


def test_optimize_without_hypopg_marks_unverified(make_session, db_url, big, project):
    out = make_session(db_url).run_line(OPT_QUERY + " --migration")
    assert out.exit_code == 0, out.error
    r = out.result
    assert r.facts["hypopg"] == "missing"
    by_cols = {(c["table"], tuple(c["columns"])): c for c in r.data["candidates"]}
    assert by_cols[("public.big", ("cat", "id"))]["verdict"] == "unverified"
    assert by_cols[("public.child", ("big_id",))]["verdict"] == "unverified"
    assert by_cols[("public.big", ("id",))]["verdict"] == "exists"
    assert {"rewrite.function_on_column", "rewrite.offset_pagination", "rewrite.select_star"} <= rules(r)
    assert any(d.startswith("create index concurrently") for d in r.data["ddl"])
    files = list((project / "supabase" / "migrations").glob("*_add_indexes_*.sql"))
    assert len(files) == 1 and "create index concurrently if not exists idx_child_big_id" in files[0].read_text()
    assert big.execute("select count(*) from pg_indexes where tablename in ('big', 'child')").fetchone()[0] == 2


def test_optimize_rewrites_not_in_and_casts(make_session, db_url, big):
    out = make_session(db_url).run_line(
        '*optimize "select id from big where name = 5 or cat = 3 and id not in (select big_id from child)"')
    assert out.exit_code == 0, out.error
    assert {"rewrite.implicit_cast", "rewrite.not_in_subquery", "rewrite.or_across_columns"} <= rules(out.result)
    out = make_session(db_url).run_line('*optimize "create table x (id int)"')
    assert out.exit_code == 2
    out = make_session(db_url).run_line('*optimize "select * from nope where id = 1"')
    assert out.exit_code == 2 and "nope" in out.error


def _hypopg_available(url: str) -> bool:
    import psycopg

    with psycopg.connect(url) as c:
        return bool(c.execute("select count(*) from pg_available_extensions where name = 'hypopg'").fetchone()[0])


def test_optimize_with_hypopg_on_pg15(make_session, pg15_url):
    import psycopg

    if not _hypopg_available(pg15_url):
        pytest.skip("hypopg not installed for PostgreSQL 15 (apt-get install postgresql-15-hypopg)")
    with psycopg.connect(pg15_url, autocommit=True) as c:
        c.execute("create table orders (id int primary key, customer int, status text, created date)")
        c.execute("insert into orders select g, g % 5000, case when g % 10 = 0 then 'open' else 'done' end, "
                  "date '2024-01-01' + g % 365 from generate_series(1, 50000) g")
        c.execute("analyze orders")
    out = make_session(pg15_url).run_line(
        '*optimize "select id from orders where customer = 42 and created > \'2024-06-01\'"')
    assert out.exit_code == 0, out.error
    r = out.result
    assert r.facts["hypopg"] == "available"
    cand = r.data["candidates"][0]
    assert cand["columns"] == ["customer", "created"] and cand["verdict"] == "recommended"
    assert cand["cost_after"] < cand["cost_before"] * 0.5
    with psycopg.connect(pg15_url) as c:  # nothing changed: no extension, no index left behind
        assert c.execute("select count(*) from pg_extension where extname = 'hypopg'").fetchone()[0] == 0
        assert c.execute("select count(*) from pg_indexes where tablename = 'orders'").fetchone()[0] == 1


def test_production_reads_need_no_word_but_writes_do(make_session, db_url, tdb):
    out = make_session(db_url, env="prod").run_line('*run-sql "select count(*) from t"')
    assert out.exit_code == 0 and out.result.data["rows"] == [[50]]
    out = make_session(db_url, env="prod", yes=True).run_line('*run-sql "update t set v = \'p\' where id = 2" --write')
    assert out.exit_code == 3 and "PRODUCTION" in out.error
    assert tdb.execute("select v from t where id = 2").fetchone()[0] == "v2"
    out = make_session(db_url, env="prod", yes=True, confirm=("PRODUCTION",)).run_line(
        '*run-sql "update t set v = \'p\' where id = 2" --write')
    assert out.exit_code == 0 and tdb.execute("select v from t where id = 2").fetchone()[0] == "p"


def test_run_read_only_accepts_a_connection(db_url, tdb):
    import psycopg

    with psycopg.connect(db_url) as conn:  # not autocommit: left as found
        res = run_read_only(conn, "select max(id) from t")
        assert res.rows == [[50]] and conn.autocommit is False
        assert conn.execute("select 1").fetchone() == (1,)


def test_extension_functions_are_not_user_functions(db_url, db):
    db.execute("create extension if not exists pg_stat_statements with schema extensions")
    res = run_read_only(db_url, "select count(*) >= 0 from extensions.pg_stat_statements(true)")
    assert res.rows == [[True]]
    with pytest.raises(SqlRefused):
        run_read_only(db_url, "select extensions.pg_stat_statements_reset()")


def test_run_sql_write_non_transactional_statement(make_session, db_url, tdb):
    out = make_session(db_url, yes=True).run_line('*run-sql "vacuum (analyze) t" --write')
    assert out.exit_code == 0, out.error
    assert out.result.facts["mode"] == "write (autocommit)"
    assert tdb.execute("select last_vacuum is not null from pg_stat_user_tables where relname = 't'").fetchone()[0]
    out = make_session(db_url, yes=True).run_line(
        '*run-sql "create index concurrently t_v on t (v); insert into t values (99, \'x\')" --write')
    assert out.exit_code == 2 and "on its own" in out.error
    assert count(tdb) == 50 and tdb.execute("select to_regclass('t_v') is null").fetchone()[0]

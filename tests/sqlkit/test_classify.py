"""Classification decisions on the parse tree."""
import pytest

from sage_agent.sqlkit.classify import classify, statement_kind_name
from sage_agent.sqlkit.split import split_sql


def info(sql, **kw):
    (stmt,) = split_sql(sql)
    return classify(stmt, **kw)


@pytest.mark.parametrize("sql,category,action", [
    ("CREATE TABLE s.t (a int)", "ddl", "CREATE TABLE"),
    ("ALTER TABLE t ADD COLUMN b int", "ddl", "ALTER TABLE"),
    ("DROP INDEX i", "ddl", "DROP INDEX"),
    ("INSERT INTO t VALUES (1)", "dml", "INSERT"),
    ("UPDATE t SET a = 1 WHERE a = 2", "dml", "UPDATE"),
    ("SELECT * FROM t", "query", "SELECT"),
    ("BEGIN", "transaction", "BEGIN"),
    ("COMMIT", "transaction", "COMMIT"),
    ("VACUUM t", "utility", "VACUUM"),
    ("SET lock_timeout = '1s'", "utility", "SET"),
    ("DO $$ BEGIN END $$", "other", "DO"),
])
def test_categories(sql, category, action):
    i = info(sql)
    assert (i.category, i.action) == (category, action)


def test_two_statements_are_separate():
    first, second = [classify(s) for s in split_sql("SELECT 1; DROP TABLE t")]
    assert first.read_only and not first.is_destructive
    assert not second.read_only and second.is_destructive


@pytest.mark.parametrize("sql,ro", [
    ("SELECT 1", True),
    ("SHOW work_mem", True),
    ("EXPLAIN SELECT * FROM t", True),
    ("WITH d AS (DELETE FROM t RETURNING *) SELECT * FROM d", False),
    ("SELECT * FROM t FOR UPDATE", False),
    ("SELECT * FROM (SELECT * FROM t FOR SHARE) x", False),
    ("SELECT 1 INTO newtab", False),
    ("EXPLAIN ANALYZE DELETE FROM t", False),
    ("INSERT INTO t VALUES (1)", False),
])
def test_read_only(sql, ro):
    assert info(sql).read_only is ro


def test_calls_functions():
    i = info("SELECT pg_terminate_backend(1), pg_catalog.set_config('a', 'b', false)")
    assert {"pg_terminate_backend", "set_config", "pg_catalog.set_config"} <= i.calls_functions
    assert i.read_only  # the tree is read-only; callers must check the functions
    assert "dblink" in info("SELECT * FROM dblink('x', 'select 1') AS t(a int)").calls_functions


@pytest.mark.parametrize("sql,tx", [
    ("CREATE INDEX CONCURRENTLY i ON t (a)", False),
    ("CREATE INDEX i ON t (a)", True),
    ("DROP INDEX CONCURRENTLY i", False),
    ("REINDEX INDEX CONCURRENTLY i", False),
    ("VACUUM t", False),
    ("CREATE DATABASE d", False),
    ("DROP DATABASE d", False),
    ("ALTER SYSTEM SET work_mem = '1MB'", False),
    ("CREATE TABLESPACE ts LOCATION '/x'", False),
    ("ALTER TYPE e ADD VALUE 'x'", True),
])
def test_transactional(sql, tx):
    assert info(sql).transactional is tx


def test_enum_add_value_before_pg12():
    assert info("ALTER TYPE e ADD VALUE 'x'", server_major=11).transactional is False


@pytest.mark.parametrize("sql,destructive", [
    ("DROP VIEW v", True), ("TRUNCATE t", True), ("DELETE FROM t", True),
    ("UPDATE t SET a = 1", True), ("DELETE FROM t WHERE id = 1", False),
    ("ALTER TABLE t DROP COLUMN c", True), ("ALTER TABLE t ADD COLUMN c int", False),
    ("EXPLAIN DELETE FROM t", False),
])
def test_destructive(sql, destructive):
    assert info(sql).is_destructive is destructive


def test_objects_touched():
    i = info("WITH c AS (SELECT 1) INSERT INTO app.t SELECT * FROM c JOIN u ON true")
    assert i.objects_touched == ["app.t", "public.u"]
    assert info("DROP TABLE a, s.b").objects_touched == ["public.a", "s.b"]


def test_statement_kind_name():
    (s,) = split_sql("CREATE UNIQUE INDEX i ON t (a)")
    assert statement_kind_name(s) == "CREATE UNIQUE INDEX"
    (s,) = split_sql("ALTER TABLE t RENAME COLUMN a TO b")
    assert statement_kind_name(s.node) == "ALTER TABLE"

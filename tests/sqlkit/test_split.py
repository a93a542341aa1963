"""Splitter: statement boundaries, line numbers, comments, COPY data, errors."""
import pytest
from pglast import ast

from sage_agent.sqlkit.split import SqlSyntaxError, split_sql


def test_empty_and_comment_only():
    assert split_sql("") == []
    assert split_sql("  \n-- just a comment\n/* block */\n") == []


def test_line_numbers_multiline():
    sql = "\n\nSELECT 1;\nCREATE TABLE t (\n  a int,\n  b text\n);\n  -- c\n\nDROP TABLE t;"
    stmts = split_sql(sql)
    assert [(s.line, s.end_line) for s in stmts] == [(3, 3), (4, 7), (10, 10)]
    assert isinstance(stmts[1].node, ast.CreateStmt)
    assert stmts[1].text.startswith("CREATE TABLE t (") and not stmts[1].text.endswith(";")


def test_dollar_quotes_with_semicolons_and_plpgsql():
    sql = ("CREATE FUNCTION f() RETURNS int LANGUAGE plpgsql AS $body$\nBEGIN\n  PERFORM 1; -- x;\n"
           "  RETURN 2;\nEND;\n$body$;\nSELECT 'a;b', $$c;d$$;\n")
    stmts = split_sql(sql)
    assert len(stmts) == 2
    assert isinstance(stmts[0].node, ast.CreateFunctionStmt)
    assert (stmts[0].line, stmts[0].end_line, stmts[1].line) == (1, 6, 7)


def test_do_block():
    stmts = split_sql("DO $$\nBEGIN\n  RAISE NOTICE 'hi;';\nEND\n$$;\nSELECT 1;")
    assert [type(s.node).__name__ for s in stmts] == ["DoStmt", "SelectStmt"]
    assert stmts[1].line == 6


def test_begin_commit():
    stmts = split_sql("BEGIN;\nALTER TABLE t ADD COLUMN c int;\nCOMMIT;")
    assert [type(s.node).__name__ for s in stmts] == ["TransactionStmt", "AlterTableStmt", "TransactionStmt"]


def test_copy_from_stdin_data_block():
    sql = "COPY t (a, b) FROM stdin;\n1\tx;y\n2\t'oops\n\\.\nSELECT 1;\n"
    stmts = split_sql(sql)
    assert len(stmts) == 2
    assert stmts[0].copy_data == "1\tx;y\n2\t'oops\n"
    assert isinstance(stmts[0].node, ast.CopyStmt)
    assert stmts[1].line == 5 and stmts[1].copy_data is None


def test_non_ascii_before_statements():
    sql = "-- café ☕ ünïcode\nSELECT 'héllo wörld ☃';\nSELECT 'ü';\nCREATE TABLE t (a int);"
    stmts = split_sql(sql)
    assert [s.line for s in stmts] == [2, 3, 4]
    assert stmts[0].text == "SELECT 'héllo wörld ☃'"
    assert stmts[2].text == "CREATE TABLE t (a int)"
    assert stmts[0].comments == ("-- café ☕ ünïcode",)


def test_comments_attached_and_trailing():
    sql = "SELECT 1; -- trailing\n-- far\n\n-- squawk-ignore ban-drop-table\n/* b */\nDROP TABLE t;"
    stmts = split_sql(sql)
    assert stmts[0].trailing_comment == "-- trailing"
    assert stmts[1].comments == ("-- squawk-ignore ban-drop-table", "/* b */")


def test_binary_input():
    with pytest.raises(SqlSyntaxError, match="binary"):
        split_sql("SELECT 1;\n\x00\x01\x02")
    with pytest.raises(SqlSyntaxError):
        split_sql(b"\xff\xfe\x00garbage")


def test_unterminated_dollar_quote_line():
    sql = "SELECT 1;\n\nCREATE FUNCTION f() RETURNS int AS $$\nSELECT 1;\n"
    with pytest.raises(SqlSyntaxError) as exc:
        split_sql(sql, "m.sql")
    assert exc.value.line == 3
    assert str(exc.value).startswith("m.sql:3:")


def test_malformed_statement_line_and_message():
    sql = "SELECT 1;\n-- é\nSELECT 2;\nSELEC FOO;\n"
    with pytest.raises(SqlSyntaxError) as exc:
        split_sql(sql, "file.sql")
    assert (exc.value.line, exc.value.column) == (4, 1)
    assert str(exc.value) == 'file.sql:4:1: syntax error at or near "SELEC"'
    assert isinstance(exc.value, ValueError)


def test_error_column_after_non_ascii():
    with pytest.raises(SqlSyntaxError) as exc:
        split_sql("SELECT 'ééé' FROM t WHERE;")
    assert exc.value.line == 1 and exc.value.column == 26

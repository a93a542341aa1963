"""SQL toolkit for DB Sage: real-grammar splitting, classification and migration lint.

Everything here works offline on the parse tree from pglast (libpg_query); no
database connection is needed.
"""
from .classify import StatementInfo, classify, statement_kind_name
from .split import SqlSyntaxError, Statement, split_sql

__all__ = ["SqlSyntaxError", "Statement", "StatementInfo", "classify", "split_sql",
           "statement_kind_name"]

"""SQL toolkit for DB Sage: real-grammar splitting, classification and migration lint.

Everything here works offline on the parse tree from pglast (libpg_query); no
database connection is needed. Names load on first use, so `sage lint` (which needs
split + lint only) does not pay for classify.
"""
from __future__ import annotations

import importlib
from typing import Any

_LAZY = {"StatementInfo": "classify", "statement_kind_name": "classify",
         "SqlSyntaxError": "split", "Statement": "split", "split_sql": "split"}

__all__ = ["SqlSyntaxError", "Statement", "StatementInfo", "split_sql",
           "statement_kind_name"]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'sage_agent.sqlkit' has no attribute {name!r}")

    return getattr(importlib.import_module(f"{__name__}.{module}"), name)

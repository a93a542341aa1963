"""REINDEX without CONCURRENTLY blocks the table (and reads using the index) while rebuilding."""
from pglast import ast

from ...nodes import defelem_names
from ..model import Rule


class RequireConcurrentReindex(Rule):
    node_types = (ast.ReindexStmt,)
    id = "require-concurrent-reindex"
    severity = "error"
    summary = "REINDEX without CONCURRENTLY blocks reads and writes"
    safe_alternative = "REINDEX ... CONCURRENTLY (PG 12+, outside a transaction block)"

    def check(self, stmt, ctx):
        if not isinstance(stmt.node, self.node_types):
            return []
        n = stmt.node
        if (isinstance(n, ast.ReindexStmt) and "concurrently" not in defelem_names(n.params)
                and n.kind._name_ != "REINDEX_OBJECT_SYSTEM"):  # REINDEX SYSTEM cannot be concurrent
            return [self.finding(stmt, ctx, "REINDEX without CONCURRENTLY blocks reads and writes while "
                                 "the index is rebuilt.")]
        return []

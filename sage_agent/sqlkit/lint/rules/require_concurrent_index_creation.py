"""CREATE INDEX without CONCURRENTLY holds a SHARE lock (blocks writes) for the whole build."""
from pglast import ast

from ...nodes import qualified
from ..model import Rule


class RequireConcurrentIndexCreation(Rule):
    node_types = (ast.IndexStmt,)
    id = "require-concurrent-index-creation"
    severity = "warning"
    summary = "CREATE INDEX without CONCURRENTLY blocks writes while the index builds"
    safe_alternative = "CREATE INDEX CONCURRENTLY (outside a transaction block)"

    def check(self, stmt, ctx):
        if not isinstance(stmt.node, self.node_types):
            return []
        n = stmt.node
        if not isinstance(n, ast.IndexStmt) or n.concurrent:
            return []
        if qualified(n.relation) in ctx.tables_created_in_file:
            return []  # table created in this transaction: nobody else sees it yet
        return [self.finding(stmt, ctx, "CREATE INDEX without CONCURRENTLY blocks writes to "
                             f"{qualified(n.relation)} while the index is built.")]

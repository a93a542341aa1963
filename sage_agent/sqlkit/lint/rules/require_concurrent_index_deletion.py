"""DROP INDEX without CONCURRENTLY takes ACCESS EXCLUSIVE on the table."""
from pglast import ast

from ..model import Rule


class RequireConcurrentIndexDeletion(Rule):
    node_types = (ast.DropStmt,)
    id = "require-concurrent-index-deletion"
    severity = "warning"
    summary = "DROP INDEX without CONCURRENTLY blocks reads and writes on the table"
    safe_alternative = "DROP INDEX CONCURRENTLY IF EXISTS ... (outside a transaction block)"

    def check(self, stmt, ctx):
        if not isinstance(stmt.node, self.node_types):
            return []
        n = stmt.node
        if isinstance(n, ast.DropStmt) and n.removeType._name_ == "OBJECT_INDEX" and not n.concurrent:
            return [self.finding(stmt, ctx, "DROP INDEX without CONCURRENTLY takes an ACCESS "
                                 "EXCLUSIVE lock on the table, blocking reads and writes.")]
        return []

"""CREATE INDEX CONCURRENTLY is refused inside a transaction block."""
from pglast import ast

from ..model import Rule


class BanConcurrentIndexCreationInTransaction(Rule):
    node_types = (ast.IndexStmt,)
    id = "ban-concurrent-index-creation-in-transaction"
    severity = "error"
    summary = "CREATE INDEX CONCURRENTLY cannot run inside a transaction"
    safe_alternative = "Run CREATE INDEX CONCURRENTLY in its own migration, outside BEGIN/COMMIT"

    def check(self, stmt, ctx):
        n = stmt.node
        if isinstance(n, ast.IndexStmt) and n.concurrent and (ctx.in_transaction or ctx.assume_in_transaction):
            return [self.finding(stmt, ctx, "CREATE INDEX CONCURRENTLY cannot run inside a transaction block.")]
        return []

"""CREATE INDEX CONCURRENTLY is refused inside a transaction block.

As in squawk: with an assumed (tool-managed) transaction, a COMMIT ends it and a BEGIN starts
one; a file whose only statement is the CONCURRENTLY build is taken to run on its own (migration
tools run such a file outside a transaction)."""
from pglast import ast

from ..model import Rule


class BanConcurrentIndexCreationInTransaction(Rule):
    node_types = (ast.IndexStmt, ast.TransactionStmt)
    id = "ban-concurrent-index-creation-in-transaction"
    ordered = True
    severity = "error"
    summary = "CREATE INDEX CONCURRENTLY cannot run inside a transaction"
    safe_alternative = "Run CREATE INDEX CONCURRENTLY in its own migration, outside BEGIN/COMMIT"

    def check(self, stmt, ctx):
        if not isinstance(stmt.node, self.node_types):
            return []
        inside = ctx.rule_state(self.id, lambda: [ctx.assume_in_transaction])
        n = stmt.node
        if isinstance(n, ast.TransactionStmt):
            kind = n.kind._name_
            if kind in ("TRANS_STMT_BEGIN", "TRANS_STMT_START"):
                inside[0] = True
            elif kind == "TRANS_STMT_COMMIT":
                inside[0] = False
            return []
        if n.concurrent and inside[0] and len(ctx.statements) > 1:
            return [self.finding(stmt, ctx, "CREATE INDEX CONCURRENTLY cannot run inside a transaction block.")]
        return []

"""BEGIN inside a transaction (or COMMIT outside one) means the migration's transactions are not what the author thinks."""
from pglast import ast

from ..model import Rule


class TransactionNesting(Rule):
    node_types = (ast.TransactionStmt,)
    id = "transaction-nesting"
    severity = "warning"
    summary = "BEGIN inside a transaction / COMMIT without one"
    safe_alternative = "Remove the extra BEGIN/COMMIT (or let the migration tool manage the transaction)"

    def check(self, stmt, ctx):
        if not isinstance(stmt.node, self.node_types):
            return []
        n = stmt.node
        if not isinstance(n, ast.TransactionStmt):
            return []
        kind = n.kind._name_
        if kind in ("TRANS_STMT_BEGIN", "TRANS_STMT_START"):
            if ctx.assume_in_transaction:
                return [self.finding(stmt, ctx, "BEGIN inside the transaction managed by the migration tool.")]
            if ctx.in_transaction:
                return [self.finding(stmt, ctx, "BEGIN while a transaction is already in progress (it is ignored).")]
        elif kind in ("TRANS_STMT_COMMIT", "TRANS_STMT_ROLLBACK"):
            if ctx.assume_in_transaction:
                return [self.finding(stmt, ctx, "Ending the transaction managed by the migration tool.")]
            if not ctx.in_transaction:
                return [self.finding(stmt, ctx, "COMMIT/ROLLBACK with no transaction in progress.")]
        return []

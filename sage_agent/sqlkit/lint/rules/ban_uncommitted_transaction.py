"""A BEGIN that is never committed leaves the migration's changes rolled back (or locks held)."""
from pglast import ast

from ..model import Rule


class BanUncommittedTransaction(Rule):
    node_types = (ast.TransactionStmt,)
    id = "ban-uncommitted-transaction"
    ordered = True
    severity = "error"
    summary = "BEGIN without a matching COMMIT"
    safe_alternative = "Add COMMIT at the end of the file"

    def check(self, stmt, ctx):
        if not isinstance(stmt.node, self.node_types):
            return []
        n = stmt.node
        if isinstance(n, ast.TransactionStmt):
            opened = ctx.rule_state(self.id, list)
            if n.kind._name_ in ("TRANS_STMT_BEGIN", "TRANS_STMT_START") and not ctx.in_transaction:
                opened[:] = [stmt]
            elif n.kind._name_ in ("TRANS_STMT_COMMIT", "TRANS_STMT_ROLLBACK", "TRANS_STMT_PREPARE"):
                opened.clear()
        return []

    def finish(self, ctx):
        opened = ctx.state.get(self.id) or []
        if not ctx.in_transaction or not opened:
            return []
        return [self.finding(opened[0], ctx, "Transaction started here is never committed or rolled back.")]

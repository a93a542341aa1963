"""Opt-in: INCREMENT, MAXVALUE, RESTART, AS ... change the values clients get from a sequence."""
from pglast import ast

from ..model import Rule


class BanAlterSequenceValues(Rule):
    node_types = (ast.AlterSeqStmt,)
    id = "ban-alter-sequence-values"
    severity = "warning"
    opt_in = True
    summary = "ALTER SEQUENCE value options change generated ids"
    safe_alternative = "Create a new sequence and switch the default to it"

    def check(self, stmt, ctx):
        if not isinstance(stmt.node, self.node_types):
            return []
        opts = [o for o in stmt.node.options or () if getattr(o, "defname", None) not in ("owned_by", None)]
        if opts:
            return [self.finding(stmt, ctx, "Changing a sequence option can change values generated for existing clients.")]
        return []

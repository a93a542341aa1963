"""Opt-in: a new USING / WITH CHECK expression changes which rows clients can read or write."""
from pglast import ast

from .. import helpers as h
from ..model import Rule

MESSAGE = "Changing a policy condition may change access for existing clients."


class BanAlterPolicyCondition(Rule):
    node_types = (ast.AlterPolicyStmt,)
    id = "ban-alter-policy-condition"
    severity = "warning"
    opt_in = True
    summary = "ALTER POLICY USING/WITH CHECK changes access"
    safe_alternative = "Test the new condition against every role before changing it"

    def check(self, stmt, ctx):
        if not isinstance(stmt.node, self.node_types):
            return []
        n = stmt.node
        return [self.finding(stmt, ctx, MESSAGE, line=h.node_line(stmt, e))
                for e in (n.qual, n.with_check) if e is not None]

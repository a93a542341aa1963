"""Opt-in: ALTER POLICY ... TO changes which roles the policy applies to."""
from pglast import ast

from ..model import Rule


class BanAlterPolicyRoles(Rule):
    node_types = (ast.AlterPolicyStmt,)
    id = "ban-alter-policy-roles"
    severity = "warning"
    opt_in = True
    summary = "ALTER POLICY ... TO changes access"
    safe_alternative = "Check every role that gains or loses the policy"

    def check(self, stmt, ctx):
        if not isinstance(stmt.node, self.node_types):
            return []
        if stmt.node.roles:
            return [self.finding(stmt, ctx, "Changing policy roles may change access for existing clients.")]
        return []

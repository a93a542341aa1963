"""Opt-in: on a table with RLS, a new permissive policy widens (or restricts) access."""
from pglast import ast

from ..model import Rule


class BanCreatePolicy(Rule):
    node_types = (ast.CreatePolicyStmt,)
    id = "ban-create-policy"
    severity = "warning"
    opt_in = True
    summary = "CREATE POLICY changes access"
    safe_alternative = "Review the policy's roles and condition with the table's other policies"

    def check(self, stmt, ctx):
        if not isinstance(stmt.node, self.node_types):
            return []
        return [self.finding(stmt, ctx, "Creating a policy may change access for existing clients.")]

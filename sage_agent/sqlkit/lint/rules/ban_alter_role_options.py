"""Opt-in: ALTER ROLE changes logins, privileges or session settings of running clients."""
from pglast import ast

from ..model import Rule


class BanAlterRoleOptions(Rule):
    node_types = (ast.AlterRoleStmt, ast.AlterRoleSetStmt)
    id = "ban-alter-role-options"
    severity = "warning"
    opt_in = True
    summary = "ALTER ROLE changes access or configuration"
    safe_alternative = "Change roles outside migrations, reviewed by an administrator"

    def check(self, stmt, ctx):
        if not isinstance(stmt.node, self.node_types):
            return []
        if isinstance(stmt.node, ast.AlterRoleSetStmt):
            return [self.finding(stmt, ctx, "Changing role configuration may change behaviour for existing clients.")]
        return [self.finding(stmt, ctx, "Changing role options may change access for existing clients.")]

"""Opt-in: ALTER SYSTEM changes the server's configuration for everyone."""
from pglast import ast

from ..model import Rule


class BanAlterSystemOptions(Rule):
    node_types = (ast.AlterSystemStmt,)
    id = "ban-alter-system-options"
    severity = "warning"
    opt_in = True
    summary = "ALTER SYSTEM changes server configuration"
    safe_alternative = "Change server settings through configuration management, not migrations"

    def check(self, stmt, ctx):
        if not isinstance(stmt.node, self.node_types):
            return []
        return [self.finding(stmt, ctx, "Changing server configuration may change behaviour for existing clients.")]

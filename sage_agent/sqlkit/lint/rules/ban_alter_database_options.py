"""Opt-in: ALTER DATABASE SET changes the defaults of every new session."""
from pglast import ast

from ..model import Rule


class BanAlterDatabaseOptions(Rule):
    node_types = (ast.AlterDatabaseStmt, ast.AlterDatabaseSetStmt)
    id = "ban-alter-database-options"
    severity = "warning"
    opt_in = True
    summary = "ALTER DATABASE changes configuration for every session"
    safe_alternative = "Set the option per role or per transaction instead"

    def check(self, stmt, ctx):
        if not isinstance(stmt.node, self.node_types):
            return []
        return [self.finding(stmt, ctx, "Changing database configuration may change behaviour for existing clients.")]

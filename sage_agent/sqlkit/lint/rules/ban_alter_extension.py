"""Opt-in: ALTER EXTENSION UPDATE can change or remove the objects the extension owns."""
from pglast import ast

from ..model import Rule


class BanAlterExtension(Rule):
    node_types = (ast.AlterExtensionStmt,)
    id = "ban-alter-extension"
    severity = "warning"
    opt_in = True
    summary = "ALTER EXTENSION UPDATE changes extension objects"
    safe_alternative = "Read the extension's upgrade notes and test the update on a copy first"

    def check(self, stmt, ctx):
        if not isinstance(stmt.node, self.node_types):
            return []
        return [self.finding(stmt, ctx, "Updating an extension can change or remove objects used by existing clients.")]

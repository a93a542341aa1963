"""Renaming a table breaks every client still using the old name."""
from pglast import ast

from ..model import Rule


class RenamingTable(Rule):
    node_types = (ast.RenameStmt,)
    id = "renaming-table"
    severity = "warning"
    summary = "RENAME TABLE breaks existing clients"
    safe_alternative = "Rename, then create a view with the old name until clients move"

    def check(self, stmt, ctx):
        if not isinstance(stmt.node, self.node_types):
            return []
        n = stmt.node
        if isinstance(n, ast.RenameStmt) and n.renameType._name_ == "OBJECT_TABLE":
            return [self.finding(stmt, ctx, f"Renaming table {n.relation.relname} to {n.newname} "
                                 "breaks clients still using the old name.")]
        return []

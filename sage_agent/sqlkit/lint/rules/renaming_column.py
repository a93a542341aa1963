"""Renaming a column breaks every client still using the old name."""
from pglast import ast

from ..model import Rule


class RenamingColumn(Rule):
    node_types = (ast.RenameStmt,)
    id = "renaming-column"
    severity = "warning"
    summary = "RENAME COLUMN breaks existing clients"
    safe_alternative = "Add the new column, dual-write, migrate readers, then drop the old one"

    def check(self, stmt, ctx):
        if not isinstance(stmt.node, self.node_types):
            return []
        n = stmt.node
        if isinstance(n, ast.RenameStmt) and n.renameType._name_ in ("OBJECT_COLUMN", "OBJECT_ATTRIBUTE"):
            return [self.finding(stmt, ctx, f"Renaming column {n.subname} to {n.newname} breaks "
                                 "clients still using the old name.")]
        return []

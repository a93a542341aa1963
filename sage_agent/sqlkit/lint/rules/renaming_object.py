"""Renaming a view, index, function, type, schema ... breaks clients using the old name.
(Tables and columns have their own rules: renaming-table, renaming-column.)"""
from pglast import ast

from ._objects import NOUNS
from ..model import Rule

_OWN_RULES = {"OBJECT_TABLE", "OBJECT_FOREIGN_TABLE", "OBJECT_COLUMN", "OBJECT_ATTRIBUTE"}


class RenamingObject(Rule):
    node_types = (ast.RenameStmt, ast.AlterEnumStmt)
    id = "renaming-object"
    severity = "warning"
    summary = "Renaming an object breaks clients using the old name"
    safe_alternative = "Create the new name alongside the old one and move clients first"

    def check(self, stmt, ctx):
        if not isinstance(stmt.node, self.node_types):
            return []
        n = stmt.node
        if isinstance(n, ast.AlterEnumStmt):
            if n.oldVal:
                return [self.finding(stmt, ctx, "Renaming a type value may break existing clients.")]
            return []
        kind = n.renameType._name_
        if kind in _OWN_RULES:
            return []
        return [self.finding(stmt, ctx, f"Renaming {NOUNS.get(kind, 'an object')} may break existing clients.")]

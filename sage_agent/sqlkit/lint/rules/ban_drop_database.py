"""DROP DATABASE destroys everything in it."""
from pglast import ast

from ..model import Rule


class BanDropDatabase(Rule):
    node_types = (ast.DropdbStmt,)
    id = "ban-drop-database"
    severity = "error"
    summary = "DROP DATABASE loses all data"
    safe_alternative = "Take a backup and drop databases manually, never from a migration"

    def check(self, stmt, ctx):
        if not isinstance(stmt.node, self.node_types):
            return []
        if isinstance(stmt.node, ast.DropdbStmt):
            return [self.finding(stmt, ctx, f"Dropping database {stmt.node.dbname} loses all of its data.")]
        return []

"""DROP COLUMN loses data and breaks clients."""
from pglast import ast

from .. import helpers as h
from ..model import Rule


class BanDropColumn(Rule):
    node_types = (ast.AlterTableStmt,)
    id = "ban-drop-column"
    severity = "error"
    summary = "DROP COLUMN loses data and breaks clients"
    safe_alternative = "Stop reading/writing the column in the app first, then drop it in a later release"

    def check(self, stmt, ctx):
        return [self.finding(stmt, ctx, f"Dropping column {cmd.name} loses its data and breaks clients using it.")
                for cmd in h.alter_cmds(stmt.node) if h.subtype(cmd) == "AT_DropColumn"]

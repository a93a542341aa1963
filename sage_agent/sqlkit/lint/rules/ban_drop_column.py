"""DROP COLUMN loses data and breaks clients."""
from pglast import ast

from .. import helpers as h
from ..model import Rule


class BanDropColumn(Rule):
    node_types = (ast.AlterTableStmt,)
    alter_subtypes = frozenset({"AT_DropColumn"})
    id = "ban-drop-column"
    severity = "error"
    summary = "DROP COLUMN loses data and breaks clients"
    safe_alternative = "Stop reading/writing the column in the app first, then drop it in a later release"

    def check(self, stmt, ctx):
        if not isinstance(stmt.node, self.node_types):
            return []
        return [self.finding(stmt, ctx, f"Dropping column {cmd.name} loses its data and breaks clients using it.",
                             line=h.cmd_line(stmt, cmd))
                for cmd in h.alter_cmds(stmt.node) if h.subtype(cmd) == "AT_DropColumn"]

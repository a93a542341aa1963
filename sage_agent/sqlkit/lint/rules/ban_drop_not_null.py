"""DROP NOT NULL lets NULLs in that clients may not expect."""
from pglast import ast

from .. import helpers as h
from ..model import Rule


class BanDropNotNull(Rule):
    node_types = (ast.AlterTableStmt,)
    alter_subtypes = frozenset({"AT_DropNotNull"})
    id = "ban-drop-not-null"
    severity = "warning"
    summary = "DROP NOT NULL may break clients that assume a value"
    safe_alternative = "Make sure every reader handles NULL before relaxing the constraint"

    def check(self, stmt, ctx):
        if not isinstance(stmt.node, self.node_types):
            return []
        return [self.finding(stmt, ctx, f"Dropping NOT NULL on {cmd.name} may break clients expecting a value.")
                for cmd in h.alter_cmds(stmt.node) if h.subtype(cmd) == "AT_DropNotNull"]

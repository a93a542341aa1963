"""DROP DEFAULT makes inserts that relied on the default write NULL or fail."""
from pglast import ast

from .. import helpers as h
from ..model import Rule

MESSAGE = "Dropping a column default may break existing clients."


class BanDropDefault(Rule):
    node_types = (ast.AlterTableStmt, ast.AlterDomainStmt)
    alter_subtypes = frozenset({"AT_ColumnDefault"})
    id = "ban-drop-default"
    severity = "warning"
    summary = "DROP DEFAULT breaks inserts relying on it"
    safe_alternative = "Make every writer send the value before dropping the default"

    def check(self, stmt, ctx):
        if not isinstance(stmt.node, self.node_types):
            return []
        n = stmt.node
        if isinstance(n, ast.AlterDomainStmt):
            return [self.finding(stmt, ctx, MESSAGE)] if n.subtype == "T" and n.def_ is None else []
        return [self.finding(stmt, ctx, MESSAGE, line=h.cmd_line(stmt, cmd)) for cmd in h.alter_cmds(n)
                if h.subtype(cmd) == "AT_ColumnDefault" and cmd.def_ is None]

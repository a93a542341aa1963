"""DROP CONSTRAINT removes a guarantee (uniqueness, a reference, a check) clients rely on."""
from pglast import ast

from .. import helpers as h
from ..model import Rule

MESSAGE = "Dropping a constraint may remove a guarantee that existing clients assume."


class BanDropConstraint(Rule):
    node_types = (ast.AlterTableStmt, ast.AlterDomainStmt)
    alter_subtypes = frozenset({"AT_DropConstraint"})
    id = "ban-drop-constraint"
    severity = "warning"
    summary = "DROP CONSTRAINT removes a guarantee clients assume"
    safe_alternative = "Make sure no client relies on the constraint; replace it in the same transaction"

    def check(self, stmt, ctx):
        if not isinstance(stmt.node, self.node_types):
            return []
        n = stmt.node
        if isinstance(n, ast.AlterDomainStmt):
            return [self.finding(stmt, ctx, MESSAGE)] if n.subtype == "X" else []
        return [self.finding(stmt, ctx, MESSAGE, line=h.cmd_line(stmt, cmd)) for cmd in h.alter_cmds(n)
                if h.subtype(cmd) == "AT_DropConstraint"]

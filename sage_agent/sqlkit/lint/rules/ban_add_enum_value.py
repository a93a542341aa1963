"""Opt-in: a new enum value can reach clients whose code does not know it."""
from pglast import ast

from ..model import Rule


class BanAddEnumValue(Rule):
    node_types = (ast.AlterEnumStmt,)
    id = "ban-add-enum-value"
    severity = "warning"
    opt_in = True
    summary = "ALTER TYPE ... ADD VALUE reaches clients that do not know the value"
    safe_alternative = "Deploy clients that handle the new value first"

    def check(self, stmt, ctx):
        if not isinstance(stmt.node, self.node_types):
            return []
        if stmt.node.newVal and not stmt.node.oldVal:
            return [self.finding(stmt, ctx, "Adding an enum value changes the set of values existing clients can receive.")]
        return []

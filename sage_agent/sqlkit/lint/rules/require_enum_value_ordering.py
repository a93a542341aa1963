"""ADD VALUE without BEFORE/AFTER appends, which is rarely the intended sort order."""
from pglast import ast

from ..model import Rule


class RequireEnumValueOrdering(Rule):
    node_types = (ast.AlterEnumStmt,)
    id = "require-enum-value-ordering"
    severity = "info"
    summary = "ALTER TYPE ... ADD VALUE should say BEFORE/AFTER"
    safe_alternative = "ALTER TYPE t ADD VALUE 'x' AFTER 'y'"

    def check(self, stmt, ctx):
        if not isinstance(stmt.node, self.node_types):
            return []
        n = stmt.node
        if isinstance(n, ast.AlterEnumStmt) and n.newVal and not n.oldVal and not n.newValNeighbor:
            return [self.finding(stmt, ctx, f"ADD VALUE '{n.newVal}' without BEFORE/AFTER appends it at "
                                 "the end of the enum's sort order.")]
        return []

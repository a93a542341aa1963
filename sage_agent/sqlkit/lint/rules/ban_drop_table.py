"""DROP TABLE loses data and breaks clients."""
from pglast import ast

from ..model import Rule


class BanDropTable(Rule):
    node_types = (ast.DropStmt,)
    id = "ban-drop-table"
    severity = "error"
    summary = "DROP TABLE loses data and breaks clients"
    safe_alternative = "Stop using the table first; rename/archive it, drop it in a later release"

    def check(self, stmt, ctx):
        if not isinstance(stmt.node, self.node_types):
            return []
        n = stmt.node
        if isinstance(n, ast.DropStmt) and n.removeType._name_ in ("OBJECT_TABLE", "OBJECT_FOREIGN_TABLE"):
            return [self.finding(stmt, ctx, "Dropping a table loses its data and breaks clients using it.")]
        return []

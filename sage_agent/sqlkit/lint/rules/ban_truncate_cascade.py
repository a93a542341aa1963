"""TRUNCATE ... CASCADE silently empties every table that references the target."""
from pglast import ast

from ..model import Rule


class BanTruncateCascade(Rule):
    node_types = (ast.TruncateStmt,)
    id = "ban-truncate-cascade"
    severity = "error"
    summary = "TRUNCATE CASCADE also empties referencing tables"
    safe_alternative = "TRUNCATE the exact list of tables you mean, without CASCADE"

    def check(self, stmt, ctx):
        if not isinstance(stmt.node, self.node_types):
            return []
        n = stmt.node
        if isinstance(n, ast.TruncateStmt) and n.behavior.name == "DROP_CASCADE":
            return [self.finding(stmt, ctx, "TRUNCATE ... CASCADE also empties every table with a "
                                 "foreign key to these tables.")]
        return []

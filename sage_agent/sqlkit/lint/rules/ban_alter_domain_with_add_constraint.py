"""ALTER DOMAIN ADD CONSTRAINT scans every table column that uses the domain."""
from pglast import ast

from ..model import Rule


class BanAlterDomainWithAddConstraint(Rule):
    node_types = (ast.AlterDomainStmt,)
    id = "ban-alter-domain-with-add-constraint"
    severity = "warning"
    summary = "ALTER DOMAIN ... ADD CONSTRAINT validates every column using the domain"
    safe_alternative = "Add the constraint to the table columns (NOT VALID + VALIDATE)"

    def check(self, stmt, ctx):
        if not isinstance(stmt.node, self.node_types):
            return []
        n = stmt.node
        if isinstance(n, ast.AlterDomainStmt) and n.subtype == "C":
            return [self.finding(stmt, ctx, "ALTER DOMAIN ... ADD CONSTRAINT scans every column that uses "
                                 "the domain while holding locks on those tables.")]
        return []

"""Domain CHECK constraints are re-validated against every column using the domain on change."""
from pglast import ast

from .. import helpers as h
from ..model import Rule


class BanCreateDomainWithConstraint(Rule):
    node_types = (ast.CreateDomainStmt,)
    id = "ban-create-domain-with-constraint"
    severity = "warning"
    summary = "Avoid CHECK constraints on domains"
    safe_alternative = "Put the CHECK constraint on the table columns instead"

    def check(self, stmt, ctx):
        if not isinstance(stmt.node, self.node_types):
            return []
        n = stmt.node
        if isinstance(n, ast.CreateDomainStmt) and any(
                h.contype(c) == "CHECK" for c in n.constraints or ()):
            return [self.finding(stmt, ctx, "Domain constraints are hard to change online: altering them "
                                 "re-checks every column of every table using the domain.")]
        return []

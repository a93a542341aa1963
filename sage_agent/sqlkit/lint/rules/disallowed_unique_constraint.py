"""ADD UNIQUE builds its index under ACCESS EXCLUSIVE."""
from pglast import ast

from .. import helpers as h
from ..model import Rule


class DisallowedUniqueConstraint(Rule):
    node_types = (ast.AlterTableStmt,)
    alter_subtypes = frozenset({"AT_AddConstraint", "AT_AddColumn"})
    id = "disallowed-unique-constraint"
    severity = "error"
    summary = "ADD UNIQUE builds an index while blocking reads and writes"
    safe_alternative = ("CREATE UNIQUE INDEX CONCURRENTLY idx ...; then ADD CONSTRAINT c UNIQUE "
                        "USING INDEX idx")

    def check(self, stmt, ctx):
        if not isinstance(stmt.node, self.node_types):
            return []
        table = h.alter_table_name(stmt.node)
        cons = [c for _, c in h.added_constraints(stmt.node) if table not in ctx.tables_created_in_file]
        cons += [c for _, col in h.added_columns(stmt.node) for c in h.column_constraints(col)]
        return [self.finding(stmt, ctx, "Adding a UNIQUE constraint builds its index under an ACCESS "
                             "EXCLUSIVE lock, blocking reads and writes.", location=c.location)
                for c in cons if h.contype(c) == "UNIQUE" and not h.uses_index(c)]

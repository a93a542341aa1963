"""ADD PRIMARY KEY builds its unique index under ACCESS EXCLUSIVE."""
from pglast import ast

from .. import helpers as h
from ..model import Rule


class AddingSerialPrimaryKeyField(Rule):
    node_types = (ast.AlterTableStmt,)
    alter_subtypes = frozenset({"AT_AddConstraint", "AT_AddColumn"})
    id = "adding-serial-primary-key-field"
    severity = "error"
    summary = "ADD PRIMARY KEY builds an index while blocking reads and writes"
    safe_alternative = ("CREATE UNIQUE INDEX CONCURRENTLY idx ...; then ALTER TABLE ... ADD CONSTRAINT "
                        "pk PRIMARY KEY USING INDEX idx")

    def check(self, stmt, ctx):
        if not isinstance(stmt.node, self.node_types):
            return []
        cons = [c for _, c in h.added_constraints(stmt.node)]
        cons += [c for _, col in h.added_columns(stmt.node) for c in h.column_constraints(col)]
        return [self.finding(stmt, ctx, "Adding a primary key builds its index under an ACCESS EXCLUSIVE "
                             "lock, blocking reads and writes.", location=c.location)
                for c in cons if h.contype(c) == "PRIMARY" and not h.uses_index(c)]

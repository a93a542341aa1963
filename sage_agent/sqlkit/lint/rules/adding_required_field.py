"""ADD COLUMN ... NOT NULL without a DEFAULT fails on any table that has rows."""
from pglast import ast

from .. import helpers as h
from ..model import Rule


class AddingRequiredField(Rule):
    node_types = (ast.AlterTableStmt,)
    alter_subtypes = frozenset({"AT_AddColumn"})
    id = "adding-required-field"
    severity = "error"
    summary = "ADD COLUMN NOT NULL without DEFAULT fails on a populated table"
    safe_alternative = "Add the column nullable (or with a constant DEFAULT), backfill, then SET NOT NULL"

    def check(self, stmt, ctx):
        if not isinstance(stmt.node, self.node_types):
            return []
        out = []
        for _cmd, col in h.added_columns(stmt.node):
            kinds = {h.contype(c) for c in h.column_constraints(col)}
            if ("NOTNULL" in kinds or col.is_not_null) and not kinds & {"DEFAULT", "IDENTITY", "GENERATED"}:
                out.append(self.finding(stmt, ctx, f"Column {col.colname} is NOT NULL without a DEFAULT: "
                                        "the ALTER fails if the table has any row.", location=col.location))
        return out

"""ADD COLUMN with a volatile default / stored generated / identity column rewrites the table."""
from pglast import ast

from .. import helpers as h
from ..model import Rule


class AddingFieldWithDefault(Rule):
    node_types = (ast.AlterTableStmt,)
    alter_subtypes = frozenset({"AT_AddColumn"})
    id = "adding-field-with-default"
    severity = "error"
    summary = "ADD COLUMN whose default must be computed per row rewrites the table"
    safe_alternative = ("Add the column without a default (or with a constant one), backfill in "
                        "batches, then SET DEFAULT")

    def check(self, stmt, ctx):
        if not isinstance(stmt.node, self.node_types):
            return []
        out = []
        for _cmd, col in h.added_columns(stmt.node):
            for con in h.column_constraints(col):
                if h.rewriting_column_constraint(con, ctx.server_major):
                    why = ("any DEFAULT before PostgreSQL 11" if ctx.server_major < 11
                           and h.contype(con) == "DEFAULT" else
                           f"a {h.contype(con).lower()} value computed for every row")
                    out.append(self.finding(
                        stmt, ctx, f"Adding column {col.colname} with {why} rewrites the whole "
                        "table under an ACCESS EXCLUSIVE lock.", location=con.location))
        return out

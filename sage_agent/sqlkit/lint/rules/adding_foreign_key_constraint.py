"""A validated foreign key locks both tables (SHARE ROW EXCLUSIVE) and scans the referencing one."""
from pglast import ast

from .. import helpers as h
from ..model import Rule


class AddingForeignKeyConstraint(Rule):
    node_types = (ast.AlterTableStmt,)
    alter_subtypes = frozenset({"AT_AddConstraint", "AT_AddColumn"})
    id = "adding-foreign-key-constraint"
    severity = "warning"
    summary = "ADD FOREIGN KEY blocks writes on both tables while it validates"
    safe_alternative = "ADD CONSTRAINT ... FOREIGN KEY ... NOT VALID; then VALIDATE CONSTRAINT separately"

    def check(self, stmt, ctx):
        if not isinstance(stmt.node, self.node_types):
            return []
        table = h.alter_table_name(stmt.node)
        out = []
        for _cmd, con in h.added_constraints(stmt.node):
            if h.contype(con) != "FOREIGN" or h.is_not_valid(con) or table in ctx.tables_created_in_file:
                continue
            out.append(self._hit(stmt, ctx, con))
        for _cmd, col in h.added_columns(stmt.node):
            out += [self._hit(stmt, ctx, c) for c in h.column_constraints(col) if h.contype(c) == "FOREIGN"]
        return out

    def _hit(self, stmt, ctx, con):
        return self.finding(stmt, ctx, "Adding a foreign key takes SHARE ROW EXCLUSIVE locks on both "
                            "tables and scans the table, blocking writes to each.", location=con.location)

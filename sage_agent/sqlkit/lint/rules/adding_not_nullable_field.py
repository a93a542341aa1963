"""SET NOT NULL scans the whole table under ACCESS EXCLUSIVE (unless a valid CHECK proves it, PG12+)."""
from pglast import ast

from ...nodes import names
from .. import helpers as h
from ..model import Rule


def _not_null_check_column(con) -> str | None:
    """Column name if ``con`` is ``CHECK (col IS NOT NULL)``."""
    e = con.raw_expr
    if isinstance(e, ast.NullTest) and e.nulltesttype.name == "IS_NOT_NULL" and isinstance(e.arg, ast.ColumnRef):
        return names(e.arg.fields)[-1]
    return None


class AddingNotNullableField(Rule):
    node_types = (ast.AlterTableStmt,)
    id = "adding-not-nullable-field"
    severity = "error"
    summary = "SET NOT NULL scans the table while blocking reads and writes"
    safe_alternative = ("ADD CONSTRAINT c CHECK (col IS NOT NULL) NOT VALID; VALIDATE CONSTRAINT c; "
                        "then SET NOT NULL (PG 12+ skips the scan); finally drop the check")

    def check(self, stmt, ctx):
        checks = ctx.rule_state(self.id, dict)  # (table, constraint) -> [column, validated]
        table = h.alter_table_name(stmt.node)
        out = []
        for cmd in h.alter_cmds(stmt.node):
            st = h.subtype(cmd)
            if st == "AT_AddConstraint" and isinstance(cmd.def_, ast.Constraint) and h.contype(cmd.def_) == "CHECK":
                col = _not_null_check_column(cmd.def_)
                if col and cmd.def_.conname:
                    checks[(table, cmd.def_.conname)] = [col, not h.is_not_valid(cmd.def_)]
            elif st == "AT_ValidateConstraint" and (table, cmd.name) in checks:
                checks[(table, cmd.name)][1] = True
            elif st == "AT_SetNotNull":
                proven = any(t == table and v[0] == cmd.name and v[1] for (t, _), v in checks.items())
                if proven and ctx.server_major >= 12:
                    continue
                out.append(self.finding(stmt, ctx, f"SET NOT NULL on {table}.{cmd.name} scans the whole "
                                        "table under an ACCESS EXCLUSIVE lock, blocking reads and writes."))
        return out

"""SET NOT NULL scans the whole table under ACCESS EXCLUSIVE, unless (PG 12+) a validated
``CHECK (col IS NOT NULL)`` already proves it: then the scan is skipped.

Like squawk, a VALIDATE CONSTRAINT whose ADD is not in this file (an earlier migration added it
NOT VALID) is taken as that proof for the table. With a :class:`~..engine.LintChain`, what earlier
files of the chain added and validated is remembered exactly.
"""
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
    alter_subtypes = frozenset({"AT_AddConstraint", "AT_ValidateConstraint", "AT_SetNotNull"})
    id = "adding-not-nullable-field"
    ordered = True
    severity = "error"
    summary = "SET NOT NULL scans the table while blocking reads and writes"
    safe_alternative = ("ADD CONSTRAINT c CHECK (col IS NOT NULL) NOT VALID; VALIDATE CONSTRAINT c; "
                        "then SET NOT NULL (PG 12+ skips the scan); finally drop the check")

    def check(self, stmt, ctx):
        if not isinstance(stmt.node, self.node_types):
            return []
        memo = ctx.shared.get(self.id)
        if memo is None:
            memo = ctx.shared[self.id] = {"checks": {}, "validated": set(), "external": set()}
        local_external = ctx.rule_state(self.id, set)  # tables validated in this file, ADD elsewhere
        checks, validated = memo["checks"], memo["validated"]
        rel = stmt.node.relation
        table = rel.relname if rel is not None else None  # squawk keys by the bare table name
        pg12 = ctx.server_major >= 12
        out = []
        for cmd in h.alter_cmds(stmt.node):
            st = h.subtype(cmd)
            if st == "AT_AddConstraint" and isinstance(cmd.def_, ast.Constraint):
                con = cmd.def_
                col = _not_null_check_column(con) if h.contype(con) == "CHECK" else None
                if pg12 and col and con.conname and h.is_not_valid(con):
                    checks[con.conname] = (table, col)
            elif st == "AT_ValidateConstraint" and pg12 and cmd.name:
                known = checks.get(cmd.name)
                if known and known[0] == table:
                    validated.add(known)
                else:
                    local_external.add(table)
            elif st == "AT_SetNotNull":
                if pg12 and ((table, cmd.name) in validated or table in local_external):
                    continue
                out.append(self.finding(stmt, ctx, f"SET NOT NULL on {h.alter_table_name(stmt.node)}.{cmd.name} "
                                        "scans the whole table under an ACCESS EXCLUSIVE lock, blocking reads "
                                        "and writes."))
        return out

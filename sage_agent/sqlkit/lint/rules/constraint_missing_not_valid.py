"""A new constraint is validated immediately, scanning the table under a strong lock."""
from pglast import ast

from .. import helpers as h
from ..model import Rule


class ConstraintMissingNotValid(Rule):
    node_types = (ast.TransactionStmt, ast.AlterTableStmt)
    alter_subtypes = frozenset({"AT_ValidateConstraint", "AT_AddConstraint"})
    id = "constraint-missing-not-valid"
    ordered = True
    severity = "warning"
    summary = "ADD CONSTRAINT without NOT VALID scans the table while holding its lock"
    safe_alternative = ("ADD CONSTRAINT ... NOT VALID, then ALTER TABLE ... VALIDATE CONSTRAINT "
                        "in a separate transaction")

    def check(self, stmt, ctx):
        if not isinstance(stmt.node, self.node_types):
            return []
        not_valid: set[str] = ctx.rule_state(self.id, set)  # NOT VALID names added in this transaction
        inside = ctx.in_transaction or ctx.assume_in_transaction
        if isinstance(stmt.node, ast.TransactionStmt) and not ctx.in_transaction:
            not_valid.clear()
        table = h.alter_table_name(stmt.node)
        out = []
        for cmd in h.alter_cmds(stmt.node):
            if h.subtype(cmd) == "AT_ValidateConstraint" and inside and cmd.name in not_valid:
                out.append(self.finding(
                    stmt, ctx, f"VALIDATE CONSTRAINT {cmd.name} runs in the transaction that added it "
                    "NOT VALID, so the ALTER's ACCESS EXCLUSIVE lock is held during the scan.",
                    alternative="Commit after ADD CONSTRAINT ... NOT VALID; validate in a new transaction"))
        for _cmd, con in h.added_constraints(stmt.node):
            if h.is_not_valid(con):
                if con.conname and inside:
                    not_valid.add(con.conname)
                continue
            if h.uses_index(con) or table in ctx.tables_created_in_file:
                continue
            name = f" {con.conname}" if con.conname else ""
            out.append(self.finding(
                stmt, ctx, f"Adding constraint{name} to {table} without NOT VALID scans the whole "
                "table while holding its lock.", location=con.location))
        return out

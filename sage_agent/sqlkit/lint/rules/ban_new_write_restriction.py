"""Opt-in: a new constraint (even NOT VALID) or NOT NULL rejects writes clients make today."""
from pglast import ast

from .. import helpers as h
from ..model import Rule

_COLUMN_KINDS = {"NOTNULL", "CHECK", "UNIQUE", "FOREIGN", "PRIMARY", "EXCLUSION"}


class BanNewWriteRestriction(Rule):
    node_types = (ast.AlterTableStmt, ast.AlterDomainStmt)
    alter_subtypes = frozenset({"AT_AddConstraint", "AT_SetNotNull", "AT_AddColumn"})
    id = "ban-new-write-restriction"
    severity = "warning"
    opt_in = True
    summary = "A new constraint or NOT NULL rejects writes existing clients make"
    safe_alternative = "Make every writer comply before adding the restriction"

    def check(self, stmt, ctx):
        if not isinstance(stmt.node, self.node_types):
            return []
        n = stmt.node
        if isinstance(n, ast.AlterDomainStmt):
            if n.subtype == "C":
                return [self.finding(stmt, ctx, "A domain constraint can reject writes from existing clients, "
                                     "even when it is NOT VALID.")]
            if n.subtype == "O":
                return [self.finding(stmt, ctx, "A domain NOT NULL requirement can reject writes from existing clients.")]
            return []
        out = []
        for cmd in h.alter_cmds(n):
            st = h.subtype(cmd)
            if st == "AT_AddConstraint":
                out.append(self.finding(stmt, ctx, "A new constraint can reject writes from existing clients, "
                                        "even when it is NOT VALID."))
            elif st == "AT_SetNotNull":
                out.append(self.finding(stmt, ctx, "SET NOT NULL can reject writes from existing clients."))
            elif st == "AT_AddColumn" and isinstance(cmd.def_, ast.ColumnDef):
                col = cmd.def_
                cons = [c for c in h.column_constraints(col) if h.contype(c) in _COLUMN_KINDS]
                if cons or col.is_not_null:
                    out.append(self.finding(stmt, ctx, "A new column constraint can reject writes from existing "
                                            "clients.", location=cons[0].location if cons else col.location))
        return out

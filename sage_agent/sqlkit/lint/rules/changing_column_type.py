"""ALTER COLUMN TYPE rewrites the table (and indexes) unless the change is binary coercible."""
from pglast import ast

from ...nodes import qualified
from .. import helpers as h
from ..model import Rule
from ._types import declared_type

_VARCHAR = {"varchar", "text"}


def binary_coercible(old: tuple[str, list[int]], new: tuple[str, list[int]]) -> bool:
    """varchar(n)->text / varchar / varchar(m>=n), numeric(p,s)->numeric(p2>=p,s): no rewrite."""
    (o, om), (n, nm) = old, new
    if o in _VARCHAR and n in _VARCHAR:
        if n == "text" or not nm:
            return True
        return o == "varchar" and bool(om) and nm[0] >= om[0]
    if o == n == "numeric":
        return not nm or (bool(om) and nm[0] >= om[0] and nm[1:] == om[1:])
    return o == n and om == nm


class ChangingColumnType(Rule):
    node_types = (ast.CreateStmt, ast.AlterTableStmt)
    alter_subtypes = frozenset({"AT_AddColumn", "AT_AlterColumnType"})
    id = "changing-column-type"
    ordered = True
    severity = "error"
    summary = "ALTER COLUMN TYPE rewrites the table under ACCESS EXCLUSIVE"
    safe_alternative = ("Add a new column, backfill in batches, swap in a transaction; or use a "
                        "binary-coercible change (varchar(n) -> text)")

    def check(self, stmt, ctx):
        if not isinstance(stmt.node, self.node_types):
            return []
        known = ctx.rule_state(self.id, dict)  # (table, column) -> (type, typmods) seen in this file
        n = stmt.node
        table = qualified(n.relation) if isinstance(n, (ast.CreateStmt, ast.AlterTableStmt)) else None
        out = []
        if isinstance(n, ast.CreateStmt):
            for elt in n.tableElts or ():
                if isinstance(elt, ast.ColumnDef) and elt.typeName is not None:
                    known[(table, elt.colname)] = declared_type(stmt, ctx, elt.typeName)
            return out
        for cmd in h.alter_cmds(n):
            st = h.subtype(cmd)
            if st == "AT_AddColumn" and isinstance(cmd.def_, ast.ColumnDef):
                known[(table, cmd.def_.colname)] = declared_type(stmt, ctx, cmd.def_.typeName)
            if st != "AT_AlterColumnType":
                continue
            new = declared_type(stmt, ctx, cmd.def_.typeName)
            old = known.get((table, cmd.name))
            known[(table, cmd.name)] = new
            if old is not None and cmd.def_.raw_default is None and binary_coercible(old, new):
                continue
            out.append(self.finding(stmt, ctx, f"Changing the type of {table}.{cmd.name} rewrites the "
                                    "table and its indexes under an ACCESS EXCLUSIVE lock.",
                                    location=getattr(cmd.def_.typeName, "location", None)))
        return out

"""Statements that cannot be re-run after a partial failure (squawk's prefer-robust-stmts)."""
from pglast import ast

from .. import helpers as h
from ..model import Rule

_IF_EXISTS = "Missing IF EXISTS: the migration cannot be re-run if it fails part way through."
_IF_NOT_EXISTS = "Missing IF NOT EXISTS: the migration cannot be re-run if it fails part way through."
_NO_TX = "Missing transaction: the migration cannot be re-run if it fails part way through."


class PreferRobustStmts(Rule):
    node_types = (ast.AlterTableStmt, ast.RenameStmt, ast.IndexStmt, ast.CreateStmt, ast.DropStmt)
    id = "prefer-robust-stmts"
    ordered = True
    severity = "info"
    summary = "Use IF [NOT] EXISTS or a transaction so a failed migration can be re-run"
    safe_alternative = "Add IF [NOT] EXISTS, or wrap the migration in BEGIN/COMMIT"

    def check(self, stmt, ctx):
        if not isinstance(stmt.node, self.node_types):
            return []
        n = stmt.node
        inside = ctx.in_transaction or ctx.assume_in_transaction
        dropped = ctx.rule_state(self.id, dict)  # constraint name -> "dropped" | "added"
        out = []
        if isinstance(n, ast.AlterTableStmt):
            for cmd in n.cmds or ():
                msg = self._alter_msg(cmd, dropped)
                if msg and not inside:
                    out.append(self.finding(stmt, ctx, msg, location=getattr(cmd.def_, "location", None)))
        elif isinstance(n, ast.RenameStmt) and n.relation is not None:
            if not inside:  # an ALTER TABLE ... RENAME cannot be made idempotent
                out.append(self.finding(stmt, ctx, _NO_TX))
        elif isinstance(n, ast.IndexStmt):
            if not n.if_not_exists and n.idxname and (n.concurrent or not inside):
                out.append(self.finding(stmt, ctx, _IF_NOT_EXISTS))
        elif isinstance(n, ast.CreateStmt):
            temp_drop = n.relation.relpersistence == "t" and n.oncommit._name_ == "ONCOMMIT_DROP"
            if not n.if_not_exists and not inside and not temp_drop:
                out.append(self.finding(stmt, ctx, _IF_NOT_EXISTS))
        elif isinstance(n, ast.DropStmt) and n.removeType._name_ in ("OBJECT_INDEX", "OBJECT_TABLE", "OBJECT_TYPE"):
            if not n.missing_ok and not inside:
                out.append(self.finding(stmt, ctx, _IF_EXISTS))
        return out

    @staticmethod
    def _alter_msg(cmd, dropped):
        st = h.subtype(cmd)
        if st == "AT_DropConstraint":
            if cmd.name:
                dropped[cmd.name] = "dropped"
            return None if cmd.missing_ok else _IF_EXISTS
        if st == "AT_AddColumn":
            return None if cmd.missing_ok else _IF_NOT_EXISTS
        if st == "AT_DropColumn":
            return None if cmd.missing_ok else _IF_EXISTS
        if st == "AT_ValidateConstraint":
            return None if cmd.name in dropped else _NO_TX
        if st == "AT_AddConstraint":
            name = getattr(cmd.def_, "conname", None)
            if name and dropped.get(name) == "dropped":
                dropped[name] = "added"
                return None
        return _NO_TX

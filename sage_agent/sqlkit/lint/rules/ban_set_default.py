"""Opt-in: a new column default silently changes what inserts write."""
from pglast import ast

from .. import helpers as h
from ..model import Rule

MESSAGE = "Setting a column default may silently change values written by existing clients."


class BanSetDefault(Rule):
    node_types = (ast.AlterTableStmt, ast.AlterDomainStmt)
    alter_subtypes = frozenset({"AT_ColumnDefault"})
    id = "ban-set-default"
    severity = "warning"
    opt_in = True
    summary = "SET DEFAULT changes values written by existing clients"
    safe_alternative = "Make sure writers that omit the column expect the new value"

    def check(self, stmt, ctx):
        if not isinstance(stmt.node, self.node_types):
            return []
        n = stmt.node
        if isinstance(n, ast.AlterDomainStmt):
            return [self.finding(stmt, ctx, MESSAGE)] if n.subtype == "T" and n.def_ is not None else []
        return [self.finding(stmt, ctx, MESSAGE) for cmd in h.alter_cmds(n)
                if h.subtype(cmd) == "AT_ColumnDefault" and cmd.def_ is not None]

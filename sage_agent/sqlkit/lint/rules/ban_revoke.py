"""Opt-in: REVOKE (and owner changes) remove access clients have today."""
from pglast import ast

from .. import helpers as h
from ..model import Rule

_OWNER = "Changing object ownership may break existing clients."


class BanRevoke(Rule):
    node_types = (ast.GrantStmt, ast.GrantRoleStmt, ast.AlterOwnerStmt, ast.AlterTableStmt)
    alter_subtypes = frozenset({"AT_ChangeOwner"})
    id = "ban-revoke"
    severity = "warning"
    opt_in = True
    summary = "REVOKE / OWNER TO may remove access existing clients use"
    safe_alternative = "Check which roles use the privilege before revoking it"

    def check(self, stmt, ctx):
        if not isinstance(stmt.node, self.node_types):
            return []
        n = stmt.node
        if isinstance(n, (ast.GrantStmt, ast.GrantRoleStmt)):
            return [] if n.is_grant else [self.finding(stmt, ctx, "Revoking privileges may break existing clients.")]
        if isinstance(n, ast.AlterOwnerStmt):
            return [self.finding(stmt, ctx, _OWNER)]
        return [self.finding(stmt, ctx, _OWNER) for cmd in h.alter_cmds(n) if h.subtype(cmd) == "AT_ChangeOwner"]

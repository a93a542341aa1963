"""Shared base for the column-type style rules (prefer-bigint, prefer-text-field, ...)."""
from pglast import ast

from .. import helpers as h
from ..model import Rule


class ColumnTypeRule(Rule):
    """Flags column types declared by CREATE TABLE, ADD COLUMN and ALTER COLUMN TYPE."""

    node_types = (ast.CreateStmt, ast.AlterTableStmt)
    alter_subtypes = frozenset({"AT_AddColumn", "AT_AlterColumnType"})
    severity = "info"
    bad_types: frozenset[str] = frozenset()
    message = ""

    def matches(self, name: str, mods: list[int]) -> bool:
        return name in self.bad_types

    def check(self, stmt, ctx):
        if not isinstance(stmt.node, self.node_types):
            return []
        out = []
        for name, mods, line in _declared_types(stmt, ctx):
            if self.matches(name, mods):
                out.append(self.finding(stmt, ctx, self.message.format(type=name), line=line))
        return out


def _declared_types(stmt, ctx) -> list[tuple[str, list[int], int]]:
    """(type name, typmods, line) of the statement's column types, computed once per statement
    and shared by all the column-type rules."""
    memo = ctx.state.get("_column_types")
    if memo is not None and memo[0] is stmt:
        return memo[1]
    facts = [(*h.type_info(tn)[:2], h.typename_line(stmt, owner, tn))
             for owner, tn in h.column_typenames(stmt.node)]
    ctx.state["_column_types"] = (stmt, facts)
    return facts

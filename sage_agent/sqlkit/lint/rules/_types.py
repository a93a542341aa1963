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

    # Not overridden: a statement whose type names are all outside bad_types is passed over at once.
    def matches(self, name: str, mods: list[int]) -> bool:
        return name in self.bad_types

    def check(self, stmt, ctx):
        if not isinstance(stmt.node, self.node_types):
            return []
        memo = _memo(stmt, ctx)
        if type(self).matches is ColumnTypeRule.matches and self.bad_types.isdisjoint(memo[3]):
            return []
        out = []
        for name, mods, owner, tn in memo[1]:
            if self.matches(name, mods):
                out.append(self.finding(stmt, ctx, self.message.format(type=name),
                                        line=h.typename_line(stmt, owner, tn)))
        return out


def declared_type(stmt, ctx, tn) -> tuple[str, list[int]]:
    """(type name, typmods) of one TypeName of the statement, from the same per-statement memo."""
    found = _memo(stmt, ctx)[2].get(id(tn))
    return found if found is not None else h.type_info(tn)[:2]


def _memo(stmt, ctx):
    """(statement, [(type name, typmods, owner, TypeName)], {id(TypeName): (name, typmods)}, type names) of the
    statement's column types, computed once per statement and shared by all the column-type rules."""
    memo = ctx.state.get("_column_types")
    if memo is not None and memo[0] is stmt:
        return memo
    facts, by_id = [], {}
    for owner, tn in h.column_typenames(stmt.node):
        name, mods, _array = h.type_info(tn)
        facts.append((name, mods, owner, tn))
        by_id[id(tn)] = (name, mods)
    memo = ctx.state["_column_types"] = (stmt, facts, by_id, frozenset(f[0] for f in facts))
    return memo

"""Shared base for the column-type style rules (prefer-bigint, prefer-text-field, ...)."""
from .. import helpers as h
from ..model import Rule


class ColumnTypeRule(Rule):
    """Flags column types declared by CREATE TABLE, ADD COLUMN and ALTER COLUMN TYPE."""

    severity = "info"
    bad_types: frozenset[str] = frozenset()
    message = ""

    def matches(self, name: str, mods: list[int]) -> bool:
        return name in self.bad_types

    def check(self, stmt, ctx):
        out = []
        for owner, tn in h.column_typenames(stmt.node):
            name, mods, _arr = h.type_info(tn)
            if self.matches(name, mods):
                out.append(self.finding(stmt, ctx, self.message.format(type=name),
                                        line=h.typename_line(stmt, owner, tn)))
        return out

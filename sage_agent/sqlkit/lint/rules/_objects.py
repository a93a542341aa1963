"""Shared bases for the rules that flag one kind of statement or ALTER subcommand."""
from pglast import ast

from .. import helpers as h
from ..model import Rule

# ObjectType name -> the noun squawk uses in its messages
NOUNS = {
    "OBJECT_VIEW": "a view", "OBJECT_MATVIEW": "a materialized view", "OBJECT_FUNCTION": "a function",
    "OBJECT_PROCEDURE": "a procedure", "OBJECT_ROUTINE": "a routine", "OBJECT_AGGREGATE": "an aggregate",
    "OBJECT_TYPE": "a type", "OBJECT_DOMAIN": "a domain", "OBJECT_SCHEMA": "a schema",
    "OBJECT_SEQUENCE": "a sequence", "OBJECT_EXTENSION": "an extension", "OBJECT_CAST": "a cast",
    "OBJECT_OPERATOR": "an operator", "OBJECT_INDEX": "an index", "OBJECT_TABLE": "a table",
    "OBJECT_FOREIGN_TABLE": "a foreign table", "OBJECT_POLICY": "a policy", "OBJECT_RULE": "a rule",
    "OBJECT_TRIGGER": "a trigger", "OBJECT_TABCONSTRAINT": "a constraint",
    "OBJECT_DOMCONSTRAINT": "a constraint", "OBJECT_COLUMN": "a column", "OBJECT_ATTRIBUTE": "an attribute",
}


class DropObjectRule(Rule):
    """``DROP <kind> ...`` for the object kinds in ``kinds``."""

    node_types = (ast.DropStmt,)
    severity = "warning"
    kinds: frozenset[str] = frozenset()
    message = "Dropping {noun} may break existing clients."

    def check(self, stmt, ctx):
        if not isinstance(stmt.node, self.node_types):
            return []
        kind = stmt.node.removeType._name_
        if kind in self.kinds:
            return [self.finding(stmt, ctx, self.message.format(noun=NOUNS.get(kind, "an object")))]
        return []


class AlterCmdRule(Rule):
    """ALTER TABLE (VIEW, TYPE ...) subcommands of the kinds in ``subtypes``."""

    node_types = (ast.AlterTableStmt,)
    severity = "warning"
    subtypes: frozenset[str] = frozenset()
    objtypes: frozenset[str] | None = None  # e.g. {"OBJECT_TABLE"}; None: any relation kind
    message = ""

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        if "matches" not in cls.__dict__:  # it flags exactly these subcommands: skip ALTERs without one
            cls.alter_subtypes = frozenset(cls.subtypes)

    def matches(self, cmd) -> bool:
        return h.subtype(cmd) in self.subtypes

    def check(self, stmt, ctx):
        if not isinstance(stmt.node, self.node_types):
            return []
        n = stmt.node
        if self.objtypes is not None and n.objtype._name_ not in self.objtypes:
            return []
        return [self.finding(stmt, ctx, self.message_for(cmd), line=h.cmd_line(stmt, cmd))
                for cmd in n.cmds or () if self.matches(cmd)]

    def message_for(self, cmd) -> str:
        return self.message


def _cmd_location(cmd):
    loc = getattr(cmd.def_, "location", None)
    return loc if isinstance(loc, int) and loc >= 0 else None

"""Which tables and columns a migration destroys, read from the parse tree (never from keywords in the text).

*apply asks this before it applies a file, so that its snapshot keeps the data of exactly those objects and a
later *rollback can bring it back. "Destroys" means the old values cannot be read back from the schema after
the statement: DROP TABLE/SCHEMA/TYPE ... CASCADE, TRUNCATE, DELETE/UPDATE/MERGE, ALTER TABLE ... DROP COLUMN,
ALTER COLUMN ... TYPE (a rewrite), and renames or SET SCHEMA (a reverse schema diff sees those as drop +
create). Statements whose effect cannot be read from the tree (DO blocks, CALL) are reported as opaque: the
caller keeps everything then. Unqualified names are taken to be in `public` (Supabase's search_path).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterable

from pglast import ast

from .nodes import DEFAULT_SCHEMA, names, strval

__all__ = ["Destroyed", "destroyed_objects"]


@dataclass(frozen=True)
class Destroyed:
    """One object whose data a statement destroys. kind: table | column | schema | type | opaque."""

    kind: str
    schema: str
    name: str  # table, schema or type name ('' for opaque)
    column: str | None = None
    action: str = ""  # e.g. "DROP COLUMN", "ALTER COLUMN TYPE", "RENAME COLUMN", "DELETE"
    renamed_to: str | None = None  # RENAME/SET SCHEMA: the new column name, or "schema.table"
    line: int | None = None

    @property
    def table_key(self) -> str:
        return f"{self.schema}.{self.name}"


def _rv(rangevar: Any) -> tuple[str, str]:
    return getattr(rangevar, "schemaname", None) or DEFAULT_SCHEMA, rangevar.relname


def _split(parts: list[str]) -> tuple[str, str]:
    return (parts[-2], parts[-1]) if len(parts) >= 2 else (DEFAULT_SCHEMA, parts[-1])


def _enum(value: Any) -> str:
    return getattr(value, "name", str(value))


def destroyed_objects(statements: Iterable[Any]) -> list[Destroyed]:
    """Objects whose data the statements destroy, in statement order (statements: sqlkit Statement or nodes)."""
    out: list[Destroyed] = []
    for stmt in statements:
        node = getattr(stmt, "node", stmt)
        line = getattr(stmt, "line", None)
        out += _of(node, line)
    return out


def _of(node: Any, line: int | None) -> list[Destroyed]:
    if isinstance(node, ast.DropStmt):
        kind = _enum(node.removeType)
        cascade = _enum(node.behavior) == "DROP_CASCADE"
        found = []
        for obj in node.objects or ():
            if kind in ("OBJECT_TABLE", "OBJECT_FOREIGN_TABLE"):
                schema, name = _split(names(obj))
                found.append(Destroyed("table", schema, name, action="DROP TABLE", line=line))
            elif kind == "OBJECT_SCHEMA":
                found.append(Destroyed("schema", strval(obj), strval(obj), action="DROP SCHEMA", line=line))
            elif kind in ("OBJECT_TYPE", "OBJECT_DOMAIN") and cascade:  # columns of that type go with it
                parts = names(obj.names) if isinstance(obj, ast.TypeName) else names(obj)
                schema, name = _split(parts)
                found.append(Destroyed("type", schema, name, action=f"DROP {kind[7:]} CASCADE", line=line))
        return found
    if isinstance(node, ast.TruncateStmt):
        return [Destroyed("table", *_rv(r), action="TRUNCATE", line=line) for r in node.relations or ()]
    if isinstance(node, (ast.DeleteStmt, ast.UpdateStmt, ast.MergeStmt)):
        action = {"DeleteStmt": "DELETE", "UpdateStmt": "UPDATE", "MergeStmt": "MERGE"}[type(node).__name__]
        return [Destroyed("table", *_rv(node.relation), action=action, line=line)]
    if isinstance(node, ast.AlterTableStmt) and _enum(node.objtype) in ("OBJECT_TABLE", "OBJECT_FOREIGN_TABLE"):
        schema, table = _rv(node.relation)
        found = []
        for cmd in node.cmds or ():
            sub = _enum(cmd.subtype)
            if sub == "AT_DropColumn":
                found.append(Destroyed("column", schema, table, cmd.name, "DROP COLUMN", line=line))
            elif sub == "AT_AlterColumnType":
                found.append(Destroyed("column", schema, table, cmd.name, "ALTER COLUMN TYPE", line=line))
        return found
    if isinstance(node, ast.RenameStmt):
        kind = _enum(node.renameType)
        if kind == "OBJECT_TABLE" and node.relation is not None:
            schema, table = _rv(node.relation)
            return [Destroyed("table", schema, table, action="RENAME TABLE", renamed_to=f"{schema}.{node.newname}",
                              line=line)]
        if kind == "OBJECT_COLUMN" and node.relation is not None and _enum(node.relationType) == "OBJECT_TABLE":
            schema, table = _rv(node.relation)
            return [Destroyed("column", schema, table, node.subname, "RENAME COLUMN", renamed_to=node.newname,
                              line=line)]
        return []
    if isinstance(node, ast.AlterObjectSchemaStmt) and _enum(node.objectType) == "OBJECT_TABLE" and node.relation:
        schema, table = _rv(node.relation)
        return [Destroyed("table", schema, table, action="SET SCHEMA", renamed_to=f"{node.newschema}.{table}",
                          line=line)]
    if isinstance(node, (ast.DoStmt, ast.CallStmt)):
        return [Destroyed("opaque", "", "", action="DO" if isinstance(node, ast.DoStmt) else "CALL", line=line)]
    return []

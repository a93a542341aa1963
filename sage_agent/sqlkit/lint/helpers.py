"""AST predicates shared by lint rules (kept here so each rule module stays tiny)."""
from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from pglast import ast

from ..nodes import func_name, location, qualified, type_name, typmods

# Zero-argument built-ins that are STABLE or IMMUTABLE (pg_proc.provolatile <> 'v'):
# a default using them is evaluated once, stored in the catalog, no rewrite (PG 11+).
NON_VOLATILE_NOARG = frozenset({
    "now", "transaction_timestamp", "statement_timestamp", "pi", "current_database",
    "current_schema", "current_user", "session_user", "version", "pg_backend_pid",
    "pg_postmaster_start_time", "pg_conf_load_time", "inet_client_addr", "inet_client_port",
    "inet_server_addr", "inet_server_port", "pg_my_temp_schema", "pg_trigger_depth",
})


def alter_cmds(node: Any) -> list[Any]:
    """Subcommands of an ALTER TABLE (empty for anything else)."""
    if isinstance(node, ast.AlterTableStmt):
        return list(node.cmds or ())
    return []


def subtype(cmd: Any) -> str:
    """AlterTableType name, e.g. ``AT_AddColumn``."""
    return cmd.subtype._name_  # == .name, without the enum property lookup (hot path)


def alter_table_name(node: Any) -> str | None:
    """schema.name of the relation an ALTER TABLE / INDEX / RENAME touches."""
    rel = getattr(node, "relation", None)
    return qualified(rel) if rel is not None and getattr(rel, "relname", None) else None


def added_columns(node: Any) -> Iterator[tuple[Any, Any]]:
    """``(cmd, ColumnDef)`` for every ``ADD COLUMN`` of an ALTER TABLE."""
    for cmd in alter_cmds(node):
        if subtype(cmd) == "AT_AddColumn" and isinstance(cmd.def_, ast.ColumnDef):
            yield cmd, cmd.def_


def added_constraints(node: Any) -> Iterator[tuple[Any, Any]]:
    """``(cmd, Constraint)`` for every ``ADD CONSTRAINT`` of an ALTER TABLE."""
    for cmd in alter_cmds(node):
        if subtype(cmd) == "AT_AddConstraint" and isinstance(cmd.def_, ast.Constraint):
            yield cmd, cmd.def_


def column_constraints(coldef: Any) -> list[Any]:
    return [c for c in (coldef.constraints or ()) if isinstance(c, ast.Constraint)]


def contype(con: Any) -> str:
    """ConstrType short name: ``CHECK``, ``FOREIGN``, ``PRIMARY``, ``UNIQUE`` ..."""
    return con.contype._name_.removeprefix("CONSTR_")  # _name_ == .name, faster


def is_not_valid(con: Any) -> bool:
    return bool(getattr(con, "skip_validation", False))


def uses_index(con: Any) -> bool:
    """``... UNIQUE/PRIMARY KEY USING INDEX idx`` (no index build, no scan)."""
    return bool(getattr(con, "indexname", None))


def is_safe_default(expr: Any) -> bool:
    """True when a DEFAULT expression is a constant or a non-volatile zero-arg call."""
    if isinstance(expr, ast.A_Const) or isinstance(expr, ast.SQLValueFunction):
        return True
    if isinstance(expr, ast.TypeCast):
        return is_safe_default(expr.arg)
    if isinstance(expr, ast.A_Expr):
        return all(is_safe_default(x) for x in (expr.lexpr, expr.rexpr) if x is not None)
    if isinstance(expr, ast.A_ArrayExpr):
        return all(is_safe_default(x) for x in (expr.elements or ()))
    if isinstance(expr, ast.FuncCall):
        return not expr.args and func_name(expr) in NON_VOLATILE_NOARG
    return False


def rewriting_column_constraint(con: Any, server_major: int) -> bool:
    """Does this column constraint force a table rewrite when the column is added?"""
    kind = contype(con)
    if kind == "DEFAULT":
        return server_major < 11 or not is_safe_default(con.raw_expr)
    if kind == "IDENTITY":
        return True
    if kind == "GENERATED":
        return getattr(con, "generated_kind", "s") != "v"  # PG 18 VIRTUAL columns are not stored
    return False


def node_line(stmt: Any, node: Any) -> int:
    """Line of the first located thing in ``node``, else the statement line."""
    return stmt.line_at(location(node))


def type_info(tn: Any) -> tuple[str, list[int], bool]:
    """(type name, typmods, is_array) of a TypeName."""
    return type_name(tn), typmods(tn), bool(getattr(tn, "arrayBounds", None))


def column_typenames(node: Any) -> Iterator[tuple[Any, Any]]:
    """``(owner, TypeName)`` for column types declared by CREATE TABLE / ADD COLUMN / ALTER TYPE."""
    if isinstance(node, ast.CreateStmt):
        for elt in node.tableElts or ():
            if isinstance(elt, ast.ColumnDef) and elt.typeName is not None:
                yield elt, elt.typeName
    for cmd in alter_cmds(node):
        if subtype(cmd) in ("AT_AddColumn", "AT_AlterColumnType") and isinstance(cmd.def_, ast.ColumnDef):
            if cmd.def_.typeName is not None:
                yield cmd.def_, cmd.def_.typeName


def typename_line(stmt: Any, owner: Any, tn: Any) -> int:
    loc = getattr(tn, "location", -1)
    if loc is None or loc < 0:
        loc = getattr(owner, "location", -1)
    return stmt.line_at(loc)



_KINDS = {"TABLE", "FOREIGN", "VIEW", "MATERIALIZED", "TYPE_P", "INDEX", "SEQUENCE", "IF_P", "EXISTS", "ONLY"}


def _first_cmd_token(toks: list[Any]) -> int:
    """Index of the first token of the first subcommand: after ALTER <kind> [IF EXISTS] [ONLY] name[.name][*]."""
    i = 1  # ALTER
    while i < len(toks) and toks[i].name in _KINDS:
        i += 1
    i += 1  # the (possibly keyword-named) object
    while i + 1 < len(toks) and toks[i].name == "ASCII_46":
        i += 2
    if i < len(toks) and toks[i].name == "ASCII_42":
        i += 1
    return i


def cmd_line(stmt: Any, cmd: Any) -> int:
    """Line where ALTER subcommand ``cmd`` starts (subcommands carry no location in the AST):
    the statement's top-level commas separate them, in order."""
    if stmt.line == stmt.end_line or stmt.lines is None:
        return stmt.line
    try:
        index = [id(c) for c in stmt.node.cmds].index(id(cmd))
        # lazy: pglast (the SQL parser) loads only when SQL is parsed
        from pglast import parser as _pg
        toks = [t for t in _pg.scan(stmt.text) if t.name not in ("SQL_COMMENT", "C_COMMENT")]
    except Exception:
        return stmt.line
    first = _first_cmd_token(toks)
    if first >= len(toks):
        return stmt.line
    starts, depth, seg = [toks[first].start], 0, 0
    for t in toks[first:]:
        if t.name == "ASCII_40":
            depth += 1
        elif t.name == "ASCII_41":
            depth -= 1
        elif t.name == "ASCII_44" and depth == 0:
            seg += 1
            starts.append(None)
        elif starts[-1] is None:
            starts[-1] = t.start
    pos = starts[index] if index < len(starts) else None
    return stmt.line_at(stmt.start + pos) if pos is not None else stmt.line

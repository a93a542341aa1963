"""Small helpers over pglast AST nodes shared by classify and lint."""
from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from pglast import ast

DEFAULT_SCHEMA = "public"


def walk(node: Any, loc: int | None = None) -> Iterator[tuple[Any, int | None]]:
    """Yield ``(node, nearest_location)`` depth-first for every AST node under ``node``.

    ``nearest_location`` is the node's own ``location`` or the closest ancestor's,
    so findings can point at a line even for nodes without one (AlterTableCmd).
    """
    if isinstance(node, (tuple, list)):
        for item in node:
            yield from walk(item, loc)
        return
    if not isinstance(node, ast.Node):
        return
    own = getattr(node, "location", None)
    if isinstance(own, int) and own >= 0:
        loc = own
    yield node, loc
    for attr in node:
        value = getattr(node, attr, None)
        if isinstance(value, (ast.Node, tuple, list)):
            yield from walk(value, loc)


def location(node: Any) -> int | None:
    """First known location inside ``node`` (itself or a descendant)."""
    for _, loc in walk(node):
        if loc is not None:
            return loc
    return None


def strval(node: Any) -> str:
    """Text of a pglast String/Integer node (or a plain str)."""
    if isinstance(node, str):
        return node
    for attr in ("sval", "ival", "fval", "boolval", "bsval"):
        if hasattr(node, attr):
            return str(getattr(node, attr))
    return str(node)


def names(seq: Any) -> list[str]:
    """List of names from a pglast name list (tuple of String)."""
    return [strval(x) for x in (seq or ())]


def qualified(rangevar: Any) -> str:
    """``schema.name`` of a RangeVar, defaulting the schema to public."""
    schema = getattr(rangevar, "schemaname", None) or DEFAULT_SCHEMA
    return f"{schema}.{rangevar.relname}"


def qualified_from_names(parts: list[str]) -> str:
    """``schema.name`` from a dotted name list such as DropStmt objects."""
    if len(parts) >= 2:
        return f"{parts[-2]}.{parts[-1]}"
    return f"{DEFAULT_SCHEMA}.{parts[-1]}" if parts else ""


def type_name(tn: Any) -> str:
    """Lower-case last component of a TypeName (``pg_catalog.int4`` -> ``int4``)."""
    parts = getattr(tn, "names", None)
    if not parts:
        return ""
    last = parts[-1]
    return (last.sval if isinstance(last, ast.String) else strval(last)).lower()


def typmods(tn: Any) -> list[int]:
    """Integer type modifiers of a TypeName (``varchar(10)`` -> ``[10]``)."""
    out: list[int] = []
    for m in getattr(tn, "typmods", None) or ():
        val = getattr(m, "val", None)
        if val is not None and hasattr(val, "ival"):
            out.append(int(val.ival))
    return out


def defelem_names(options: Any) -> set[str]:
    """Lower-case option names of a DefElem list (e.g. ``{'full', 'concurrently'}``)."""
    out: set[str] = set()
    for opt in options or ():
        name = getattr(opt, "defname", None)
        if name:
            arg = getattr(opt, "arg", None)
            # (FULL false) / (CONCURRENTLY 0) switch the option off
            if arg is not None and strval(arg).lower() in ("false", "0", "off"):
                continue
            out.add(name.lower())
    return out


def func_name(call: Any) -> str:
    """Dotted lower-case name of a FuncCall."""
    return ".".join(n.lower() for n in names(getattr(call, "funcname", None)))

"""Which statements wait on locks long enough to need a lock/statement timeout first
(squawk's ``possibly_slow_stmt``), and on which table."""
from pglast import ast

from ...nodes import qualified
from .. import helpers as h
from ..locks import LockInfo, SHARE_ROW_EXCLUSIVE

_SLOW_PREFIXES = ("Create", "Alter", "Drop", "Define", "Rename", "Comment", "CompositeType",
                  "Index", "View", "Rule", "ImportForeignSchema", "Cluster", "Lock",
                  "RefreshMatView", "Reindex", "Truncate", "Load")


def referenced_tables(node) -> list[str]:
    """Tables a CREATE TABLE's foreign keys point at (each gets a SHARE ROW EXCLUSIVE lock)."""
    out = []
    for elt in node.tableElts or ():
        cons = [elt] if isinstance(elt, ast.Constraint) else (
            h.column_constraints(elt) if isinstance(elt, ast.ColumnDef) else [])
        for con in cons:
            if h.contype(con) == "FOREIGN" and con.pktable is not None:
                out.append(qualified(con.pktable))
    return out


def possibly_slow(node) -> bool:
    """DDL and maintenance take table locks; a plain CREATE TABLE and DML do not queue behind them."""
    if isinstance(node, ast.CreateStmt):
        return bool(referenced_tables(node))  # the referenced table is locked
    if isinstance(node, ast.VacuumStmt):
        return bool(node.is_vacuumcmd)
    if isinstance(node, ast.SelectStmt):
        return node.intoClause is not None
    return type(node).__name__.startswith(_SLOW_PREFIXES)


def waits_on(stmt, ctx) -> LockInfo | None:
    """Lock facts of a possibly slow statement, None when it cannot queue behind anyone:
    not DDL, or every table it locks was created earlier in this file."""
    node = stmt.node
    if not possibly_slow(node):
        return None
    created = ctx.state.get("_created_so_far", set())
    if isinstance(node, ast.CreateStmt):
        others = [t for t in referenced_tables(node) if t not in created]
        return LockInfo(SHARE_ROW_EXCLUSIVE, table=others[0]) if others else None
    info = ctx.lock_of(stmt)
    if info.table and info.table in created:
        return None
    return info

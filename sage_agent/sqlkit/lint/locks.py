"""Which lock a statement takes, and whether it rewrites or scans the table.

Mirrors the table in shared/reference/migration-safety.md (PG 11+). For an ALTER
TABLE with several subcommands the strictest lock wins and rewrite/scan flags
are OR-ed, because the whole statement holds the strongest lock to the end.
"""
from __future__ import annotations

from typing import Any, NamedTuple

from pglast import ast

from ..nodes import defelem_names, qualified, qualified_from_names, names
from . import helpers as h

ACCESS_EXCLUSIVE = "ACCESS EXCLUSIVE"
EXCLUSIVE = "EXCLUSIVE"
SHARE_ROW_EXCLUSIVE = "SHARE ROW EXCLUSIVE"
SHARE = "SHARE"
SHARE_UPDATE_EXCLUSIVE = "SHARE UPDATE EXCLUSIVE"
ROW_EXCLUSIVE = "ROW EXCLUSIVE"

STRENGTH = {None: 0, "ACCESS SHARE": 1, "ROW SHARE": 2, ROW_EXCLUSIVE: 3,
            SHARE_UPDATE_EXCLUSIVE: 4, SHARE: 5, SHARE_ROW_EXCLUSIVE: 6, EXCLUSIVE: 7,
            ACCESS_EXCLUSIVE: 8}
BLOCKS = {ACCESS_EXCLUSIVE: "reads and writes", EXCLUSIVE: "writes",
          SHARE_ROW_EXCLUSIVE: "writes", SHARE: "writes",
          SHARE_UPDATE_EXCLUSIVE: "schema changes and vacuum"}


class LockInfo(NamedTuple):
    """The lock a statement takes and whether it rewrites or scans the table. A named tuple (immutable, ==,
    hash and repr as the frozen dataclass it was): `sage lint` of a small file does not import ``dataclasses``."""

    lock: str | None = None
    rewrites: bool = False
    scans: bool = False
    table: str | None = None

    @property
    def blocks(self) -> str | None:
        return BLOCKS.get(self.lock) if self.lock else None

    def merge(self, other: "LockInfo") -> "LockInfo":
        lock = self.lock if STRENGTH[self.lock] >= STRENGTH[other.lock] else other.lock
        return LockInfo(lock, self.rewrites or other.rewrites, self.scans or other.scans,
                        self.table or other.table)


_SUE_CMDS = {"AT_SetStatistics", "AT_SetOptions", "AT_ResetOptions", "AT_SetRelOptions",
             "AT_ResetRelOptions", "AT_ClusterOn", "AT_DropCluster", "AT_AttachPartition"}
_SRE_CMDS = {"AT_EnableTrig", "AT_EnableAlwaysTrig", "AT_EnableReplicaTrig", "AT_DisableTrig",
             "AT_EnableTrigAll", "AT_DisableTrigAll", "AT_EnableTrigUser", "AT_DisableTrigUser"}
_REWRITE_CMDS = {"AT_SetTableSpace", "AT_SetLogged", "AT_SetUnLogged", "AT_SetAccessMethod"}


def _constraint_lock(con: Any) -> LockInfo:
    kind = h.contype(con)
    if kind == "FOREIGN":
        return LockInfo(SHARE_ROW_EXCLUSIVE, scans=not h.is_not_valid(con))
    if kind in ("PRIMARY", "UNIQUE"):
        return LockInfo(ACCESS_EXCLUSIVE, scans=not h.uses_index(con))
    if kind in ("CHECK", "EXCLUSION", "NOTNULL"):
        return LockInfo(ACCESS_EXCLUSIVE, scans=not h.is_not_valid(con))
    return LockInfo(ACCESS_EXCLUSIVE)


def alter_cmd_lock(cmd: Any, server_major: int = 18) -> LockInfo:
    """Lock facts for one ALTER TABLE subcommand."""
    st = h.subtype(cmd)
    if st == "AT_AddColumn" and isinstance(cmd.def_, ast.ColumnDef):
        info = LockInfo(ACCESS_EXCLUSIVE)
        for con in h.column_constraints(cmd.def_):
            if h.rewriting_column_constraint(con, server_major):
                info = info.merge(LockInfo(ACCESS_EXCLUSIVE, rewrites=True, scans=True))
            elif h.contype(con) in ("CHECK", "PRIMARY", "UNIQUE", "FOREIGN", "EXCLUSION"):
                info = info.merge(LockInfo(ACCESS_EXCLUSIVE, scans=True))
        return info
    if st == "AT_AlterColumnType":
        return LockInfo(ACCESS_EXCLUSIVE, rewrites=True, scans=True)
    if st == "AT_SetNotNull":
        return LockInfo(ACCESS_EXCLUSIVE, scans=True)
    if st == "AT_AddConstraint" and isinstance(cmd.def_, ast.Constraint):
        return _constraint_lock(cmd.def_)
    if st == "AT_ValidateConstraint":
        return LockInfo(SHARE_UPDATE_EXCLUSIVE, scans=True)
    if st in _SRE_CMDS:
        return LockInfo(SHARE_ROW_EXCLUSIVE)
    if st in _SUE_CMDS:
        return LockInfo(SHARE_UPDATE_EXCLUSIVE)
    if st == "AT_DetachPartition":
        return LockInfo(SHARE_UPDATE_EXCLUSIVE if getattr(cmd.def_, "concurrent", False) else ACCESS_EXCLUSIVE)
    if st in _REWRITE_CMDS:
        return LockInfo(ACCESS_EXCLUSIVE, rewrites=True, scans=True)
    return LockInfo(ACCESS_EXCLUSIVE)


def statement_lock(node: Any, server_major: int = 18) -> LockInfo:
    """Lock facts for a whole statement on the table it primarily touches."""
    table = h.alter_table_name(node)
    if isinstance(node, ast.AlterTableStmt):
        info = LockInfo(table=table)
        for cmd in node.cmds or ():
            info = info.merge(alter_cmd_lock(cmd, server_major))
        return info
    if isinstance(node, ast.IndexStmt):
        return LockInfo(SHARE_UPDATE_EXCLUSIVE if node.concurrent else SHARE, scans=True, table=table)
    if isinstance(node, ast.DropStmt):
        first = qualified_from_names(names(node.objects[0])) if node.objects and isinstance(node.objects[0], (tuple, list)) else None
        if node.removeType._name_ == "OBJECT_INDEX":
            return LockInfo(SHARE_UPDATE_EXCLUSIVE if node.concurrent else ACCESS_EXCLUSIVE, table=first)
        return LockInfo(ACCESS_EXCLUSIVE, table=first)
    if isinstance(node, ast.TruncateStmt):
        rel = (node.relations or (None,))[0]
        return LockInfo(ACCESS_EXCLUSIVE, table=qualified(rel) if rel is not None else None)
    if isinstance(node, ast.VacuumStmt):
        rels = node.rels or ()
        t = qualified(rels[0].relation) if rels and getattr(rels[0], "relation", None) else None
        if node.is_vacuumcmd and "full" in defelem_names(node.options):
            return LockInfo(ACCESS_EXCLUSIVE, rewrites=True, scans=True, table=t)
        return LockInfo(SHARE_UPDATE_EXCLUSIVE, scans=True, table=t)
    if isinstance(node, ast.ClusterStmt):
        return LockInfo(ACCESS_EXCLUSIVE, rewrites=True, scans=True, table=table)
    if isinstance(node, ast.ReindexStmt):
        conc = "concurrently" in defelem_names(node.params)
        return LockInfo(SHARE_UPDATE_EXCLUSIVE if conc else ACCESS_EXCLUSIVE, scans=True, table=table)
    if isinstance(node, ast.RenameStmt):
        return LockInfo(ACCESS_EXCLUSIVE, table=table)
    if isinstance(node, ast.RefreshMatViewStmt):
        return LockInfo(EXCLUSIVE if node.concurrent else ACCESS_EXCLUSIVE, scans=True, table=table)
    if isinstance(node, ast.CreateTrigStmt):
        return LockInfo(SHARE_ROW_EXCLUSIVE, table=table)
    if isinstance(node, ast.CommentStmt):
        return LockInfo(SHARE_UPDATE_EXCLUSIVE)
    if isinstance(node, ast.LockStmt):
        modes = {1: "ACCESS SHARE", 2: "ROW SHARE", 3: ROW_EXCLUSIVE, 4: SHARE_UPDATE_EXCLUSIVE,
                 5: SHARE, 6: SHARE_ROW_EXCLUSIVE, 7: EXCLUSIVE, 8: ACCESS_EXCLUSIVE}
        rel = (node.relations or (None,))[0]
        return LockInfo(modes.get(int(node.mode), ACCESS_EXCLUSIVE),
                        table=qualified(rel) if rel is not None else None)
    if isinstance(node, ast.CreateStmt):
        has_fk = any(isinstance(n, ast.Constraint) and h.contype(n) == "FOREIGN"
                     for elt in node.tableElts or () for n in _constraints_of(elt))
        return LockInfo(SHARE_ROW_EXCLUSIVE if has_fk else None, table=table)
    return LockInfo(table=table)


def _constraints_of(elt: Any) -> list[Any]:
    if isinstance(elt, ast.Constraint):
        return [elt]
    if isinstance(elt, ast.ColumnDef):
        return h.column_constraints(elt)
    return []

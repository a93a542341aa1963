"""Classify a parsed statement: category, transactional-ness, read-only-ness, risk.

Decisions are made on the parse tree, never on keywords in the text, so a
``SELECT 1; DROP TABLE t`` is two statements and ``WITH d AS (DELETE ...)``
is seen as a write.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Literal

from pglast import ast

from .nodes import defelem_names, func_name, names, qualified, qualified_from_names, walk
from .split import Statement

Category = Literal["ddl", "dml", "query", "transaction", "utility", "other"]

__all__ = ["Category", "StatementInfo", "classify", "statement_kind_name"]


@dataclass(frozen=True)
class StatementInfo:
    """What a statement does, as far as the parse tree can tell."""

    category: Category
    action: str
    transactional: bool
    read_only: bool
    is_destructive: bool
    objects_touched: list[str] = field(default_factory=list)
    calls_functions: set[str] = field(default_factory=set)


_DML = (ast.InsertStmt, ast.UpdateStmt, ast.DeleteStmt, ast.MergeStmt)
_UTILITY = {
    "VariableSetStmt", "VariableShowStmt", "VacuumStmt", "ClusterStmt", "ReindexStmt",
    "CheckPointStmt", "LockStmt", "ListenStmt", "UnlistenStmt", "NotifyStmt", "DiscardStmt",
    "ExplainStmt", "LoadStmt", "PrepareStmt", "ExecuteStmt", "DeallocateStmt",
    "DeclareCursorStmt", "FetchStmt", "ClosePortalStmt", "ConstraintsSetStmt",
    "RefreshMatViewStmt", "AlterSystemStmt",
}
_DDL_PREFIXES = ("Create", "Alter", "Drop", "Rename", "Comment", "Grant", "Revoke", "Define",
                 "Index", "CompositeType", "Rule", "View", "Truncate", "SecLabel",
                 "ReassignOwned", "ImportForeignSchema")
_ACTIONS = {
    "CreateStmt": "CREATE TABLE", "IndexStmt": "CREATE INDEX", "ViewStmt": "CREATE VIEW",
    "CreateTableAsStmt": "CREATE TABLE AS", "CreateSeqStmt": "CREATE SEQUENCE",
    "CreateSchemaStmt": "CREATE SCHEMA", "CreateExtensionStmt": "CREATE EXTENSION",
    "CreateTrigStmt": "CREATE TRIGGER", "CreatePolicyStmt": "CREATE POLICY",
    "CreateDomainStmt": "CREATE DOMAIN", "CreateEnumStmt": "CREATE TYPE",
    "CompositeTypeStmt": "CREATE TYPE", "CreateRangeStmt": "CREATE TYPE",
    "CreatedbStmt": "CREATE DATABASE", "DropdbStmt": "DROP DATABASE",
    "CreateRoleStmt": "CREATE ROLE", "DropRoleStmt": "DROP ROLE", "AlterRoleStmt": "ALTER ROLE",
    "CreateTableSpaceStmt": "CREATE TABLESPACE", "DropTableSpaceStmt": "DROP TABLESPACE",
    "AlterSystemStmt": "ALTER SYSTEM", "AlterEnumStmt": "ALTER TYPE",
    "AlterDomainStmt": "ALTER DOMAIN", "AlterSeqStmt": "ALTER SEQUENCE",
    "AlterFunctionStmt": "ALTER FUNCTION", "AlterOwnerStmt": "ALTER OWNER",
    "AlterObjectSchemaStmt": "ALTER SET SCHEMA", "RuleStmt": "CREATE RULE",
    "DefineStmt": "CREATE", "CommentStmt": "COMMENT", "GrantStmt": "GRANT",
    "GrantRoleStmt": "GRANT", "TruncateStmt": "TRUNCATE", "SelectStmt": "SELECT",
    "InsertStmt": "INSERT", "UpdateStmt": "UPDATE", "DeleteStmt": "DELETE", "MergeStmt": "MERGE",
    "CopyStmt": "COPY", "DoStmt": "DO", "CallStmt": "CALL", "ExplainStmt": "EXPLAIN",
    "VariableShowStmt": "SHOW", "VacuumStmt": "VACUUM", "ClusterStmt": "CLUSTER",
    "ReindexStmt": "REINDEX", "LockStmt": "LOCK", "RefreshMatViewStmt": "REFRESH MATERIALIZED VIEW",
    "CheckPointStmt": "CHECKPOINT", "ListenStmt": "LISTEN", "NotifyStmt": "NOTIFY",
    "DiscardStmt": "DISCARD", "PrepareStmt": "PREPARE", "ExecuteStmt": "EXECUTE",
    "DeallocateStmt": "DEALLOCATE", "DeclareCursorStmt": "DECLARE", "FetchStmt": "FETCH",
    "ClosePortalStmt": "CLOSE", "ConstraintsSetStmt": "SET CONSTRAINTS", "LoadStmt": "LOAD",
}
_TX = {
    "TRANS_STMT_BEGIN": "BEGIN", "TRANS_STMT_START": "BEGIN", "TRANS_STMT_COMMIT": "COMMIT",
    "TRANS_STMT_ROLLBACK": "ROLLBACK", "TRANS_STMT_SAVEPOINT": "SAVEPOINT",
    "TRANS_STMT_RELEASE": "RELEASE SAVEPOINT", "TRANS_STMT_ROLLBACK_TO": "ROLLBACK TO SAVEPOINT",
    "TRANS_STMT_PREPARE": "PREPARE TRANSACTION", "TRANS_STMT_COMMIT_PREPARED": "COMMIT PREPARED",
    "TRANS_STMT_ROLLBACK_PREPARED": "ROLLBACK PREPARED",
}
_OBJ_WORDS = {"MATVIEW": "MATERIALIZED VIEW", "FDW": "FOREIGN DATA WRAPPER",
              "FOREIGN_SERVER": "SERVER", "STATISTIC_EXT": "STATISTICS",
              "TABCONSTRAINT": "CONSTRAINT", "TSCONFIGURATION": "TEXT SEARCH CONFIGURATION"}
_RELATION_OBJECTS = {"OBJECT_TABLE", "OBJECT_VIEW", "OBJECT_MATVIEW", "OBJECT_FOREIGN_TABLE"}


def _obj_word(objtype: Any) -> str:
    name = getattr(objtype, "name", str(objtype)).removeprefix("OBJECT_")
    return _OBJ_WORDS.get(name, name.replace("_", " "))


def _node_of(stmt: Any) -> Any:
    return stmt.node if isinstance(stmt, Statement) else stmt


def statement_kind_name(stmt: Any) -> str:
    """Human action name such as ``CREATE TABLE``, ``ALTER TABLE`` or ``DROP INDEX``."""
    node = _node_of(stmt)
    cls = type(node).__name__
    if isinstance(node, ast.DropStmt):
        return f"DROP {_obj_word(node.removeType)}"
    if isinstance(node, ast.AlterTableStmt):
        return f"ALTER {_obj_word(node.objtype)}"
    if isinstance(node, ast.RenameStmt):
        return f"ALTER {_obj_word(node.renameType if node.renameType.name not in ('OBJECT_COLUMN', 'OBJECT_TABCONSTRAINT') else node.relationType)}"
    if isinstance(node, ast.TransactionStmt):
        return _TX.get(node.kind.name, "TRANSACTION")
    if isinstance(node, ast.VariableSetStmt):
        return "RESET" if node.kind.name.startswith("VAR_RESET") else "SET"
    if isinstance(node, ast.CreateFunctionStmt):
        return "CREATE PROCEDURE" if node.is_procedure else "CREATE FUNCTION"
    if isinstance(node, ast.IndexStmt) and node.unique:
        return "CREATE UNIQUE INDEX"
    if isinstance(node, ast.CreateTableAsStmt) and _obj_word(node.objtype) == "MATERIALIZED VIEW":
        return "CREATE MATERIALIZED VIEW"
    if isinstance(node, ast.GrantStmt) and not node.is_grant:
        return "REVOKE"
    if isinstance(node, ast.SelectStmt) and node.intoClause is not None:
        return "SELECT INTO"
    if cls in _ACTIONS:
        return _ACTIONS[cls]
    words = re.findall(r"[A-Z][a-z]*", cls.removesuffix("Stmt"))
    return " ".join(words).upper() or cls


def _category(node: Any) -> Category:
    cls = type(node).__name__
    if isinstance(node, ast.TransactionStmt):
        return "transaction"
    if isinstance(node, ast.SelectStmt):
        if node.intoClause is not None:
            return "ddl"
        return "dml" if _has_dml(node) else "query"
    if isinstance(node, _DML):
        return "dml"
    if isinstance(node, ast.CopyStmt):
        return "dml" if node.is_from else "query"
    if cls in _UTILITY:
        return "utility"
    if cls.startswith(_DDL_PREFIXES):
        return "ddl"
    return "other"


def _has_dml(node: Any) -> bool:
    return any(isinstance(n, _DML) for n, _ in walk(node))


def _read_only(node: Any) -> bool:
    if isinstance(node, ast.VariableShowStmt):
        return True
    if isinstance(node, ast.ExplainStmt):
        return _read_only(node.query)
    if not isinstance(node, ast.SelectStmt):
        return False
    for n, _ in walk(node):
        if isinstance(n, _DML):
            return False
        if isinstance(n, ast.SelectStmt) and (n.intoClause is not None or n.lockingClause):
            return False
    return True


def _transactional(node: Any, server_major: int) -> bool:
    if isinstance(node, (ast.CreatedbStmt, ast.DropdbStmt, ast.AlterSystemStmt,
                         ast.CreateTableSpaceStmt, ast.DropTableSpaceStmt)):
        return False
    if isinstance(node, (ast.IndexStmt, ast.DropStmt)) and node.concurrent:
        return False
    if isinstance(node, ast.ReindexStmt) and "concurrently" in defelem_names(node.params):
        return False
    if isinstance(node, ast.VacuumStmt) and node.is_vacuumcmd:
        return False
    if isinstance(node, ast.AlterEnumStmt) and node.newVal is not None and not node.oldVal:
        return server_major >= 12
    if isinstance(node, ast.AlterTableStmt):
        for cmd in node.cmds or ():
            if cmd.subtype.name == "AT_DetachPartition" and getattr(cmd.def_, "concurrent", False):
                return False
    return True


def _destructive(node: Any) -> bool:
    if isinstance(node, ast.ExplainStmt):  # plain EXPLAIN does not run the statement
        return "analyze" in defelem_names(node.options) and _destructive(node.query)
    if type(node).__name__.startswith("Drop") or isinstance(node, ast.TruncateStmt):
        return True
    if isinstance(node, ast.AlterTableStmt):
        return any(c.subtype.name in ("AT_DropColumn",) for c in node.cmds or ())
    for n, _ in walk(node):
        if isinstance(n, (ast.DeleteStmt, ast.UpdateStmt)) and n.whereClause is None:
            return True
    return False


def _objects(node: Any) -> list[str]:
    ctes = {n.ctename for n, _ in walk(node) if isinstance(n, ast.CommonTableExpr)}
    out: list[str] = []
    if isinstance(node, ast.DropStmt) and node.removeType.name in _RELATION_OBJECTS:
        for obj in node.objects or ():
            out.append(qualified_from_names(names(obj)))
    for n, _ in walk(node):
        if isinstance(n, ast.RangeVar) and n.relname:
            if not n.schemaname and n.relname in ctes:
                continue
            out.append(qualified(n))
    return list(dict.fromkeys(out))


def _functions(node: Any) -> set[str]:
    found: set[str] = set()
    for n, _ in walk(node):
        if isinstance(n, ast.FuncCall):
            full = func_name(n)
            found.add(full)
            found.add(full.rsplit(".", 1)[-1])
    return found


def classify(stmt: Statement | Any, server_major: int = 18) -> StatementInfo:
    """Classify a :class:`Statement` (or a bare pglast node)."""
    node = _node_of(stmt)
    return StatementInfo(
        category=_category(node),
        action=statement_kind_name(node),
        transactional=_transactional(node, server_major),
        read_only=_read_only(node),
        is_destructive=_destructive(node),
        objects_touched=_objects(node),
        calls_functions=_functions(node),
    )


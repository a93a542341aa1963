"""DB Sage's own traffic, kept out of *hotpaths, *monitor and *locks unless --include-own.

Sessions are recognised by application_name (DB Sage's connections say `db-sage`, its restores
`sage-restore-*`, pg_dump says `pg_dump` unless told otherwise) and by database (shadow and template
databases). pg_stat_statements keeps no application name, so a statement is DB Sage's (or pg_dump's) when
its parse tree shows only tooling: catalog-only queries, settings, `create/drop database`, `COPY ... TO
STDOUT`, `LOCK TABLE`, and the migration history table; or when it carries DB Sage's marker comment
(`OWN_SQL_MARKER`: the few statements whose tables or functions alone could be an application's), or fetches
from the read-only path's cursor (READ_ONLY_CURSOR).
"""

from __future__ import annotations

import re
from functools import lru_cache

from sage_agent.db.connect import APPLICATION_NAME, OWN_SQL_MARKER

OWN_APP_PREFIXES = (APPLICATION_NAME, "sage-", "pg_dump", "pg_restore", "pg_dumpall")
WATCH_APPLICATION_NAME = f"{APPLICATION_NAME}-watch"  # sage watch's connections: never a finding of any round
INTERNAL_DB_PREFIXES = ("sage_shadow_", "sage_tpl_")
# The cursor of the read-only path (sqlexec: *run-sql, the model's run_sql). pg_stat_statements keeps its FETCH and
# CLOSE apart from the statement (the FETCH count maybe as $1: then there is no parse tree to read): those are DB
# Sage's; the DECLARE holds the statement that was asked for, judged like any other.
READ_ONLY_CURSOR = "sage_read_only"
_READ_ONLY_CURSOR_SQL = re.compile(rf"\s*(fetch\b[^;]*\b(from|in)|close)\s+{READ_ONLY_CURSOR}\s*;?\s*", re.I)
CATALOG_SCHEMAS = {"pg_catalog", "information_schema", "supabase_migrations", "pg_toast"}
SETTING_FUNCS = {"set_config", "current_setting", "pg_backend_pid", "version", "pg_is_in_recovery",
                 "pg_cancel_backend", "pg_terminate_backend", "pg_blocking_pids", "txid_current",
                 "pg_current_wal_lsn", "pg_export_snapshot", "pg_advisory_lock", "pg_advisory_unlock",
                 "pg_try_advisory_lock", "pg_advisory_xact_lock", "pg_try_advisory_xact_lock", "pg_stat_statements_reset",
                 "pg_database_size", "pg_relation_size", "pg_total_relation_size", "quote_ident",
                 "format_type", "pg_get_userbyid", "to_regclass", "to_regnamespace", "to_regrole", "to_regproc",
                 "to_regtype", "current_schemas", "current_schema", "current_database", "obj_description", "col_description", "has_schema_privilege"}
UTILITY_NODES = {"CreatedbStmt", "DropdbStmt", "AlterDatabaseStmt", "VariableSetStmt", "VariableShowStmt",
                 "TransactionStmt", "LockStmt", "DiscardStmt", "DeallocateStmt", "CheckPointStmt"}


def own_session(application_name: str | None, datname: str | None) -> bool:
    """A session of DB Sage, of pg_dump/pg_restore, or on one of DB Sage's internal databases."""
    app = application_name or ""
    return app.startswith(OWN_APP_PREFIXES) or internal_database(datname)


def watch_session(application_name: str | None) -> bool:
    """A connection of `sage watch` (this process or another one watching the same server)."""
    return (application_name or "") == WATCH_APPLICATION_NAME


def internal_database(datname: str | None) -> bool:
    return bool(datname) and str(datname).startswith(INTERNAL_DB_PREFIXES)


@lru_cache(maxsize=4096)
def own_statement(query: str) -> bool:
    """True for tooling statements (see the module doc); False for anything touching a user relation or
    that cannot be parsed (then it is shown: better one line too many than a user's query hidden)."""
    # lazy: pglast (the SQL parser) loads only when SQL is parsed
    from pglast import parse_sql
    from pglast.parser import ParseError
    from pglast.visitors import Visitor

    if OWN_SQL_MARKER in query or _READ_ONLY_CURSOR_SQL.fullmatch(query):
        return True
    try:
        stmts = parse_sql(query)
    except ParseError:
        return False
    if not stmts:
        return False

    class Refs(Visitor):
        def __init__(self) -> None:
            self.relations: list[tuple[str | None, str]] = []
            self.functions: list[str] = []
            self.ctes: set[str] = set()

        def visit_CommonTableExpr(self, ancestors, node) -> None:  # noqa: N802
            self.ctes.add(node.ctename)

        def visit_RangeVar(self, ancestors, node) -> None:  # noqa: N802 - pglast's visitor naming
            self.relations.append((node.schemaname, node.relname))

        def visit_FuncCall(self, ancestors, node) -> None:  # noqa: N802
            names = [getattr(n, "sval", "") for n in node.funcname]
            # pg_dump and DB Sage qualify catalog functions; applications rarely do
            self.functions.append("pg_catalog." if names[:1] == ["pg_catalog"] else (names[-1] if names else ""))

    for raw in stmts:
        node = raw.stmt
        kind = type(node).__name__
        if kind in UTILITY_NODES:
            continue
        if kind == "CopyStmt" and not node.is_from and not node.filename:
            continue  # COPY ... TO STDOUT: pg_dump's data
        if kind not in ("SelectStmt", "CopyStmt"):
            return False
        refs = Refs()
        refs(node)
        relations = [r for r in refs.relations if not (r[0] is None and r[1] in refs.ctes)]
        catalog = [r for r in relations if r[0] in CATALOG_SCHEMAS or r[1].startswith("pg_")]
        if len(catalog) != len(relations):
            return False
        if not relations and not (refs.functions and all(f in SETTING_FUNCS or f == "pg_catalog."
                                                          for f in refs.functions)):
            return False
    return True

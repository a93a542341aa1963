"""Automatic checklist checks: each check id decides one checklist item from the database or the project."""

from __future__ import annotations

import json
import re
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Callable

from sage_agent.ops.security.lints import SYSTEM_SCHEMAS, run_lints

CheckResult = tuple[str, str]  # ("pass" | "fail" | "n/a", evidence)
_MIGRATION = re.compile(r"^(?P<version>[0-9]+)_(?P<name>.*)\.sql$")


class CheckEnv:
    def __init__(self, conn, project: Path, server_major: int) -> None:
        self.conn = conn
        self.project = project
        self.server_major = server_major
        self._lints: dict[str, list[dict]] = {}
        self._skipped: dict[str, str] = {}

    def lint(self, name: str) -> list[dict] | None:
        if name not in self._lints:
            run = run_lints(self.conn, [name], server_major=self.server_major)
            self._lints[name] = run.lints
            self._skipped.update(run.skipped)
        return None if name in self._skipped else self._lints[name]

    def skipped_reason(self, name: str) -> str:
        return self._skipped.get(name, "")

    def scalar(self, query: str, params: Any = None) -> Any:
        return self.conn.execute(query, params).fetchone()[0]

    def rows(self, query: str, params: Any = None) -> list[tuple]:
        return self.conn.execute(query, params).fetchall()


def _from_lint(name: str, what: str) -> Callable[[CheckEnv], CheckResult]:
    def check(env: CheckEnv) -> CheckResult:
        found = env.lint(name)
        if found is None:
            return "n/a", f"{name} skipped: {env.skipped_reason(name)}"
        if not found:
            return "pass", f"no {what} ({name})"
        objs = sorted({f"{f['metadata']['schema']}.{f['metadata']['name']}" for f in found})
        more = f" and {len(objs) - 5} more" if len(objs) > 5 else ""
        return "fail", f"{len(found)} {what} ({name}): {', '.join(objs[:5])}{more}"
    return check


def _list(rows: list[tuple], what: str, limit: int = 5) -> str:
    names = [".".join(str(x) for x in r) for r in rows]
    return f"{len(names)} {what}: {', '.join(names[:limit])}" + (f" and {len(names) - limit} more" if len(names) > limit else "")


def _timestamptz_only(env: CheckEnv) -> CheckResult:
    rows = env.rows("""select n.nspname, c.relname, a.attname from pg_attribute a join pg_class c on c.oid = a.attrelid
        join pg_namespace n on n.oid = c.relnamespace where c.relkind in ('r','p') and a.attnum > 0 and not a.attisdropped
        and a.atttypid = 'timestamp'::regtype and n.nspname <> all(%s) and n.nspname not like 'pg\\_%%' order by 1,2,3""",
                    (SYSTEM_SCHEMAS,))
    return ("fail", _list(rows, "timestamp without time zone columns")) if rows else ("pass", "every timestamp column is timestamptz")


def _invalid_indexes(env: CheckEnv) -> CheckResult:
    rows = env.rows("select n.nspname, c.relname from pg_index i join pg_class c on c.oid = i.indexrelid "
                    "join pg_namespace n on n.oid = c.relnamespace where not i.indisvalid order by 1, 2")
    return ("fail", _list(rows, "invalid indexes")) if rows else ("pass", "no invalid index")


def _not_valid(env: CheckEnv) -> CheckResult:
    rows = env.rows("select n.nspname, c.relname, ct.conname from pg_constraint ct join pg_class c on c.oid = ct.conrelid "
                    "join pg_namespace n on n.oid = c.relnamespace where not ct.convalidated order by 1, 2, 3")
    return ("fail", _list(rows, "NOT VALID constraints")) if rows else ("pass", "every constraint is validated")


def _sequences(env: CheckEnv) -> CheckResult:
    rows = env.rows("select schemaname, sequencename, round(100.0 * last_value / max_value, 1) from pg_sequences "
                    "where last_value is not null and last_value::numeric / max_value > 0.75 order by 3 desc")
    if rows:
        return "fail", "; ".join(f"{s}.{n} at {p}% of its range" for s, n, p in rows[:5])
    return "pass", "every sequence is below 75% of its range"


def _long_running(env: CheckEnv) -> CheckResult:
    rows = env.rows("select pid, now() - query_start from pg_stat_activity where state = 'active' "
                    "and pid <> pg_backend_pid() and backend_type = 'client backend' and now() - query_start > interval '5 minutes'")
    if rows:
        return "fail", f"{len(rows)} queries running longer than 5 minutes (pids {', '.join(str(r[0]) for r in rows[:5])})"
    return "pass", "nothing has run for more than 5 minutes"


def _idle_in_tx(env: CheckEnv) -> CheckResult:
    rows = env.rows("select pid from pg_stat_activity where state like 'idle in transaction%%' and pid <> pg_backend_pid()")
    return ("fail", f"{len(rows)} sessions idle in transaction") if rows else ("pass", "no session is idle in transaction")


def _wraparound(env: CheckEnv) -> CheckResult:
    age = env.scalar("select max(age(datfrozenxid)) from pg_database")
    limit = 2_000_000_000
    return ("pass" if age < limit / 2 else "fail", f"oldest transaction ID age {age:,} ({age / limit:.1%} of the limit)")


def _pgss(env: CheckEnv) -> CheckResult:
    installed = env.scalar("select count(*) from pg_extension where extname = 'pg_stat_statements'")
    preload = env.scalar("select current_setting('shared_preload_libraries')")
    if installed:
        return "pass", "pg_stat_statements is installed"
    if "pg_stat_statements" in (preload or ""):
        return "fail", "pg_stat_statements is preloaded but the extension is not created (create extension pg_stat_statements)"
    return "fail", "pg_stat_statements is not installed"


def _migration_files(project: Path) -> list[Path]:
    folder = project / "supabase" / "migrations"
    return sorted(p for p in folder.glob("*.sql") if _MIGRATION.match(p.name)) if folder.is_dir() else []


def _applied_versions(env: CheckEnv) -> list[str] | None:
    if env.scalar("select to_regclass('supabase_migrations.schema_migrations')") is None:
        return None
    return [r[0] for r in env.rows("select version from supabase_migrations.schema_migrations order by version")]


def _pending(env: CheckEnv) -> list[Path]:
    applied = set(_applied_versions(env) or [])
    return [p for p in _migration_files(env.project) if _MIGRATION.match(p.name).group("version") not in applied]


def _migrations_lint(env: CheckEnv) -> CheckResult:
    # lazy: pglast (the SQL parser) loads only when SQL is parsed
    from sage_agent.sqlkit.lint import lint_sql
    from sage_agent.sqlkit.split import SqlSyntaxError

    pending = _pending(env)
    if not pending:
        return "pass", "no pending migration files"
    errors: list[str] = []
    for path in pending:
        try:
            for f in lint_sql(path.read_text(), path.name, server_major=env.server_major, assume_in_transaction=True):
                if f.severity == "error":
                    errors.append(f"{path.name}:{f.line} {f.rule}")
        except SqlSyntaxError as exc:
            errors.append(f"{path.name}: syntax error: {exc}")
    if errors:
        return "fail", f"{len(errors)} error-level findings: {'; '.join(errors[:5])}"
    return "pass", f"{len(pending)} pending file(s) lint clean"


def _migrations_order(env: CheckEnv) -> CheckResult:
    applied = _applied_versions(env)
    if applied is None:
        return "n/a", "no migration history table (supabase_migrations.schema_migrations) on the target"
    if not applied:
        return "pass", "nothing applied yet"
    newest = max(applied)
    older = [p.name for p in _pending(env) if _MIGRATION.match(p.name).group("version") < newest]
    local = {_MIGRATION.match(p.name).group("version") for p in _migration_files(env.project)}
    missing = [v for v in applied if v not in local]
    if older or missing:
        parts = []
        if older:
            parts.append(f"pending files older than the newest applied {newest}: {', '.join(older[:5])}")
        if missing:
            parts.append(f"applied versions missing locally: {', '.join(missing[:5])}")
        return "fail", "; ".join(parts)
    return "pass", f"{len(applied)} applied in order; newest {newest}"


def _recent(folder: str, days: float, what: str) -> Callable[[CheckEnv], CheckResult]:
    def check(env: CheckEnv) -> CheckResult:
        base = env.project / "supabase" / folder
        newest: datetime | None = None
        for path in sorted(base.glob("*.json")) if base.is_dir() else []:
            try:
                raw = json.loads(path.read_text()).get("created_at")
                stamp = datetime.fromisoformat(str(raw).replace("Z", "+00:00"))
            except (ValueError, OSError, AttributeError, TypeError):
                continue
            if stamp.tzinfo is None:
                stamp = stamp.replace(tzinfo=timezone.utc)
            newest = stamp if newest is None or stamp > newest else newest
        if newest is None:
            return "fail", f"no {what} in supabase/{folder}/ (*.json with created_at)"
        age = datetime.now(timezone.utc) - newest
        ok = age <= timedelta(days=days)
        return ("pass" if ok else "fail"), f"newest {what} is {age.total_seconds() / 3600:.1f} h old (limit {days * 24:.0f} h)"
    return check


CHECKS: dict[str, Callable[[CheckEnv], CheckResult]] = {
    "rls_enabled_public": _from_lint("rls_disabled_in_public", "exposed tables without RLS"),
    "no_rls_enabled_no_policy": _from_lint("rls_enabled_no_policy", "tables with RLS but no policy"),
    "primary_keys": _from_lint("no_primary_key", "tables without a primary key"),
    "fk_indexes": _from_lint("unindexed_foreign_keys", "unindexed foreign keys"),
    "no_duplicate_indexes": _from_lint("duplicate_index", "duplicate index sets"),
    "timestamptz_only": _timestamptz_only,
    "no_security_definer_views": _from_lint("security_definer_view", "security definer views"),
    "function_search_path_set": _from_lint("function_search_path_mutable", "functions without a pinned search_path"),
    "no_extension_in_public": _from_lint("extension_in_public", "extensions in public"),
    "no_auth_users_exposed": _from_lint("auth_users_exposed", "views exposing auth.users"),
    "no_invalid_indexes": _invalid_indexes,
    "no_not_valid_constraints": _not_valid,
    "sequences_headroom": _sequences,
    "migrations_lint_clean": _migrations_lint,
    "migrations_applied_in_order": _migrations_order,
    "snapshot_recent": _recent("snapshots", 1, "schema snapshot"),
    "backup_recent": _recent("backups", 7, "backup"),
    "pg_stat_statements_enabled": _pgss,
    "no_long_running_queries": _long_running,
    "no_idle_in_transaction": _idle_in_tx,
    "wraparound_ok": _wraparound,
    "rls_policy_uses_initplan": _from_lint("auth_rls_initplan", "policies re-evaluating auth functions per row"),
    "no_user_metadata_in_policies": _from_lint("rls_references_user_metadata", "policies reading user_metadata"),
}


def run_check(check_id: str, env: CheckEnv) -> CheckResult:
    try:
        return CHECKS[check_id](env)
    except Exception as exc:  # noqa: BLE001 - one broken check must not hide the others
        try:
            env.conn.rollback()
        except Exception:  # noqa: BLE001
            pass
        return "n/a", f"check could not run: {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"

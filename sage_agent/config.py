"""Every SAGE_* setting in one typed place, with its default and what it does.

Read from the process environment each time `settings()` is called (tests and `--env` change it), never
cached. A bad number falls back to the default instead of failing a run. Connection strings are not here:
they belong to environments (`sage_agent.db.env`: DATABASE_URL, SUPABASE_DB_URL, SAGE_<ENV>_DB_URL, .env).
The README's settings table is `python3 -m sage_agent.config` (a test keeps the two equal).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field, fields
from typing import Mapping


def _setting(env: str, default, doc: str):
    return field(default=default, metadata={"env": env, "doc": doc})


@dataclass(frozen=True)
class Settings:
    env: str = _setting("SAGE_ENV", "local", "environment when no --env is given (local, dev, staging, prod)")
    statement_timeout_ms: int = _setting("SAGE_STATEMENT_TIMEOUT_MS", 120_000,
                                         "server-side statement_timeout on every connection")
    lock_timeout_ms: int = _setting("SAGE_LOCK_TIMEOUT_MS", 5_000, "server-side lock_timeout on every connection")
    row_limit: int = _setting("SAGE_ROW_LIMIT", 200, "rows shown by *run-sql unless --limit")
    expanded: str = _setting("SAGE_EXPANDED", "auto", "tables as vertical records: auto (when a table does not fit "
                             "the terminal, like psql's \\x auto), on, off (wrap cells instead)")
    shadow_url: str = _setting("SAGE_SHADOW_URL", "", "server for shadow databases (default: a local server of the "
                               "target's major)")
    shadow_template_mb: int = _setting("SAGE_SHADOW_TEMPLATE_MB", 1024,
                                       "size budget of the cached schema templates *dry-run keeps on the shadow "
                                       "server (least recently used dropped first; the newest always stays)")
    dry_run_closure_min_relations: int = _setting(
        "SAGE_DRY_RUN_CLOSURE_MIN_RELATIONS", 2000,
        "*dry-run with no cached schema on a target with at least this many relations (tables, indexes, views, "
        "sequences) loads only the closure of the objects the file touches into the shadow (0: always; -1: never, "
        "always the full schema)")
    pg_major: str = _setting("SAGE_PG_MAJOR", "", "PostgreSQL major of the local server (default: supabase/config.toml "
                             "[db] major_version, else the wheel's)")
    apply_lock_wait_s: float = _setting("SAGE_APPLY_LOCK_WAIT_S", 300.0,
                                        "how long *apply, *rollback, *seed wait for another applier's lock")
    online_lock_timeout_ms: int = _setting("SAGE_ONLINE_LOCK_TIMEOUT_MS", 1000,
                                           "*apply --online: lock_timeout of each step (then retried)")
    online_retries: int = _setting("SAGE_ONLINE_RETRIES", 8, "*apply --online: retries of a step that timed out on a lock")
    online_backoff_ms: int = _setting("SAGE_ONLINE_BACKOFF_MS", 250,
                                      "*apply --online: first wait before a retry (doubles each time, with jitter)")
    online_backoff_max_ms: int = _setting("SAGE_ONLINE_BACKOFF_MAX_MS", 10_000, "*apply --online: longest wait "
                                          "between retries")
    online_batch_rows: int = _setting("SAGE_ONLINE_BATCH_ROWS", 5000, "*apply --online: rows per backfill batch")
    online_batch_pause_ms: int = _setting("SAGE_ONLINE_BATCH_PAUSE_MS", 0,
                                          "*apply --online: pause between backfill batches")
    snapshot_keep: int = _setting("SAGE_SNAPSHOT_KEEP", 30, "automatic snapshots (before_*) kept when pruning "
                                  "(0: keep all; each database keeps its newest)")
    snapshot_max_age_days: float = _setting("SAGE_SNAPSHOT_MAX_AGE_DAYS", 0.0,
                                            "automatic snapshots older than this are pruned (0: no age limit)")
    lint_error_mb: float = _setting("SAGE_LINT_ERROR_MB", 100.0,
                                    "table size above which a rewrite or scan in *dry-run is an error")
    lint_jobs: int = _setting("SAGE_LINT_JOBS", 0, "processes of sage lint: files linted at once, and a file "
                              "over 400 KB is split between two (0: one per core that nothing else is "
                              "running on at the start, at most 4; 1: one process)")
    fleet_parallel: int = _setting("SAGE_FLEET_PARALLEL", 0,
                                   "targets a fleet run (--targets) works on at once (0: one per core)")
    watch_every_s: float = _setting("SAGE_WATCH_EVERY_S", 60.0, "seconds between sage watch rounds unless --every")
    watch_timeout_ms: int = _setting("SAGE_WATCH_TIMEOUT_MS", 10_000,
                                     "server-side statement_timeout of each sage watch check (a round stays bounded)")
    watch_lock_wait_s: float = _setting("SAGE_WATCH_LOCK_WAIT_S", 5.0,
                                        "sage watch alerts when a session has waited this long for a lock")
    watch_long_query_s: float = _setting("SAGE_WATCH_LONG_QUERY_S", 60.0,
                                         "sage watch alerts on an active query running this long")
    watch_idle_in_tx_s: float = _setting("SAGE_WATCH_IDLE_IN_TX_S", 60.0,
                                         "sage watch alerts on a session idle in transaction this long")
    watch_vacuum_tables: int = _setting("SAGE_WATCH_VACUUM_TABLES", 1,
                                        "sage watch alerts when this many tables are past their autovacuum threshold")
    watch_xid_age_pct: float = _setting("SAGE_WATCH_XID_AGE_PCT", 50.0,
                                        "sage watch alerts when a database's xid age reaches this % of the "
                                        "wraparound limit (2^31)")
    watch_replication_lag_bytes: int = _setting("SAGE_WATCH_REPLICATION_LAG_BYTES", 64 * 1024 * 1024,
                                                "sage watch alerts when a standby (or a slot) is this many bytes "
                                                "of WAL behind")
    watch_replication_lag_s: float = _setting("SAGE_WATCH_REPLICATION_LAG_S", 30.0,
                                              "sage watch alerts when a standby's replay lag reaches this")
    watch_audit_severity: str = _setting("SAGE_WATCH_AUDIT_SEVERITY", "error",
                                         "sage watch alerts on audit findings of this severity or worse "
                                         "(error, warning, info)")
    watch_audit_every_s: float = _setting("SAGE_WATCH_AUDIT_EVERY_S", 3600.0,
                                          "sage watch reruns the audits when the catalog changes, and at least this "
                                          "often (0: every round)")
    watch_audit_connections: int = _setting("SAGE_WATCH_AUDIT_CONNECTIONS", 2,
                                            "connections the audits read every relation on at once, a slice each "
                                            "(the first round of a watch; 1: one after the other)")
    watch_webhook_timeout_s: float = _setting("SAGE_WATCH_WEBHOOK_TIMEOUT_S", 5.0,
                                              "timeout of one sage watch webhook POST")
    watch_keep_rounds: int = _setting("SAGE_WATCH_KEEP_ROUNDS", 10_000,
                                      "rounds kept per target in .sage/watch.sqlite (older ones are pruned)")
    mcp_result_bytes: int = _setting("SAGE_MCP_RESULT_BYTES", 100_000,
                                     "cap on one sage mcp tool result (text and structured content together): "
                                     "the summary and the most severe findings stay, the rest is counted, and the "
                                     "whole result is written to .sage/mcp/TOOL.json")
    db_mcp_command: str = _setting("SAGE_DB_MCP_COMMAND", "",
                                   "*env-check through an MCP Postgres server (its command line; also in .env)")
    provider: str = _setting("SAGE_PROVIDER", "anthropic", "model provider: anthropic or openai (compatible)")
    model: str = _setting("SAGE_MODEL", "", "model name (default: the provider's current default)")
    max_tokens: int = _setting("SAGE_MAX_TOKENS", 4096, "max tokens per model reply")
    max_retries: int = _setting("SAGE_MAX_RETRIES", 3, "retries of a failed model request")
    tool_result_chars: int = _setting("SAGE_TOOL_RESULT_CHARS", 8000, "cap on one tool result sent to the model")
    prompt_caching: bool = _setting("SAGE_PROMPT_CACHING", True, "Anthropic prompt caching (0/no/false: off)")
    openai_base_url: str = _setting("SAGE_OPENAI_BASE_URL", "", "OpenAI-compatible endpoint (…/v1)")
    openai_model: str = _setting("SAGE_OPENAI_MODEL", "", "model for the OpenAI-compatible provider")
    openai_api_key: str = _setting("SAGE_OPENAI_API_KEY", "", "key for the OpenAI-compatible provider (redacted)")


def _coerce(raw: str, default):
    if isinstance(default, bool):
        return raw.strip().lower() not in ("0", "no", "false", "off")
    try:
        return type(default)(raw) if isinstance(default, (int, float)) else raw
    except ValueError:
        return default


def settings(environ: Mapping[str, str] | None = None) -> Settings:
    """The settings from `environ` (default: the process environment); unset or empty means the default."""
    env = os.environ if environ is None else environ
    values = {}
    for f in fields(Settings):
        raw = env.get(f.metadata["env"], "")
        if raw.strip() if isinstance(raw, str) else raw:
            values[f.name] = _coerce(raw.strip(), f.default)
    return Settings(**values)


def markdown_table() -> str:
    rows = ["| variable | default | what it does |", "|---|---|---|"]
    for f in fields(Settings):
        default = f.default if f.default not in ("", None) else "(unset)"
        rows.append(f"| `{f.metadata['env']}` | {default} | {f.metadata['doc']} |")
    return "\n".join(rows)


if __name__ == "__main__":
    print(markdown_table())

"""Area migrations-snapshots: *snapshot, *rollback, *smoke-test, *seed.

The work lives in helper modules (sage_agent/ops/snapshots.py, sage_agent/ops/lifecycle/*); this module
holds the operations the catalog binds to.
"""

from __future__ import annotations

from pydantic import BaseModel

from sage_agent.ops.registry import operation
from sage_agent.ops.result import OpResult, Table


def _human_bytes(n: int) -> str:
    size = float(n)
    for unit in ("B", "KB", "MB", "GB"):
        if size < 1024 or unit == "GB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{n} B"


class SnapshotInput(BaseModel):
    name: str | None = None
    mode: str = "schema-only"


@operation("db-snapshot", risk="read")
def snapshot(inputs: SnapshotInput, ctx) -> OpResult:
    """pg_dump of the user schemas + supabase_migrations to supabase/snapshots/NAME.sql and NAME.json."""
    from sage_agent.ops.snapshots import take_snapshot, validate_name

    if inputs.name:
        validate_name(inputs.name)
    meta = take_snapshot(ctx, inputs.name or None, with_data=inputs.mode == "with-data")
    rel_sql = f"supabase/snapshots/{meta.name}.sql"
    rel_json = f"supabase/snapshots/{meta.name}.json"
    rows = [[t, meta.row_counts.get(t, 0)] for t in meta.tables]
    history_rows = {k: v for k, v in meta.row_counts.items() if k not in meta.tables}
    notes = ["supabase/snapshots/ is git-ignored: snapshots stay on this machine"]
    if not meta.history_included:
        notes.append("no supabase_migrations schema yet: the snapshot holds no migration history")
    if meta.type == "schema-only":
        notes.append("schema-only: a rollback to it restores the structure with empty user tables "
                     "(the migration history keeps its rows); use mode with-data to keep rows")
    return OpResult(
        operation="db-snapshot",
        summary=f"Snapshot {meta.name} created ({meta.type}, {len(meta.tables)} tables, "
                f"{_human_bytes(meta.size_bytes)})",
        facts={"name": meta.name, "type": meta.type, "file": rel_sql, "metadata": rel_json,
               "schemas": ", ".join(meta.schemas) or "-",
               "migration_history": "included" if meta.history_included else "absent",
               "tables": len(meta.tables), "rows": sum(meta.row_counts.get(t, 0) for t in meta.tables),
               "history_rows": sum(history_rows.values()),
               "size_bytes": meta.size_bytes, "sha256": meta.sha256, "server_version": meta.server_version,
               "db_url": meta.db_url},
        tables=[Table(title="Tables", columns=["table", "rows"], rows=rows)] if rows else [],
        notes=notes,
        artifacts=[rel_sql, rel_json],
        next_steps=[f"*rollback {meta.name}", "*dry-run FILE", "*apply"],
        data={"snapshot": meta.to_json()},
    )

"""Snapshots: pg_dump of the user's schemas plus the migration history, with metadata.

Plain functions other operations use (apply, seed, restore, policy-apply):
    take_snapshot(ctx, name=None, *, with_data=False, prefix="snapshot") -> SnapshotMeta
    load_snapshot_meta(project, name) -> SnapshotMeta
    list_snapshots(project) -> list[SnapshotMeta]

What a snapshot covers ("user schemas"): every schema except PostgreSQL's own (pg_*, information_schema),
the schemas Supabase manages (the Supabase CLI's own exclusion list for `db dump`: auth, storage,
extensions, realtime, vault, graphql...), and schemas created by an extension. `supabase_migrations` is
always included, whole and with its data, so that a rollback restores the migration history with the schema.
Of storage, the user's own part is kept: the RLS policies on its tables (ops/schema/storage_policies.py).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import time
import tomllib
import uuid
from datetime import datetime, timezone
from functools import lru_cache
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field

from sage_agent.db.redact import redact
from sage_agent.db.schemas import is_managed_schema, pg_dump_pattern
from sage_agent.db.tables import count_rows, list_tables  # noqa: F401 - snapshots, rollback and reverse use them from here
from sage_agent.ops.artifacts import sha256_file
from sage_agent.ops.result import NeedsInput, OpError
from sage_agent.ops.schema import storage_policies
from sage_agent.ops.snapshots.keep import KeptData, Renamed

SNAPSHOT_DIR = ("supabase", "snapshots")
HISTORY_SCHEMA = "supabase_migrations"
TMP_SUFFIX = ".partial"  # `.NAME.sql.partial`: a snapshot being written (see snapshots/retention.py)
NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$")



class SnapshotMeta(BaseModel):
    name: str
    sql_path: Path
    json_path: Path
    created_at: str
    type: str  # schema-only | with-data
    tables: list[str] = Field(default_factory=list)  # user tables, schema-qualified
    row_counts: dict[str, int] = Field(default_factory=dict)  # user tables + supabase_migrations tables
    size_bytes: int = 0
    sha256: str = ""
    db_url: str = ""  # redacted
    server_version: str = ""
    server_major: int = 0
    schemas: list[str] = Field(default_factory=list)  # user schemas dumped (supabase_migrations not listed)
    history_included: bool = False  # supabase_migrations existed and is in the dump
    pg_dump_version: str = ""
    public_grants: list[str] | None = None  # PUBLIC's privileges on schema public (pg_dump omits the defaults)
    kept: list[KeptData] = Field(default_factory=list)  # data kept for *rollback (files in NAME.data/)
    renames: list[Renamed] = Field(default_factory=list)  # renames the migrations make (rolled back by name)
    keep_notes: list[str] = Field(default_factory=list)
    history_versions: list[str] | None = None  # applied migration versions at snapshot time
    # files with an online apply under way or expanded at snapshot time (supabase_migrations.sage_online);
    # None: a snapshot older than this. *rollback clears the online progress of every other file.
    online_versions: list[str] | None = None
    # the user's policies on storage tables re-created by the snapshot (None: no storage schema, or a snapshot
    # older than this; see ops/schema/storage_policies.py)
    storage_policies: int | None = None
    project_id: str = ""  # supabase/config.toml project_id (or supabase/.sage/project-id)
    database_id: str = ""  # system identifier + database name: which database the snapshot is of
    origin: str = ""  # "apply" for *apply's before_<file> snapshots (their kept data serves later rollbacks)
    checksum: str = ""  # sha256 of this metadata (without this field): a hand-edited .json is refused

    @property
    def with_data(self) -> bool:
        return self.type == "with-data"

    @property
    def kept_rows(self) -> int:
        return sum(k.rows for k in self.kept)

    def to_json(self) -> dict[str, Any]:
        # storage_policies only when known: snapshots from before the field keep their checksum
        data = self.model_dump(mode="json", exclude={"sql_path", "json_path"}
                               | ({"storage_policies"} if self.storage_policies is None else set()))
        data["file"] = self.sql_path.name
        data["checksum"] = metadata_checksum(data)
        return data


def metadata_checksum(data: dict[str, Any]) -> str:
    body = {k: v for k, v in data.items() if k != "checksum"}
    return hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()


def project_id(project: Path) -> str:
    """The project's identity: supabase/config.toml's project_id, else a random id kept in supabase/.sage/."""
    config = Path(project) / "supabase" / "config.toml"
    try:
        value = tomllib.loads(config.read_text(encoding="utf-8")).get("project_id") if config.is_file() else None
    except (OSError, tomllib.TOMLDecodeError):
        value = None
    if value:
        return str(value)
    path = Path(project) / "supabase" / ".sage" / "project-id"
    if path.is_file():
        return path.read_text(encoding="utf-8").strip()
    path.parent.mkdir(parents=True, exist_ok=True)
    value = f"local-{uuid.uuid4()}"
    path.write_text(value + "\n", encoding="utf-8")
    return value


def database_id(conn) -> str:
    """Which database this is (cluster system identifier + name); '' where pg_control_system() is not allowed."""
    try:
        with conn.transaction():
            row = conn.execute("select (select system_identifier from pg_control_system())::text, "
                               "current_database()").fetchone()
        return f"{row[0]}/{row[1]}"
    except Exception:  # noqa: BLE001 - managed services may revoke it
        return ""


def online_versions(conn) -> list[str]:
    """Versions with a row in DB Sage's online state table (`*apply --online` under way, or expanded)."""
    if not conn.execute("select to_regclass('supabase_migrations.sage_online') is not null").fetchone()[0]:
        return []
    return [r[0] for r in conn.execute("select version from supabase_migrations.sage_online order by 1")]


def history_versions(conn) -> list[str] | None:
    if not conn.execute("select to_regclass('supabase_migrations.schema_migrations') is not null").fetchone()[0]:
        return None
    return [r[0] for r in conn.execute("select version from supabase_migrations.schema_migrations order by 1")]


# --- names and paths -------------------------------------------------------------------------------
def validate_name(name: str, what: str = "snapshot name", *, key: str | None = None) -> str:
    """A file-safe name: letters, digits, `_ . -`, no path tricks. Raises OpError (exit 2); with `key` (the task
    input it came from) a NeedsInput, so that the REPL asks again."""
    if name is None or not str(name).strip():
        raise OpError(f"{what} is empty", "use letters, digits, _ . - (e.g. before_v2)", exit_code=2)
    name = str(name).strip()
    if "/" in name or "\\" in name or ".." in name or "\0" in name or not NAME_RE.match(name):
        reason = (f"invalid {what} {name!r}: use 1-100 letters, digits, _ . - starting with a letter or digit "
                  "(no path separators, no '..')")
        if key:
            raise NeedsInput(key, what.capitalize(), reason=reason, hint="e.g. before_v2 or baseline")
        raise OpError(reason, "e.g. before_v2 or baseline", exit_code=2)
    return name


def snapshot_dir(project: Path) -> Path:
    return Path(project).joinpath(*SNAPSHOT_DIR)


def ensure_snapshot_dir(project: Path) -> Path:
    folder = snapshot_dir(project)
    folder.mkdir(parents=True, exist_ok=True)
    ignore = folder / ".gitignore"
    if not ignore.exists():
        ignore.write_text("*\n!.gitignore\n", encoding="utf-8")
    return folder


def _utc_stamp() -> str:
    return time.strftime("%Y%m%d_%H%M%S", time.gmtime())


def _free_name(folder: Path, base: str) -> str:
    base = base[:100]
    name, n = base, 2
    while (folder / f"{name}.sql").exists() or (folder / f"{name}.json").exists():
        suffix = f"_{n}"
        name = base[: 100 - len(suffix)] + suffix
        n += 1
    return name


# --- catalog queries -------------------------------------------------------------------------------
def user_schemas(conn) -> list[str]:
    """Schemas that belong to the user (not PostgreSQL's, not Supabase-managed, not created by an extension)."""
    rows = conn.execute(
        """
        select n.nspname from pg_namespace n
        where not exists (select 1 from pg_depend d
                          where d.classid = 'pg_namespace'::regclass and d.objid = n.oid and d.deptype = 'e')
        order by n.nspname
        """
    ).fetchall()
    return [r[0] for r in rows if not is_managed_schema(r[0])]


def schema_exists(conn, name: str) -> bool:
    return bool(conn.execute("select exists (select 1 from pg_namespace where nspname = %s)", (name,)).fetchone()[0])


def qualified(schema: str, table: str) -> str:
    return f"{schema}.{table}"


# --- taking a snapshot -----------------------------------------------------------------------------
def take_snapshot(ctx, name: str | None = None, *, with_data: bool = False, prefix: str = "snapshot",
                  keep=None, origin: str = "") -> SnapshotMeta:
    """pg_dump the user schemas (+ supabase_migrations with data) to supabase/snapshots/NAME.sql and NAME.json.

    An explicit `name` that exists is an error (never overwritten); without a name, `PREFIX_YYYYMMDD_HHMMSS`
    (UTC, made unique). Counts and the dump see the same MVCC snapshot (pg_export_snapshot). `keep`: the
    objects (sqlkit.destroys.Destroyed) whose data to COPY into NAME.data/ beside a schema-only dump."""
    # lazy: psycopg loads on the first database call
    from sage_agent.db.tools import PgToolError, run_pg_tool
    from sage_agent.ops.snapshots import keep as keeping

    project = Path(ctx.project)
    url = ctx.migration_url  # pg_dump needs a session: refuses a transaction pooler before any file is made
    folder = ensure_snapshot_dir(project)
    if name:
        name = validate_name(name)
        if (folder / f"{name}.sql").exists() or (folder / f"{name}.json").exists():
            raise OpError(f"snapshot {name!r} already exists (supabase/snapshots/{name}.sql); snapshots are never "
                          "overwritten", "choose another name, or delete the old files first", exit_code=2)
    else:
        name = _free_name(folder, f"{validate_name(prefix, 'snapshot prefix')}_{_utc_stamp()}")
    sql_path = folder / f"{name}.sql"
    json_path = folder / f"{name}.json"
    # written under temporary names and renamed when complete: a kill never leaves half a snapshot
    tmp_sql = folder / f".{name}.sql{TMP_SUFFIX}"
    server = ctx.server
    created_at = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")

    conn = ctx.connect(url, timeouts=False)
    kept: list[KeptData] = []
    keep_notes: list[str] = []
    try:
        db_id = database_id(conn)
        conn.rollback()
        conn.execute("set transaction isolation level repeatable read, read only")
        schemas = user_schemas(conn)
        history = schema_exists(conn, HISTORY_SCHEMA)
        try:
            exported = conn.execute("select pg_export_snapshot()").fetchone()[0]
        except Exception:  # noqa: BLE001 - standbys/poolers: dump without a shared snapshot
            conn.rollback()
            conn.execute("set transaction isolation level repeatable read, read only")
            exported = None
        tables = list_tables(conn, schemas)
        extensions = [r[0] for r in conn.execute(
            "select e.extname from pg_extension e join pg_namespace n on n.oid = e.extnamespace "
            "where n.nspname = any(%s) order by 1", (schemas,)).fetchall()] if schemas else []
        public_grants = _public_grants(conn) if "public" in schemas else None
        history_tables = list_tables(conn, [HISTORY_SCHEMA]) if history else []
        versions = history_versions(conn) if history else None
        online = online_versions(conn) if history else []
        if keep and not with_data:
            kept, keep_notes = keeping.resolve(conn, list(keep), schemas, tables)
        storage = storage_policies.has_storage(conn)
        policy_tables = storage_policies.policy_tables(conn) if storage else []

        args = ["--no-password", "--format=plain", "--encoding=UTF8", "--quote-all-identifiers", "-f", str(tmp_sql)]
        if exported:
            args.append(f"--snapshot={exported}")
        for schema in schemas + ([HISTORY_SCHEMA] if history else []):
            args += ["-n", pg_dump_pattern(schema)]
        for ext in extensions:  # -n leaves extensions out; those living in a user schema must come back
            args.append(f"--extension={pg_dump_pattern(ext)}")
        if not with_data:
            for schema in schemas:
                args.append(f"--exclude-table-data={pg_dump_pattern(schema)}.*")
        if not schemas and not history:
            tmp_sql.write_text("-- DB Sage snapshot: no user schemas and no migration history at snapshot time\n",
                               encoding="utf-8")
            counts = count_rows(conn, tables + history_tables)
            dump_version = ""
        else:
            # lazy: not needed to start `sage --version`, `*help` or `sage mcp`
            import threading

            ctx.say(f"pg_dump of {', '.join(schemas + ([HISTORY_SCHEMA] if history else []))} -> "
                    f"supabase/snapshots/{name}.sql")
            failure: list[BaseException] = []

            def dump() -> None:
                try:
                    run_pg_tool("pg_dump", url, args, server_major=server.major)
                except BaseException as exc:  # noqa: BLE001 - re-raised in the caller's thread
                    failure.append(exc)

            # pg_dump and the exact counts read the same exported MVCC snapshot, side by side
            worker = threading.Thread(target=dump, name="sage-pg-dump", daemon=True)
            worker.start()
            try:
                counts = count_rows(conn, tables + history_tables)
                if kept:
                    ctx.say(f"keeping the data of {', '.join(k.table for k in kept)} (COPY -> "
                            f"supabase/snapshots/{name}.data/)")
                    keeping.write(conn, kept, folder, name, url=url, exported=exported, server_major=server.major)
            except BaseException:
                worker.join()
                tmp_sql.unlink(missing_ok=True)
                raise
            worker.join()
            if failure:
                tmp_sql.unlink(missing_ok=True)
                exc = failure[0]
                if isinstance(exc, PgToolError):
                    raise OpError(f"snapshot failed: {exc}", "check the connection with *env-check") from None
                raise OpError(f"snapshot failed: {redact(str(exc))}",
                              "install a pg_dump at least as new as the server (postgresql-client)") from None
            dump_version = _pg_dump_version(server.major)
        policy_entries: list[str] = []
        if storage:
            extra = ["--quote-all-identifiers"] + ([f"--snapshot={exported}"] if exported else [])
            try:
                policy_entries = storage_policies.dump_entries(url, policy_tables, server.major, extra)
            except PgToolError as exc:
                tmp_sql.unlink(missing_ok=True)
                raise OpError(f"snapshot failed: {exc}", "check the connection with *env-check") from None
            with open(tmp_sql, "a", encoding="utf-8") as fh:
                fh.write(storage_policies.section(policy_entries))
    finally:
        try:
            conn.rollback()
            conn.close()
        except Exception:  # noqa: BLE001
            pass

    meta = SnapshotMeta(
        name=name, sql_path=sql_path, json_path=json_path, created_at=created_at,
        type="with-data" if with_data else "schema-only",
        tables=[qualified(s, t) for s, t in tables], row_counts=counts,
        size_bytes=tmp_sql.stat().st_size, sha256=sha256_file(tmp_sql),
        db_url=redact(ctx.target.display_url if ctx.target.url else url), server_version=server.version,
        server_major=server.major, schemas=schemas, history_included=history, pg_dump_version=dump_version,
        public_grants=public_grants, kept=kept, keep_notes=keep_notes,
        renames=keeping.renames_of(keep or []) if not with_data else [], history_versions=versions,
        online_versions=online, project_id=project_id(project), database_id=db_id, origin=origin,
        storage_policies=len([e for e in policy_entries if "; Type: POLICY;" in e]) if storage else None,
    )
    tmp_json = folder / f".{name}.json{TMP_SUFFIX}"
    try:
        tmp_json.write_text(json.dumps(meta.to_json(), indent=2) + "\n", encoding="utf-8")
        os.replace(tmp_sql, sql_path)
        os.replace(tmp_json, json_path)  # last: a snapshot is listed only once both files are in place
    except BaseException:
        if not json_path.exists():
            sql_path.unlink(missing_ok=True)
        tmp_sql.unlink(missing_ok=True)
        tmp_json.unlink(missing_ok=True)
        raise
    return meta


def _public_grants(conn) -> list[str]:
    """What PUBLIC (every role) may do on schema public: pg_dump leaves the built-in defaults out of the dump,
    and a re-created schema would not have them."""
    row = conn.execute(
        """
        select coalesce(array_agg(distinct a.privilege_type order by a.privilege_type), '{}')
        from pg_namespace n, aclexplode(coalesce(n.nspacl, acldefault('n', n.nspowner))) a
        where n.nspname = 'public' and a.grantee = 0
        """).fetchone()
    return list(row[0] or [])


@lru_cache(maxsize=8)
def _pg_dump_version(server_major: int) -> str:
    try:
        # lazy: not needed to start `sage --version`, `*help` or `sage mcp`
        import subprocess

        from sage_agent.db.binaries import find_binary

        out = subprocess.run([str(find_binary("pg_dump", server_major)), "--version"], capture_output=True,
                             text=True, timeout=10).stdout.strip()
        return out.rsplit(" ", 1)[-1] if out else ""
    except Exception:  # noqa: BLE001
        return ""


# --- reading snapshots -----------------------------------------------------------------------------
def load_snapshot_meta(project: Path, name: str, *, key: str | None = None) -> SnapshotMeta:
    """The metadata of an existing snapshot. Unknown or damaged -> OpError with the available names; with `key`
    (the task input naming it) an unknown one is a NeedsInput offering the snapshots that exist."""
    name = validate_name(name, key=key)
    folder = snapshot_dir(project)
    json_path, sql_path = folder / f"{name}.json", folder / f"{name}.sql"
    if not json_path.is_file() or not sql_path.is_file():
        known = [m.name for m in list_snapshots(project)]
        hint = ("available: " + ", ".join(known[-10:])) if known else "no snapshots yet: take one with *snapshot NAME"
        missing = "supabase/snapshots/" + (f"{name}.json" if not json_path.is_file() else f"{name}.sql")
        if key and known:
            newest = list(reversed(known))[:20]
            raise NeedsInput(key, "Snapshot", reason=f"unknown snapshot {name!r} ({missing} not found)",
                             choices=newest, default=newest[0], hint=hint)
        raise OpError(f"unknown snapshot {name!r} ({missing} not found)", hint, exit_code=2)
    try:
        data = json.loads(json_path.read_text(encoding="utf-8"))
        stored = data.get("checksum")
        data.pop("file", None)
        meta = SnapshotMeta(**data, sql_path=sql_path, json_path=json_path)
    except Exception as exc:  # noqa: BLE001
        raise OpError(f"snapshot metadata supabase/snapshots/{name}.json is unreadable: {exc}",
                      "take a new snapshot; this one cannot be trusted") from None
    if stored and metadata_checksum(meta.to_json()) != stored:
        raise OpError(f"snapshot {name} is damaged: supabase/snapshots/{name}.json was edited after it was taken "
                      "(its checksum does not match)", "use another snapshot; nothing was changed")
    return meta


def list_snapshots(project: Path) -> list[SnapshotMeta]:
    """Every readable snapshot, oldest first."""
    folder = snapshot_dir(project)
    metas: list[SnapshotMeta] = []
    if not folder.is_dir():
        return metas
    for json_path in folder.glob("*.json"):
        sql_path = json_path.with_suffix(".sql")
        if not sql_path.is_file():
            continue
        try:
            data = json.loads(json_path.read_text(encoding="utf-8"))
            data.pop("file", None)
            metas.append(SnapshotMeta(**data, sql_path=sql_path, json_path=json_path))
        except Exception:  # noqa: BLE001 - a damaged file is skipped in listings
            continue
    metas.sort(key=lambda m: (m.created_at, m.json_path.stat().st_mtime_ns, m.name))
    return metas

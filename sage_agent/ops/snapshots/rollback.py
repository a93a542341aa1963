"""Rollback to a snapshot: plan (what will be lost), then an atomic restore with psql --single-transaction."""

from __future__ import annotations

import json
import tempfile
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from psycopg import sql

from sage_agent.db.schemas import pg_dump_pattern
from sage_agent.ops.result import OpError
from sage_agent.ops.schema import storage_policies
from sage_agent.ops.snapshots import dumpdiff
from sage_agent.sqlkit.idents import quoted
from sage_agent.ops.snapshots.store import (HISTORY_SCHEMA, SnapshotMeta, count_rows, list_tables, qualified,
                                      schema_exists, user_schemas)

# Dependent objects outside the snapshot's schemas that DROP SCHEMA ... CASCADE would remove.
_EXTERNAL_DEPENDENTS = """
with covered as (
  select oid from pg_namespace where nspname = any(%(schemas)s)
), refs as (
  select d.classid, d.objid, d.objsubid, d.refclassid, d.refobjid
  from pg_depend d
  where d.deptype in ('n', 'a')
    and case d.refclassid
          when 'pg_class'::regclass then (select relnamespace from pg_class where oid = d.refobjid)
          when 'pg_proc'::regclass then (select pronamespace from pg_proc where oid = d.refobjid)
          when 'pg_type'::regclass then (select typnamespace from pg_type where oid = d.refobjid)
          when 'pg_namespace'::regclass then d.refobjid
        end in (select oid from covered)
), homes as (
  select r.*,
         case r.classid
           when 'pg_trigger'::regclass then (select c.relnamespace from pg_trigger t join pg_class c on c.oid = t.tgrelid where t.oid = r.objid)
           when 'pg_policy'::regclass then (select c.relnamespace from pg_policy p join pg_class c on c.oid = p.polrelid where p.oid = r.objid)
           when 'pg_attrdef'::regclass then (select c.relnamespace from pg_attrdef a join pg_class c on c.oid = a.adrelid where a.oid = r.objid)
           when 'pg_rewrite'::regclass then (select c.relnamespace from pg_rewrite w join pg_class c on c.oid = w.ev_class where w.oid = r.objid)
           when 'pg_constraint'::regclass then (select coalesce(c.relnamespace, k.connamespace) from pg_constraint k left join pg_class c on c.oid = k.conrelid where k.oid = r.objid)
           when 'pg_class'::regclass then (select relnamespace from pg_class where oid = r.objid)
           when 'pg_proc'::regclass then (select pronamespace from pg_proc where oid = r.objid)
           when 'pg_type'::regclass then (select typnamespace from pg_type where oid = r.objid)
           when 'pg_extension'::regclass then (select extnamespace from pg_extension where oid = r.objid)
           when 'pg_default_acl'::regclass then (select defaclnamespace from pg_default_acl where oid = r.objid)
           when 'pg_operator'::regclass then (select oprnamespace from pg_operator where oid = r.objid)
           when 'pg_opclass'::regclass then (select opcnamespace from pg_opclass where oid = r.objid)
           when 'pg_opfamily'::regclass then (select opfnamespace from pg_opfamily where oid = r.objid)
           when 'pg_amproc'::regclass then (select f.opfnamespace from pg_amproc a join pg_opfamily f on f.oid = a.amprocfamily where a.oid = r.objid)
           when 'pg_amop'::regclass then (select f.opfnamespace from pg_amop a join pg_opfamily f on f.oid = a.amopfamily where a.oid = r.objid)
           when 'pg_collation'::regclass then (select collnamespace from pg_collation where oid = r.objid)
           when 'pg_ts_config'::regclass then (select cfgnamespace from pg_ts_config where oid = r.objid)
           when 'pg_statistic_ext'::regclass then (select stxnamespace from pg_statistic_ext where oid = r.objid)
           else null
         end as home
  from refs r
)
select distinct h.classid::regclass::text, h.objid, pg_describe_object(h.classid, h.objid, 0)
from homes h
where (h.home is null or h.home not in (select oid from covered))
  and not exists (select 1 from pg_depend e  -- members of an extension come back with the extension
                  where e.classid = h.classid and e.objid = h.objid and e.deptype = 'e')
order by 3
"""

_TRIGGER_DEF = """
select pg_get_triggerdef(oid), (select c.relname from pg_class c where c.oid = t.tgrelid),
       case t.tgenabled when 'D' then 'DISABLE' when 'R' then 'ENABLE REPLICA' when 'A' then 'ENABLE ALWAYS' end,
       (select n.nspname from pg_class c join pg_namespace n on n.oid = c.relnamespace where c.oid = t.tgrelid),
       t.tgname
from pg_trigger t where t.oid = %s
"""

_POLICY_DEF = """
select n.nspname, c.relname, p.polname, p.polpermissive,
       case p.polcmd when 'r' then 'SELECT' when 'a' then 'INSERT' when 'w' then 'UPDATE' when 'd' then 'DELETE' else 'ALL' end,
       case when p.polroles = '{0}' then array['public']
            else array(select quote_ident(rolname) from pg_roles where oid = any(p.polroles) order by rolname) end,
       pg_get_expr(p.polqual, p.polrelid), pg_get_expr(p.polwithcheck, p.polrelid)
from pg_policy p join pg_class c on c.oid = p.polrelid join pg_namespace n on n.oid = c.relnamespace
where p.oid = %s
"""


@dataclass
class RollbackPlan:
    meta: SnapshotMeta
    drop_schemas: list[str]
    current_counts: dict[str, int]
    current_tables: list[str]
    history_now: bool
    diff: dict[str, list[tuple[str, str, str]]]
    recreate_sql: list[str] = field(default_factory=list)  # triggers/policies on tables outside the snapshot
    recreate_desc: list[str] = field(default_factory=list)

    def expected_counts(self) -> dict[str, int]:
        """Row counts the snapshot should leave: all of them with data; schema-only keeps only the history's."""
        if self.meta.with_data:
            return dict(self.meta.row_counts)
        return {t: (0 if t in self.meta.tables else n) for t, n in self.meta.row_counts.items()}

    def row_table(self) -> list[list[object]]:
        expected = self.expected_counts()
        rows = []
        for table in sorted(set(self.current_counts) | set(expected)):
            now = self.current_counts.get(table)
            after = expected.get(table)
            if now is None:
                effect = "recreated"
            elif after is None:
                effect = f"DROPPED ({now} rows lost)"
            elif after < now:
                effect = f"{now - after} rows lost"
            elif after > now:
                effect = f"{after - now} rows come back"
            else:
                effect = "same count" + ("" if self.meta.with_data else "")
            rows.append([table, "-" if now is None else now, "-" if after is None else after, effect])
        return rows

    def text(self) -> str:
        lines = [f"Rollback to snapshot {self.meta.name} ({self.meta.type}, taken {self.meta.created_at})",
                 "One transaction (psql --single-transaction): either the database is fully the snapshot, or unchanged.",
                 "", "SQL:"]
        for schema in self.drop_schemas:
            lines.append(f"  DROP SCHEMA IF EXISTS {quoted(schema)} CASCADE;")
        lines.append(f"  \\i supabase/snapshots/{self.meta.sql_path.name}   -- recreates "
                     f"{', '.join(self.meta.schemas + ([HISTORY_SCHEMA] if self.meta.history_included else []))}")
        for desc in self.recreate_desc:
            lines.append(f"  -- then recreate {desc}")
        lost = [dumpdiff.describe(k) for k in self.diff["added"]]
        changed = [dumpdiff.describe(k) for k in self.diff["changed"]]
        back = [dumpdiff.describe(k) for k in self.diff["removed"]]
        lines.append("")
        lines.append(f"Objects added since the snapshot (LOST): {len(lost)}")
        lines += [f"  - {x}" for x in lost[:50]] + ([f"  ... {len(lost) - 50} more"] if len(lost) > 50 else [])
        lines.append(f"Objects changed since the snapshot (reverted): {len(changed)}")
        lines += [f"  ~ {x}" for x in changed[:50]] + ([f"  ... {len(changed) - 50} more"] if len(changed) > 50 else [])
        lines.append(f"Objects dropped since the snapshot (restored): {len(back)}")
        lines += [f"  + {x}" for x in back[:50]] + ([f"  ... {len(back) - 50} more"] if len(back) > 50 else [])
        lines.append("")
        lines.append("Rows (now -> after rollback):")
        for table, now, after, effect in self.row_table():
            lines.append(f"  {table}: {now} -> {after}  {effect}")
        if not self.meta.with_data:
            lines.append("  (schema-only snapshot: every row in the user tables is lost; the migration history "
                         "returns to the snapshot's)")
        return "\n".join(lines)

    @property
    def rows_lost(self) -> int:
        expected = self.expected_counts()
        return sum(max(0, n - expected.get(t, 0)) for t, n in self.current_counts.items())


def _dump_schema_now(url: str, schemas: list[str], server_major: int, storage_tables=None) -> str:
    """The schemas as they are now, plus the user's policies on storage tables when the snapshot has them
    (`storage_tables` not None): the two then compare entry by entry."""
    # lazy: not needed to start `sage --version`, `*help` or `sage mcp`
    from sage_agent.db.tools import run_pg_tool

    out = ""
    if schemas:
        args = ["--no-password", "--schema-only", "--quote-all-identifiers"]
        for schema in schemas:
            args += ["-n", pg_dump_pattern(schema)]
        out = run_pg_tool("pg_dump", url, args, server_major=server_major).stdout
    if storage_tables is not None:
        out += storage_policies.section(storage_policies.dump_entries(
            url, storage_tables, server_major, ["--quote-all-identifiers"]))
    return out


def build_plan(ctx, meta: SnapshotMeta) -> RollbackPlan:
    # lazy: psycopg loads on the first database call
    from sage_agent.ops.snapshots.store import sha256_file

    if sha256_file(meta.sql_path) != meta.sha256:
        raise OpError(f"snapshot {meta.name} is damaged: supabase/snapshots/{meta.sql_path.name} does not match the "
                      "sha256 in its metadata", "use another snapshot; this file was changed after it was taken")
    server = ctx.server
    if meta.server_major and meta.server_major > server.major:
        raise OpError(f"snapshot {meta.name} comes from PostgreSQL {meta.server_version}; this server is "
                      f"{server.version}", "restore it onto a server of the same or a newer major version")
    with ctx.connect(ctx.migration_url) as conn:
        conn.execute("set transaction isolation level repeatable read, read only")
        now_schemas = user_schemas(conn)
        history_now = schema_exists(conn, HISTORY_SCHEMA)
        drop = sorted(set(now_schemas) | set(meta.schemas))
        existing_drop = [s for s in drop if schema_exists(conn, s)]
        if history_now or meta.history_included:
            drop.append(HISTORY_SCHEMA)
            if history_now:
                existing_drop.append(HISTORY_SCHEMA)
        tables = list_tables(conn, now_schemas) + (list_tables(conn, [HISTORY_SCHEMA]) if history_now else [])
        counts = count_rows(conn, tables)
        storage_tables = storage_policies.policy_tables(conn) if meta.storage_policies is not None else None
        deps = conn.execute(_EXTERNAL_DEPENDENTS, {"schemas": existing_drop}).fetchall() if existing_drop else []
        recreate_sql, recreate_desc, refuse = [], [], []
        conn.execute("set local search_path = ''")  # definitions come out fully qualified
        for catalog, oid, desc in deps:
            if catalog == "pg_trigger":
                tdef, trel, enabled, tschema, tname = conn.execute(_TRIGGER_DEF, (oid,)).fetchone()
                recreate_sql.append(tdef + ";")
                if enabled:  # one of the _TRIGGER_DEF keywords
                    recreate_sql.append(sql.SQL("ALTER TABLE {} {} TRIGGER {};").format(
                        sql.Identifier(tschema, trel), sql.SQL(enabled), sql.Identifier(tname)).as_string(conn))
                recreate_desc.append(desc)
            elif catalog == "pg_policy":
                schema, table, name, permissive, cmd, roles, qual, check = conn.execute(_POLICY_DEF, (oid,)).fetchone()
                if schema in storage_policies.SCHEMAS and meta.storage_policies is not None:
                    continue  # the snapshot re-creates the user's policies on storage tables itself
                # cmd is one of _POLICY_DEF's keywords, roles come quoted by quote_ident(), qual and check are
                # the server's own pg_get_expr() text
                stmt = sql.SQL("CREATE POLICY {} ON {} AS {} FOR {} TO {}").format(
                    sql.Identifier(name), sql.Identifier(schema, table),
                    sql.SQL("PERMISSIVE" if permissive else "RESTRICTIVE"), sql.SQL(cmd),
                    sql.SQL(", ").join(sql.SQL(r) for r in roles))
                if qual:
                    stmt += sql.SQL(" USING ({})").format(sql.SQL(qual))
                if check:
                    stmt += sql.SQL(" WITH CHECK ({})").format(sql.SQL(check))
                recreate_sql.append((stmt + sql.SQL(";")).as_string(conn))
                recreate_desc.append(desc)
            elif catalog == "pg_extension" or catalog == "pg_default_acl":
                continue  # in a covered schema: dumped with it
            else:
                refuse.append(desc)
        conn.rollback()
    if refuse:
        raise OpError("rollback would also drop objects outside the snapshot's schemas that depend on them: "
                      + "; ".join(refuse[:10]) + (f" (+{len(refuse) - 10} more)" if len(refuse) > 10 else ""),
                      "move or drop those objects first (or restore by hand); nothing was changed")
    current_dump = _dump_schema_now(ctx.migration_url, existing_drop, server.major, storage_tables)
    before = dumpdiff.inventory_file(meta.sql_path)
    after = dumpdiff.inventory(current_dump.splitlines())
    diff = dumpdiff.compare(before, after)
    return RollbackPlan(meta=meta, drop_schemas=drop, current_counts=counts,
                        current_tables=[qualified(s, t) for s, t in tables if s != HISTORY_SCHEMA],
                        history_now=history_now, diff=diff, recreate_sql=recreate_sql, recreate_desc=recreate_desc)


def restore(ctx, plan: RollbackPlan) -> None:
    """DROP the schemas and replay the snapshot in ONE transaction (psql --single-transaction, ON_ERROR_STOP)."""
    # lazy: not needed to start `sage --version`, `*help` or `sage mcp`
    from sage_agent.db.tools import PgToolError, run_pg_tool

    server = ctx.server
    lock_ms = int(ctx.settings.lock_timeout_ms)
    with tempfile.TemporaryDirectory(prefix="sage-rollback-") as tmp:
        prefix = Path(tmp) / "00_drop.sql"
        prefix.write_text(
            "-- DB Sage rollback: drop what the snapshot replaces (same transaction as the restore)\n"
            f"SET lock_timeout = {lock_ms};\nSET statement_timeout = 0;\n"
            + "".join(f"DROP SCHEMA IF EXISTS {quoted(s)} CASCADE;\n" for s in plan.drop_schemas),
            encoding="utf-8")
        files = [prefix, plan.meta.sql_path]
        after = list(plan.recreate_sql)
        if "public" in plan.meta.schemas and plan.meta.public_grants is not None:
            # pg_dump omits PUBLIC's built-in rights on schema public; the re-created schema needs them back
            after.insert(0, "REVOKE ALL ON SCHEMA public FROM PUBLIC;")
            if plan.meta.public_grants:
                after.insert(1, f"GRANT {', '.join(plan.meta.public_grants)} ON SCHEMA public TO PUBLIC;")
        if after:
            suffix = Path(tmp) / "99_after.sql"
            suffix.write_text("-- after the snapshot: PUBLIC's rights on schema public, dependent objects outside\n"
                              + "\n".join(after) + "\n", encoding="utf-8")
            files.append(suffix)
        args = ["-X", "-q", "--no-password", "--single-transaction", "-v", "ON_ERROR_STOP=1"]
        for f in files:
            args += ["-f", str(f)]
        try:
            run_pg_tool("psql", ctx.migration_url, args, server_major=server.major)
        except PgToolError as exc:
            raise RestoreFailed(str(exc)) from None


class RestoreFailed(RuntimeError):
    pass


def verify(ctx, plan: RollbackPlan) -> tuple[list[list[object]], list[str]]:
    """Tables and exact row counts after the restore vs the snapshot's metadata. Returns (rows, problems)."""
    meta = plan.meta
    expected = plan.expected_counts()
    tables, counts = _tables_and_counts(ctx)
    problems = []
    now_user = sorted(qualified(s, t) for s, t in tables if s != HISTORY_SCHEMA)
    if now_user != sorted(meta.tables):
        missing = sorted(set(meta.tables) - set(now_user))
        extra = sorted(set(now_user) - set(meta.tables))
        problems.append(f"tables differ from the snapshot (missing: {', '.join(missing) or '-'}; "
                        f"extra: {', '.join(extra) or '-'})")
    rows = []
    for table in sorted(set(expected) | set(counts)):
        want, got = expected.get(table), counts.get(table)
        ok = want == got
        if not ok:
            problems.append(f"{table}: expected {want} rows, found {got}")
        rows.append([table, "-" if want is None else want, "-" if got is None else got, "ok" if ok else "MISMATCH"])
    return rows, problems


def log_rollback(project: Path, entry: dict) -> Path:
    folder = Path(project) / "supabase" / ".sage"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "rollback-log.jsonl"
    entry = {"at": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"), **entry}
    with path.open("a", encoding="utf-8") as fh:
        fh.write(json.dumps(entry) + "\n")
    return path


def state_fingerprint(ctx) -> tuple[list[str], dict[str, int]]:
    """Tables and counts now (to prove 'unchanged' after a failed restore)."""
    _tables, counts = _tables_and_counts(ctx)
    return sorted(counts), counts


def _tables_and_counts(ctx) -> tuple[list[tuple[str, str]], dict[str, int]]:
    """(schema, table) of the user's tables and the migration history's, and their exact row counts."""
    with ctx.connect(ctx.migration_url) as conn:
        tables = list_tables(conn, user_schemas(conn)) + (list_tables(conn, [HISTORY_SCHEMA])
                                                          if schema_exists(conn, HISTORY_SCHEMA) else [])
        counts = count_rows(conn, tables)
        conn.rollback()
    return tables, counts



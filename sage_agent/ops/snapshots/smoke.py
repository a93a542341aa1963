"""Smoke-test checks: plain functions on a psycopg connection (also usable on a shadow database by *dry-run).

    run_smoke_checks(conn, suite="standard") -> list[Check]
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

SUITES = ("basic", "standard", "comprehensive")
SEQUENCE_WARN = 0.75
SEQUENCE_FAIL = 0.95


@dataclass
class Check:
    name: str
    status: str  # pass | warn | fail | skip
    detail: str
    suite: str = "basic"
    items: list[str] = field(default_factory=list)
    ms: float = 0.0


def _schemas(conn) -> list[str]:
    # lazy: psycopg loads on the first database call
    from sage_agent.ops.snapshots.store import user_schemas

    return user_schemas(conn)


def _listing(items: list[str], limit: int = 8) -> str:
    shown = ", ".join(items[:limit])
    return shown + (f" (+{len(items) - limit} more)" if len(items) > limit else "")


# --- basic -----------------------------------------------------------------------------------------
def check_connection(conn, ctx) -> Check:
    row = conn.execute("select 1, current_setting('server_version'), current_database()").fetchone()
    return Check("connection", "pass" if row[0] == 1 else "fail",
                 f"SELECT 1 ok on {row[2]} (PostgreSQL {row[1]})")


def check_schemas(conn, ctx) -> Check:
    schemas = ctx["schemas"]
    if "public" not in schemas and not conn.execute(
            "select exists (select 1 from pg_namespace where nspname = 'public')").fetchone()[0]:
        return Check("schemas", "fail", "schema 'public' does not exist", items=schemas)
    return Check("schemas", "pass", f"user schemas: {', '.join(schemas) or '-'}", items=schemas)


def check_tables(conn, ctx) -> Check:
    rows = conn.execute(
        """
        select n.nspname || '.' || c.relname from pg_class c join pg_namespace n on n.oid = c.relnamespace
        where n.nspname = any(%s) and c.relkind in ('r', 'p') and not c.relispartition order by 1
        """, (ctx["schemas"],)).fetchall()
    tables = [r[0] for r in rows]
    ctx["tables"] = tables
    if not tables:
        return Check("tables present", "warn", "no tables in the user schemas (nothing deployed yet?)")
    return Check("tables present", "pass", f"{_count(len(tables), 'table')}: {_listing(tables)}", items=tables)


def _count(n: int, noun: str) -> str:
    """`1 table`, `3 tables` (the report read `1 tables: public.todos`, `1 migrations applied`)."""
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


def check_history(conn, ctx) -> Check:
    exists = conn.execute("select to_regclass('supabase_migrations.schema_migrations') is not null").fetchone()[0]
    if not exists:
        return Check("migration history", "pass", "no supabase_migrations.schema_migrations yet (no migrations applied)")
    row = conn.execute("select count(*), max(version) from supabase_migrations.schema_migrations").fetchone()
    return Check("migration history", "pass", f"{_count(row[0], 'migration')} applied, latest {row[1] or '-'}")


# --- standard --------------------------------------------------------------------------------------
def check_rls(conn, ctx) -> Check:
    rows = conn.execute(
        """
        select n.nspname || '.' || c.relname, c.relrowsecurity,
               exists (select 1 from pg_policy p where p.polrelid = c.oid)
        from pg_class c join pg_namespace n on n.oid = c.relnamespace
        where n.nspname = 'public' and c.relkind in ('r', 'p') and not c.relispartition order by 1
        """).fetchall()
    off = [r[0] for r in rows if not r[1]]
    if off:
        return Check("RLS enabled on public tables", "fail",
                     f"{len(off)} of {len(rows)} public tables without row-level security: {_listing(off)} "
                     "(fix: ALTER TABLE ... ENABLE ROW LEVEL SECURITY; add policies)", items=off)
    no_policy = [r[0] for r in rows if not r[2]]
    if no_policy:
        return Check("RLS enabled on public tables", "warn",
                     f"RLS on, but no policy (nobody but the owner/service_role can read): {_listing(no_policy)}",
                     items=no_policy)
    detail = ("no tables in public" if not rows else "the public table has RLS and policies" if len(rows) == 1
              else f"all {len(rows)} public tables have RLS and policies")
    return Check("RLS enabled on public tables", "pass", detail)


def check_primary_keys(conn, ctx) -> Check:
    rows = conn.execute(
        """
        select n.nspname || '.' || c.relname from pg_class c join pg_namespace n on n.oid = c.relnamespace
        where n.nspname = any(%s) and c.relkind in ('r', 'p') and not c.relispartition
          and not exists (select 1 from pg_constraint k where k.conrelid = c.oid and k.contype = 'p')
        order by 1
        """, (ctx["schemas"],)).fetchall()
    missing = [r[0] for r in rows]
    if missing:
        return Check("primary keys", "fail", f"{len(missing)} table(s) without a primary key: {_listing(missing)}",
                     items=missing)
    return Check("primary keys", "pass", "every table has a primary key")


def check_foreign_keys(conn, ctx) -> Check:
    # lazy: psycopg loads on the first database call
    from psycopg import sql

    fks = conn.execute(
        """
        select k.oid, k.conname, k.conrelid::regclass::text, k.confrelid::regclass::text, k.convalidated,
               k.conrelid, k.confrelid, k.conkey, k.confkey
        from pg_constraint k join pg_class c on c.oid = k.conrelid join pg_namespace n on n.oid = c.relnamespace
        where k.contype = 'f' and n.nspname = any(%s) order by 3, 2
        """, (ctx["schemas"],)).fetchall()
    not_valid = [f for f in fks if not f[4]]
    if not not_valid:
        return Check("foreign key integrity", "pass",
                     f"{_count(len(fks), 'foreign key')}, all validated (PostgreSQL enforces them)" if fks
                     else "no foreign keys")
    orphans: list[str] = []
    unchecked: list[str] = []
    for oid, name, child, parent, _, conrelid, confrelid, conkey, confkey in not_valid:
        cols = conn.execute(
            "select array(select attname from unnest(%s::int2[]) with ordinality k(n, i) "
            "join pg_attribute a on a.attrelid = %s and a.attnum = k.n order by i), "
            "array(select attname from unnest(%s::int2[]) with ordinality k(n, i) "
            "join pg_attribute a on a.attrelid = %s and a.attnum = k.n order by i)",
            (conkey, conrelid, confkey, confrelid)).fetchone()
        ccols, pcols = cols
        cond = sql.SQL(" and ").join(
            sql.SQL("p.{} = c.{}").format(sql.Identifier(pc), sql.Identifier(cc)) for cc, pc in zip(ccols, pcols))
        notnull = sql.SQL(" and ").join(sql.SQL("c.{} is not null").format(sql.Identifier(cc)) for cc in ccols)
        query = sql.SQL("select exists (select 1 from {} c where {} and not exists (select 1 from {} p where {}))").format(
            sql.SQL(child), notnull, sql.SQL(parent), cond)  # regclass text is already quoted
        try:
            with conn.transaction():
                conn.execute("set local statement_timeout = '10s'")
                if conn.execute(query).fetchone()[0]:
                    orphans.append(f"{child}.{name}")
        except Exception:  # noqa: BLE001 - too slow or not permitted: say so, do not guess
            unchecked.append(f"{child}.{name}")
    if orphans:
        return Check("foreign key integrity", "fail",
                     f"rows violate NOT VALID foreign keys: {_listing(orphans)} (fix the rows, then VALIDATE CONSTRAINT)",
                     items=orphans)
    detail = (f"{len(not_valid)} NOT VALID foreign keys have no orphan rows"
              + (f"; not checked in time: {_listing(unchecked)}" if unchecked else "")
              + " (run ALTER TABLE ... VALIDATE CONSTRAINT)")
    return Check("foreign key integrity", "warn", detail, items=[f"{f[2]}.{f[1]}" for f in not_valid])


# --- comprehensive ---------------------------------------------------------------------------------
def check_invalid_indexes(conn, ctx) -> Check:
    rows = conn.execute(
        """
        select n.nspname || '.' || c.relname from pg_index i join pg_class c on c.oid = i.indexrelid
        join pg_namespace n on n.oid = c.relnamespace
        where (not i.indisvalid or not i.indisready) and n.nspname = any(%s) order by 1
        """, (ctx["schemas"],)).fetchall()
    bad = [r[0] for r in rows]
    if bad:
        return Check("invalid indexes", "fail",
                     f"{len(bad)} invalid indexes (a failed CREATE INDEX CONCURRENTLY?): {_listing(bad)} "
                     "(fix: DROP INDEX CONCURRENTLY then re-create, or REINDEX INDEX CONCURRENTLY)", items=bad)
    return Check("invalid indexes", "pass", "no invalid indexes")


def check_not_valid_constraints(conn, ctx) -> Check:
    rows = conn.execute(
        """
        select k.conrelid::regclass::text || '.' || k.conname || ' (' ||
               case k.contype when 'f' then 'foreign key' when 'c' then 'check' else k.contype::text end || ')'
        from pg_constraint k join pg_namespace n on n.oid = k.connamespace
        where not k.convalidated and n.nspname = any(%s) order by 1
        """, (ctx["schemas"],)).fetchall()
    items = [r[0] for r in rows]
    if items:
        return Check("NOT VALID constraints", "warn",
                     f"{len(items)} constraints not validated yet: {_listing(items)} "
                     "(finish with ALTER TABLE ... VALIDATE CONSTRAINT)", items=items)
    return Check("NOT VALID constraints", "pass", "every constraint is validated")


def check_sequences(conn, ctx) -> Check:
    rows = conn.execute(
        """
        select s.schemaname || '.' || s.sequencename, s.last_value, s.max_value, s.min_value, s.increment_by
        from pg_sequences s where s.schemaname = any(%s) order by 1
        """, (ctx["schemas"],)).fetchall()
    warn, fail = [], []
    for name, last, maxv, minv, inc in rows:
        if last is None:
            continue
        used = (last - minv) / (maxv - minv) if inc > 0 else (maxv - last) / (maxv - minv)
        label = f"{name} at {used:.0%} ({last} of {maxv if inc > 0 else minv})"
        if used >= SEQUENCE_FAIL:
            fail.append(label)
        elif used >= SEQUENCE_WARN:
            warn.append(label)
    if fail:
        return Check("sequences near their maximum", "fail",
                     f"{_listing(fail + warn)} (fix: ALTER SEQUENCE/column to bigint before it runs out)",
                     items=fail + warn)
    if warn:
        return Check("sequences near their maximum", "warn", f"above {SEQUENCE_WARN:.0%}: {_listing(warn)}",
                     items=warn)
    return Check("sequences near their maximum", "pass", f"{len(rows)} sequences below {SEQUENCE_WARN:.0%} of their range")


def check_functions_compile(conn, ctx) -> Check:
    """plpgsql_check when installed; otherwise re-create each plpgsql/SQL function with check_function_bodies on
    inside a transaction that is rolled back (plpgsql: syntax; SQL: also the objects it references)."""
    funcs = conn.execute(
        """
        select p.oid, p.oid::regprocedure::text, l.lanname from pg_proc p
        join pg_namespace n on n.oid = p.pronamespace join pg_language l on l.oid = p.prolang
        where n.nspname = any(%s) and l.lanname in ('plpgsql', 'sql') and p.prokind in ('f', 'p')
          and not exists (select 1 from pg_depend d where d.classid = 'pg_proc'::regclass and d.objid = p.oid
                          and d.deptype = 'e')
        order by 2
        """, (ctx["schemas"],)).fetchall()
    if not funcs:
        return Check("functions compile", "pass", "no plpgsql or SQL functions in the user schemas")
    has_check = conn.execute("select exists (select 1 from pg_extension where extname = 'plpgsql_check')").fetchone()[0]
    if not has_check and conn.execute("select pg_is_in_recovery()").fetchone()[0]:
        return Check("functions compile", "skip", f"{len(funcs)} functions not re-created: this server is a read-only "
                                                  "hot standby (run the comprehensive suite on the primary, or "
                                                  "install plpgsql_check there)")
    broken: list[str] = []
    skipped: list[str] = []
    method = "plpgsql_check" if has_check else "re-created in a rolled-back transaction (syntax and SQL bodies)"
    try:
        with conn.transaction(force_rollback=True):
            conn.execute("set local check_function_bodies = on")
            conn.execute("set local statement_timeout = '10s'")
            conn.execute("set local lock_timeout = '1s'")
            for oid, sig, lang in funcs:
                try:
                    with conn.transaction():
                        if has_check and lang == "plpgsql":
                            row = conn.execute(
                                "select string_agg(message, '; ') from plpgsql_check_function_tb(%s) "
                                "where level = 'error'", (oid,)).fetchone()
                            if row and row[0]:
                                broken.append(f"{sig}: {row[0]}")
                        else:
                            definition = conn.execute("select pg_get_functiondef(%s)", (oid,)).fetchone()[0]
                            conn.execute(definition)
                except Exception as exc:  # noqa: BLE001 - a compile error is the finding
                    text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
                    if "permission denied" in text or "must be owner" in text or "lock timeout" in text:
                        skipped.append(sig)
                    else:
                        broken.append(f"{sig}: {text}")
    except Exception as exc:  # noqa: BLE001
        return Check("functions compile", "skip", f"could not check: {str(exc).splitlines()[0]}")
    if broken:
        return Check("functions compile", "fail", f"{len(broken)} functions fail to compile: {_listing(broken, 5)}",
                     items=broken)
    note = f"; not checked (no ownership or locked): {_listing(skipped)}" if skipped else ""
    if not has_check:
        note += "; install plpgsql_check for checks of plpgsql bodies' references"
    return Check("functions compile", "pass", f"{len(funcs) - len(skipped)} functions compile ({method}){note}")


def check_triggers(conn, ctx) -> Check:
    rows = conn.execute(
        """
        select t.tgrelid::regclass::text || '.' || t.tgname, p.oid is null, t.tgenabled
        from pg_trigger t join pg_class c on c.oid = t.tgrelid join pg_namespace n on n.oid = c.relnamespace
        left join pg_proc p on p.oid = t.tgfoid
        where not t.tgisinternal and n.nspname = any(%s) order by 1
        """, (ctx["schemas"],)).fetchall()
    missing = [r[0] for r in rows if r[1]]
    disabled = [r[0] for r in rows if r[2] == "D"]
    if missing:
        return Check("trigger functions exist", "fail", f"triggers whose function is missing: {_listing(missing)}",
                     items=missing)
    if disabled:
        return Check("trigger functions exist", "warn", f"disabled triggers: {_listing(disabled)}", items=disabled)
    return Check("trigger functions exist", "pass", f"{len(rows)} triggers, all functions present and enabled")


def _mb(n: int | None) -> str:
    return "?" if n is None else f"{n / 1048576:.1f} MB" if n >= 1048576 else f"{n} bytes"


def _s(v: float | None) -> str:
    return "-" if v is None else f"{v:.1f}s"


def check_replication(conn, ctx) -> Check:
    """A standby: how far behind it is. A primary: each standby's lag (bytes and seconds) and each slot's WAL."""
    # lazy: not needed to start `sage --version`, `*help` or `sage mcp`
    from sage_agent.db.replication import replication_picture

    pic = replication_picture(conn)
    st = pic.status
    if st.standby:
        detail = (f"hot standby ({st.upstream}): replay {_mb(st.replay_lag_bytes)} behind what it received, last "
                  f"replayed commit {_s(st.replay_delay_s)} ago" + ("; replay PAUSED" if st.paused else ""))
        return Check("replication", "warn" if st.paused else "pass", detail)
    items = [f"standby {s.name} ({s.client}, {s.state}, {s.sync_state}): {_mb(s.lag_bytes)} behind, "
             f"replay lag {_s(s.replay_lag_s)}" for s in pic.standbys]
    lost = [f"slot {sl.name}: WAL lost (the standby must be re-cloned)" for sl in pic.slots if sl.wal_status == "lost"]
    idle = [f"slot {sl.name} ({sl.slot_type}) inactive, retains {_mb(sl.retained_bytes)} of WAL"
            for sl in pic.slots if not sl.active and sl.wal_status != "lost"]
    held = [f"slot {sl.name} ({sl.slot_type}) active, retains {_mb(sl.retained_bytes)}"
            for sl in pic.slots if sl.active]
    items += lost + idle + held
    summary = (f"primary: {len(pic.standbys)} standby(s), {len(pic.slots)} replication slot(s)"
               + (": " + "; ".join(items) if items else ""))
    if lost:
        return Check("replication", "fail", summary, items=items)
    if idle:
        return Check("replication", "warn", summary + " (drop unused slots: SELECT pg_drop_replication_slot(name))",
                     items=items)
    return Check("replication", "pass", summary, items=items)


SUITE_CHECKS = {
    "basic": [check_connection, check_schemas, check_tables, check_history],
    "standard": [check_rls, check_primary_keys, check_foreign_keys],
    "comprehensive": [check_invalid_indexes, check_not_valid_constraints, check_sequences,
                      check_functions_compile, check_triggers, check_replication],
}


def run_smoke_checks(conn, suite: str = "standard") -> list[Check]:
    """Run the suite (and the ones below it) on an open connection. Each check is isolated from the others."""
    if suite not in SUITES:
        raise ValueError(f"unknown suite {suite!r}: choose {', '.join(SUITES)}")
    state: dict = {"schemas": _schemas(conn)}
    results: list[Check] = []
    for level in SUITES[: SUITES.index(suite) + 1]:
        for func in SUITE_CHECKS[level]:
            started = time.perf_counter()
            try:
                check = func(conn, state)
            except Exception as exc:  # noqa: BLE001 - a broken check is a failed check, not a crash
                if not conn.autocommit:
                    conn.rollback()
                check = Check(func.__name__.removeprefix("check_").replace("_", " "), "fail",
                              f"check could not run: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}")
            check.suite = level
            check.ms = round((time.perf_counter() - started) * 1000, 1)
            results.append(check)
    return results


ICONS = {"pass": "✅", "warn": "⚠️", "fail": "❌", "skip": "⏭️"}


def overall(checks: list[Check]) -> str:
    if any(c.status == "fail" for c in checks):
        return "failed"
    if any(c.status == "warn" for c in checks):
        return "warning"
    return "ok"


def report_markdown(version: str, suite: str, env: str, url: str, checks: list[Check], seconds: float) -> str:
    status = overall(checks)
    label = {"ok": "✅ PASSED", "warning": "⚠️ PASSED WITH WARNINGS", "failed": "❌ FAILED"}[status]
    lines = [f"# Smoke Test Report - {version}", "",
             f"**Date**: {time.strftime('%Y-%m-%d %H:%M:%S', time.gmtime())} UTC",
             f"**Environment**: {env}", f"**Database**: {url}", f"**Test Suite**: {suite}",
             f"**Status**: {label}", "", "## Results", ""]
    for c in checks:
        lines.append(f"- {ICONS.get(c.status, '')} **{c.name}** ({c.suite}): {c.detail}")
    lines += ["", "## Performance", "",
              f"- Total test time: {seconds:.2f}s", f"- Checks run: {len(checks)}", "", "## Next Steps", ""]
    if status == "failed":
        lines.append("- Fix the failing checks above before deploying; re-run `*smoke-test`")
    else:
        lines.append("- Deploy to the next environment; monitor for 24h")
    return "\n".join(lines) + "\n"

"""Both audits (*rls-audit's advisor lints and *schema-audit's findings) summarised per rule in one statement:
how many findings, how bad, and the first three places. This is what `sage watch` keeps of them; a full run
builds every finding's text and fix in Python, which is most of its time on a big schema (20,000 findings
at 20,000 tables), while the summary counts on the server.

The rows come from the same SQL the audits run (lints.LINTS, schema_audit.*_SQL) and the same decisions
(which lints run, which schemas count), so the summary of a full run and this one are the same
(tests/test_watch.py compares them).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Iterable

from sage_agent.ops.security import schema_audit as sa
from sage_agent.ops.security.lints import LINTS, SCHEMA_LINTS, SECURITY_LINTS, SYSTEM_SCHEMAS, lint_params, \
    parse_exposed, skip_reason

SEVERITY_RANK = {"info": 0, "warning": 1, "error": 2}
_LEVEL = {"ERROR": "error", "WARN": "warning", "INFO": "info"}
SHOWN = 3  # places named per rule


@dataclass(frozen=True)
class RuleCount:
    """One rule's findings: the worst severity among them, how many, and the first places (code-point order)."""

    rule: str
    severity: str
    count: int
    first: tuple[str, ...]


@dataclass(frozen=True)
class AuditScope:
    """What decides which lints run and on what, read in the same round trip as the catalog fingerprint."""

    fingerprint: str
    exposed: list[str]
    roles: set[str]
    has_auth_users: bool
    has_buckets: bool
    user_schemas: list[str]


def scope(conn, fingerprint_sql: str) -> AuditScope:
    """The catalog fingerprint and the audits' scope, one statement."""
    row = conn.execute(
        f"select ({fingerprint_sql}), current_setting('pgrst.db_schemas', true),"
        " array(select rolname::text from pg_roles where rolname in ('anon', 'authenticated', 'service_role')),"
        " to_regclass('auth.users') is not null, to_regclass('storage.buckets') is not null,"
        f" array({sa.USER_SCHEMAS_SQL})", (SYSTEM_SCHEMAS,)).fetchone()
    return AuditScope(fingerprint=row[0], exposed=parse_exposed(row[1]), roles=set(row[2]), has_auth_users=row[3],
                      has_buckets=row[4], user_schemas=list(row[5]))


def _first(location: str) -> str:
    return f"(array_agg({location} order by {location} collate \"C\"))[1:{SHOWN}]"


def _summary_sql(sc: AuditScope, server_major: int) -> str:
    parts: list[str] = []
    loc2 = "(x.s || '.' || x.o)"
    for name in SECURITY_LINTS + SCHEMA_LINTS:
        lint = LINTS[name]
        if skip_reason(lint, sc.roles, server_major, has_auth_users=sc.has_auth_users,
                       has_buckets=sc.has_buckets) is not None:
            continue
        assert re.fullmatch(r"[a-z0-9_]+", name)  # a rule name is written into the statement as a literal
        rank = SEVERITY_RANK[_LEVEL[lint.level]]
        # *schema-audit keeps only the lints' findings in user schemas
        where = " where x.s::text = any(%(schemas)s)" if lint.area == "schema" else ""
        parts.append(f"select '{name}'::text, {rank}, count(*), {_first(loc2)}, null::bigint "
                     f"from ({lint.sql}) x(s, o, t, d, k, e){where}")
    loc3 = "(x.s || '.' || x.o || '.' || x.c)"
    case_rule = f"""case when coalesce(x.last, 0)::float8 / x.maxv >= {sa.NEAR_OVERFLOW}
                         then 'int_id_near_overflow' else 'prefer_bigint_ids' end"""
    case_rank = f"""case when coalesce(x.last, 0)::float8 / x.maxv >= {sa.OVERFLOW_ERROR} then 2
                         when coalesce(x.last, 0)::float8 / x.maxv >= {sa.NEAR_OVERFLOW} then 1 else 0 end"""
    parts.append(f"select {case_rule}, max({case_rank}), count(*), {_first(loc3)}, null "
                 f"from ({sa.INT_IDS_SQL}) x(s, o, c, typ, last, maxv) group by 1")
    parts.append(f"select 'timestamp_without_time_zone', 1, count(*), {_first(loc3)}, null "
                 f"from ({sa.TIMESTAMP_SQL}) x(s, o, c)")
    parts.append(f"select 'varchar_n', 0, count(*), {_first(loc3)}, null from ({sa.VARCHAR_SQL}) x(s, o, c, n)")
    parts.append(f"select 'nullable_foreign_key', 0, count(*), {_first(loc3)}, null "
                 f"from ({sa.NULLABLE_FK_SQL}) x(s, o, c, con)")
    loc = "(x.s || '.' || x.o || coalesce('.' || x.c, ''))"
    # naming: the offenders, and (in the last column) how many tables there are, plural ones in `count`
    parts.append(f"select 'naming_not_snake_case', 0, count(*) filter (where coalesce(x.c, x.o) !~ %(snake)s), "
                 f"(array_agg({loc} order by {loc} collate \"C\") filter (where coalesce(x.c, x.o) !~ %(snake)s))"
                 f"[1:{SHOWN}], null from names x")
    parts.append("select 'naming_mixed_plurality', 0, count(*) filter (where x.o like '%%s'), null, count(*) "
                 "from names x where x.c is null")
    return (f"with {sa.COLUMNS_CTE},\nnames(s, o, c) as materialized ({sa.NAMES_SQL})\n"
            + "\nunion all\n".join(parts))


def summarize(conn, sc: AuditScope, server_major: int) -> list[RuleCount]:
    """Both audits' findings per rule, in one statement (rules without findings left out), in rule order."""
    params: dict[str, Any] = {**lint_params(sc.exposed), "schemas": sc.user_schemas, "snake": sa.SNAKE_CASE}
    out: list[RuleCount] = []
    for rule, rank, count, first, tables in conn.execute(_summary_sql(sc, server_major), params).fetchall():
        if rule == "naming_mixed_plurality":
            if sa.mixed_plurality(tables, count):
                out.append(RuleCount(rule, "info", 1, (", ".join(sc.user_schemas),)))
        elif count:
            out.append(RuleCount(rule, next(k for k, v in SEVERITY_RANK.items() if v == rank), count,
                                 tuple(first or ())))
    return sorted(out, key=lambda r: r.rule)


def group(findings: Iterable[tuple[str, str, str]]) -> list[RuleCount]:
    """(rule, severity, location) of a full run -> the same summary (what the watch would keep of it)."""
    by_rule: dict[str, tuple[str, list[str]]] = {}
    for rule, severity, location in findings:
        worst, where = by_rule.setdefault(rule, (severity, []))
        if SEVERITY_RANK[severity] > SEVERITY_RANK[worst]:
            by_rule[rule] = (severity, where)
        where.append(location)
    return [RuleCount(rule, sev, len(where), tuple(sorted(where)[:SHOWN])) for rule, (sev, where) in sorted(by_rule.items())]

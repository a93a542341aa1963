"""Native lints with the Supabase advisor (splinter) names and output shape.

Semantics follow the SQL the Supabase CLI 3.x runs for `supabase db advisors` (splinter): the same system
schemas are excluded, extension-owned objects are skipped, and "exposed to the API" means a schema in the
PostgREST setting `pgrst.db_schemas` (default `public`) that anon or authenticated can SELECT from.
DB Sage lets the caller name the exposed schemas explicitly; by default it reads the same setting.
The queries are DB Sage's own; only names, levels and messages are kept compatible.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

SYSTEM_SCHEMAS = [
    "_timescaledb_cache", "_timescaledb_catalog", "_timescaledb_config", "_timescaledb_internal", "auth", "cron",
    "extensions", "graphql", "graphql_public", "information_schema", "net", "pgmq", "pgroonga", "pgsodium",
    "pgsodium_masks", "pgtle", "pgbouncer", "pg_catalog", "realtime", "repack", "storage", "supabase_functions",
    "supabase_migrations", "tiger", "topology", "vault", "pg_toast",
]
DOCS = "https://supabase.com/docs/guides/database/database-linter?lint="
SENSITIVE_COLUMNS = [
    "password", "passwd", "pwd", "passphrase", "secret", "secret_key", "private_key", "api_key", "apikey",
    "auth_key", "token", "jwt", "access_token", "refresh_token", "oauth_token", "session_token", "bearer_token",
    "auth_code", "session_id", "session_key", "session_secret", "recovery_code", "backup_code",
    "verification_code", "otp", "two_factor", "2fa_secret", "2fa_code", "ssn", "social_security",
    "social_security_number", "driver_license", "drivers_license", "license_number", "passport_number",
    "passport_id", "national_id", "tax_id", "credit_card", "card_number", "cvv", "cvc", "cvn", "bank_account",
    "account_number", "routing_number", "iban", "swift_code", "bic", "health_record", "medical_record",
    "patient_id", "insurance_number", "health_insurance", "medical_insurance", "treatment", "mac_address",
    "macaddr", "imei", "device_uuid", "pgp_key", "gpg_key", "ssh_key", "certificate", "license_key",
    "activation_key", "facial_recognition",
]


@dataclass(frozen=True)
class LintDef:
    name: str
    title: str
    level: str  # ERROR | WARN | INFO
    category: str  # SECURITY | PERFORMANCE
    description: str
    doc: str  # remediation anchor
    sql: str
    needs_roles: bool = False  # uses anon/authenticated privileges
    min_major: int = 0
    area: str = "security"  # security -> *rls-audit, schema -> *schema-audit


_EXPOSED = "n.nspname = any(%(exposed)s)"
_API_SELECT = ("(has_table_privilege('anon', c.oid, 'SELECT') or has_table_privilege('authenticated', c.oid, 'SELECT'))")
# classid makes it an index lookup (objid alone scans pg_depend once per row: 80 ms on 2,000 tables)
_NOT_EXT = ("not exists (select 1 from pg_depend d where d.classid = 'pg_class'::regclass and d.objid = c.oid "
            "and d.deptype = 'e')")



# A lint that filters one catalog's rows (pg_policy's, pg_index's) and joins pg_class on the same oid filters
# pg_class too: the planner does not carry a range over the join, and scanned all of pg_class once a slice.
def _only(column: str) -> str:
    """The restriction of a per-relation lint to the relations in %(only)s (None: every relation) and to the oids
    from %(lo)s to %(hi)s (None: no bound). `sage watch` reruns these lints only on the relations whose catalog rows
    changed (a list), and reads every relation in slices of consecutive oids (a range: an index range scan on
    the catalogs, where a list of 10,000 oids costs ~0.25 s of planning a statement; security/summary.py)."""
    return (f"((%(only)s::oid[] is null or {column} = any(%(only)s::oid[]))"
            f" and (%(lo)s::oid is null or {column} between %(lo)s::oid and %(hi)s::oid))")


_SQL: dict[str, str] = {}

_SQL["rls_disabled_in_public"] = f"""
select n.nspname, c.relname, 'table',
       format('Table `%%s.%%s` is public, but RLS has not been enabled.', n.nspname, c.relname),
       format('rls_disabled_in_public_%%s_%%s', n.nspname, c.relname), '{{}}'::jsonb
from pg_class c join pg_namespace n on n.oid = c.relnamespace
where c.relkind = 'r' and not c.relrowsecurity and {_API_SELECT} and {_EXPOSED}
  and n.nspname <> all(%(excluded)s) and {_only('c.oid')}"""

_SQL["policy_exists_rls_disabled"] = f"""
select n.nspname, c.relname, 'table',
       format('Table `%%s.%%s` has RLS policies but RLS is not enabled on the table. Policies include %%s.',
              n.nspname, c.relname, array_agg(p.polname order by p.polname)),
       format('policy_exists_rls_disabled_%%s_%%s', n.nspname, c.relname), '{{}}'::jsonb
from pg_policy p join pg_class c on c.oid = p.polrelid join pg_namespace n on n.oid = c.relnamespace
where c.relkind = 'r' and not c.relrowsecurity and n.nspname <> all(%(excluded)s) and {_NOT_EXT}
  and {_only('p.polrelid')} and {_only('c.oid')}
group by n.nspname, c.relname, c.oid"""

_SQL["rls_enabled_no_policy"] = f"""
select n.nspname, c.relname, 'table',
       format('Table `%%s.%%s` has RLS enabled, but no policies exist', n.nspname, c.relname),
       format('rls_enabled_no_policy_%%s_%%s', n.nspname, c.relname), '{{}}'::jsonb
from pg_class c join pg_namespace n on n.oid = c.relnamespace
where c.relkind = 'r' and c.relrowsecurity and n.nspname <> all(%(excluded)s) and {_NOT_EXT}
  and {_only('c.oid')} and not exists (select 1 from pg_policy p where p.polrelid = c.oid)"""

# Materialized: each policy's expressions are deparsed once. Inlined, the planner (expecting one schema to pass
# the schema filter) rescanned pg_policy once per schema and deparsed each expression up to three times a scan.
_POLICY_ROWS = f"""
  select n.nspname as schema_name, c.relname as table_name, c.oid as table_oid, c.relrowsecurity as rls,
         p.polname, p.polpermissive, p.polroles,
         (select array_agg(r::regrole::text order by r) from unnest(p.polroles) r) as roles,
         case p.polcmd when 'r' then 'SELECT' when 'a' then 'INSERT' when 'w' then 'UPDATE'
                       when 'd' then 'DELETE' else 'ALL' end as command,
         pg_get_expr(p.polqual, p.polrelid) as qual, pg_get_expr(p.polwithcheck, p.polrelid) as with_check
  from pg_policy p join pg_class c on c.oid = p.polrelid join pg_namespace n on n.oid = c.relnamespace
  where c.relkind = 'r' and {_only('p.polrelid')} and {_only('c.oid')} and n.nspname <> all(%(excluded)s)
"""
_POLICIES = f"\nwith pol as materialized ({_POLICY_ROWS})"
# auth_rls_initplan reads realtime's policies too
_POLICIES_REALTIME = _POLICIES.replace("n.nspname <> all(%(excluded)s)",
                                       "n.nspname <> all(array_remove(%(excluded)s, 'realtime'))")

_TRUE_FORMS = "('true', '(true)', '1=1', '(1=1)')"
_SQL["rls_policy_always_true"] = _POLICIES + f""",
norm as (
  select pol.*, regexp_replace(lower(coalesce(qual, '')), '\\s', '', 'g') as nq,
         regexp_replace(lower(coalesce(with_check, '')), '\\s', '', 'g') as nw
  from pol
  where rls and polpermissive
    and (polroles = array[0::oid] or exists (select 1 from unnest(polroles) r where r::regrole::text in ('anon', 'authenticated')))
),
flag as (
  select norm.*,
    (command in ('UPDATE', 'DELETE', 'ALL') and (nq in {_TRUE_FORMS} or qual is null)) as pu,
    (nw in {_TRUE_FORMS} or (with_check is null and command = 'INSERT')
      or (with_check is null and command in ('UPDATE', 'ALL') and nq in {_TRUE_FORMS})) as pw
  from norm
)
select schema_name, table_name, 'table',
       format('Table `%%s.%%s` has an RLS policy `%%s` for `%%s` that allows unrestricted access%%s. This effectively bypasses row-level security for %%s.',
              schema_name, table_name, polname, command,
              case when pu and pw then ' (both USING and WITH CHECK are always true)'
                   when pu then ' (USING clause is always true)' else ' (WITH CHECK clause is always true)' end,
              array_to_string(roles, ', ')),
       format('rls_policy_always_true_%%s_%%s_%%s', schema_name, table_name, polname),
       jsonb_build_object('policy_name', polname, 'command', command, 'roles', roles, 'qual', qual,
                          'with_check', with_check, 'permissive_using', pu, 'permissive_with_check', pw)
from flag where pu or pw"""

_SQL["multiple_permissive_policies"] = f"""
select n.nspname, c.relname, 'table',
       format('Table `%%s.%%s` has multiple permissive policies for role `%%s` for action `%%s`. Policies include `%%s`',
              n.nspname, c.relname, r.rolname, act.cmd, array_agg(p.polname order by p.polname)),
       format('multiple_permissive_policies_%%s_%%s_%%s_%%s', n.nspname, c.relname, r.rolname, act.cmd), '{{}}'::jsonb
from pg_policy p join pg_class c on c.oid = p.polrelid join pg_namespace n on n.oid = c.relnamespace
join pg_roles r on p.polroles @> array[r.oid] or p.polroles = array[0::oid]
cross join lateral unnest(case p.polcmd when 'r' then array['SELECT'] when 'a' then array['INSERT']
     when 'w' then array['UPDATE'] when 'd' then array['DELETE'] else array['SELECT','INSERT','UPDATE','DELETE'] end) act(cmd)
where c.relkind = 'r' and p.polpermissive and n.nspname <> all(%(excluded)s) and {_NOT_EXT}
  and {_only('p.polrelid')} and {_only('c.oid')} and r.rolname not like 'pg\\_%%' and r.rolname not like 'supabase%%admin' and not r.rolbypassrls
group by n.nspname, c.relname, r.rolname, act.cmd having count(*) > 1"""

_INITPLAN_FUNCS = ("auth.uid()", "auth.jwt()", "auth.role()", "auth.email()")


def _initplan_expr(col: str) -> str:
    parts = [f"({col} like '%%{f}%%' and lower({col}) not like '%%select {f}%%')" for f in _INITPLAN_FUNCS]
    parts.append(f"({col} like '%%current\\_setting(%%)%%' and lower({col}) not like '%%select current\\_setting(%%)%%')")
    return " or ".join(parts)


_SQL["auth_rls_initplan"] = _POLICIES_REALTIME + f"""
select schema_name, table_name, 'table',
       format('Table `%%s.%%s` has a row level security policy `%%s` that re-evaluates current_setting() or auth.<function>() for each row. This produces suboptimal query performance at scale. Resolve the issue by replacing `auth.<function>()` with `(select auth.<function>())`.',
              schema_name, table_name, polname),
       format('auth_rls_init_plan_%%s_%%s_%%s', schema_name, table_name, polname), jsonb_build_object('policy_name', polname)
from pol where rls and ({_initplan_expr('qual')} or {_initplan_expr('with_check')})"""

_SQL["rls_references_user_metadata"] = _POLICIES + """
select schema_name, table_name, 'table',
       format('Table `%%s.%%s` has a row level security policy `%%s` that references Supabase Auth `user_metadata`. `user_metadata` is editable by end users and should never be used in a security context.',
              schema_name, table_name, polname),
       format('rls_references_user_metadata_%%s_%%s_%%s', schema_name, table_name, polname), jsonb_build_object('policy_name', polname)
from pol
where qual like '%%auth.jwt()%%user_metadata%%' or qual like '%%current_setting(%%request.jwt.claims%%)%%user_metadata%%'
   or with_check like '%%auth.jwt()%%user_metadata%%' or with_check like '%%current_setting(%%request.jwt.claims%%)%%user_metadata%%'"""

# The policy lints side by side (the watch's per-relation read, security/summary.py): one `policies` CTE deparses
# each policy once for the three of them (each deparse opens the table: ~70 us a policy), each lint reading its
# schemas' rows from it.
_POLICY_LINTS = {"rls_policy_always_true": _POLICIES, "auth_rls_initplan": _POLICIES_REALTIME,
                 "rls_references_user_metadata": _POLICIES}
POLICIES_CTE = "policies as materialized (" + _POLICY_ROWS.replace(
    "n.nspname <> all(%(excluded)s)", "n.nspname <> all(array_remove(%(excluded)s, 'realtime'))") + ")"


def on_shared_policies(name: str) -> str | None:
    """A policy lint's SQL reading the `policies` CTE (POLICIES_CTE, defined by the statement around it) instead of
    deparsing the policies itself; None for a lint that reads no policies."""
    own = _POLICY_LINTS.get(name)
    if own is None:
        return None
    sql = _SQL[name]
    assert sql.startswith(own)
    rows = "policies" if own is _POLICIES_REALTIME else "policies where schema_name <> all(%(excluded)s)"
    return f"\nwith pol as (select * from {rows})" + sql[len(own):]


_INVOKER = ("lower(coalesce(c.reloptions::text, '{}'))::text[] && array['security_invoker=1', 'security_invoker=true', "
            "'security_invoker=yes', 'security_invoker=on']")
_SQL["auth_users_exposed"] = f"""
select n.nspname, c.relname, 'view',
       format('View/Materialized View "%%s" in the public schema may expose `auth.users` data to anon or authenticated roles.', c.relname),
       format('auth_users_exposed_%%s_%%s', n.nspname, c.relname),
       jsonb_build_object('exposed_to', array_remove(array[
           case when has_table_privilege('anon', c.oid, 'SELECT') then 'anon' end,
           case when has_table_privilege('authenticated', c.oid, 'SELECT') then 'authenticated' end], null))
from pg_class au join pg_namespace an on an.oid = au.relnamespace and an.nspname = 'auth' and au.relname = 'users'
join pg_depend d on d.refobjid = au.oid and d.deptype = 'n'
join pg_rewrite rw on rw.oid = d.objid
join pg_class c on c.oid = rw.ev_class
join pg_namespace n on n.oid = c.relnamespace
where {_API_SELECT} and {_EXPOSED}
  and (c.relkind = 'm' or (c.relkind = 'v' and not ({_INVOKER})) or (c.relkind = 'v' and ({_INVOKER}) and not au.relrowsecurity))
group by n.nspname, c.relname, c.oid"""

_SQL["security_definer_view"] = f"""
select n.nspname, c.relname, 'view',
       format('View `%%s.%%s` is defined with the SECURITY DEFINER property', n.nspname, c.relname),
       format('security_definer_view_%%s_%%s', n.nspname, c.relname), '{{}}'::jsonb
from pg_class c join pg_namespace n on n.oid = c.relnamespace
where c.relkind = 'v' and {_API_SELECT} and {_EXPOSED} and n.nspname <> all(%(excluded)s) and {_NOT_EXT}
  and {_only('c.oid')} and not ({_INVOKER})"""

_SQL["function_search_path_mutable"] = """
select n.nspname, p.proname, 'function',
       format('Function `%%s.%%s` has a role mutable search_path', n.nspname, p.proname),
       format('function_search_path_mutable_%%s_%%s_%%s', n.nspname, p.proname, md5(p.prosrc)),
       jsonb_build_object('arguments', pg_get_function_identity_arguments(p.oid), 'security_definer', p.prosecdef)
from pg_proc p join pg_namespace n on n.oid = p.pronamespace
where n.nspname <> all(%(excluded)s) and n.nspname not like 'pg\\_%%'
  and not exists (select 1 from pg_depend d where d.classid = 'pg_proc'::regclass and d.objid = p.oid
                  and d.deptype = 'e')
  and not exists (select 1 from unnest(coalesce(p.proconfig, '{}')) cfg where cfg like 'search_path=%%')"""

_WHO = {"anon": ("can be executed by the `anon` role", "callable without signing in", "if it is not meant to be public"),
        "authenticated": ("can be executed by the `authenticated` role", "callable by signed-in users",
                          "if signed-in users should not call it")}
for _role in ("anon", "authenticated"):
    # only schemas PostgREST exposes: a function elsewhere has no /rest/v1/rpc/ path
    _SQL[f"{_role}_security_definer_function_executable"] = f"""
select n.nspname, p.proname, 'function',
       format('Function `%%s.%%s(%%s)` {_WHO[_role][0]} as a `SECURITY DEFINER` function via `/rest/v1/rpc/%%s`. Revoke `EXECUTE` or switch it to `SECURITY INVOKER` if that is not intentional.',
              n.nspname, p.proname, pg_get_function_identity_arguments(p.oid), p.proname),
       format('{_role}_security_definer_function_executable_%%s_%%s_%%s', n.nspname, p.proname, pg_get_function_identity_arguments(p.oid)),
       jsonb_build_object('arguments', pg_get_function_identity_arguments(p.oid), 'language', l.lanname, 'security_definer', true)
from pg_proc p join pg_namespace n on n.oid = p.pronamespace join pg_language l on l.oid = p.prolang
where p.prosecdef and has_function_privilege('{_role}', p.oid, 'EXECUTE') and {_EXPOSED}
  and n.nspname <> all(%(excluded)s)"""

# The privilege check runs only on tables with a sensitive column (after `offset 0`, which keeps the planner
# from moving it into the scan of every table: 400 ms at 20,000 tables).
_SQL["sensitive_columns_exposed"] = f"""
select t.nspname, t.relname, 'table',
       format('Table `%%s.%%s` is exposed via API without RLS and contains potentially sensitive column(s): %%s. This may lead to data exposure.',
              t.nspname, t.relname, array_to_string(t.cols, ', ')),
       format('sensitive_columns_exposed_%%s_%%s', t.nspname, t.relname),
       jsonb_build_object('sensitive_columns', t.cols)
from (select n.nspname, c.relname, c.oid, array_agg(distinct a.attname order by a.attname) as cols
      from pg_attribute a join unnest(%(sensitive)s::text[]) sens(name) on sens.name = replace(lower(a.attname), '-', '_')
      join pg_class c on c.oid = a.attrelid join pg_namespace n on n.oid = c.relnamespace
      where a.attnum > 0 and not a.attisdropped and c.relkind = 'r' and not c.relrowsecurity and {_EXPOSED}
        and n.nspname <> all(%(excluded)s) and {_only('c.oid')}
      group by n.nspname, c.relname, c.oid offset 0) t
join pg_class c on c.oid = t.oid
where {_API_SELECT}"""

_SQL["extension_in_public"] = """
select e.extnamespace::regnamespace::text, e.extname, 'extension',
       format('Extension `%%s` is installed in the public schema. Move it to another schema.', e.extname),
       format('extension_in_public_%%s', e.extname), '{}'::jsonb
from pg_extension e where e.extname <> 'plpgsql' and e.extnamespace::regnamespace::text = 'public'"""

for _kind, _rk, _label, _word in (("materialized_view_in_api", "m", "materialized view", "Materialized view"),
                                   ("foreign_table_in_api", "f", "foreign table", "Foreign table")):
    _msg = "is selectable by anon or authenticated roles" if _rk == "m" else "is accessible over APIs"
    _SQL[_kind] = f"""
select n.nspname, c.relname, '{_label}',
       format('{_word} `%%s.%%s` {_msg}', n.nspname, c.relname),
       format('{_kind}_%%s_%%s', n.nspname, c.relname), '{{}}'::jsonb
from pg_class c join pg_namespace n on n.oid = c.relnamespace
where c.relkind = '{_rk}' and {_API_SELECT} and {_EXPOSED} and n.nspname <> all(%(excluded)s) and {_NOT_EXT}
  and {_only('c.oid')}"""

# Supabase Queues (pgmq): queue tables are pgmq.q_<queue>; "Expose Queues via PostgREST" adds pgmq_public to
# pgrst.db_schemas. Splinter matches `relname like 'q_%'` (the underscore is a LIKE wildcard: any name of two or
# more characters starting with q) and reuses rls_disabled_in_public's cache key; both kept so findings and
# dismissals carry over.
_SQL["insecure_queue_exposed_in_api"] = f"""
select n.nspname, c.relname, 'table',
       format('Table \\`%%s.%%s\\` is public, but RLS has not been enabled.', n.nspname, c.relname),
       format('rls_disabled_in_public_%%s_%%s', n.nspname, c.relname), '{{}}'::jsonb
from pg_class c join pg_namespace n on n.oid = c.relnamespace
where c.relkind = 'r' and not c.relrowsecurity and {_API_SELECT} and n.nspname = 'pgmq' and c.relname like 'q_%%'
  and 'pgmq_public' = any(%(exposed)s)"""

# pg_graphql introspection shows every relation the caller can SELECT any column of (RLS does not hide it),
# in any schema but the platform's; relkinds as pg_graphql reflects them (partitioned parents are not, their
# partitions are). Only where the extension is installed: without it there is no /graphql/v1.
_GRAPHQL_TYPE = ("case c.relkind when 'r' then 'table' when 'v' then 'view' when 'm' then 'materialized view' "
                 "else 'foreign table' end")
for _role, _lint, _to, _audience in (
        ("anon", "pg_graphql_anon_table_exposed", "", "if it should not be discoverable without signing in"),
        ("authenticated", "pg_graphql_authenticated_table_exposed", " to signed-in users",
         "if it should not be discoverable to every account")):
    _SQL[_lint] = f"""
select n.nspname, c.relname, {_GRAPHQL_TYPE},
       format('%%s `%%s.%%s` is visible in the GraphQL schema{_to} because the `{_role}` role can `SELECT` it. Revoke `SELECT` from `{_role}` {_audience}.',
              {_GRAPHQL_TYPE}, n.nspname, c.relname),
       format('{_lint}_%%s_%%s', n.nspname, c.relname), '{{}}'::jsonb
from pg_class c join pg_namespace n on n.oid = c.relnamespace
where exists (select 1 from pg_extension where extname = 'pg_graphql')
  and c.relkind in ('r', 'v', 'm', 'f') and n.nspname <> all(%(excluded)s) and {_only('c.oid')}
  and (has_table_privilege('{_role}', c.oid, 'SELECT')
       or exists (select 1 from pg_attribute a where a.attrelid = c.oid and a.attnum > 0 and not a.attisdropped
                  and has_column_privilege('{_role}', c.oid, a.attnum, 'SELECT')))"""

# --- performance lints shared with *schema-audit --------------------------------------------------------------
# reg* types whose OIDs pg_upgrade cannot carry over (regclass, regrole, regtype are fine).
# The reg* columns first, in one pass over pg_attribute: joined to the schemas first, the planner (which expects
# one schema to pass the filter) rescanned pg_attribute once per schema (3.8 s at 20,000 tables).
_SQL["unsupported_reg_types"] = f"""
with a as materialized (
  select a.attrelid, a.attname, t.typname
  from pg_attribute a join pg_type t on t.oid = a.atttypid join pg_namespace tn on tn.oid = t.typnamespace
  where tn.nspname = 'pg_catalog' and not a.attisdropped
    and t.typname in ('regcollation', 'regconfig', 'regdictionary', 'regnamespace', 'regoper', 'regoperator',
                      'regproc', 'regprocedure') and {_only('a.attrelid')})
select n.nspname, c.relname, 'table',
       format('Table \\`%%s.%%s\\` has a column \\`%%s\\` with unsupported reg* type \\`%%s\\`.',
              n.nspname, c.relname, a.attname, a.typname),
       format('unsupported_reg_types_%%s_%%s_%%s', n.nspname, c.relname, a.attname),
       jsonb_build_object('column', a.attname)
from a join pg_class c on c.oid = a.attrelid join pg_namespace n on n.oid = c.relnamespace
where n.nspname not in ('pg_catalog', 'information_schema', 'pgsodium')"""

# Auth may rewrite its unique keys (email, phone); only its primary key is a stable target.
_SQL["fkey_to_auth_unique"] = f"""
select n.nspname, r.relname, 'table',
       format('Table `%%s`.`%%s` has a foreign key `%%s` referencing an auth unique constraint',
              n.nspname, r.relname, c.conname),
       format('fkey_to_auth_unique_%%s_%%s_%%s', n.nspname, r.relname, c.conname),
       jsonb_build_object('foreign_key', c.conname)
from pg_constraint c join pg_class r on r.oid = c.conrelid join pg_namespace n on n.oid = r.relnamespace
join pg_class ref on ref.oid = c.confrelid join pg_namespace rn on rn.oid = ref.relnamespace
join pg_index i on i.indexrelid = c.conindid
where c.contype = 'f' and rn.nspname = 'auth' and i.indisunique and not i.indisprimary and {_only('c.conrelid')}"""

# Versions no longer in pg_available_extension_versions (pg_upgrade residue) are ignored, as splinter does.
_SQL["extension_versions_outdated"] = """
select e.extnamespace::regnamespace::text, x.name, 'extension',
       format('Extension `%%s` is using version `%%s` but version `%%s` is available. Using outdated extension '
              'versions may expose the database to security vulnerabilities.',
              x.name, x.installed_version, x.default_version),
       format('extension_versions_outdated_%%s_%%s', x.name, x.installed_version),
       jsonb_build_object('extension_name', x.name, 'installed_version', x.installed_version,
                          'default_version', x.default_version)
from pg_available_extensions x join pg_extension e on e.extname = x.name
join pg_available_extension_versions v on v.name = x.name and v.installed
where x.installed_version is not null and x.default_version is not null
  and x.installed_version <> x.default_version"""

# Public buckets serve object URLs without any policy; a broad SELECT policy on storage.objects also lets
# clients list every file. Broad = no qual, always true, or exactly `bucket_id = '<this bucket>'`.
_BUCKET_ONLY = r"^\s*\(*\s*bucket_id\s*=\s*'((?:[^']|'')*)'(?:\s*::\s*[[:alnum:]_.]+)?\s*\)*\s*$"
_SQL["public_bucket_allows_listing"] = r"""
with /* db-sage */ hits as (
  select b.id::text as bucket_id, b.name::text as bucket_name, p.policyname::text as policyname
  from storage.buckets b
  join pg_policies p on p.schemaname = 'storage' and p.tablename = 'objects' and p.cmd in ('SELECT', 'ALL')
   and p.permissive = 'PERMISSIVE' and p.roles && array['public', 'anon', 'authenticated']::name[]
  where b.public and (p.qual is null
     or regexp_replace(lower(p.qual), '\s', '', 'g') in ('true', '(true)', '1=1', '(1=1)')
     or replace((regexp_match(p.qual, %(bucket_only)s, 'i'))[1], '''''', '''') = b.id::text))
select 'storage', bucket_name, 'bucket',
       format('Public bucket `%%s` has %%s broad SELECT %%s on `storage.objects` (%%s), allowing clients to list '
              'all files. Public buckets don''t need this for object URL access and it may expose more data than '
              'intended.', bucket_name, count(*), case when count(*) = 1 then 'policy' else 'policies' end,
              string_agg(policyname, ', ' order by policyname)),
       format('public_bucket_allows_listing_%%s', bucket_id),
       jsonb_build_object('bucket_id', bucket_id, 'bucket_name', bucket_name, 'policy_count', count(*),
                          'policy_names', array_agg(policyname order by policyname))
from hits group by bucket_id, bucket_name order by bucket_id"""

_SQL["no_primary_key"] = f"""
select n.nspname, c.relname, 'table', format('Table `%%s.%%s` does not have a primary key', n.nspname, c.relname),
       format('no_primary_key_%%s_%%s', n.nspname, c.relname), '{{}}'::jsonb
from pg_class c join pg_namespace n on n.oid = c.relnamespace
where c.relkind = 'r' and n.nspname <> all(%(excluded)s) and n.nspname not like 'pg\\_%%' and {_NOT_EXT}
  and {_only('c.oid')} and not exists (select 1 from pg_index i where i.indrelid = c.oid and i.indisprimary)"""

_SQL["unindexed_foreign_keys"] = f"""
select n.nspname, c.relname, 'table',
       format('Table `%%s.%%s` has a foreign key `%%s` without a covering index. This can lead to suboptimal query performance.',
              n.nspname, c.relname, ct.conname),
       format('unindexed_foreign_keys_%%s_%%s_%%s', n.nspname, c.relname, ct.conname),
       jsonb_build_object('fkey_name', ct.conname, 'fkey_columns', ct.conkey,
         'columns', (select array_agg(a.attname order by k.ord) from unnest(ct.conkey) with ordinality k(att, ord)
                     join pg_attribute a on a.attrelid = c.oid and a.attnum = k.att))
from pg_constraint ct join pg_class c on c.oid = ct.conrelid join pg_namespace n on n.oid = c.relnamespace
where ct.contype = 'f' and n.nspname <> all(%(excluded)s) and n.nspname not like 'pg\\_%%' and {_NOT_EXT}
  and {_only('ct.conrelid')} and not exists (select 1 from pg_index i where i.indrelid = c.oid and i.indisvalid
                  and (string_to_array(i.indkey::text, ' ')::smallint[])[1:array_length(ct.conkey, 1)] = ct.conkey)"""

_SQL["duplicate_index"] = f"""
select n.nspname, c.relname, case c.relkind when 'r' then 'table' else 'materialized view' end,
       format('Table `%%s.%%s` has identical indexes %%s. Drop all except one of them', n.nspname, c.relname,
              array_agg(ic.relname order by ic.relname)),
       format('duplicate_index_%%s_%%s_%%s', n.nspname, c.relname, array_agg(ic.relname order by ic.relname)),
       jsonb_build_object('indexes', array_agg(ic.relname order by ic.relname))
from pg_index x join pg_class ic on ic.oid = x.indexrelid
join pg_class c on c.oid = x.indrelid join pg_namespace n on n.oid = c.relnamespace
where c.relkind in ('r', 'm') and n.nspname <> all(%(excluded)s) and n.nspname not like 'pg\\_%%' and {_NOT_EXT}
  and {_only('x.indrelid')} and {_only('c.oid')}
  -- identical definitions have identical key columns: only those pairs pay for pg_get_indexdef
  and exists (select 1 from pg_index y where y.indrelid = x.indrelid and y.indexrelid <> x.indexrelid
              and y.indkey::text = x.indkey::text)
group by n.nspname, c.relkind, c.relname, replace(pg_get_indexdef(x.indexrelid), ic.relname, '') having count(*) > 1"""

# The indexes unused_index looks at (from the catalog); whether one was ever scanned is the statistics' part
# (pg_stat_user_indexes.idx_scan is pg_stat_get_numscans). `sage watch` keeps the candidates per relation and asks
# only the statistics again on each audit.
UNUSED_INDEX_CANDIDATES_SQL = f"""
select s.schemaname, s.relname, s.indexrelname, s.indexrelid, s.relid
from pg_stat_user_indexes s join pg_index i on i.indexrelid = s.indexrelid
where not i.indisunique and not i.indisprimary and s.schemaname <> all(%(excluded)s) and {_only('s.relid')}
  and not exists (select 1 from pg_depend d where d.classid = 'pg_class'::regclass and d.objid = s.relid
                  and d.deptype = 'e')"""

_SQL["unused_index"] = f"""
select s.schemaname, s.relname, 'table',
       format('Index `%%s` on table `%%s.%%s` has not been used', s.indexrelname, s.schemaname, s.relname),
       format('unused_index_%%s_%%s_%%s', s.schemaname, s.relname, s.indexrelname),
       jsonb_build_object('index', s.indexrelname, 'size_bytes', pg_relation_size(s.indexrelid))
from ({UNUSED_INDEX_CANDIDATES_SQL}) s
where pg_stat_get_numscans(s.indexrelid) = 0"""

_SQL["table_bloat"] = """
with w as (
  select s.schemaname, s.tablename, sum((1 - s.null_frac) * s.avg_width) as width
  from pg_stats s where s.schemaname <> all(%(excluded)s) group by 1, 2
), est as (
  select w.schemaname, w.tablename, c.relpages, current_setting('block_size')::numeric as bs,
         ceil(c.reltuples * (w.width + 28) / (current_setting('block_size')::numeric - 24)) as otta
  from w join pg_namespace n on n.nspname = w.schemaname
  join pg_class c on c.relnamespace = n.oid and c.relname = w.tablename and c.relkind = 'r'
)
select schemaname, tablename, 'table', format('Table `%%s`.`%%s` has excessive bloat', schemaname, tablename),
       format('table_bloat_%%s_%%s', schemaname, tablename),
       jsonb_build_object('bloat_ratio', round(relpages / nullif(otta, 0)::numeric, 1),
                          'waste_bytes', ((relpages - otta) * bs)::bigint)
from est
where otta > 0 and relpages / otta::numeric > %(bloat_ratio)s and (relpages - otta) * bs > %(bloat_bytes)s"""

LINTS: dict[str, LintDef] = {}


def _def(name, title, level, category, description, doc, area="security", needs_roles=False, min_major=0):
    LINTS[name] = LintDef(name, title, level, category, description, doc, _SQL[name], needs_roles, min_major, area)


_def("rls_disabled_in_public", "RLS Disabled in Public", "ERROR", "SECURITY",
     "Detects cases where row level security (RLS) has not been enabled on tables in schemas exposed to PostgREST",
     "0013_rls_disabled_in_public", needs_roles=True)
_def("policy_exists_rls_disabled", "Policy Exists RLS Disabled", "ERROR", "SECURITY",
     "Detects cases where row level security (RLS) policies have been created, but RLS has not been enabled for the underlying table.",
     "0007_policy_exists_rls_disabled")
_def("rls_enabled_no_policy", "RLS Enabled No Policy", "INFO", "SECURITY",
     "Detects cases where row level security (RLS) has been enabled on a table but no RLS policies have been created.",
     "0008_rls_enabled_no_policy")
_def("rls_policy_always_true", "RLS Policy Always True", "WARN", "SECURITY",
     "Detects RLS policies that use overly permissive expressions like `USING (true)` or `WITH CHECK (true)` for UPDATE, DELETE, or INSERT operations. SELECT policies with `USING (true)` are intentionally excluded as this pattern is often used deliberately for public read access.",
     "0024_permissive_rls_policy")
_def("multiple_permissive_policies", "Multiple Permissive Policies", "WARN", "PERFORMANCE",
     "Detects if multiple permissive row level security policies are present on a table for the same `role` and `action` (e.g. insert). Multiple permissive policies are suboptimal for performance as each policy must be executed for every relevant query.",
     "0006_multiple_permissive_policies")
_def("auth_rls_initplan", "Auth RLS Initialization Plan", "WARN", "PERFORMANCE",
     "Detects if calls to `current_setting()` and `auth.<function>()` in RLS policies are being unnecessarily re-evaluated for each row",
     "0003_auth_rls_initplan")
_def("rls_references_user_metadata", "RLS references user metadata", "ERROR", "SECURITY",
     "Detects when Supabase Auth user_metadata is referenced insecurely in a row level security (RLS) policy.",
     "0015_rls_references_user_metadata")
_def("auth_users_exposed", "Exposed Auth Users", "ERROR", "SECURITY",
     "Detects if auth.users is exposed to anon or authenticated roles via a view or materialized view in schemas exposed to PostgREST, potentially compromising user data security.",
     "0002_auth_users_exposed", needs_roles=True)
_def("security_definer_view", "Security Definer View", "ERROR", "SECURITY",
     "Detects views defined with the SECURITY DEFINER property. These views enforce Postgres permissions and row level security policies (RLS) of the view creator, rather than that of the querying user",
     "0010_security_definer_view", needs_roles=True, min_major=15)
_def("function_search_path_mutable", "Function Search Path Mutable", "WARN", "SECURITY",
     "Detects functions where the search_path parameter is not set.", "0011_function_search_path_mutable")
_def("anon_security_definer_function_executable", "Public Can Execute SECURITY DEFINER Function", "WARN", "SECURITY",
     "Detects `SECURITY DEFINER` functions that are callable without signing in. Revoke `EXECUTE`, switch the function to `SECURITY INVOKER`, or move it out of your exposed API schema if it is not meant to be public.",
     "0028_anon_security_definer_function_executable", needs_roles=True)
_def("authenticated_security_definer_function_executable", "Signed-In Users Can Execute SECURITY DEFINER Function",
     "WARN", "SECURITY",
     "Detects `SECURITY DEFINER` functions that are callable by signed-in users. Revoke `EXECUTE`, switch the function to `SECURITY INVOKER`, or move it out of your exposed API schema if signed-in users should not call it.",
     "0029_authenticated_security_definer_function_executable", needs_roles=True)
_def("sensitive_columns_exposed", "Sensitive Columns Exposed", "ERROR", "SECURITY",
     "Detects tables exposed via API that contain columns with potentially sensitive data (PII, credentials, financial info) without RLS protection.",
     "0023_sensitive_columns_exposed", needs_roles=True)
_def("extension_in_public", "Extension in Public", "WARN", "SECURITY",
     "Detects extensions installed in the `public` schema.", "0014_extension_in_public")
_def("materialized_view_in_api", "Materialized View in API", "WARN", "SECURITY",
     "Detects materialized views that are accessible over the Data APIs.", "0016_materialized_view_in_api",
     needs_roles=True)
_def("foreign_table_in_api", "Foreign Table in API", "WARN", "SECURITY",
     "Detects foreign tables that are accessible over APIs. Foreign tables do not respect row level security policies.",
     "0017_foreign_table_in_api", needs_roles=True)
_def("insecure_queue_exposed_in_api", "Insecure Queue Exposed in API", "ERROR", "SECURITY",
     "Detects cases where an insecure Queue is exposed over Data APIs", "0019_insecure_queue_exposed_in_api",
     needs_roles=True)
_def("pg_graphql_anon_table_exposed", "Public Can See Object in GraphQL Schema", "WARN", "SECURITY",
     "Detects tables, views, materialized views, and foreign tables that are visible in the GraphQL schema to anyone using your public anon key. Revoke `SELECT` from `anon` for objects that should not be discoverable before sign-in, and check lint 0027 for the matching signed-in-user exposure.",
     "0026_pg_graphql_anon_table_exposed", needs_roles=True)
_def("pg_graphql_authenticated_table_exposed", "Signed-In Users Can See Object in GraphQL Schema", "WARN", "SECURITY",
     "Detects tables, views, materialized views, and foreign tables that are visible in the GraphQL schema to signed-in users. Revoke `SELECT` from `authenticated` for objects that signed-in users should not discover, and check lint 0026 for the matching public exposure.",
     "0027_pg_graphql_authenticated_table_exposed", needs_roles=True)
_def("unsupported_reg_types", "Unsupported reg types", "WARN", "SECURITY",
     "Identifies columns using unsupported reg* types outside pg_catalog schema, which prevents database upgrades using pg_upgrade.",
     "unsupported_reg_types")
_def("fkey_to_auth_unique", "Foreign Key to Auth Unique Constraint", "ERROR", "SECURITY",
     "Detects user defined foreign keys to unique constraints in the auth schema.", "0021_fkey_to_auth_unique")
_def("extension_versions_outdated", "Extension Versions Outdated", "WARN", "SECURITY",
     "Detects extensions that are not using the default (recommended) version.", "0022_extension_versions_outdated")
_def("public_bucket_allows_listing", "Public Bucket Allows Listing", "WARN", "SECURITY",
     "Detects public storage buckets with a broad SELECT policy on `storage.objects`, which allows clients to list all files in the bucket.",
     "0025_public_bucket_allows_listing")
_def("no_primary_key", "No Primary Key", "INFO", "PERFORMANCE",
     "Detects if a table does not have a primary key. Tables without a primary key can be inefficient to interact with at scale.",
     "0004_no_primary_key", area="schema")
_def("unindexed_foreign_keys", "Unindexed foreign keys", "INFO", "PERFORMANCE",
     "Identifies foreign key constraints without a covering index, which can impact database performance.",
     "0001_unindexed_foreign_keys", area="schema")
_def("duplicate_index", "Duplicate Index", "WARN", "PERFORMANCE",
     "Detects cases where two ore more identical indexes exist.", "0009_duplicate_index", area="schema")
_def("unused_index", "Unused Index", "INFO", "PERFORMANCE",
     "Detects if an index has never been used and may be a candidate for removal.", "0005_unused_index", area="schema")
_def("table_bloat", "Table Bloat", "INFO", "PERFORMANCE",
     "Detects if a table has excess bloat and may benefit from maintenance operations like vacuum full or cluster.",
     "0020_table_bloat", area="schema")

SECURITY_LINTS = [n for n, d in LINTS.items() if d.area == "security"]
# The lints whose findings each come from one relation's own catalog rows (its pg_class, pg_attribute, pg_index,
# pg_constraint, pg_policy and pg_rewrite rows): their SQL takes %(only)s (see _only). The others read what is not
# one relation's (functions, extensions, statistics, buckets, auth's tables) and always run whole.
PER_RELATION_LINTS = frozenset({
    "rls_disabled_in_public", "policy_exists_rls_disabled", "rls_enabled_no_policy", "rls_policy_always_true",
    "multiple_permissive_policies", "auth_rls_initplan", "rls_references_user_metadata", "security_definer_view",
    "sensitive_columns_exposed", "materialized_view_in_api", "foreign_table_in_api",
    "pg_graphql_anon_table_exposed", "pg_graphql_authenticated_table_exposed", "unsupported_reg_types",
    "no_primary_key", "unindexed_foreign_keys", "duplicate_index",
    # the referencing table's constraint; auth's indexes are part of what every relation depends on
    "fkey_to_auth_unique"})
SCHEMA_LINTS = [n for n, d in LINTS.items() if d.area == "schema"]


@dataclass
class LintRun:
    lints: list[dict[str, Any]]
    skipped: dict[str, str]  # lint name -> reason
    exposed: list[str]


def exposed_schemas(conn) -> list[str]:
    """PostgREST's exposed schemas as splinter reads them: `pgrst.db_schemas` (unset: public, as the Supabase CLI's
    advisors assume). Set but empty means PostgREST exposes nothing: no schema is API-facing."""
    return parse_exposed(conn.execute("select current_setting('pgrst.db_schemas', true)").fetchone()[0])


def project_exposed(ctx) -> list[str] | None:
    """For the project's own local database, the schemas its supabase/config.toml exposes through the Data API
    ([api] schemas), which `supabase db advisors` lints in place of pgrst.db_schemas; None elsewhere."""
    # lazy: db.schemas is light, but this module is imported by the watch before any project is known
    from sage_agent.db.schemas import api_exposed_schemas

    target = getattr(ctx, "target", None)
    if target is None or not target.is_project_local:
        return None
    return api_exposed_schemas(ctx.project)


def parse_exposed(raw: str | None) -> list[str]:
    """The schema list of a `pgrst.db_schemas` value (unset: public; set but empty: none)."""
    if raw is None:
        return ["public"]
    return [s.strip() for s in raw.split(",") if s.strip()]


def roles_present(conn) -> set[str]:
    rows = conn.execute("select rolname from pg_roles where rolname in ('anon', 'authenticated', 'service_role')")
    return {r[0] for r in rows.fetchall()}


def skip_reason(lint: LintDef, roles: set[str], server_major: int, *, has_auth_users: bool,
                has_buckets: bool) -> str | None:
    """Why `lint` cannot run on this server (None: it runs; "": nothing to look at, not worth a note)."""
    if lint.needs_roles and not {"anon", "authenticated"} <= roles:
        return "no anon/authenticated roles on this server (plain PostgreSQL, no Supabase Data API)"
    if lint.name == "auth_users_exposed" and not has_auth_users:
        return "no auth.users table (no Supabase Auth)"
    if lint.name == "public_bucket_allows_listing" and not has_buckets:
        return ""  # no Supabase Storage: no buckets to list (splinter reports nothing, not a skip)
    if server_major < lint.min_major:
        return f"needs PostgreSQL {lint.min_major}+ (security_invoker views)"
    return None


def lint_params(exposed: list[str], *, bloat_ratio: float = 70.0, bloat_bytes: int = 20 * 1024 * 1024) -> dict[str, Any]:
    """The named parameters every lint's SQL takes."""
    return {"excluded": SYSTEM_SCHEMAS, "exposed": exposed, "sensitive": SENSITIVE_COLUMNS,
            "bloat_ratio": bloat_ratio, "bloat_bytes": bloat_bytes, "bucket_only": _BUCKET_ONLY,
            "only": None, "lo": None, "hi": None}


def run_lints(conn, names: list[str], exposed: list[str] | None = None, *, server_major: int | None = None,
              bloat_ratio: float = 70.0, bloat_bytes: int = 20 * 1024 * 1024) -> LintRun:
    """Run the named lints on an open connection (read-only). Lints that need what the server lacks are skipped."""
    exposed = exposed_schemas(conn) if exposed is None else exposed
    roles = roles_present(conn)
    if server_major is None:
        server_major = int(conn.execute("select current_setting('server_version_num')::int / 10000").fetchone()[0])
    has_auth_users, has_buckets = conn.execute(
        "select to_regclass('auth.users') is not null, to_regclass('storage.buckets') is not null").fetchone()
    params = lint_params(exposed, bloat_ratio=bloat_ratio, bloat_bytes=bloat_bytes)
    found: list[dict[str, Any]] = []
    skipped: dict[str, str] = {}
    for name in names:
        lint = LINTS[name]
        reason = skip_reason(lint, roles, server_major, has_auth_users=has_auth_users, has_buckets=has_buckets)
        if reason is not None:
            if reason:
                skipped[name] = reason
            continue
        for schema, obj, typ, detail, cache_key, extra in conn.execute(lint.sql, params).fetchall():
            metadata = {"schema": schema, "name": obj, "type": typ, **(extra or {})}
            found.append({
                "name": name, "title": lint.title, "level": lint.level, "facing": "EXTERNAL",
                "categories": [lint.category], "description": lint.description, "detail": detail,
                "remediation": DOCS + lint.doc, "metadata": metadata, "cache_key": cache_key,
            })
    found.sort(key=lambda f: ({"ERROR": 0, "WARN": 1, "INFO": 2}[f["level"]], f["name"], f["cache_key"]))
    return LintRun(found, skipped, exposed)

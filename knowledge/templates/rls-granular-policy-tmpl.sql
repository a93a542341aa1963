-- var: schema | Schema that holds the table | default: public
-- var: table | Table to protect | required
-- var: owner_column | uuid column holding the owning auth.users id (empty = no owner check) | default: user_id
-- var: tenant_column | uuid column holding the tenant id; empty = single-tenant table | default:
-- var: roles | Comma-separated roles the policies apply to | default: authenticated
-- var: commands | Comma-separated commands to allow (select, insert, update, delete) | default: select,insert,update,delete
-- var: admin_role_claim | Value of app_metadata.role in the JWT that may act on every row (of its tenant); empty = no admin bypass | default:
--
-- DB Sage template: rls-granular-policy.
-- One permissive policy per allowed command, for the given roles. Rules:
--   * owner check:  (select auth.uid()) = owner_column
--   * tenant check: ((select auth.jwt()) ->> 'tenant_id')::uuid = tenant_column
--     The tenant_id claim must be written by a trusted party (a Custom Access Token hook
--     or app_metadata set with the service key), never taken from user_metadata, which
--     the user can edit. Missing claim -> NULL -> no rows.
--   * with a tenant column, SELECT is tenant-wide (members read every row of their
--     tenant); INSERT/UPDATE/DELETE also need the owner check (or the admin claim)
--   * admin bypass reads app_metadata.role, which users cannot change themselves
-- auth.uid() and auth.jwt() are wrapped in (select ...) so they run once per statement.
-- Idempotent: all four command policies are dropped first, then only the allowed ones
-- are created, so removing a command from `commands` removes its policy on re-run.
{%- set _schema = schema | default('public', true) %}
{%- set _owner = (owner_column | default('', true)) | trim %}
{%- set _tenant = (tenant_column | default('', true)) | trim %}
{%- set _admin = (admin_role_claim | default('', true)) | trim %}
{%- set _roles_src = roles | default('authenticated', true) %}
{%- set _cmds_src = commands | default('select,insert,update,delete', true) %}
{%- set _roles = (_roles_src.split(',') if _roles_src is string else _roles_src) | map('trim') | reject('equalto', '') | list %}
{%- set _cmds = (_cmds_src.split(',') if _cmds_src is string else _cmds_src) | map('trim') | map('lower') | list %}
{%- set t = (_schema | ident) ~ '.' ~ (table | ident) %}
{%- set to_roles = (_roles | map('ident') | join(', ')) if _roles else 'authenticated' %}
{%- set owner_pred = '(select auth.uid()) = ' ~ (_owner | ident) if _owner else '' %}
{%- set tenant_pred = "((select auth.jwt()) ->> 'tenant_id')::uuid = " ~ (_tenant | ident) if _tenant else '' %}
{%- set admin_pred = "((select auth.jwt()) -> 'app_metadata' ->> 'role') = '" ~ (_admin | replace("'", "''")) ~ "'" if _admin else '' %}
{#- row-level rule for writes: owner (or admin) -#}
{%- if owner_pred and admin_pred %}
{%- set who = '(' ~ owner_pred ~ ' or ' ~ admin_pred ~ ')' %}
{%- elif owner_pred %}
{%- set who = '(' ~ owner_pred ~ ')' %}
{%- elif admin_pred %}
{%- set who = '(' ~ admin_pred ~ ')' %}
{%- else %}
{%- set who = '' %}
{%- endif %}
{%- if tenant_pred and who %}
{%- set write_pred = '(' ~ tenant_pred ~ ') and ' ~ who %}
{%- elif tenant_pred %}
{%- set write_pred = tenant_pred %}
{%- elif who %}
{%- set write_pred = who %}
{%- else %}
{%- set write_pred = 'false' %}
{%- endif %}
{%- set read_pred = tenant_pred if tenant_pred else write_pred %}

alter table {{ t }} enable row level security;
{% for c in ['select', 'insert', 'update', 'delete'] %}
drop policy if exists {{ (table ~ '_' ~ c ~ '_policy') | ident }} on {{ t }};
{%- endfor %}
{% if 'select' in _cmds %}
grant select on table {{ t }} to {{ to_roles }};
create policy {{ (table ~ '_select_policy') | ident }} on {{ t }}
  as permissive
  for select
  to {{ to_roles }}
  using ({{ read_pred }});
{% endif %}
{%- if 'insert' in _cmds %}
grant insert on table {{ t }} to {{ to_roles }};
create policy {{ (table ~ '_insert_policy') | ident }} on {{ t }}
  as permissive
  for insert
  to {{ to_roles }}
  with check ({{ write_pred }});
{% endif %}
{%- if 'update' in _cmds %}
grant update on table {{ t }} to {{ to_roles }};
create policy {{ (table ~ '_update_policy') | ident }} on {{ t }}
  as permissive
  for update
  to {{ to_roles }}
  using ({{ write_pred }})
  with check ({{ write_pred }});
{% endif %}
{%- if 'delete' in _cmds %}
grant delete on table {{ t }} to {{ to_roles }};
create policy {{ (table ~ '_delete_policy') | ident }} on {{ t }}
  as permissive
  for delete
  to {{ to_roles }}
  using ({{ write_pred }});
{% endif %}
{%- if _owner %}
-- squawk-ignore require-concurrent-index-creation -- a no-op when the index was built CONCURRENTLY first (large, busy tables)
create index if not exists {{ (table ~ '_' ~ _owner ~ '_rls_idx') | ident }}
  on {{ t }} using btree ({{ _owner | ident }});
{%- endif %}
{%- if _tenant %}
-- squawk-ignore require-concurrent-index-creation -- a no-op when the index was built CONCURRENTLY first (large, busy tables)
create index if not exists {{ (table ~ '_' ~ _tenant ~ '_rls_idx') | ident }}
  on {{ t }} using btree ({{ _tenant | ident }});
{%- endif %}

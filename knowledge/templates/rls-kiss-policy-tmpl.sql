-- var: schema | Schema that holds the table | default: public
-- var: table | Table to protect with owner-only row level security | required
-- var: owner_column | uuid column that holds the owning auth.users id | default: user_id
--
-- DB Sage template: rls-kiss-policy (keep it simple: every row belongs to one user).
-- Renders idempotent SQL for PostgreSQL 15+ on Supabase:
--   * enables RLS on the table
--   * one policy per command (select, insert, update, delete) for the authenticated role,
--     each comparing (select auth.uid()) with the owner column; the sub-select makes the
--     planner evaluate auth.uid() once per statement (an initPlan), not once per row,
--     which is what the Supabase advisor auth_rls_initplan asks for
--   * a btree index on the owner column, so the policy filter is an index scan
--   * table privileges for authenticated (new Supabase projects no longer grant them
--     automatically); anon gets nothing and no policy, so anon sees no rows
-- Safe to re-run: policies are dropped if they exist and recreated.
-- The index is built without CONCURRENTLY because migrations run in a transaction; on a
-- large, busy table build it first with CREATE INDEX CONCURRENTLY outside a transaction.
{%- set _schema = schema | default('public', true) %}
{%- set _owner = owner_column | default('user_id', true) %}
{%- set t = (_schema | ident) ~ '.' ~ (table | ident) %}
{%- set oc = _owner | ident %}

alter table {{ t }} enable row level security;

grant select, insert, update, delete on table {{ t }} to authenticated;

drop policy if exists {{ (table ~ '_select_own') | ident }} on {{ t }};
create policy {{ (table ~ '_select_own') | ident }} on {{ t }}
  as permissive
  for select
  to authenticated
  using ((select auth.uid()) = {{ oc }});

drop policy if exists {{ (table ~ '_insert_own') | ident }} on {{ t }};
create policy {{ (table ~ '_insert_own') | ident }} on {{ t }}
  as permissive
  for insert
  to authenticated
  with check ((select auth.uid()) = {{ oc }});

drop policy if exists {{ (table ~ '_update_own') | ident }} on {{ t }};
create policy {{ (table ~ '_update_own') | ident }} on {{ t }}
  as permissive
  for update
  to authenticated
  using ((select auth.uid()) = {{ oc }})
  with check ((select auth.uid()) = {{ oc }});

drop policy if exists {{ (table ~ '_delete_own') | ident }} on {{ t }};
create policy {{ (table ~ '_delete_own') | ident }} on {{ t }}
  as permissive
  for delete
  to authenticated
  using ((select auth.uid()) = {{ oc }});

-- squawk-ignore require-concurrent-index-creation -- a no-op when the index was built CONCURRENTLY first (large, busy tables)
create index if not exists {{ (table ~ '_' ~ _owner ~ '_rls_idx') | ident }}
  on {{ t }} using btree ({{ oc }});

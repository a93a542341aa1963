"""Facts about a connected server that many operations need."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class ServerInfo:
    version: str
    major: int
    database: str
    user: str
    ssl: bool
    supabase_roles: bool
    supabase_hosted: bool
    is_superuser: bool


def server_info(conn) -> ServerInfo:
    row = conn.execute(
        """
        select current_setting('server_version'), current_setting('server_version_num')::int / 10000,
               current_database(), current_user,
               coalesce((select ssl from pg_stat_ssl where pid = pg_backend_pid()), false),
               (select count(*) from pg_roles where rolname in ('anon', 'authenticated', 'service_role')) = 3,
               exists (select 1 from pg_namespace where nspname in ('supabase_functions', 'graphql', 'vault')),
               (select rolsuper from pg_roles where rolname = current_user)
        """
    ).fetchone()
    return ServerInfo(version=row[0], major=row[1], database=row[2], user=row[3], ssl=bool(row[4]),
                      supabase_roles=bool(row[5]), supabase_hosted=bool(row[6]), is_superuser=bool(row[7]))

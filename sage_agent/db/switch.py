"""`sage db switch-major N`: recreate the project's local cluster on another PostgreSQL major, keeping its data.

Data files are major-specific, so the cluster is dumped (roles with pg_dumpall --roles-only, each database
with pg_dump -Fc, both from the newest installed tools), the old data directory is kept aside, a new
cluster is made on the new major (with the baseline), and every database is restored in one transaction.
When any step fails the new cluster is removed and the old one is put back and started: nothing is lost.
"""

from __future__ import annotations

import shutil
import time
from dataclasses import dataclass, field

from psycopg import sql

from sage_agent.db.connect import connect
from sage_agent.db.embedded import EmbeddedError, EmbeddedServer
from sage_agent.db.urls import replace_dbname

_USER_DBS = """
select datname from pg_database
 where not datistemplate and datallowconn
   and datname not like 'sage\\_shadow\\_%' and datname not like 'sage\\_tpl\\_%'
 order by datname = 'postgres' desc, datname
"""
_COUNTS = """
select n.nspname || '.' || c.relname, c.oid from pg_class c join pg_namespace n on n.oid = c.relnamespace
 where c.relkind in ('r', 'p') and n.nspname not in ('pg_catalog', 'information_schema') and n.nspname !~ '^pg_'
"""


@dataclass
class SwitchReport:
    from_major: int
    to_major: int
    databases: dict[str, dict[str, int]] = field(default_factory=dict)  # db -> table -> rows
    kept_aside: str = ""
    warnings: list[str] = field(default_factory=list)


def row_counts(url: str) -> dict[str, int]:
    counts: dict[str, int] = {}
    with connect(url, autocommit=True) as conn:
        for name, oid in conn.execute(_COUNTS).fetchall():
            counts[name] = conn.execute(sql.SQL("select count(*) from {}").format(
                sql.Identifier(*name.split(".", 1)))).fetchone()[0]
    return counts


def switch_major(server: EmbeddedServer, to_major: int, *, say=print) -> SwitchReport:
    """Dump, recreate on `to_major`, restore, verify row counts. Raises EmbeddedError (old cluster back) on failure."""
    # lazy: not needed to start `sage --version`, `*help` or `sage mcp`
    from sage_agent.db.archive import start_restore
    from sage_agent.db.binaries import find_binary
    from sage_agent.db.majors import install_hint, server_bin_dirs
    from sage_agent.db.tools import run_pg_tool

    current = server.version()
    if not current:
        raise EmbeddedError("there is no local cluster yet: it is created on the project's major at first use")
    from_major = int(current)
    if from_major == to_major:
        raise EmbeddedError(f"the local server already runs PostgreSQL {to_major}: nothing to do")
    if to_major not in server_bin_dirs():
        raise EmbeddedError(f"no PostgreSQL {to_major} server here: {install_hint(to_major)}")
    report = SwitchReport(from_major, to_major)
    server.start()
    admin = server.url("postgres")
    with connect(admin, autocommit=True) as conn:
        names = [r[0] for r in conn.execute(_USER_DBS).fetchall()]
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    work = server.base_dir.parent / f"switch-{stamp}"
    work.mkdir(parents=True)
    say(f"dumping {len(names)} database(s) of PostgreSQL {from_major} into {work}")
    roles = work / "roles.sql"
    run_pg_tool("pg_dumpall", admin, ["--roles-only", "--no-role-passwords", "-f", str(roles)],
                server_major=from_major)
    for name in names:
        url = replace_dbname(admin, name)
        report.databases[name] = row_counts(url)
        run_pg_tool("pg_dump", url, ["-Fc", "--no-password", "-f", str(work / f"{name}.dump")],
                    server_major=from_major)
    server.stop()
    aside = server.base_dir.parent / f"{server.base_dir.name}-pg{from_major}-{stamp}"
    server.base_dir.rename(aside)
    report.kept_aside = str(aside)
    new = EmbeddedServer(server.base_dir, fast=server.fast, port_seed=server.port_seed, major=to_major)
    try:
        say(f"creating the PostgreSQL {to_major} cluster")
        new.start()
        admin = new.url("postgres")
        # roles that exist already (the baseline's, postgres) fail harmlessly; others are created
        psql = find_binary("psql", to_major)
        # lazy: not needed to start `sage --version`, `*help` or `sage mcp`
        import subprocess

        from sage_agent.db.tools import tool_env

        subprocess.run([str(psql), "-X", "-q", "-f", str(roles)], env=tool_env(admin), capture_output=True,
                       text=True, timeout=300)
        for name in names:
            with connect(replace_dbname(admin, "template1"), autocommit=True) as conn:
                if name == "postgres":
                    conn.execute("drop database postgres with (force)")
                conn.execute(sql.SQL("create database {} template template0").format(sql.Identifier(name)))
            url = replace_dbname(admin, name)
            say(f"restoring {name}")
            code, err = start_restore(url, work / f"{name}.dump", "custom", to_major, clean=False).wait()
            if code != 0:
                first = next((l for l in err.splitlines() if "ERROR" in l or "error" in l), err.strip()[:300])
                raise EmbeddedError(f"restoring {name} on PostgreSQL {to_major} failed: {first}")
            got = row_counts(url)
            want = report.databases[name]
            differ = [t for t in want if got.get(t) != want[t]]
            if differ:
                raise EmbeddedError(f"row counts differ after restoring {name}: {', '.join(differ[:5])}")
    except BaseException as exc:
        new.stop()
        shutil.rmtree(server.base_dir, ignore_errors=True)
        aside.rename(server.base_dir)
        back = EmbeddedServer(server.base_dir, fast=server.fast, port_seed=server.port_seed)
        back.start()
        if isinstance(exc, EmbeddedError):
            raise EmbeddedError(f"{exc}. The PostgreSQL {from_major} cluster was put back and started; nothing "
                                f"changed (dumps kept in {work})") from None
        raise
    shutil.rmtree(work, ignore_errors=True)
    return report

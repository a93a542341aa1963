"""Real topologies for tests: a PgBouncer (Debian's `pgbouncer`) on loopback in front of a test server, and a
streaming hot standby cloned with `pg_basebackup -R` from a primary the test starts. Both run as the embedded
server's unprivileged user and are stopped by their own pid."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import psycopg

from sage_agent.db.embedded import PASSWORD, SUPERUSER, EmbeddedServer, _open_path_for, _service_user, choose_port


def _ids() -> dict:
    user = _service_user()
    if not user:
        return {}
    import pwd

    entry = pwd.getpwnam(user)
    return {"user": entry.pw_uid, "group": entry.pw_gid, "extra_groups": [], "cwd": "/"}


def pgbouncer_binary() -> str | None:
    return shutil.which("pgbouncer") or next((p for p in ("/usr/sbin/pgbouncer", "/usr/bin/pgbouncer")
                                              if os.path.exists(p)), None)


@dataclass
class Bouncer:
    """A PgBouncer process: `url(dbname)` goes through it, `admin()` is its console."""

    base: Path
    port: int
    server_port: int
    pid: int

    def url(self, dbname: str = "postgres") -> str:
        return f"postgresql://{SUPERUSER}:{PASSWORD}@127.0.0.1:{self.port}/{dbname}"

    def admin(self) -> psycopg.Connection:
        return psycopg.connect(self.url("pgbouncer"), autocommit=True, prepare_threshold=None)

    def server_pids(self, dbname: str) -> list[int]:
        """The server backends PgBouncer keeps for `dbname` (SHOW SERVERS' remote_pid)."""
        with self.admin() as a:
            cur = a.execute("SHOW SERVERS")
            names = [d.name for d in cur.description]
            return sorted(int(dict(zip(names, r))["remote_pid"]) for r in cur.fetchall()
                          if dict(zip(names, r))["database"] == dbname)

    def stop(self) -> None:
        try:
            os.kill(self.pid, signal.SIGTERM)
        except ProcessLookupError:
            return
        for _ in range(100):
            try:
                os.kill(self.pid, 0)
            except ProcessLookupError:
                return
            time.sleep(0.05)


DEFAULTS = {"search_path": '"$user", public', "statement_timeout": "0", "lock_timeout": "0",
            "idle_in_transaction_session_timeout": "0"}


def via(bouncer: Bouncer, url: str) -> str:
    """The same database, through the pooler."""
    from sage_agent.db.urls import conninfo_params, to_url

    params = conninfo_params(url)
    params["port"] = str(bouncer.port)
    return to_url(params)


def dbname(url: str) -> str:
    from sage_agent.db.urls import conninfo_params

    return conninfo_params(url)["dbname"]


def backend_states(bouncer: Bouncer, url: str) -> dict[int, dict]:
    """Every server connection PgBouncer holds for this database, seen by other clients through the pooler: as
    many clients as there are server connections, each inside a transaction so each holds a different one."""
    pids = bouncer.server_pids(dbname(url))
    clients = [psycopg.connect(via(bouncer, url), prepare_threshold=None) for _ in range(max(len(pids), 1))]
    states: dict[int, dict] = {}
    try:
        for c in clients:
            row = c.execute(
                "select pg_backend_pid(), current_setting('search_path'), current_setting('statement_timeout'), "
                "current_setting('lock_timeout'), current_setting('idle_in_transaction_session_timeout'), "
                "current_setting('application_name'), (select count(*) from pg_prepared_statements), "
                "(select count(*) from pg_locks where locktype = 'advisory' and pid = pg_backend_pid())").fetchone()
            states[row[0]] = {"search_path": row[1], "statement_timeout": row[2], "lock_timeout": row[3],
                              "idle_in_transaction_session_timeout": row[4], "application_name": row[5],
                              "prepared_statements": row[6], "advisory_locks": row[7]}
    finally:
        for c in clients:
            c.close()
    assert set(pids) <= set(states), (pids, states)
    return states


def dirty_backends(bouncer: Bouncer, url: str) -> list[tuple[int, dict]]:
    """Pooled backends with anything DB Sage may have left: settings, its application_name, prepared
    statements, advisory locks."""
    out = []
    for pid, state in backend_states(bouncer, url).items():
        if ({k: state[k] for k in DEFAULTS} != DEFAULTS or state["application_name"] == "db-sage"
                or state["prepared_statements"] or state["advisory_locks"]):
            out.append((pid, state))
    return out


def assert_clean(bouncer: Bouncer, url: str) -> None:
    assert dirty_backends(bouncer, url) == []


def start_pgbouncer(server_port: int, *, pool_mode: str = "transaction", pool_size: int = 3) -> Bouncer:
    """A stock PgBouncer (no ignore_startup_parameters) on 127.0.0.1 in front of the server on `server_port`."""
    binary = pgbouncer_binary()
    assert binary, "pgbouncer is not installed"
    base = Path(tempfile.mkdtemp(prefix="sage-test-pgbouncer-"))
    port = choose_port(str(base))
    (base / "userlist.txt").write_text(f'"{SUPERUSER}" "{PASSWORD}"\n')
    (base / "pgbouncer.ini").write_text(f"""[databases]
* = host=127.0.0.1 port={server_port}
[pgbouncer]
listen_addr = 127.0.0.1
listen_port = {port}
unix_socket_dir =
auth_type = scram-sha-256
auth_file = {base}/userlist.txt
pool_mode = {pool_mode}
default_pool_size = {pool_size}
max_client_conn = 200
admin_users = {SUPERUSER}
query_wait_timeout = 30
logfile = {base}/pgbouncer.log
pidfile = {base}/pgbouncer.pid
""")
    if _service_user():
        _open_path_for(base, _service_user())
    proc = subprocess.run([binary, "-d", str(base / "pgbouncer.ini")], capture_output=True, text=True, timeout=30,
                          **_ids())
    assert proc.returncode == 0, proc.stderr
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            pid = int((base / "pgbouncer.pid").read_text().strip())
            with psycopg.connect(f"postgresql://{SUPERUSER}:{PASSWORD}@127.0.0.1:{port}/pgbouncer",
                                 autocommit=True, connect_timeout=2, prepare_threshold=None):
                return Bouncer(base, port, server_port, pid)
        except (OSError, ValueError, psycopg.Error):
            time.sleep(0.1)
    raise AssertionError("pgbouncer did not start: " + (base / "pgbouncer.log").read_text(errors="replace")[-2000:])


@dataclass
class Pair:
    primary: EmbeddedServer
    standby: EmbeddedServer
    base: Path

    def stop(self) -> None:
        self.standby.stop()
        self.primary.stop()
        shutil.rmtree(self.base, ignore_errors=True)


def start_replica_pair(bin_dir: Path | None = None) -> Pair:
    """A dedicated primary (the embedded cluster's defaults: wal_level=replica, a `host replication` line for
    127.0.0.1) and a hot standby cloned from it with `pg_basebackup -R`, streaming on another port."""
    base = Path(tempfile.mkdtemp(prefix="sage-test-replica-"))
    primary = EmbeddedServer(base / "primary", fast=True, port_seed=str(base / "primary"))
    if bin_dir:
        primary.bin_dir = bin_dir
    primary.start()
    standby = EmbeddedServer(base / "standby", fast=True, port_seed=str(base / "standby"))
    standby.bin_dir = primary.bin_dir
    standby.base_dir.mkdir(parents=True)
    if _service_user():
        _open_path_for(standby.base_dir, _service_user())
    env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
    env["PGPASSWORD"] = PASSWORD
    proc = subprocess.run([str(primary.bin_dir / "pg_basebackup"), "-h", "127.0.0.1", "-p", str(primary.port),
                           "-U", SUPERUSER, "-D", str(standby.data_dir), "-R", "-X", "stream", "-c", "fast",
                           "--no-sync"], capture_output=True, text=True, timeout=120, env=env, **_ids())
    assert proc.returncode == 0, proc.stderr
    port = choose_port(str(base / "standby") + "x")
    standby.state_file.write_text(f'{{"port": {port}}}')
    standby._set_port(port)
    standby.start()
    deadline = time.monotonic() + 60
    with psycopg.connect(primary.url(), autocommit=True) as conn:
        while time.monotonic() < deadline:
            if conn.execute("select count(*) from pg_stat_replication where state = 'streaming'").fetchone()[0]:
                return Pair(primary, standby, base)
            time.sleep(0.1)
    raise AssertionError("the standby did not start streaming within 60 s")

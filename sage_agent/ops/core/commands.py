"""Session basics: *help, *exit, *env-check, *bootstrap."""

from __future__ import annotations

import time
from pathlib import Path

from pydantic import BaseModel

from sage_agent.catalog.persona import load_persona
from sage_agent.catalog.tasks import cmd
from sage_agent.db.embedded import running_servers
from sage_agent.ops.registry import operation
from sage_agent.ops.result import Finding, OpError, OpResult, Table


class NoInput(BaseModel):
    pass


class HelpInput(BaseModel):
    command: str | None = None


@operation("help", risk="read")
def help_(inputs: HelpInput, ctx) -> OpResult:
    """Commands grouped as the persona groups them; with a command, that task's usage and inputs."""
    # lazy: tests replace load_tasks on its module (monkeypatch), which a top-level import would bypass
    from sage_agent.catalog.tasks import close_commands, command_index, load_tasks

    persona = load_persona()
    tasks = load_tasks()
    if inputs.command:
        task_id = command_index(tasks).get(inputs.command.lstrip("*"))
        if not task_id:
            close = close_commands(inputs.command, tasks)
            raise OpError(f"unknown command *{inputs.command.lstrip('*')}",
                          f"did you mean {', '.join('*help ' + c for c in close)}? *help lists every command"
                          if close else "type *help for the list", exit_code=2)
        # lazy: not needed to start `sage --version`, `*help` or `sage mcp`
        from sage_agent.session.parse import flag_usage

        task = tasks[task_id]
        positions = {key: n for n, key in enumerate(task.positional_keys, start=1)}
        rows = [[i.key, flag_usage(i, positions.get(i.key)), i.label, "yes" if i.required else "", i.default or ""]
                for i in task.user_inputs()]
        notes = ["Any input also as --set KEY=VALUE (in the line or after `sage run`)."]
        if any(k in ("sql", "query") for k in task.positional_keys):
            notes.append(f"SQL alone may be typed bare (*{task.command} select ...); with options, quote it or put "
                         f"it last after `--` (*{task.command} --option -- select ...).")
        if task.input("vars"):
            notes.append("Template variables as --set NAME=VALUE (or --vars \"a=1;b=2\").")
        return OpResult(operation="help", summary=f"{task.usage} - {task.purpose}",
                        facts={"aliases": ", ".join("*" + a for a in task.aliases) or "-"},
                        tables=[Table(title="Inputs", columns=["key", "how to pass", "prompt", "required", "default"],
                                      rows=rows)],
                        notes=notes, data={"task": task.id})
    tables = []
    for group, commands in persona.groups().items():
        tables.append(Table(title=group, columns=["command", "description"],
                            rows=[[c.usage, c.description] for c in commands]))
    return OpResult(operation="help", summary=f"{persona.agent.icon} {persona.agent.name} - {persona.agent.title}",
                    tables=tables,
                    notes=["Type a *command, or plain language when an Anthropic API key is set.",
                           "*help COMMAND shows a command's inputs."])


@operation("exit", risk="read")
def exit_(inputs: NoInput, ctx) -> OpResult:
    name = load_persona().agent.name
    running = []
    for server in running_servers(ctx.project):
        kind = "the local server" if server.base_dir.name == "pg" else "a shadow server"
        running.append([kind, f".sage/{server.base_dir.name}", server.port, f"PostgreSQL {server.version()}"])
    notes = ([f"Still running: {', '.join(f'{r[0]} ({r[1]}, port {r[2]})' for r in running)}. It stays up for the "
              "next session (fast start); `sage db stop` stops it."] if running else
             ["No DB Sage server is running for this project."])
    return OpResult(operation="exit", summary=f"{name} signing off. Your database is as you left it.",
                    facts={"servers_running": len(running)}, notes=notes,
                    tables=[Table(title="Still running", columns=["server", "folder", "port", "version"],
                                  rows=running)] if running else [],
                    next_steps=["sage db stop"] if running else [],
                    data={"exit_requested": True, "running": [{"server": r[0], "folder": r[1], "port": r[2]}
                                                              for r in running]})


class EnvCheckInput(BaseModel):
    pass


@operation("db-env-check", risk="read")
def env_check(inputs: EnvCheckInput, ctx) -> OpResult:
    """Connection, server, Supabase and tooling facts; a distinct, actionable message for each failure."""
    # lazy: psycopg loads on the first database call
    from sage_agent.db.binaries import BinaryNotFound, find_binary
    from sage_agent.db.connect import DbConnectError
    from sage_agent.db.info import server_info
    from sage_agent.db.supabase_cli import find_cli
    from sage_agent.db.urls import describe
    from sage_agent.ops.core.mcp_method import configured_command, env_check_mcp

    mcp_command = configured_command(ctx.project)
    if mcp_command:  # the database method is an MCP server (SAGE_DB_MCP_COMMAND)
        return env_check_mcp(mcp_command, ctx)
    target = ctx.target
    method = "EMBEDDED" if target.embedded else "ENV"
    facts: dict[str, object] = {"environment": target.env, "method": method, "source": target.source}
    findings: list[Finding] = []
    started = time.perf_counter()
    try:
        url = ctx.url
        where = describe(url)
        facts.update({"url": target.display_url, "host": where["host"], "port": where["port"],
                      "database": where["database"], "user": where["user"]})
        with ctx.connect() as conn:
            info = server_info(conn)
    except DbConnectError as exc:
        findings.append(Finding(rule=f"connection.{exc.kind}", severity="error", message=exc.message, fix=exc.hint))
        return OpResult(operation="db-env-check", status="failed", summary=f"Connection failed ({exc.kind})",
                        facts=facts, findings=findings, next_steps=_connect_next_steps(exc.kind, target, facts))
    facts.update({
        "connected": True,
        "latency_ms": round((time.perf_counter() - started) * 1000, 1),
        "server_version": info.version,
        "ssl": "enabled" if info.ssl else "disabled",
        "superuser": info.is_superuser,
        "supabase": "hosted" if info.supabase_hosted else ("compatible roles" if info.supabase_roles else "no"),
    })
    _pooling_facts(ctx, facts, findings)
    _replication_facts(ctx, facts, findings)
    if not info.ssl and not target.embedded and facts.get("host") not in ("127.0.0.1", "localhost", "::1"):
        findings.append(Finding(rule="ssl.disabled", severity="warning", message="SSL is off for a remote database",
                                fix="add ?sslmode=require to the URL"))
    cli = find_cli(ctx.project)
    facts["supabase_cli"] = cli.version if cli else "not found"
    if cli:
        facts["method"] = f"{method}+CLI"
    else:
        findings.append(Finding(rule="tools.supabase_cli", severity="info", message="Supabase CLI not found",
                                fix="npm install supabase (no Docker needed) or set SUPABASE_CLI"))
    if target.embedded:
        # lazy: not needed to start `sage --version`, `*help` or `sage mcp`
        from sage_agent.db.majors import server_bin_dirs

        server = ctx.embedded
        facts["project_major"] = server.wanted_major if server.wanted_major is not None else "not set"
        facts["server_binaries"] = str(server.bin_dir)
        if server.major_warning:
            findings.append(Finding(rule="server.major_mismatch", severity="warning", message=server.major_warning,
                                    fix=("" if server.wanted_major in server_bin_dirs() else
                                         f"apt-get install postgresql-{server.wanted_major}, then ")
                                    + f"sage db switch-major {server.wanted_major}"))
    try:
        facts["pg_dump"] = str(find_binary("pg_dump", info.major))
    except BinaryNotFound as exc:
        facts["pg_dump"] = "missing"
        findings.append(Finding(rule="tools.pg_dump", severity="warning", message=str(exc)))
    status = "warning" if any(f.severity in ("error", "warning") for f in findings) else "ok"
    return OpResult(operation="db-env-check", status=status,
                    summary=f"Connected to {facts['database']} on {facts['host']}:{facts['port']} "
                            f"(PostgreSQL {info.version}, {target.env})",
                    facts=facts, findings=findings, next_steps=_env_check_next_steps(ctx.project))


# what to check in the setting the URL came from, per kind of connection failure (the finding's fix says why)
_CHECK = {"refused": "nothing listens on {host}:{port}", "timeout": "{host}:{port} does not answer",
          "unknown_host": "the host {host}", "wrong_password": "the user {user} and its password",
          "missing_database": "the database name {database}", "ssl": "its sslmode", "bad_url": "the URL's form",
          "pooler_parameter": "remove options= from the URL"}


def _connect_next_steps(kind: str, target, facts: dict[str, object]) -> list[str]:
    """A failed connection's next steps as things to run or set, like every other command's: the local server to
    start (a refused local target), the setting the URL came from and what in it to check, then *env-check again."""
    steps: list[str] = []
    if kind == "refused" and target.is_project_local:
        supabase = target.source == "SUPABASE_LOCAL_DB_URL" or str(facts.get("port")) == "54322"
        steps.append("supabase start" if supabase else "sage db start")
    what = _CHECK.get(kind, "the server and the URL").format(**{k: facts.get(k, "?") for k in
                                                              ("host", "port", "user", "database")})
    steps.append(f"check {target.source}: {what}")
    steps.append(cmd("db-env-check"))
    return steps


def _env_check_next_steps(project: Path) -> list[str]:
    """What moves this project on: *bootstrap only where there is no supabase/ layout yet (it was offered in a
    bootstrapped project too), a baseline snapshot only where none is taken."""
    supabase = project / "supabase"
    steps = [cmd("db-migrations") if (supabase / "migrations").is_dir() else cmd("db-bootstrap")]
    if not (supabase / "snapshots" / "baseline.sql").exists():
        steps.append(cmd("db-snapshot", "baseline"))
    return steps


SESSION_COMMANDS = "*apply, *rollback, *restore, *seed, *snapshot, *backup, *load-csv"


def _pooling_facts(ctx, facts: dict[str, object], findings: list[Finding]) -> None:
    """Which pooling stands in front of the URL, the direct URL, and whether it connects."""
    # lazy: psycopg loads on the first database call
    from sage_agent.db.connect import DbConnectError
    from sage_agent.db.pooler import detect, direct_url_hint

    target = ctx.target
    pooling = ctx.pooling()
    facts["pooling"] = pooling.mode + (f" ({pooling.pooler})" if pooling.pooler else "")
    facts["pooling_evidence"] = pooling.evidence
    if target.direct_url:
        facts["direct_url"] = target.redacted_direct_url
        try:
            direct = detect(target.direct_url)
        except DbConnectError as exc:
            facts["direct_url_connects"] = False
            findings.append(Finding(rule=f"direct_url.{exc.kind}", severity="error",
                                    message=f"the direct URL does not connect: {exc.message}",
                                    fix=f"{exc.hint}; {SESSION_COMMANDS} use it"))
            return
        facts["direct_url_connects"] = True
        facts["direct_url_pooling"] = direct.mode
        if direct.shares_backends:
            findings.append(Finding(rule="direct_url.pooled", severity="error",
                                    message=f"the direct URL goes through a {direct.mode} pooler too: {direct.evidence}",
                                    fix=f"set {target.direct_variable} to the server itself (Supabase: "
                                        "db.<project-ref>.supabase.co:5432)"))
    else:
        facts["direct_url"] = "not set"
        if pooling.shares_backends:
            findings.append(Finding(
                rule="pooler.no_direct_url", severity="warning",
                message=f"{target.display_url} goes through a {pooling.mode} pooler and no direct URL is set: "
                        f"{SESSION_COMMANDS} will refuse to run (they need a session); reads work through the pooler",
                fix=f"{direct_url_hint(target.direct_variable)} to the direct connection"))


def _replication_facts(ctx, facts: dict[str, object], findings: list[Finding]) -> None:
    """Standby or primary, and how far behind (a standby) or how many standbys and slots (a primary)."""
    # lazy: not needed to start `sage --version`, `*help` or `sage mcp`
    from sage_agent.db.replication import replication_picture

    with ctx.connect(autocommit=True) as conn:
        pic = replication_picture(conn)
    st = pic.status
    facts["standby"] = st.standby
    if st.standby:
        facts["replication"] = st.upstream
        facts["replay_lag_bytes"] = st.replay_lag_bytes
        # now() - the last replayed commit: on an idle primary it grows with nothing behind, so it is named as
        # what it is (a "replay delay" of minutes beside 0 bytes behind read as a standby minutes late)
        facts["last_replayed_commit_s_ago"] = st.replay_delay_s
        findings.append(Finding(rule="replication.standby", severity="info",
                                message=f"read-only hot standby ({st.upstream}): writes are refused before they start",
                                fix="point --db-url (or the direct URL) at the primary for *apply and other writes"))
        if st.paused:
            findings.append(Finding(rule="replication.replay_paused", severity="warning",
                                    message="WAL replay is paused on this standby", fix="SELECT pg_wal_replay_resume();"))
    else:
        facts["standbys"] = len(pic.standbys)
        if pic.standbys:
            facts["max_standby_lag_bytes"] = max((s.lag_bytes or 0) for s in pic.standbys)
        facts["replication_slots"] = len(pic.slots)


class BootstrapInput(BaseModel):
    use_cli: bool = True
    example_migration: bool = False


_SUPABASE_README = """# Database

Managed with DB Sage and the Supabase CLI.

- `migrations/` - schema migrations, `<UTC timestamp>_<name>.sql` (versioned)
- `seed.sql` - seed data (versioned; see `[db.seed]` in config.toml)
- `tests/` - database tests and DB Sage reports (versioned)
- `snapshots/` - schema snapshots (NOT versioned)
- `backups/` - backups (NOT versioned)

Workflow: `*snapshot baseline` -> `*migration-new NAME` -> `*dry-run FILE` -> `*apply` -> `*smoke-test v1.0`
"""
_GITIGNORE_LINES = ["supabase/snapshots/", "supabase/backups/", "supabase/.sage/", ".sage/", ".env", "*.dump"]
_EXAMPLE = """-- Example migration created by *bootstrap. Safe to edit or delete before it is applied.
set lock_timeout = '5s';

create table if not exists public.profiles (
  id uuid primary key references auth.users (id) on delete cascade,
  display_name text,
  created_at timestamptz not null default now()
);

alter table public.profiles enable row level security;

create policy "profiles are readable by their owner" on public.profiles
  for select to authenticated using ((select auth.uid()) = id);
"""


@operation("db-bootstrap", risk="write")
def bootstrap(inputs: BootstrapInput, ctx) -> OpResult:
    """Create the supabase/ layout (via `supabase init` when asked and present). Never overwrites a file."""
    # lazy: not needed to start `sage --version`, `*help` or `sage mcp`
    from sage_agent.db.supabase_cli import find_cli

    project: Path = ctx.project
    created: list[str] = []
    kept: list[str] = []
    notes: list[str] = []
    supabase = project / "supabase"
    cli = find_cli(project) if inputs.use_cli else None
    if cli and not (supabase / "config.toml").exists():
        cli.run(["init"], cwd=project)
        created.append("supabase/config.toml")
        notes.append(f"ran `supabase init` (CLI {cli.version})")
    elif inputs.use_cli and not cli:
        notes.append("Supabase CLI not found: created the layout by hand (npm install supabase to use the CLI)")
    for sub in ("migrations", "tests", "snapshots", "backups"):
        folder = supabase / sub
        if folder.is_dir():
            kept.append(f"supabase/{sub}/")
        else:
            folder.mkdir(parents=True)
            created.append(f"supabase/{sub}/")

    def write_new(rel: str, content: str) -> None:
        path = project / rel
        if path.exists():
            kept.append(rel)
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(content, encoding="utf-8")
            created.append(rel)

    write_new("supabase/README.md", _SUPABASE_README)
    write_new("supabase/seed.sql", "-- Seed data, loaded by *seed (and by `supabase db reset`).\n")
    write_new("supabase/snapshots/.gitignore", "*\n!.gitignore\n")
    write_new("supabase/backups/.gitignore", "*\n!.gitignore\n")
    gitignore = project / ".gitignore"
    existing = gitignore.read_text(encoding="utf-8").splitlines() if gitignore.exists() else []
    missing = [line for line in _GITIGNORE_LINES if line not in existing]
    gitignore_lines = 0
    if missing:
        with gitignore.open("a", encoding="utf-8") as fh:
            if existing and existing[-1].strip():
                fh.write("\n")
            fh.write("# DB Sage\n" + "\n".join(missing) + "\n")
        gitignore_lines = len(missing)
        notes.append(f"{'added' if existing else 'wrote'} {len(missing)} line(s) to .gitignore: {', '.join(missing)}")
    if inputs.example_migration and not any((supabase / "migrations").glob("*.sql")):
        stamp = time.strftime("%Y%m%d%H%M%S", time.gmtime())
        write_new(f"supabase/migrations/{stamp}_example_profiles.sql", _EXAMPLE)
    status_line = "Project layout ready" if created or gitignore_lines else \
        "Project layout already in place; nothing changed"
    # each path once: what was created as a file written (the artifacts), what was there already in a table
    return OpResult(operation="db-bootstrap", summary=status_line,
                    facts={"created": len(created) + (1 if gitignore_lines else 0), "kept": len(kept)},
                    tables=[Table(title="Already in place (kept as they are)", columns=["path"],
                                  rows=[[p] for p in kept])] if kept else [],
                    notes=notes, artifacts=created, next_steps=[cmd("db-env-check"), cmd("db-snapshot", "baseline")])

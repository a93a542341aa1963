"""Sources (environments, URLs, snapshots, the migrations folder), shadow copies, and the proof.

compare(ctx, source, target) -> Comparison: introspect A and B, plan A -> B, then PROVE the plan: apply it
to a shadow copy of A (pg_dump --schema-only of A's user schemas loaded into a scratch database; when A
already is a scratch database - a snapshot or the migrations folder - the plan goes straight onto it).
The proof is the dump: a plan is proven only when the normalized `pg_dump --schema-only` (privileges
included) of the shadow after the plan equals B's; otherwise the remaining lines are reported. Likewise
"no differences" is said only when the dumps of A and B are equal, whatever the model sees.
"""

from __future__ import annotations

import hashlib
import re
import tempfile
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

from sage_agent.db.env import ENV_NAMES, ConfigError, check_url, resolve_target
from sage_agent.db.redact import redact
from sage_agent.db.schemas import MANAGED_SCHEMAS
from sage_agent.ops.schema import storage_policies
from sage_agent.ops.result import OpError
from sage_agent.ops.schema.diff import Plan, diff_schemas
from sage_agent.ops.schema.model import DatabaseSchema


@dataclass
class Source:
    spec: str
    kind: str  # environment | url | snapshot | migrations
    label: str  # shown to the user (redacted)
    url: str
    scratch: bool = False  # a shadow database of ours: the plan may be applied to it directly


@dataclass
class Proof:
    proven: bool
    remaining: Plan | None = None
    error: str | None = None
    failed_step: str | None = None
    applied_to: str = ""
    # normalized pg_dump statements B has and the result lacks (missing), and the reverse (extra)
    dump_missing: list[str] = field(default_factory=list)
    dump_extra: list[str] = field(default_factory=list)


@dataclass
class Comparison:
    a: Source
    b: Source
    model_a: DatabaseSchema
    model_b: DatabaseSchema
    plan: Plan
    proof: Proof | None
    timings: dict[str, float] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    # statements only in B's / only in A's normalized dump (what the model may not see); None: not dumped
    dump_only_b: list[str] | None = None
    dump_only_a: list[str] | None = None

    @property
    def drift(self) -> bool:
        """A and B differ: in the model, or in their normalized schema dumps."""
        return not self.plan.empty or bool(self.dump_only_a) or bool(self.dump_only_b)


class Timer:
    def __init__(self) -> None:
        self.times: dict[str, float] = {}

    @contextmanager
    def __call__(self, name: str) -> Iterator[None]:
        start = time.perf_counter()
        try:
            yield
        finally:
            self.times[name] = self.times.get(name, 0.0) + time.perf_counter() - start


# --- sources -----------------------------------------------------------------------------------------------
def _snapshot_path(project: Path, spec: str) -> Path | None:
    folder = project / "supabase" / "snapshots"
    candidates = []
    if spec.endswith(".sql"):
        candidates += [Path(spec), project / spec, folder / spec]
    else:
        candidates.append(folder / f"{spec}.sql")
    for path in candidates:
        if path.is_file():
            return path
    return None


def describe_sources() -> str:
    return ("an environment (" + "/".join(ENV_NAMES) + "), a postgresql:// URL, a snapshot name or .sql file, "
            "or `migrations`")


def _load_file(url: str, path: Path, what: str) -> None:
    # lazy: psycopg loads on the first database call
    from sage_agent.db.shadow import load_sql_file
    from sage_agent.db.tools import PgToolError

    try:
        load_sql_file(url, path)
    except PgToolError as exc:
        detail = str(exc).replace("psql failed: ", "")
        raise OpError(f"{what} does not load: {detail}",
                      "fix the SQL (the error names the file and line) and compare again") from None


@contextmanager
def open_source(ctx, spec: str, admin_url: str, label: str) -> Iterator[Source]:
    """Resolve A or B to a database URL; snapshots and migrations are loaded into a shadow DB (dropped after)."""
    # lazy: psycopg loads on the first database call
    from sage_agent.db.shadow import shadow_database

    spec = (spec or "").strip()
    if not spec:
        raise OpError(f"no {label} given", f"give {describe_sources()}", exit_code=2)
    project = Path(ctx.project)
    if spec == "migrations":
        folder = project / "supabase" / "migrations"
        files = sorted(folder.glob("*.sql")) if folder.is_dir() else []
        with shadow_database(admin_url, "migrations") as url:
            for path in files:
                _load_file(url, path, f"migration {path.name}")
            yield Source(spec, "migrations", f"migrations ({len(files)} files applied to a shadow database)", url,
                         scratch=True)
        return
    if spec in ENV_NAMES:
        if spec == ctx.target.env:
            url = ctx.url
        else:
            try:
                target = resolve_target(project, spec)
            except ConfigError as exc:
                raise OpError(str(exc), "configure that environment, or compare another source", exit_code=2) from None
            if target.embedded:
                ctx.embedded.start()
                url = ctx.embedded.url()
            else:
                url = target.url
        yield Source(spec, "environment", f"{spec} ({redact(url)})", url)
        return
    if "://" in spec or ("=" in spec and " " in spec):
        try:
            url = check_url(spec)
        except ConfigError as exc:
            raise OpError(str(exc), f"give {describe_sources()}", exit_code=2) from None
        yield Source(spec, "url", redact(url), url)
        return
    path = _snapshot_path(project, spec)
    if path is None:
        if spec.endswith(".sql"):
            raise OpError(f"snapshot file {spec!r} not found",
                          "give a path to a .sql dump, or a name from supabase/snapshots/", exit_code=2)
        raise OpError(f"unknown source {spec!r}: not an environment, URL, snapshot or `migrations`",
                      f"give {describe_sources()}; snapshots live in supabase/snapshots/NAME.sql", exit_code=2)
    with shadow_database(admin_url, "snapshot") as url, tempfile.TemporaryDirectory(prefix="sage-snap-") as tmp:
        neutralize_privileges(url)
        _load_file(url, _without_create_public(path, Path(tmp)), f"snapshot {path.name}")
        yield Source(spec, "snapshot", f"snapshot {path.name}", url, scratch=True)


_CREATE_PUBLIC = re.compile(r'^CREATE SCHEMA "?public"?;', re.M)


def _without_create_public(path: Path, tmp: Path) -> Path:
    """A dump taken with `-n public` re-creates the public schema, which every database already has: load a
    copy without that one statement (the dump's own GRANT/REVOKE lines on it still apply)."""
    with open(path, encoding="utf-8", errors="surrogateescape") as fh:  # the dump's bytes, whatever its encoding
        text = fh.read()
    if not _CREATE_PUBLIC.search(text):
        return path
    out = tmp / path.name
    out.write_text(_CREATE_PUBLIC.sub("-- (public exists already) CREATE SCHEMA public;", text), encoding="utf-8",
                   errors="surrogateescape")
    return out


# --- shadow copy and proof --------------------------------------------------------------------------------------
def neutralize_privileges(url: str) -> None:
    """Before a dump is loaded into a shadow: take away the privileges the shadow would add on its own (the
    baseline's ALTER DEFAULT PRIVILEGES and its grants on schema public), so that the loaded schema has
    exactly the privileges the dump says - no more."""
    # lazy: psycopg loads on the first database call
    from psycopg import sql

    from sage_agent.db.connect import connect

    kinds = {"r": "TABLES", "S": "SEQUENCES", "f": "FUNCTIONS", "T": "TYPES", "n": "SCHEMAS"}
    with connect(url, autocommit=True) as conn:
        rows = conn.execute("""
            select r.rolname, n.nspname, d.defaclobjtype::text,
                   array(select distinct case when a.grantee = 0 then 'PUBLIC' else a.grantee::regrole::text end
                         from aclexplode(d.defaclacl) a where a.grantee <> d.defaclrole)
            from pg_default_acl d join pg_roles r on r.oid = d.defaclrole
            left join pg_namespace n on n.oid = d.defaclnamespace""").fetchall()
        for role, schema, kind, grantees in rows:
            for grantee in grantees:
                who = sql.SQL("PUBLIC") if grantee == "PUBLIC" else sql.Identifier(grantee.strip('"'))
                conn.execute(sql.SQL("alter default privileges for role {} {} revoke all on {} from {}").format(
                    sql.Identifier(role), sql.SQL("in schema {}").format(sql.Identifier(schema)) if schema
                    else sql.SQL(""), sql.SQL(kinds[kind]), who))
        extra = conn.execute("""
            select distinct case when a.grantee = 0 then 'PUBLIC' else a.grantee::regrole::text end
            from pg_namespace n, aclexplode(n.nspacl) a
            where n.nspname = 'public' and a.grantee <> n.nspowner
              and (a.grantee, a.privilege_type) not in (
                  select i.grantee, i.privilege_type from pg_init_privs p, aclexplode(p.initprivs) i
                  where p.objoid = n.oid and p.classoid = 'pg_namespace'::regclass)""").fetchall()
        for (grantee,) in extra:
            who = sql.SQL("PUBLIC") if grantee == "PUBLIC" else sql.Identifier(grantee.strip('"'))
            conn.execute(sql.SQL("revoke all on schema public from {}").format(who))


_DUMP_NOISE = ("--", "SET ", "\\restrict", "\\unrestrict", "SELECT pg_catalog.set_config")


def normalized_dump(url: str, server_major: int | None = None) -> list[str]:
    """pg_dump --schema-only (privileges included, owners left out) of the user schemas, as the sorted list
    of its statements without comments, SET lines and psql meta-commands: what the proof compares. The dump
    goes to a file read line by line: only the statements are held, never the whole dump as one string."""
    with tempfile.TemporaryDirectory(prefix="sage-norm-") as tmp:
        out = Path(tmp) / "schema.sql"
        return read_normalized(out, dump_for_proof(url, out, server_major))


def dump_for_proof(url: str, out: Path, server_major: int | None = None) -> list[str]:
    """The pg_dump behind normalized_dump, written to `out`; returns the storage policies' statements."""
    # lazy: not needed to start `sage --version`, `*help` or `sage mcp`
    from sage_agent.db.tools import PgToolError, run_pg_tool

    # in UTF-8 whatever the database's encoding: a LATIN1 dump read as UTF-8 turned every accented letter into
    # the same replacement character, and two dumps that differ in one accent compared equal. SQL_ASCII holds
    # bytes the server will not convert: its dump keeps them (read back losslessly, DUMP_ERRORS).
    encoding = [] if _sql_ascii(url) else ["--encoding=UTF8"]
    args = ["--schema-only", "--no-owner", "--no-publications", "--no-subscriptions", *encoding, "-f", str(out)]
    for pattern in MANAGED_SCHEMAS:
        args += ["-N", pattern]
    try:
        run_pg_tool("pg_dump", url, args, server_major=server_major or _server_major(url))
        return storage_policies.statements(_storage_policy_entries(url, server_major, encoding))
    except PgToolError as exc:
        raise OpError(f"pg_dump of a schema for the proof failed: {exc}", "check pg_dump with *env-check") from None


def _sql_ascii(url: str) -> bool:
    """The database stores bytes without an encoding (its text comes back to psycopg as bytes)."""
    # lazy: psycopg loads on the first database call
    from sage_agent.db.connect import connect

    with connect(url) as conn:
        return bool(conn.execute("select pg_encoding_to_char(encoding) = 'SQL_ASCII' from pg_database "
                                 "where datname = current_database()").fetchone()[0])


def read_normalized(out: Path, policies: list[str]) -> list[str]:
    """normalized_dump's statements from a dump file written by dump_for_proof."""
    with open(out, encoding="utf-8", errors=DUMP_ERRORS, newline="") as fh:
        statements = split_statements(ln for raw in fh for ln in raw.splitlines())
    return sorted(statements + [s.strip() for s in policies if s.strip()])


def split_statements(lines) -> list[str]:
    """The sorted statements of a dump's lines (noise left out): a line ending in `;` ends a statement, except
    that inside a BEGIN ATOMIC body, indented statements and its END belong to the function."""
    return sorted(iter_statements(lines))


def iter_statements(lines) -> Iterator[str]:
    """split_statements' statements in dump order, one at a time (a statement is given once the next line
    shows it does not go on)."""
    last: str | None = None
    current: list[str] = []
    for line in lines:
        if not line.strip() or line.startswith(_DUMP_NOISE):
            continue
        if not line.endswith(";"):
            current.append(line)
            continue
        current.append(line[:-1])
        piece = "\n".join(current)
        current = []
        if last is not None and (piece[:1].isspace() or _END.match(piece)):
            last += ";\n" + piece
            continue
        if last is not None and (done := last.strip()):
            yield done
        last = piece
    piece = "\n".join(current) + "\n" if current else ""
    if last is not None and (piece[:1].isspace() or _END.match(piece)):
        last += ";\n" + piece
    else:
        if last is not None and (done := last.strip()):
            yield done
        last = piece
    if done := last.strip():
        yield done


# How dump text is read back for the proof: losslessly. An SQL_ASCII database's dump (no conversion to UTF-8
# happens) can hold any byte; each byte that is not UTF-8 becomes its own surrogate, so different bytes stay
# different statements, and the digest hashes the dump's own bytes.
DUMP_ERRORS = "surrogateescape"


def _digest(statement: str) -> bytes:
    return hashlib.blake2b(statement.encode("utf-8", DUMP_ERRORS), digest_size=16).digest()


def shown(statement: str) -> str:
    """A statement of a dump as text that can be printed and put in JSON: a byte that is not UTF-8 (kept as a
    surrogate for comparing) shown as the replacement character."""
    return statement.encode("utf-8", DUMP_ERRORS).decode("utf-8", "replace")


@dataclass
class DumpDigest:
    """A normalized dump held as the count of each statement's 128-bit BLAKE2b digest, its file kept to read
    back the few statements a difference names. At 20,000 tables each dump is ~35 MB of statements: the proof
    compares the digests (equal dumps <=> equal digest counts) and never holds both dumps' text."""

    path: Path
    policies: list[str]
    counts: Counter

    @classmethod
    def of(cls, path: Path, policies: list[str]) -> "DumpDigest":
        digest = cls(path, [p.strip() for p in policies if p.strip()], Counter())
        digest.counts.update(_digest(s) for s in digest._statements())
        return digest

    def _statements(self) -> Iterator[str]:
        with open(self.path, encoding="utf-8", errors=DUMP_ERRORS, newline="") as fh:
            yield from iter_statements(ln for raw in fh for ln in raw.splitlines())
        yield from self.policies

    def texts(self, wanted: Counter) -> list[str]:
        """The statements behind `wanted` (digest -> how many), sorted: read again from the file."""
        need = +wanted
        out = []
        if need:
            for statement in self._statements():
                key = _digest(statement)
                if need.get(key, 0) > 0:
                    out.append(statement)
                    need[key] -= 1
        return sorted(out)


def digest_difference(result: DumpDigest, target: DumpDigest) -> tuple[list[str], list[str]]:
    """dump_difference of two digested dumps: (statements the target has and the result lacks, statements only
    the result has), as multisets, the texts read back from the dump files."""
    return ([shown(s) for s in target.texts(target.counts - result.counts)],
            [shown(s) for s in result.texts(result.counts - target.counts)])


_END = re.compile(r"END\b")


def _storage_policy_entries(url: str, server_major: int | None = None, extra_args: list[str] | None = None
                            ) -> list[str]:
    """pg_dump's entries for the user's policies on storage tables (none: no second pg_dump)."""
    # lazy: psycopg loads on the first database call
    from sage_agent.db.connect import connect

    with connect(url) as conn:
        tables = storage_policies.policy_tables(conn)
    return storage_policies.dump_entries(url, tables, server_major or _server_major(url), extra_args)


def dump_difference(result: list[str], target: list[str]) -> tuple[list[str], list[str]]:
    """(statements the target has and the result lacks, statements only the result has), as multisets."""
    r, t = Counter(result), Counter(target)
    return [shown(s) for s in sorted((t - r).elements())], [shown(s) for s in sorted((r - t).elements())]


SYNC_FUNCTIONS = """
select distinct pg_get_functiondef(p.oid) from pg_trigger t
join pg_proc p on p.oid = t.tgfoid join pg_namespace pn on pn.oid = p.pronamespace
join pg_class c on c.oid = t.tgrelid join pg_namespace cn on cn.oid = c.relnamespace
where not t.tgisinternal and pn.nspname = 'supabase_migrations' and cn.nspname <> all(%s)
"""


def _sync_functions(url: str) -> list[str]:
    """The functions in supabase_migrations that triggers on user tables call: *apply --online's sync triggers
    of a type change under way or expanded. pg_dump leaves that schema out with the managed ones, so without
    them the dump of the user schemas would not load (its CREATE TRIGGER names a missing function)."""
    # lazy: psycopg loads on the first database call
    from sage_agent.db.connect import connect

    with connect(url) as conn:
        return [r[0] for r in conn.execute(SYNC_FUNCTIONS, (list(MANAGED_SCHEMAS),)).fetchall()]


def dump_schema(url: str, out: Path) -> None:
    """pg_dump --schema-only of the user's schemas (managed schemas left out) to `out`; the sync-trigger
    functions those schemas' triggers call are written first."""
    # lazy: not needed to start `sage --version`, `*help` or `sage mcp`
    import shutil

    from sage_agent.db.tools import run_pg_tool

    functions = _sync_functions(url)
    target = out.with_name(out.name + ".dump") if functions else out
    args = ["--schema-only", "--no-owner", "--no-publications", "--no-subscriptions", "-f", str(target)]
    for pattern in MANAGED_SCHEMAS:
        args += ["-N", pattern]
    major = _server_major(url)
    run_pg_tool("pg_dump", url, args, server_major=major)
    if functions:
        # bytes, not text: the dump is in the database's encoding (a LATIN1 one is not UTF-8, and *rollback's
        # proof crashed reading it); the functions, UTF-8 text, say so before the dump's own SET client_encoding
        with open(out, "wb") as fh, open(target, "rb") as dump:
            head = ["SET client_encoding = 'UTF8';", "CREATE SCHEMA IF NOT EXISTS supabase_migrations;"]
            fh.write("".join(f"{line}\n" for line in head + [f"{t.rstrip()};" for t in functions]).encode("utf-8"))
            shutil.copyfileobj(dump, fh)
        target.unlink()
    entries = _storage_policy_entries(url, major)
    if entries:  # the copy gets the user's policies on storage tables too (the shadow has the platform's storage)
        with open(out, "a", encoding="utf-8") as fh:
            fh.write(storage_policies.section(entries))


def _server_major(url: str) -> int:
    # lazy: psycopg loads on the first database call
    from sage_agent.db.connect import connect

    with connect(url) as conn:
        return conn.info.server_version // 10000


TEMPLATE_COPY_MAX_BYTES = 200 * 1024 * 1024


def _template_copy(admin_url: str, url: str) -> str | None:
    """When A lives on the shadow server, is small and idle: CREATE DATABASE ... TEMPLATE A (a file copy,
    much faster than dump + load for big schemas). None when that is not possible (then pg_dump is used)."""
    # lazy: psycopg loads on the first database call
    import secrets

    import psycopg
    from psycopg import sql

    from sage_agent.db.connect import connect
    from sage_agent.db.shadow import SHADOW_PREFIX
    from sage_agent.db.urls import conninfo_params, replace_dbname

    a, s = conninfo_params(url), conninfo_params(admin_url)
    if (a.get("host"), a.get("port", "5432")) != (s.get("host"), s.get("port", "5432")):
        return None
    dbname = a.get("dbname")
    name = f"{SHADOW_PREFIX}tcopy_{secrets.token_hex(4)}"
    try:
        with connect(admin_url, autocommit=True) as conn:
            size = conn.execute("select pg_database_size(%s)", (dbname,)).fetchone()[0]
            if size is None or size > TEMPLATE_COPY_MAX_BYTES:
                return None
            busy = conn.execute("select count(*) from pg_stat_activity where datname = %s", (dbname,)).fetchone()[0]
            if busy:  # CREATE DATABASE would wait ~5 s for them, then fail
                return None
            conn.execute(sql.SQL("create database {} template {}").format(sql.Identifier(name),
                                                                         sql.Identifier(dbname)))
    except psycopg.Error:
        return None  # e.g. other sessions are connected to A
    return replace_dbname(admin_url, name)


@contextmanager
def shadow_copy(admin_url: str, url: str, label: str = "copy", *, keep_privileges: bool = False) -> Iterator[str]:
    """A scratch database holding A's user schema: a template copy when A is a small idle database on the
    shadow server, else pg_dump --schema-only of A loaded into a shadow (its own default privileges taken away
    first, so the copy has exactly the dump's).

    keep_privileges (the proof of a *rollback, compared with its snapshot loaded into a shadow the same way):
    always the dump, loaded into a shadow as it comes, never a template copy (it would copy the rows)."""
    # lazy: psycopg loads on the first database call
    from sage_agent.db.shadow import drop_database, load_sql_file, shadow_database
    from sage_agent.db.tools import PgToolError
    from sage_agent.db.urls import conninfo_params

    copy = None if keep_privileges else _template_copy(admin_url, url)
    if copy is not None:
        try:
            yield copy
        finally:
            drop_database(admin_url, conninfo_params(copy)["dbname"])
        return

    with tempfile.TemporaryDirectory(prefix="sage-diff-") as tmp:
        dump = Path(tmp) / "schema.sql"
        try:
            dump_schema(url, dump)
        except PgToolError as exc:
            raise OpError(f"cannot copy the schema for the proof: {exc}", "check pg_dump with *env-check") from None
        with shadow_database(admin_url, label) as shadow:
            if not keep_privileges:
                neutralize_privileges(shadow)
            try:
                load_sql_file(shadow, dump)
            except PgToolError as exc:
                raise OpError(f"the schema dump does not load into a shadow database: {exc}",
                              "roles or extensions used by the schema must exist on the shadow server") from None
            yield shadow


def apply_plan(url: str, plan: Plan) -> tuple[str | None, str | None]:
    """Apply a plan: non-transactional steps first (each on its own), then the rest in ONE transaction.
    Returns (None, None) on success, else (failed step SQL, error message); nothing of the transaction stays."""
    # lazy: psycopg loads on the first database call
    import psycopg

    from sage_agent.db.connect import connect

    with connect(url, autocommit=True) as conn:
        for step in plan.steps:
            if not step.transactional:
                try:
                    conn.execute(step.sql)
                except psycopg.Error as exc:
                    return step.sql, str(exc).strip()
        try:
            with conn.transaction():
                conn.execute("set local check_function_bodies = off")
                for step in plan.steps:
                    if step.transactional:
                        current = step.sql
                        conn.execute(step.sql)
        except psycopg.Error as exc:
            return current, str(exc).strip()
    return None, None


def read_schema(url: str) -> DatabaseSchema:
    # lazy: psycopg loads on the first database call
    from sage_agent.db.connect import connect
    from sage_agent.ops.schema.introspect import introspect

    with connect(url) as conn:
        return introspect(conn)


def prove(plan: Plan, shadow_url: str, model_b: DatabaseSchema, timer: Timer | None = None,
          inspect=None, dump_b: "list[str] | DumpDigest | None" = None) -> Proof:
    """Apply `plan` to the shadow copy of A, then compare: proven only when the normalized pg_dump of the
    result equals B's (`dump_b`) - and the model sees no difference either."""
    timer = timer or Timer()
    if plan.blockers:
        return Proof(False, error="the plan is blocked: " + " ".join(plan.blockers))
    with timer("proof: apply plan"):
        failed, error = apply_plan(shadow_url, plan)
    if failed:
        return Proof(False, error=error, failed_step=failed)
    with timer("proof: re-read A'"):
        again = read_schema(shadow_url)
    with timer("proof: re-diff"):
        remaining = diff_schemas(again, model_b)
    missing: list[str] = []
    extra: list[str] = []
    if isinstance(dump_b, DumpDigest):
        with timer("proof: pg_dump of the result"), tempfile.TemporaryDirectory(prefix="sage-norm-") as tmp:
            out = Path(tmp) / "result.sql"
            missing, extra = digest_difference(DumpDigest.of(out, dump_for_proof(shadow_url, out)), dump_b)
    elif dump_b is not None:
        with timer("proof: pg_dump of the result"):
            missing, extra = dump_difference(normalized_dump(shadow_url), dump_b)
    if inspect is not None:
        inspect(shadow_url)
    if missing or extra:
        return Proof(False, remaining=remaining, dump_missing=missing, dump_extra=extra,
                     error=f"the schema dump after the plan differs from the target's: {len(missing)} statements "
                           f"missing, {len(extra)} not in the target")
    if remaining.drift or remaining.steps:
        return Proof(False, remaining=remaining, error="differences remain after applying the plan")
    return Proof(True, remaining=remaining)


def _align_versions(stack: ExitStack, admin_url: str, a: Source, b: Source, notes: list[str]) -> tuple[Source, Source]:
    """PostgreSQL prints definitions (views, ...) differently across major versions: when A or B runs another
    major than the shadow server (where the proof runs), compare schema copies on the shadow server instead,
    so only real differences show and the proof compares like with like."""
    # lazy: psycopg loads on the first database call
    from sage_agent.db.connect import DbConnectError

    try:
        ma, mb, ms = _server_major(a.url), _server_major(b.url), _server_major(admin_url)
    except DbConnectError as exc:
        raise OpError(exc.message, exc.hint) from None
    if ma == ms and mb == ms:
        return a, b
    out = []
    for side, major in ((a, ma), (b, mb)):
        if major == ms:
            out.append(side)
            continue
        try:
            url = stack.enter_context(shadow_copy(admin_url, side.url, "version"))
        except OpError as exc:
            notes.append(f"{side.label} (PostgreSQL {major}) could not be copied to the shadow server "
                         f"(PostgreSQL {ms}): {exc.message}. Definitions may differ in formatting only.")
            out.append(side)
            continue
        out.append(Source(side.spec, side.kind, f"{side.label}, compared as a copy on PostgreSQL {ms}", url,
                          scratch=True))
    notes.append(f"A runs PostgreSQL {ma}, B PostgreSQL {mb} and the shadow server PostgreSQL {ms}: schema copies "
                 f"on the shadow server were compared so that definitions print alike (extension versions "
                 "follow the shadow server)")
    return out[0], out[1]


def _same_server(url: str, admin_url: str) -> bool:
    # lazy: not needed to start `sage --version`, `*help` or `sage mcp`
    from sage_agent.db.urls import conninfo_params

    a, s = conninfo_params(url), conninfo_params(admin_url)
    return (a.get("host"), a.get("port", "5432")) == (s.get("host"), s.get("port", "5432"))


def compare(ctx, source: str, target: str, *, do_prove: bool = True, inspect=None) -> Comparison:
    """Compare A (source) with B (target), plan A -> B, and prove the plan on a shadow copy of A."""
    # lazy: psycopg loads on the first database call
    from sage_agent.db.connect import DbConnectError

    timer = Timer()
    admin_url = ctx.admin_url
    if ctx.target.env in (source.strip(), target.strip()):
        try:
            ctx.url  # noqa: B018 - start an embedded target once, before the worker threads need it
        except DbConnectError as exc:
            raise OpError(exc.message, exc.hint) from None
    with ExitStack() as stack, ThreadPoolExecutor(max_workers=5) as pool:
        with timer("load sources"):
            fa = pool.submit(lambda: stack.enter_context(open_source(ctx, source, admin_url, "source")))
            fb = pool.submit(lambda: stack.enter_context(open_source(ctx, target, admin_url, "target")))
            a, b = fa.result(), fb.result()
        notes: list[str] = []
        with timer("align server versions"):
            a, b = _align_versions(stack, admin_url, a, b, notes)
        copy_future = None
        if do_prove and not a.scratch:
            def make_copy():
                t0 = time.perf_counter()
                try:
                    url = stack.enter_context(shadow_copy(admin_url, a.url, "proof"))
                except OpError as exc:  # reported as an unproven plan, the drift is still shown
                    return exc
                timer.times["proof: shadow copy of A"] = time.perf_counter() - t0
                return url
            # on another server (dump + load): start now, beside the reads. On the shadow server itself (a file
            # copy of A, which must be idle): only once the plan turns out not to be empty.
            copy_future = None if _same_server(a.url, admin_url) else pool.submit(make_copy)
        # the proof's pg_dumps of A and B start first and run beside the model reads: each is a process of its
        # own (another core), while the reads are mostly Python in this one. Their files are read into statements
        # only after the reads, so the dumps never add to the reads' peak memory.
        dumps = None
        if do_prove:
            folder = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="sage-norm-")))
            dumps = [(folder / name, pool.submit(dump_for_proof, side.url, folder / name))
                     for name, side in (("a.sql", a), ("b.sql", b))]
        try:
            with timer("read schemas (A and B)"):
                ma_f = pool.submit(read_schema, a.url)
                mb_f = pool.submit(read_schema, b.url)
                model_a, model_b = ma_f.result(), mb_f.result()
        except DbConnectError as exc:
            raise OpError(exc.message, exc.hint) from None
        with timer("diff"):
            plan = diff_schemas(model_a, model_b)
        proof = None
        dump_a = dump_b = None
        if dumps is not None:
            with timer("pg_dump of A and B (beyond the reads)"):
                policies = [future.result() for _, future in dumps]
            with timer("read the dumps"):
                dump_a, dump_b = (DumpDigest.of(path, pol) for (path, _), pol in zip(dumps, policies))
                only_b, only_a = digest_difference(dump_a, dump_b)
            if plan.empty:
                proof = Proof(not only_a and not only_b, remaining=plan, applied_to="(nothing to apply)",
                              dump_missing=only_b, dump_extra=only_a,
                              error=None if not only_a and not only_b else
                              "the schema dumps differ in what the comparison does not model; no plan covers it")
                if copy_future is not None:
                    copy_future.result()
            else:
                if not a.scratch and copy_future is None:
                    shadow = make_copy()
                    applied = "a shadow copy of A"
                elif copy_future is not None:
                    with timer("proof: waiting for the shadow copy"):
                        shadow = copy_future.result()
                    applied = "a shadow copy of A"
                else:
                    shadow = a.url
                    applied = "the shadow database holding A"
                if isinstance(shadow, OpError):
                    proof = Proof(False, error=f"{shadow.message} (no shadow copy of A to prove the plan on)")
                else:
                    proof = prove(plan, shadow, model_b, timer, inspect=inspect, dump_b=dump_b)
                    proof.applied_to = applied
        elif copy_future is not None:
            copy_future.result()
    cmp = Comparison(a, b, model_a, model_b, plan, proof, timer.times, notes)
    if dump_a is not None:
        cmp.dump_only_b, cmp.dump_only_a = only_b, only_a
    return cmp

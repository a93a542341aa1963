"""Data operations: *load-csv, *backup, *restore."""

from __future__ import annotations

import hashlib
import io
import re
import threading
import time
import warnings
from pathlib import Path

from pydantic import BaseModel

from sage_agent.catalog.tasks import cmd
from sage_agent.db.env import ENV_NAMES, check_url, resolve_target
from sage_agent.db.redact import redact
from sage_agent.ops.artifacts import read_state, write_state
from sage_agent.ops.registry import operation
from sage_agent.ops.result import Finding, NeedsInput, OpError, OpResult, Table, human_bytes

with warnings.catch_warnings():
    warnings.simplefilter("ignore")  # the `validate` input shadows BaseModel.validate (deprecated) on purpose

    class LoadCsvInput(BaseModel):
        file: str
        table: str
        create: bool = False
        header: bool = True
        delimiter: str = ","
        quote: str = '"'
        null: str | None = None
        encoding: str = "utf8"
        validate: bool = False
        batch_rows: int | None = None
        restart: bool = False
        max_errors: int | None = None


@operation("db-load-csv", risk="write")
def load_csv(inputs: LoadCsvInput, ctx) -> OpResult:
    """Stream a CSV file into a table through COPY; all-or-nothing unless batched."""
    # lazy: not needed to start `sage --version`, `*help` or `sage mcp`
    from sage_agent.ops.data import csvload as dc
    opts = dc.build_options(inputs)
    if inputs.batch_rows is not None and inputs.batch_rows < 1:
        raise OpError("batch_rows must be a positive number of rows", exit_code=2)
    path = dc.resolve_file(ctx.project, inputs.file)
    # COPY and the batch bookkeeping need one session: the direct URL beside a transaction pooler
    conn = ctx.connect(ctx.migration_url, autocommit=True)  # one connection: catalog, plan and the load itself
    ctx.require_primary(conn)
    table = dc.find_table(conn, inputs.table)
    with conn, dc.Source(path) as src:
        first = dc.read_header_line(src)
        header = dc.header_names(first, opts) if opts.header else None
        sample = dc.read_sample(src, opts)
        sample_rows = list(sample.rows)
        if header is None:
            try:
                sample_rows.insert(0, dc.parse_record(first.decode(opts.encoding_py, errors="replace"), opts))
            except Exception:  # noqa: BLE001 - a bad first record is reported by the load itself
                pass
        if header is not None and sample.eof and not sample.data.strip():
            return OpResult(operation="db-load-csv", status="warning",
                            summary=f"{path.name} has a header but no rows: nothing loaded",
                            facts={"file": str(path), "table": table.display, "rows": 0})
        creating = not table.exists
        if creating:
            if not inputs.create:
                raise NeedsInput("create", f"Create {table.display} with column types inferred from {path.name}?",
                                 reason=f"table {table.display} does not exist", choices=["yes", "no"],
                                 default="yes", hint="pass --create to create it with types inferred from the "
                                 "file, or create it with a migration first")
            cols = dc.infer_columns(header, dc.Sample(sample.data, sample_rows, sample.eof), opts)
            table.columns = cols
        elif header is not None:
            cols = dc.map_columns(header, table)
        else:
            cols = dc.positional_columns(len(sample_rows[0]) if sample_rows else 1, table)
        data_start = len(first) if opts.header else 0
        total = src.uncompressed_size()
        sampled = sample.data if sample.eof else sample.data[: sample.data.rfind(b"\n") + 1]
        estimate = None
        if total is not None and sample.rows and sampled:
            estimate = max(len(sample.rows), round((total - data_start) * len(sample.rows) / len(sampled)))
        copy_text = dc.copy_sql(table, cols, opts).as_string(conn)
        create_text = dc.create_table_sql(table, cols).as_string(conn) if creating else None
        mapping_rows = [[(header[i] if header is not None else f"field {i + 1}"), c.name, c.type]
                        for i, c in enumerate(cols)]
        plan_lines = [f"-- load {path.name} ({human_bytes(src.size)}{', gzip' if src.gzip else ''}"
                      f"{f', ~{estimate:,} rows' if estimate else ''}) into {table.display}"]
        if create_text:
            plan_lines.append(create_text + ";")
        plan_lines.append(copy_text + ";")
        plan_lines.append("-- columns: " + ", ".join(f"{a} -> {b} ({t})" for a, b, t in mapping_rows))
        plan_lines.append(f"-- one transaction per {inputs.batch_rows:,} rows; re-run resumes"
                          if inputs.batch_rows else "-- one transaction: any bad row loads nothing")
        plan = "\n".join(plan_lines)
        ctx.confirm(f"Load {path.name} into {table.display}{' (new table)' if creating else ''}?", plan=plan)
        common = {"file": str(path), "table": table.display, "created_table": creating, "format": "csv",
                  "encoding": opts.encoding_pg, "gzip": src.gzip}
        mapping = Table(title="Column mapping", columns=["file column", "table column", "type"], rows=mapping_rows)
        max_errors = inputs.max_errors or dc.DEFAULT_MAX_ERRORS

        if inputs.validate:
            bad = _validate_file(ctx, path, cols, opts)
            if bad:
                return _bad_rows_result(ctx, table, bad, max_errors, common, mapping, loaded=0,
                                        summary_prefix="Validation found bad rows; nothing loaded")
        if inputs.batch_rows:
            src.close()
            return _load_batched(ctx, inputs, path, table, cols, opts, creating, common, mapping, max_errors)

        prefix = (b"" if opts.header else first) + sample.data
        watch = dc.LineWatch(first_line=2 if opts.header else 1)
        progress = ctx.progress(f"Loading {path.name}", total=src.size)
        meter = dc.Meter(progress, raw_start=0)
        started = time.perf_counter()
        server_error = None
        rows = 0
        # lazy: psycopg loads on the first database call
        import psycopg

        try:
            with conn.transaction():
                conn.execute("set local statement_timeout = 0")
                if creating:
                    conn.execute(dc.create_table_sql(table, cols))
                with conn.cursor() as cur:
                    with cur.copy(dc.copy_sql(table, cols, opts)) as copy:
                        for chunk in dc.iter_chunks(prefix, src.stream):
                            watch.feed(chunk)
                            copy.write(chunk)
                            meter.tick(src.raw_pos, len(chunk), watch.lines)
                    rows = cur.rowcount
        except dc.LineTooLong as exc:
            raise OpError(f"{path.name}: {exc}: not a CSV record. Nothing was loaded (rolled back).",
                          "check the file: a record this long usually means a missing line break or quote") from None
        except psycopg.Error as exc:
            server_error = _server_error(exc, opts.header)
            if (exc.sqlstate or "")[:2] not in ("22", "23"):  # not about the data: no row-by-row pass
                raise OpError(f"the load failed and was rolled back, nothing was loaded: {server_error}",
                              _hint_for(exc.sqlstate)) from None
        except (OSError, EOFError) as exc:
            raise OpError(f"cannot read {path.name}: {exc}. Nothing was loaded (rolled back).",
                          "is the .gz file complete?") from None
        elapsed = time.perf_counter() - started
    if server_error:
        bad = _validate_file(ctx, path, cols, opts)
        return _bad_rows_result(ctx, table, bad, max_errors, common, mapping, loaded=0, server_error=server_error,
                                summary_prefix="Nothing loaded (rolled back)")
    size = meter.bytes
    facts = {**common, "rows": rows, "bytes": size, "seconds": round(elapsed, 3),
             "rows_per_s": round(rows / elapsed) if elapsed else None,
             "mb_per_s": round(size / elapsed / 1e6, 1) if elapsed else None, "mode": "single transaction"}
    return OpResult(operation="db-load-csv",
                    summary=f"Loaded {rows:,} rows into {table.display} in {elapsed:.2f} s "
                            f"({facts['rows_per_s'] or 0:,} rows/s, {facts['mb_per_s']} MB/s)",
                    facts=facts, tables=[mapping], data={"rows": rows, "table": table.display},
                    next_steps=[cmd("db-backup")])


def _hint_for(sqlstate: str | None) -> str | None:
    return {"55P03": f"another session holds a lock on the table: retry later ({cmd('db-check-locks')} shows who)",
            "42501": "the user may not write to this table (GRANT INSERT, or use another role)",
            "57014": "the load was cancelled (statement timeout or Ctrl-C)",
            "3F000": "the schema does not exist: create it first"}.get(sqlstate or "")


def _server_error(exc, header: bool) -> str:
    diag = exc.diag
    message = diag.message_primary or str(exc).splitlines()[0]
    context = diag.context or ""
    match = re.search(r"line (\d+)", context)
    where = ""
    if match:
        line = int(match.group(1)) + (1 if header else 0)
        col = re.search(r'column (\S+?)[:,]', context)
        where = f" at line {line}" + (f", column {col.group(1)}" if col else "")
    detail = f" ({diag.message_detail})" if diag.message_detail else ""
    return f"{message}{detail}{where}"


def _validate_file(ctx, path: Path, cols, opts) -> list:
    # lazy: not needed to start `sage --version`, `*help` or `sage mcp`
    from sage_agent.ops.data import csvload as dc
    with dc.Source(path) as src:
        if opts.header:
            dc.read_header_line(src)
        with ctx.connect(ctx.migration_url, autocommit=False) as conn:
            try:
                return dc.validate_rows(conn, src.stream, b"", 2 if opts.header else 1, cols, opts,
                                        ctx.server.major)
            finally:
                conn.rollback()


def _bad_rows_result(ctx, table, bad, max_errors: int, common: dict, mapping: Table, *, loaded: int,
                     summary_prefix: str, server_error: str | None = None, extra_facts: dict | None = None,
                     notes: list[str] | None = None) -> OpResult:
    # lazy: not needed to start `sage --version`, `*help` or `sage mcp`
    from sage_agent.ops.data import csvload as dc
    artifacts = []
    findings = []
    facts = {**common, "rows_loaded": loaded, "bad_rows": len(bad), **(extra_facts or {})}
    tables = []
    if bad:
        reject = dc.write_rejects(ctx.project, table, bad)
        artifacts.append(str(reject))
        facts["reject_file"] = str(reject)
        shown = bad[:max_errors]
        findings = [Finding(rule="csv.bad_row", severity="error", message=b.reason, location=f"line {b.line}",
                            detail=(b.record[:200] or None)) for b in shown]
        tables.append(Table(title="Bad rows", columns=["line", "reason"], rows=[[b.line, b.reason] for b in shown],
                            truncated=len(bad) > len(shown), total_rows=len(bad)))
        first = bad[0]
        summary = (f"{summary_prefix}: {len(bad):,} bad row{'s' if len(bad) != 1 else ''} "
                   f"(first: line {first.line}: {first.reason})")
    else:
        summary = f"{summary_prefix}: the server rejected the data: {server_error}"
    if server_error:
        facts["server_error"] = server_error
    tables.append(mapping)
    return OpResult(operation="db-load-csv", status="failed", summary=summary, facts=facts, findings=findings,
                    tables=tables, artifacts=artifacts, notes=notes or [],
                    data={"bad_rows": [{"line": b.line, "reason": b.reason} for b in bad[:1000]],
                          "rows_loaded": loaded, "reject_file": artifacts[0] if artifacts else None},
                    next_steps=["fix the rows listed (see the reject file) and run the same *load-csv again"])


def _load_batched(ctx, inputs: LoadCsvInput, path: Path, table, cols, opts, creating: bool, common: dict,
                  mapping: Table, max_errors: int) -> OpResult:
    """One transaction per batch; the state file records the committed offset and the batch in flight."""
    # lazy: psycopg loads on the first database call
    import psycopg

    from sage_agent.ops.data import csvload as dc
    state_file = dc.state_path(ctx.project, table, path)
    names = [c.name for c in cols]
    state = None if inputs.restart else read_state(state_file)
    conn = ctx.connect(ctx.migration_url, autocommit=True)
    notes: list[str] = []
    if state and state.get("columns") != names:
        raise OpError(f"the interrupted load recorded in {state_file.name} used other columns "
                      f"({', '.join(state.get('columns') or [])})", "pass --restart to start over")
    if state and state.get("pending"):
        pending = state["pending"]
        status = conn.execute("select txid_status(%s)", (pending["txid"],)).fetchone()[0]
        if status == "committed":
            state.update({k: pending[k] for k in ("offset", "rows", "line", "prefix_sha256", "batches")})
        state["pending"] = None
        write_state(state_file, state)
    resumed_rows = state["rows"] if state else 0
    hasher = hashlib.sha256()
    src = dc.Source(path)
    try:
        if state:
            remaining = state["offset"]
            while remaining:
                chunk = src.stream.read(min(dc.CHUNK, remaining))
                if not chunk:
                    break
                hasher.update(chunk)
                remaining -= len(chunk)
            if remaining or hasher.hexdigest() != state["prefix_sha256"]:
                raise OpError(f"{path.name} changed before line {state['line']}, where the interrupted load stopped "
                              f"({state['rows']:,} rows are committed)",
                              "pass --restart to load the whole file again (delete the committed rows first)")
            notes.append(f"resumed at line {state['line']}: {state['rows']:,} rows were committed by an earlier run")
            offset, rows_done, line, batches = state["offset"], state["rows"], state["line"], state.get("batches", 0)
        else:
            offset, rows_done, line, batches = 0, 0, 1, 0
            if opts.header:
                head = src.stream.readline(dc.HEADER_LIMIT + 1)
                hasher.update(head)
                offset, line = len(head), 2
            state = {"file": str(path), "table": table.display, "columns": names, "batch_rows": inputs.batch_rows,
                     "offset": offset, "rows": 0, "line": line, "batches": 0, "prefix_sha256": hasher.hexdigest(),
                     "pending": None}
            write_state(state_file, state)
        progress = ctx.progress(f"Loading {path.name}", total=src.size)
        meter = dc.Meter(progress, raw_start=0)
        started = time.perf_counter()
        need_create = creating
        quote = opts.quote.encode("ascii")
        buf: list[bytes] = []
        batch_first_line = line

        def flush() -> None:
            nonlocal offset, rows_done, line, batches, need_create, buf, hasher, batch_first_line
            data = b"".join(buf)
            n = len(buf)
            new_hash = hasher.copy()
            new_hash.update(data)
            next_line = batch_first_line + data.count(b"\n") + (0 if data.endswith(b"\n") else 1)
            with conn.transaction():
                conn.execute("set local statement_timeout = 0")
                if need_create:
                    conn.execute(dc.create_table_sql(table, cols))
                with conn.cursor() as cur:
                    with cur.copy(dc.copy_sql(table, cols, opts)) as copy:
                        copy.write(data)
                txid = conn.execute("select txid_current()").fetchone()[0]
                state["pending"] = {"txid": txid, "offset": offset + len(data), "rows": rows_done + n,
                                    "line": next_line, "prefix_sha256": new_hash.hexdigest(), "batches": batches + 1}
                write_state(state_file, state)
            state.update({k: state["pending"][k] for k in ("offset", "rows", "line", "prefix_sha256", "batches")})
            state["pending"] = None
            write_state(state_file, state)
            need_create = False
            offset, rows_done, line, batches = state["offset"], state["rows"], state["line"], state["batches"]
            hasher = new_hash
            meter.tick(src.raw_pos, len(data), rows_done - resumed_rows)
            buf = []
            batch_first_line = line

        try:
            for _start, raw in dc.iter_records(src.stream, quote, line):
                buf.append(raw)
                if len(buf) >= inputs.batch_rows:  # type: ignore[operator]
                    flush()
            if buf:
                flush()
        except psycopg.Error as exc:
            server_error = _server_error(exc, False)
            failed = b"".join(buf)
            state["pending"] = None
            write_state(state_file, state)
            with ctx.connect(ctx.migration_url, autocommit=False) as vconn:
                bad = dc.validate_rows(vconn, io.BytesIO(failed), b"", batch_first_line, cols, opts, ctx.server.major)
                vconn.rollback()
            notes.append(f"{rows_done:,} rows in {batches} batches are committed (through line {line - 1}); "
                         f"fix the file from line {batch_first_line} on and run the same command again: "
                         f"it resumes at line {batch_first_line}")
            return _bad_rows_result(ctx, table, bad, max_errors, common, mapping, loaded=rows_done,
                                    summary_prefix=f"Batch from line {batch_first_line} failed and was rolled back; "
                                                   f"{rows_done:,} rows stay committed",
                                    server_error=server_error, notes=notes,
                                    extra_facts={"state_file": str(state_file), "resume_line": batch_first_line})
        except dc.LineTooLong as exc:
            raise OpError(f"{path.name}: {exc}: not a CSV record. {rows_done:,} rows in {batches} batches stay "
                          f"committed; the batch in progress was not loaded.",
                          "fix the file and run the same command again to resume") from None
        elapsed = time.perf_counter() - started
    finally:
        src.close()
        conn.close()
    state_file.unlink(missing_ok=True)
    loaded = rows_done - resumed_rows
    facts = {**common, "rows": rows_done, "rows_this_run": loaded, "batches": batches, "bytes": meter.bytes,
             "seconds": round(elapsed, 3), "rows_per_s": round(loaded / elapsed) if elapsed else None,
             "mb_per_s": round(meter.bytes / elapsed / 1e6, 1) if elapsed else None,
             "mode": f"batches of {inputs.batch_rows:,} rows"}
    return OpResult(operation="db-load-csv",
                    summary=f"Loaded {loaded:,} rows into {table.display} in {batches} batches"
                            + (f" (resumed; {rows_done:,} rows in total)" if resumed_rows else ""),
                    facts=facts, tables=[mapping], notes=notes, data={"rows": rows_done, "table": table.display},
                    next_steps=[cmd("db-backup")])


# --- *backup ----------------------------------------------------------------------------------------------------
class BackupInput(BaseModel):
    name: str | None = None
    format: str = "custom"
    jobs: int | None = None


@operation("db-backup", risk="read")
def backup(inputs: BackupInput, ctx) -> OpResult:
    """pg_dump into supabase/backups/ with metadata and verification."""
    # lazy: not needed to start `sage --version`, `*help` or `sage mcp`
    from sage_agent.ops.data import backup as db
    if inputs.jobs is not None and inputs.jobs < 1:
        raise OpError("jobs must be at least 1", exit_code=2)
    if inputs.jobs and inputs.jobs > 1 and inputs.format != "directory":
        raise OpError(f"--jobs {inputs.jobs} needs the directory format (pg_dump runs parallel jobs only there)",
                      f"*backup {inputs.name or ''} directory --jobs {inputs.jobs}".replace("  ", " "), exit_code=2)
    name = db.check_name(inputs.name or f"{ctx.target.env}-{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime())}")
    # pg_dump sets session state (search_path, a snapshot): the direct URL beside a transaction pooler
    meta = db.make_backup(ctx, ctx.migration_url, name, inputs.format, jobs=inputs.jobs, env_label=ctx.target.env)
    return _backup_result(ctx, meta)


def _backup_result(ctx, meta: dict) -> OpResult:
    rows = [[f"{t['schema']}.{t['name']}", t["rows"]] for t in meta["tables"]]
    rel = _rel(ctx.project, Path(meta["_path"]))
    facts = {"backup": rel, "format": meta["format"], "size": human_bytes(meta["size"]), "sha256": meta["sha256"],
             "tables": len(meta["tables"]), "rows": meta["total_rows"], "server": meta["server_version"],
             "seconds": meta["duration_s"], "metadata": _rel(ctx.project, Path(meta["_meta_path"]))}
    return OpResult(operation="db-backup",
                    summary=f"Backed up {meta['database']} to {rel} ({human_bytes(meta['size'])}, "
                            f"{len(meta['tables'])} tables, {meta['total_rows']:,} rows), verified",
                    facts=facts, tables=[Table(title="Tables", columns=["table", "rows"], rows=rows)],
                    notes=list(meta.get("notes") or []), artifacts=[meta["_path"], meta["_meta_path"]],
                    data={k: v for k, v in meta.items() if not k.startswith("_")},
                    next_steps=[f"*restore {meta['name']} --into <scratch database URL> (test the backup)"])


def _rel(project: Path, path: Path) -> str:
    try:
        return str(path.relative_to(project))
    except ValueError:
        return str(path)


# --- *restore ---------------------------------------------------------------------------------------------------
class RestoreInput(BaseModel):
    backup: str
    into: str | None = None


@operation("db-restore", risk="destructive")
def restore(inputs: RestoreInput, ctx) -> OpResult:
    """Check the backup, show what will be replaced, RESTORE, safety backup, restore in one transaction, verify."""
    # lazy: psycopg loads on the first database call
    from psycopg import sql

    from sage_agent.db.connect import DbConnectError, connect
    from sage_agent.db.pooler import session_url
    from sage_agent.db.replication import StandbyWrite, is_standby
    from sage_agent.db.urls import describe, replace_dbname
    from sage_agent.ops.data import backup as db
    meta, meta_path, artifact = db.locate(ctx.project, inputs.backup)
    # --- the target
    extra_production = False
    if inputs.into is None:
        url, label = ctx.migration_url, ctx.target.env
    elif inputs.into in ENV_NAMES:
        target = resolve_target(ctx.project, inputs.into)
        if target.embedded:
            ctx.embedded.start()
            target.url = ctx.embedded.url()
        url = session_url(target.url, target.direct_url, "*restore", known_direct=target.embedded,
                          variable=target.direct_variable)
        label = inputs.into
        extra_production = target.is_production and not ctx.target.is_production
    else:
        url, label = session_url(check_url(inputs.into), None, "*restore", variable="a direct URL in into="), "URL"
    where = describe(url)
    display = redact(url)
    # lazy: not needed to start `sage --version`, `*help` or `sage mcp`
    from sage_agent.db.info import server_info

    create_db = False
    try:
        with connect(url, autocommit=True) as probe:
            info = server_info(probe)
            roles = {r[0] for r in probe.execute("select rolname from pg_roles")}
            standby = is_standby(probe)
    except DbConnectError as exc:
        if exc.kind != "missing_database":
            raise
        with connect(replace_dbname(url, "postgres"), autocommit=True) as probe:
            info = server_info(probe)
            roles = {r[0] for r in probe.execute("select rolname from pg_roles")}
            standby = is_standby(probe)
        create_db = True
    if standby:
        raise StandbyWrite("*restore", display)
    listing = db.check_backup(meta, artifact, info.major)
    # --- what will be replaced
    backup_rows = {f"{t['schema']}.{t['name']}": t["rows"] for t in meta["tables"]}
    current: dict[str, int] = {}
    if not create_db:
        with ctx.connect(url) as conn:
            conn.execute("set statement_timeout = 0")
            current = db.count_rows(conn, db.list_tables(conn), inherited=True)
            blockers = db.outside_dependents(conn, list(backup_rows),
                                             db.views_in_backup(listing, artifact, meta["format"]))
        if blockers:
            raise OpError(
                f"*restore would fail: {len(blockers)} object(s) made after the backup depend on tables it replaces "
                f"(pg_restore --clean cannot drop those tables): "
                + ", ".join(f"{kind} on {obj}" for obj, kind, _ in blockers[:5]) + ("..." if len(blockers) > 5 else ""),
                "nothing was changed. Restore into a new database (*restore NAME --into URL), or drop them first "
                "(*run-sql --write), then *restore again:\n" + "\n".join(fix for _, _, fix in blockers))
    plan_rows = []
    for table in sorted(set(backup_rows) | set(current)):
        now = current.get(table)
        then = backup_rows.get(table)
        action = "replaced" if now is not None and then is not None else ("created" if now is None else
                                                                          "kept (not in the backup)")
        plan_rows.append([table, "-" if now is None else now, "-" if then is None else then, action])
    missing_owners = db.archive_owners(listing) - roles if listing else set()
    if meta["format"] == "plain":
        command = "psql --single-transaction -v ON_ERROR_STOP=1 -f " + artifact.name
    else:
        command = ("pg_restore --clean --if-exists --single-transaction --exit-on-error"
                   + (" --no-owner" if missing_owners else "") + f" {artifact.name}")
    lines = [f"-- restore backup {meta['name']} ({meta['format']}, {meta['created_at']}, from {meta['database']}, "
             f"PostgreSQL {meta['server_version']})",
             f"-- into {label}: {where['database']} on {where['host']}:{where['port']}"]
    if create_db:
        lines.append(f"CREATE DATABASE {sql.Identifier(where['database']).as_string(None)} TEMPLATE template0;")
    else:
        lines.append("-- safety backup of the target first: supabase/backups/before-restore-<timestamp>.dump")
    lines.append(command)
    lines.append("-- table | rows now | rows in backup | action")
    lines += [f"--   {r[0]} | {r[1]} | {r[2]} | {r[3]}" for r in plan_rows]
    plan = "\n".join(lines)
    replaced = sum(1 for r in plan_rows if r[3] == "replaced")
    if extra_production:
        ctx.confirm(f"*restore will replace data in PRODUCTION ({display}).", plan=plan, word="PRODUCTION")
    ctx.confirm_destructive(
        f"Restore {meta['name']} into {label} {where['database']}"
        + (" (new database)" if create_db else f": {replaced} tables will be replaced") + "?", plan=plan)
    # --- do it
    notes: list[str] = []
    safety = None
    admin_url = replace_dbname(url, "postgres")
    if create_db:
        with connect(admin_url, autocommit=True) as conn:
            conn.execute(sql.SQL("create database {} template template0").format(sql.Identifier(where["database"])))
        notes.append(f"created database {where['database']} (template0)")
    elif current:
        stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
        name, n = f"before-restore-{stamp}", 1
        while (db.backups_dir(ctx.project) / f"{name}.json").exists() or any(db.backups_dir(ctx.project).glob(f"{name}.*")):
            n += 1  # a second restore in the same second (e.g. the retry after a failed one) gets its own name
            name = f"before-restore-{stamp}-{n}"
        safety = db.make_backup(ctx, url, name, "custom", env_label=label,
                                progress_label="Safety backup of the target")
        notes.append(f"safety backup: {_rel(ctx.project, Path(safety['_path']))}")
    if missing_owners:
        notes.append(f"owners missing on the target were skipped (--no-owner): {', '.join(sorted(missing_owners))}")
    progress = ctx.progress(f"Restoring {meta['name']}", total=None)
    started = time.perf_counter()
    try:
        _run_restore(url, artifact, meta["format"], info.major, no_owner=bool(missing_owners),
                     lock_timeout_ms=ctx.settings.lock_timeout_ms, source_major=meta.get("server_major"))
    except OpError as exc:
        if create_db:
            # lazy: psycopg loads on the first database call
            from sage_agent.db.shadow import drop_database

            drop_database(admin_url, where["database"])
            notes.append(f"dropped the database {where['database']} created for this restore")
        hint = (f"the target is unchanged (one transaction); safety backup: {safety['name']}" if safety
                else "the target is unchanged (one transaction)")
        raise OpError(f"restore failed and was rolled back: {exc.message}", hint) from None
    progress.update(1, "restored")
    elapsed = time.perf_counter() - started
    # --- verify
    with ctx.connect(url) as conn:
        conn.execute("set statement_timeout = 0")
        after, counted = db.restored_counts(conn, backup_rows, info.major)
    notes.append(f"row counts: {len(backup_rows) - counted} tables from the server's insert counters of this "
                 f"restore, {counted} counted with count(*)")
    findings = []
    rows = []
    for table, expected in backup_rows.items():
        got = after.get(table)
        ok = got == expected
        rows.append([table, expected, "-" if got is None else got, "ok" if ok else "DIFFERS"])
        if not ok:
            findings.append(Finding(rule="restore.row_count", severity="error", location=table,
                                    message=f"{table}: {got if got is not None else 'missing'} rows after the "
                                            f"restore, {expected} in the backup"))
    status = "failed" if findings else "ok"
    summary = (f"Restored {meta['name']} into {label} {where['database']}: {len(backup_rows)} tables, "
               f"{sum(backup_rows.values()):,} rows, row counts verified" if not findings else
               f"Restored {meta['name']} into {where['database']}, but {len(findings)} table(s) have other row counts "
               "than the backup")
    artifacts = [safety["_path"], safety["_meta_path"]] if safety else []
    return OpResult(operation="db-restore", status=status, summary=summary,
                    facts={"backup": meta["name"], "format": meta["format"], "target": display, "environment": label,
                           "created_database": create_db, "tables": len(backup_rows),
                           "rows": sum(backup_rows.values()), "seconds": round(elapsed, 3),
                           "safety_backup": safety["name"] if safety else None},
                    tables=[Table(title="Row counts", columns=["table", "backup", "restored", "check"], rows=rows)],
                    findings=findings, notes=notes, artifacts=artifacts,
                    data={"verified": not findings, "created_database": create_db,
                          "safety_backup": safety["name"] if safety else None,
                          "counts": {t: after.get(t) for t in backup_rows}},
                    next_steps=[cmd("db-smoke-test")])


def _run_restore(url: str, artifact: Path, fmt: str, server_major: int, *, no_owner: bool,
                 lock_timeout_ms: int, source_major: int | None = None) -> None:
    """pg_restore / psql in one transaction; a watchdog cancels it when it waits on a lock too long.

    The archive's own script starts with `SET lock_timeout = 0`, so the timeout cannot be passed in:
    instead the restore's server session is found by its application_name and cancelled (the
    transaction rolls back, the target stays as it was)."""
    # lazy: psycopg loads on the first database call
    import secrets

    from sage_agent.db.archive import start_restore
    from sage_agent.db.connect import connect

    app = f"sage-restore-{secrets.token_hex(4)}"
    run = start_restore(url, artifact, fmt, server_major, no_owner=no_owner, app=app)
    tool = run.tool
    blocked_by: list[int] = []
    stop = threading.Event()

    def watchdog() -> None:
        if server_major < 14:  # pg_locks.waitstart arrived in PostgreSQL 14
            return
        try:
            with connect(url, autocommit=True) as watch:
                while not stop.wait(0.2):
                    row = watch.execute(
                        """
                        select a.pid, pg_blocking_pids(a.pid) from pg_stat_activity a
                        join pg_locks l on l.pid = a.pid and not l.granted
                        where a.application_name = %s
                          and l.waitstart < clock_timestamp() - make_interval(secs => %s)
                        limit 1
                        """, (app, lock_timeout_ms / 1000)).fetchone()
                    if row:
                        blocked_by[:] = list(row[1])
                        watch.execute("select pg_cancel_backend(%s)", (row[0],))
        except Exception:  # noqa: BLE001 - the watchdog is a safety net; the restore goes on without it
            pass

    guard = threading.Thread(target=watchdog, daemon=True)
    guard.start()
    try:
        code, err = run.wait()
    finally:
        stop.set()
        guard.join(timeout=5)
    if code != 0:
        # lazy: not needed to start `sage --version`, `*help` or `sage mcp`
        from sage_agent.db.archive import older_server_hint

        text = redact(err.strip())
        first = next((l for l in text.splitlines() if "error" in l.lower()), text.splitlines()[0] if text else "")
        if blocked_by:
            raise OpError(f"another session holds a lock on an object being replaced (pid "
                          f"{', '.join(map(str, blocked_by))}; waited over {lock_timeout_ms} ms): {first}")
        older = older_server_hint(source_major, server_major)
        raise OpError(f"{tool} failed: {first[:400]}" + (f" ({older})" if older else ""))

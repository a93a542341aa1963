"""Data operations: *load-csv, *backup, *restore."""

from __future__ import annotations

import time
import warnings
from pathlib import Path

from pydantic import BaseModel

from sage_agent.ops.registry import operation
from sage_agent.ops.result import Finding, OpError, OpResult, Table

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


def _human_bytes(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:,.0f} {unit}" if unit == "B" else f"{n:,.1f} {unit}"
        n /= 1024
    return f"{n:,.1f} TB"


@operation("db-load-csv", risk="write")
def load_csv(inputs: LoadCsvInput, ctx) -> OpResult:
    """Stream a CSV file into a table through COPY; all-or-nothing unless batched."""
    from sage_agent.ops import data_csv as dc

    opts = dc.build_options(inputs)
    if inputs.batch_rows is not None and inputs.batch_rows < 1:
        raise OpError("batch_rows must be a positive number of rows", exit_code=2)
    path = dc.resolve_file(ctx.project, inputs.file)
    with ctx.connect(autocommit=True) as conn:
        table = dc.find_table(conn, inputs.table)
    with dc.Source(path) as src:
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
                raise OpError(f"table {table.display} does not exist",
                              "pass --create to create it with types inferred from the file, "
                              "or create it with a migration first")
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
        from psycopg import sql as _sql  # noqa: F401 - psycopg is needed from here on

        with ctx.connect(autocommit=True) as conn:
            copy_text = dc.copy_sql(table, cols, opts).as_string(conn)
            create_text = dc.create_table_sql(table, cols).as_string(conn) if creating else None
        mapping_rows = [[(header[i] if header is not None else f"field {i + 1}"), c.name, c.type]
                        for i, c in enumerate(cols)]
        plan_lines = [f"-- load {path.name} ({_human_bytes(src.size)}{', gzip' if src.gzip else ''}"
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
        conn = ctx.connect(autocommit=True)
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
        except (OSError, EOFError) as exc:
            raise OpError(f"cannot read {path.name}: {exc}. Nothing was loaded (rolled back).",
                          "is the .gz file complete?") from None
        finally:
            conn.close()
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
                    next_steps=["*backup"])


def _server_error(exc, header: bool) -> str:
    import re

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
    from sage_agent.ops import data_csv as dc

    with dc.Source(path) as src:
        if opts.header:
            dc.read_header_line(src)
        with ctx.connect(autocommit=False) as conn:
            try:
                return dc.validate_rows(conn, src.stream, b"", 2 if opts.header else 1, cols, opts,
                                        ctx.server.major)
            finally:
                conn.rollback()


def _bad_rows_result(ctx, table, bad, max_errors: int, common: dict, mapping: Table, *, loaded: int,
                     summary_prefix: str, server_error: str | None = None, extra_facts: dict | None = None,
                     notes: list[str] | None = None) -> OpResult:
    from sage_agent.ops import data_csv as dc

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
    import hashlib
    import io

    import psycopg

    from sage_agent.ops import data_csv as dc

    state_file = dc.state_path(ctx.project, table, path)
    names = [c.name for c in cols]
    state = None if inputs.restart else dc.read_state(state_file)
    conn = ctx.connect(autocommit=True)
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
        dc.write_state(state_file, state)
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
            dc.write_state(state_file, state)
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
                dc.write_state(state_file, state)
            state.update({k: state["pending"][k] for k in ("offset", "rows", "line", "prefix_sha256", "batches")})
            state["pending"] = None
            dc.write_state(state_file, state)
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
            dc.write_state(state_file, state)
            with ctx.connect(autocommit=False) as vconn:
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
                    next_steps=["*backup"])

"""*test-suite: pgTAP files (pg_prove or psql + TAP parsing) or native assertion files, JUnit XML, generation.

Every test file runs inside one transaction that is rolled back at the end.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import tempfile
import time
import xml.etree.ElementTree as ET
from pathlib import Path

from pydantic import BaseModel, Field

from sage_agent.db.redact import redact

TAP_LINE = re.compile(r"^\s*(not ok|ok)\s+(\d+)(?:\s*-?\s*(.*))?$")
PLAN_LINE = re.compile(r"^\s*1\.\.(\d+)")


class Case(BaseModel):
    name: str
    ok: bool
    message: str = ""


class FileResult(BaseModel):
    file: str
    runner: str
    seconds: float = 0.0
    cases: list[Case] = Field(default_factory=list)


# --- detection and discovery ---------------------------------------------------------------------------------
def pgtap_available(ctx, url: str) -> bool:
    """Whether `create extension pgtap` works (tried in a transaction that is rolled back)."""
    # lazy: psycopg loads on the first database call
    import psycopg

    with ctx.connect(url) as conn:
        try:
            conn.execute("create extension if not exists pgtap")
            return True
        except psycopg.Error:
            return False
        finally:
            conn.rollback()


def test_files(folder: Path, pgtap: bool) -> list[Path]:
    if not folder.is_dir():
        return []
    native = [p for p in folder.glob("*.test.sql") if p.is_file()]
    if pgtap:  # pgTAP files plus any native assertion files
        return sorted(p for p in folder.glob("*.sql") if p.is_file())
    return sorted(native)


# --- pgTAP ------------------------------------------------------------------------------------------------------
def parse_tap(output: str) -> list[Case]:
    cases: list[Case] = []
    planned = None
    for line in output.splitlines():
        m = TAP_LINE.match(line)
        if m:
            desc = (m.group(3) or "").strip() or f"test {m.group(2)}"
            todo = "# TODO" in desc or "# SKIP" in desc
            cases.append(Case(name=desc, ok=m.group(1) == "ok" or todo))
            continue
        p = PLAN_LINE.match(line)
        if p:
            planned = int(p.group(1))
        elif line.strip().startswith("#") and cases and not cases[-1].ok:
            cases[-1].message += line.strip().lstrip("#").strip() + "\n"
    if planned is not None and planned != len(cases):
        cases.append(Case(name="plan", ok=False, message=f"planned {planned} tests but ran {len(cases)}"))
    return cases


def _wrapper(path: Path, tmp: Path) -> Path:
    wrapper = tmp / path.name
    wrapper.write_text(
        "\\set ON_ERROR_STOP 1\n\\set QUIET 1\n\\pset format unaligned\n\\pset tuples_only true\n"
        "\\pset pager off\nbegin;\ncreate extension if not exists pgtap;\n"
        # pgTAP installed in another schema (Supabase: extensions): make its functions callable
        "do $sage$ begin perform set_config('search_path', current_setting('search_path') || ', ' || "
        "(select quote_ident(n.nspname) from pg_extension e join pg_namespace n on n.oid = e.extnamespace "
        "where e.extname = 'pgtap'), true); end $sage$;\n"
        f"\\i '{str(path.resolve()).replace(chr(39), chr(39) * 2)}'\nrollback;\n", encoding="utf-8")
    return wrapper


def run_pgtap_file(url: str, path: Path, tmp: Path, server_major: int | None) -> FileResult:
    """One pgTAP file: pg_prove when installed, else psql + TAP parsing; rolled back at the end either way."""
    # lazy: not needed to start `sage --version`, `*help` or `sage mcp`
    from sage_agent.db.tools import find_binary, tool_env

    started = time.perf_counter()
    wrapper = _wrapper(path, tmp)
    pg_prove = shutil.which("pg_prove")
    if pg_prove:
        cmd = [pg_prove, "--verbose", "--ext", ".sql", str(wrapper)]
        runner = "pg_prove"
    else:
        cmd = [str(find_binary("psql", server_major)), "-X", "-f", str(wrapper)]
        runner = "psql"
    proc = subprocess.run(cmd, env=tool_env(url), capture_output=True, text=True, timeout=600)
    cases = parse_tap(proc.stdout)
    errors = [ln for ln in proc.stderr.splitlines() if "ERROR" in ln or "FATAL" in ln]
    if errors or (proc.returncode != 0 and runner == "psql") or (runner == "pg_prove" and proc.returncode != 0
                                                                 and all(c.ok for c in cases)):
        cases.append(Case(name="file runs without error", ok=False,
                          message=redact("\n".join(errors) or proc.stderr.strip() or proc.stdout[-2000:])))
    if not cases:
        cases.append(Case(name="file produces TAP output", ok=False, message="no TAP lines (did it call plan()?)"))
    return FileResult(file=path.name, runner=runner, seconds=time.perf_counter() - started, cases=cases)


# --- native assertions -------------------------------------------------------------------------------------------
_MARK = re.compile(r"^\s*--\s*(test|expect-error)\s*:\s*(.+?)\s*$", re.I)


def _statements(text: str, filename: str) -> list[tuple[str, str | None, str | None, int]]:
    """(statement, test name, expected SQLSTATE, line) for each statement of a native test file."""
    # lazy: pglast (the SQL parser) loads only when SQL is parsed
    from sage_agent.sqlkit.split import split_sql

    out = []
    name: str | None = None
    for stmt in split_sql(text, filename):
        expect = None
        for line in stmt.comments:
            m = _MARK.match(line)
            if m and m.group(1).lower() == "test":
                name = m.group(2)
            elif m:
                expect = m.group(2).upper()
        if stmt.text.strip():
            out.append((stmt.text.strip(), name, expect, stmt.line))
    return out


def run_native_file(ctx, url: str, path: Path) -> FileResult:
    # lazy: psycopg loads on the first database call
    import psycopg

    started = time.perf_counter()
    result = FileResult(file=path.name, runner="native")
    try:
        statements = _statements(path.read_text(encoding="utf-8"), path.name)
    except Exception as exc:  # noqa: BLE001 - a syntax error fails this file only
        result.cases.append(Case(name="file parses", ok=False, message=str(exc)))
        return result
    with ctx.connect(url) as conn:
        try:
            for stmt, name, expect, line in statements:
                label = name or f"line {line}: {stmt.splitlines()[0][:80]}"
                conn.execute("savepoint sage_test")
                try:
                    cur = conn.execute(stmt)
                except psycopg.Error as exc:
                    conn.execute("rollback to savepoint sage_test")
                    state = exc.sqlstate or ""
                    if expect:
                        result.cases.append(Case(name=label, ok=state == expect,
                                                 message="" if state == expect else
                                                 f"expected error {expect}, got {state}: {str(exc).strip()}"))
                    else:
                        result.cases.append(Case(name=label, ok=False, message=f"{state}: {str(exc).strip()}"))
                    continue
                if expect:
                    result.cases.append(Case(name=label, ok=False, message=f"expected error {expect}, none raised"))
                    continue
                if cur.description:
                    row = cur.fetchone()
                    ok = row is not None and all(v is True for v in row)
                    if name or not ok:
                        result.cases.append(Case(name=label, ok=ok, message="" if ok else
                                                 f"returned {row!r} (every value of the first row must be true)"))
                    elif not name:
                        result.cases.append(Case(name=label, ok=True))
        finally:
            conn.rollback()
    result.seconds = time.perf_counter() - started
    if not result.cases:
        result.cases.append(Case(name="file has assertions", ok=False, message="no statements returned rows"))
    return result


def run_files(ctx, url: str, files: list[Path], *, pgtap: bool) -> list[FileResult]:
    results = []
    progress = ctx.progress("Running tests", len(files))
    with tempfile.TemporaryDirectory(prefix="sage-tests-") as tmp:
        for path in files:
            if pgtap and not path.name.endswith(".test.sql"):
                results.append(run_pgtap_file(url, path, Path(tmp), ctx.server.major))
            else:
                results.append(run_native_file(ctx, url, path))
            progress.advance(1, path.name)
    return results


def write_junit(results: list[FileResult], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    root = ET.Element("testsuites", name="supabase/tests",
                      tests=str(sum(len(r.cases) for r in results)),
                      failures=str(sum(1 for r in results for c in r.cases if not c.ok)))
    for r in results:
        suite = ET.SubElement(root, "testsuite", name=r.file, tests=str(len(r.cases)),
                              failures=str(sum(1 for c in r.cases if not c.ok)), time=f"{r.seconds:.3f}")
        for c in r.cases:
            case = ET.SubElement(suite, "testcase", classname=r.file, name=c.name)
            if not c.ok:
                fail = ET.SubElement(case, "failure", message=c.message.splitlines()[0][:200] if c.message else "failed")
                fail.text = c.message
    ET.ElementTree(root).write(path, encoding="utf-8", xml_declaration=True)


# --- generation ----------------------------------------------------------------------------------------------
def _lit(value: str) -> str:
    # lazy: psycopg loads on the first database call
    from psycopg import sql

    return sql.Literal(value).as_string(None)


def _raw(quoted: str) -> str:
    """Unquote one identifier as quote_ident renders it."""
    if quoted.startswith('"') and quoted.endswith('"'):
        return quoted[1:-1].replace('""', '"')
    return quoted


def _display_type(t: str) -> str:
    return t[len("public."):] if t.startswith("public.") else t


def _anon_blocked(model, table) -> bool:
    return table.rls and not any(p.table == table.qname and ({"anon", "PUBLIC"} & set(p.roles))
                                 for p in model.policies.values())


ANON_PROBE = """set local role anon;
set local request.jwt.claims = '{{"role": "anon"}}';
do $sage$ begin
  perform set_config('sage_test.anon_rows', (select count(*) from {table})::text, true);
exception when insufficient_privilege then
  perform set_config('sage_test.anon_rows', 'denied', true);
end $sage$;
reset role;"""

AUTH_PROBE = """set local role authenticated;
set local request.jwt.claims = '{{"sub": "00000000-0000-4000-8000-000000000001", "role": "authenticated"}}';
do $sage$ begin
  perform set_config('sage_test.auth_rows', (select count(*) from {table})::text, true);
exception when insufficient_privilege then
  perform set_config('sage_test.auth_rows', 'denied', true);
end $sage$;
reset role;"""


def _pgtap_file(model, t) -> str:
    schema, name = _raw(t.schema_), _raw(t.qname.split(".", 1)[1]) if "." in t.qname else t.qname
    lines = [f"-- Starter tests for {t.qname}, generated by DB Sage *test-suite (edit freely).",
             "begin;", "select plan(__N__);",
             f"select has_table({_lit(schema)}, {_lit(name)}, {_lit(f'table {t.qname} exists')});"]
    n = 1
    for c in t.ordered_columns():
        col = _raw(c.name)
        lines.append(f"select has_column({_lit(schema)}, {_lit(name)}, {_lit(col)}, {_lit(f'column {col} exists')});")
        lines.append(f"select col_type_is({_lit(schema)}, {_lit(name)}, {_lit(col)}, {_lit(_display_type(c.type))}, "
                     f"{_lit(f'column {col} is {_display_type(c.type)}')});")
        n += 2
    pk = next((c for c in model.constraints.values() if c.table == t.qname and c.type == "p"), None)
    if pk:
        cols = re.search(r"PRIMARY KEY \((.*)\)", pk.definition)
        names = [_raw(x.strip()) for x in cols.group(1).split(",")] if cols else []
        arr = "array[" + ", ".join(_lit(x) for x in names) + "]::name[]"
        lines.append(f"select col_is_pk({_lit(schema)}, {_lit(name)}, {arr}, {_lit('primary key (' + ', '.join(names) + ')')});")
        n += 1
    if t.rls:
        lines.append(f"select ok((select relrowsecurity from pg_class where oid = {_lit(t.qname)}::regclass), "
                     f"{_lit('row level security is enabled')});")
        n += 1
        lines.append("-- RLS by impersonation: the table is readable (or denied) as an authenticated user")
        lines.append(AUTH_PROBE.format(table=t.qname))
        lines.append(f"select ok(current_setting('sage_test.auth_rows') is not null, "
                     f"{_lit('query as authenticated runs under RLS')});")
        n += 1
        if _anon_blocked(model, t):
            lines.append("-- no policy for anon: anon sees no rows")
            lines.append(ANON_PROBE.format(table=t.qname))
            lines.append(f"select ok(current_setting('sage_test.anon_rows') in ('0', 'denied'), "
                         f"{_lit('anon sees no rows')});")
            n += 1
    else:
        lines.append("-- RLS is disabled on this table: every role with a table grant reads every row.")
    lines += ["select * from finish();", "rollback;", ""]
    return "\n".join(lines).replace("__N__", str(n))


def _native_file(model, t) -> str:
    lines = [f"-- Starter tests for {t.qname}, generated by DB Sage *test-suite (native assertions; edit freely).",
             "-- Each statement must return true (or return no rows and not raise). Rolled back at the end.",
             f"-- test: table {t.qname} exists", f"select to_regclass({_lit(t.qname)}) is not null;"]
    for c in t.ordered_columns():
        col = _raw(c.name)
        lines += [f"-- test: column {col} is {_display_type(c.type)}",
                  f"select format_type(atttypid, atttypmod) = {_lit(_display_type(c.type))} from pg_attribute "
                  f"where attrelid = {_lit(t.qname)}::regclass and attname = {_lit(col)} and not attisdropped;"]
    pk = next((c for c in model.constraints.values() if c.table == t.qname and c.type == "p"), None)
    if pk:
        lines += [f"-- test: {pk.definition.lower()}",
                  f"select exists (select 1 from pg_constraint where conrelid = {_lit(t.qname)}::regclass "
                  f"and contype = 'p' and pg_get_constraintdef(oid) = {_lit(pk.definition)});"]
    if t.rls:
        lines += ["-- test: row level security is enabled",
                  f"select relrowsecurity from pg_class where oid = {_lit(t.qname)}::regclass;",
                  AUTH_PROBE.format(table=t.qname),
                  "-- test: query as authenticated runs under RLS",
                  "select current_setting('sage_test.auth_rows') is not null;"]
        if _anon_blocked(model, t):
            lines += [ANON_PROBE.format(table=t.qname), "-- test: anon sees no rows",
                      "select current_setting('sage_test.anon_rows') in ('0', 'denied');"]
    else:
        lines.append("-- RLS is disabled on this table: every role with a table grant reads every row.")
    return "\n".join(lines) + "\n"


def generate_tests(ctx, url: str, folder: Path, *, pgtap: bool, overwrite: bool) -> tuple[list[Path], list[Path]]:
    # lazy: not needed to start `sage --version`, `*help` or `sage mcp`
    from sage_agent.ops.schema.introspect import introspect

    with ctx.connect(url) as conn:
        model = introspect(conn)
    folder.mkdir(parents=True, exist_ok=True)
    written, kept = [], []
    for q, t in sorted(model.tables.items()):
        stem = re.sub(r"[^A-Za-z0-9_]+", "_", f"{_raw(t.schema_)}_{_raw(q.split('.', 1)[1])}")
        path = folder / (f"{stem}.sql" if pgtap else f"{stem}.test.sql")
        if path.exists() and not overwrite:
            kept.append(path)
            continue
        path.write_text(_pgtap_file(model, t) if pgtap else _native_file(model, t), encoding="utf-8")
        written.append(path)
    return written, kept

"""The bad-input corpus (see rel_corpus.py), driven headless in-process (sage run), plus a sample through real
subprocesses. Every case ends in one clear error line and exit code 1, 2 or 3; no traceback; the database
fingerprint and the project files are unchanged; no `pwned` file appears anywhere."""

from __future__ import annotations

import random
import shutil
from pathlib import Path

import psycopg
import pytest
from rel_common import fingerprint, fresh_database, project_files, record
from rel_corpus import Case, corpus

from sage_agent.session.machine import EXIT_OK

INIT = "create table public.items (id int primary key, name text not null);\ninsert into public.items values (1, 'a');\n"


@pytest.fixture(scope="module")
def world(pg_server, tmp_path_factory):
    from sage_agent.db.env import Target
    from sage_agent.session.answers import FlagAnswers
    from sage_agent.session.machine import Session

    project = tmp_path_factory.mktemp("corpus") / "project"
    (project / "supabase" / "migrations").mkdir(parents=True)
    (project / "supabase" / "migrations" / "20240101000000_init.sql").write_text(INIT)
    with fresh_database(pg_server.url()) as url:
        session = Session(project=project, target=Target("local", url, "test"), answers=FlagAnswers(yes=True))
        assert session.run_line("*apply --snapshot=no").exit_code == EXIT_OK
        assert session.run_line("*snapshot base").exit_code == EXIT_OK
        assert session.run_line("*backup base_backup").exit_code == EXIT_OK
        # the schema moves on from the snapshot (no row in it), so `*rollback base` has a change to ask the word for
        # (a rollback to the schema the database already has changes nothing and asks nothing)
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute("create index items_name_idx on public.items (name)")
        yield project, url


def check_case(case: Case, code, out: str, err: str) -> list[str]:
    problems = []
    if code not in case.codes:
        problems.append(f"exit code {code}, expected {case.codes}")
    text = out + err
    if "Traceback" in text or "File \"/" in text:
        problems.append("traceback")
    err_lines = [l for l in err.splitlines() if l.strip()]
    error_at = [i for i, l in enumerate(err_lines) if l.startswith("error:")]
    if error_at:
        if len(error_at) > 1:
            problems.append(f"{len(error_at)} error lines")
        tail = err_lines[error_at[-1] + 1:]
        if tail and not (len(tail) == 1 and tail[0].startswith("  next: ")):
            problems.append(f"error message spans lines: {err_lines[error_at[-1]:]}")
        message = err_lines[error_at[-1]][len("error:"):].strip()
    else:
        message = out.strip().splitlines()[0] if out.strip() else ""
    if len(message) < 10:
        problems.append(f"no clear error message (stdout {out[:200]!r}, stderr {err[:200]!r})")
    if len(message) > 600:
        problems.append(f"error message too long ({len(message)} chars)")
    return problems


def _files(project):
    """Project files, without DB Sage's own append-only attempt logs (supabase/.sage/*.jsonl), the audit trail
    (.sage/audit.jsonl) and *load-csv's reject reports of refused rows (supabase/.sage/rejects/): all are the
    designed output of a refusal."""
    return {k: v for k, v in project_files(project).items()
            if not (k.startswith("supabase/.sage/") and k.endswith(".jsonl")) and k != ".sage/audit.jsonl"
            and not k.startswith("supabase/.sage/rejects/")}


def run_case(case: Case, project, url, capsys) -> tuple[object, str, str]:
    from sage_agent.frontends.headless import run_headless

    capsys.readouterr()
    try:
        code = run_headless(case.line, project=project, env=case.env, db_url=case.db_url or url, sets=case.sets,
                            yes=case.yes, confirm=case.confirm)
    except SystemExit as exc:  # argparse-like exits count as an exit code
        code = exc.code
    except BaseException as exc:  # noqa: BLE001
        out, err = capsys.readouterr()
        return f"raised {type(exc).__name__}: {exc}", out, err
    out, err = capsys.readouterr()
    return code, out, err


def test_bad_input_corpus(world, capsys, monkeypatch, tmp_path):
    project, url = world
    monkeypatch.chdir(project)
    cases = corpus(url)
    baseline_files = _files(project)
    state = fingerprint(url)
    failures: dict[str, list[str]] = {}
    ran = 0
    by_code: dict[str, int] = {}
    for case in cases:
        for rel, data in case.files.items():
            (project / rel).parent.mkdir(parents=True, exist_ok=True)
            (project / rel).write_bytes(data)
        code, out, err = run_case(case, project, url, capsys)
        ran += 1
        by_code[str(code)] = by_code.get(str(code), 0) + 1
        problems = check_case(case, code, out, err) if not isinstance(code, str) else [code]
        for rel in case.files:
            (project / rel).unlink(missing_ok=True)
            if case.line.startswith("*dry-run"):  # the verdict report of a refused file is the dry-run's output
                report = project / "supabase" / "tests" / f"dry-run-{Path(rel).stem}.md"
                report.unlink(missing_ok=True)
        now_files = _files(project)
        if now_files != baseline_files:
            added = sorted(set(now_files) - set(baseline_files))
            changed = sorted(k for k in baseline_files if now_files.get(k) != baseline_files[k])
            problems.append(f"project files changed: added {added[:5]} changed {changed[:5]}")
            for rel in added:
                (project / rel).unlink()
            shutil.rmtree(project / "supabase" / "tests", ignore_errors=True) if "supabase/tests" not in str(baseline_files) else None
        pwned = [p for root in (project, tmp_path, project.parent) for p in root.rglob("pwned")]
        if pwned:
            problems.append(f"pwned file created: {pwned}")
            for p in pwned:
                p.unlink()
        after = fingerprint(url)
        if after != state:
            problems.append("database changed")
            state = after
        if problems:
            failures[case.id] = problems + [f"stdout={out[-300:]!r} stderr={err[-300:]!r}"]
    report = "\n".join(f"{k}: {v}" for k, v in failures.items())
    record("bad_input", cases=ran, failures=len(failures), exit_codes=by_code)
    assert ran >= 200
    assert not failures, f"{len(failures)} of {ran} cases failed:\n{report}"


def test_subprocess_sample(world, run_sage, tmp_path):
    """A seeded sample of the corpus through real `sage run` processes (plus the cases that once crashed)."""
    project, url = world
    cases = corpus(url)
    must = [c for c in cases if c.id in ("sql:enormous-line:*apply", "sql:enormous-line:*seed",
                                         "name:subshell:*snapshot", "name:semicolon-rm:*migration-new")]
    sample = must + random.Random(9).sample(
        [c for c in cases if sum(map(len, c.sets)) < 50_000], 12)
    state = fingerprint(url)
    baseline = _files(project)
    failures = {}
    for case in sample:
        for rel, data in case.files.items():
            (project / rel).write_bytes(data)
        args = ["run", case.line, "--db-url", case.db_url or url, "--env", case.env, "--project", str(project)]
        for pair in case.sets:
            args += ["--set", pair]
        args += ["--yes"] if case.yes else []
        for word in case.confirm:
            args += ["--confirm", word]
        proc = run_sage(*args, cwd=project)
        problems = check_case(case, proc.returncode, proc.stdout, proc.stderr)
        for rel in case.files:
            (project / rel).unlink(missing_ok=True)
            if case.line.startswith("*dry-run"):
                (project / "supabase" / "tests" / f"dry-run-{Path(rel).stem}.md").unlink(missing_ok=True)
        if _files(project) != baseline:
            problems.append("project files changed")
        if list(project.rglob("pwned")) or list(tmp_path.rglob("pwned")):
            problems.append("pwned file created")
        if problems:
            failures[case.id] = problems + [proc.stderr[-300:]]
    assert fingerprint(url) == state
    record("bad_input", subprocess_sample=len(sample), subprocess_failures=len(failures))
    assert not failures, failures


def test_deeply_nested_expression_is_an_error_not_a_crash(world, make_session):
    """Was a segmentation fault (pglast converting a 500,000-level expression tree): now a syntax error naming
    the file, and nothing applied."""
    project, url = world
    from sage_agent.sqlkit.split import SqlSyntaxError, split_sql

    with pytest.raises(SqlSyntaxError, match="nested too deeply"):
        split_sql("select " + "1 + " * 200_000 + "1;\n", "deep.sql")
    assert len(split_sql("insert into t values " + ",".join(f"({i})" for i in range(20_000)) + ";")) == 1
    path = project / "supabase" / "migrations" / "20990101000000_deep.sql"
    path.write_text("select " + "1 + " * 200_000 + "1;\n")
    try:
        out = make_session(url, yes=True, project_dir=project).run_line("*apply --snapshot=no")
    finally:
        path.unlink()
    assert out.exit_code in (1, 2) and "nested too deeply" in (out.error or out.result.summary)
    assert history_versions(url) == ["20240101000000"]


def history_versions(url):
    from rel_common import history

    return history(url)


def test_syntax_error_quotes_one_short_line():
    from sage_agent.sqlkit.split import SqlSyntaxError, split_sql

    with pytest.raises(SqlSyntaxError) as info:
        split_sql("/* never closed\n" + "x" * 100_000 + "\nmore\n", "c.sql")
    assert "\n" not in str(info.value) and len(str(info.value)) < 200


def test_long_migration_name_is_refused(world, make_session):
    project, url = world
    out = make_session(url, yes=True, project_dir=project).run_line("*migration-new " + "n" * 300)
    assert out.exit_code == 2 and "1-100 lowercase letters" in out.error


HANDOFFS = {
    "binary": bytes(range(256)),
    "not-yaml": b"from: [unclosed\n  to: : :\n",
    "a-list": b"- from: '@dev'\n- to: '@db-sage'\n",
    "a-string": b"just some text\n",
    "empty": b"",
    "from-number": b"from: 42\nto: '@db-sage'\nrequest: '*migrations'\n",
    "to-list": b"from: '@dev'\nto: ['@db-sage']\nrequest: '*migrations'\n",
    "request-mapping": b"from: '@dev'\nto: '@db-sage'\nrequest: {run: now}\n",
    "artifacts-string": b"from: '@dev'\nto: '@db-sage'\nrequest: '*migrations'\nartifacts: 12\n",
    "artifacts-dotdot": b"from: '@dev'\nto: '@db-sage'\nrequest: '*migrations'\nartifacts: ['../../../etc/shadow']\n",
    "other-recipient": b"from: '@dev'\nto: '@qa'\nrequest: '*migrations'\n",
    "shell-request": b"from: '@dev'\nto: '@db-sage'\nrequest: '*snapshot $(touch pwned)'\n",
    "shell-request-2": b"from: '@dev'\nto: '@db-sage'\nrequest: '*snapshot x;touch pwned'\n",
}


def test_handoff_files_with_wrong_types(world, capsys, monkeypatch, tmp_path):
    """`sage handoff receive FILE` (in-process through the CLI entry point) on malformed handoff files."""
    from sage_agent.cli import main

    project, url = world
    monkeypatch.chdir(project)
    folder = project / ".aios" / "handoffs"
    folder.mkdir(parents=True, exist_ok=True)
    state = fingerprint(url)
    failures = {}
    for key, data in HANDOFFS.items():
        path = folder / f"900-{key}.yaml"
        path.write_bytes(data)
        baseline = _files(project)
        capsys.readouterr()
        try:
            code = main(["handoff", "receive", str(path.relative_to(project)), "--db-url", url, "--yes"])
        except SystemExit as exc:
            code = exc.code
        out, err = capsys.readouterr()
        problems = check_case(Case(f"handoff:{key}", "", (1, 2, 3)), code, out, err)
        if _files(project) != baseline:
            problems.append(f"project files changed: {sorted(set(_files(project)) ^ set(baseline))[:4]}")
        if list(project.rglob("pwned")) or list(tmp_path.rglob("pwned")):
            problems.append("pwned file created")
        path.unlink()
        if problems:
            failures[key] = problems + [out[-200:], err[-300:]]
    assert fingerprint(url) == state
    shutil.rmtree(project / ".aios")
    record("bad_input", handoff_cases=len(HANDOFFS), handoff_failures=len(failures))
    assert not failures, failures

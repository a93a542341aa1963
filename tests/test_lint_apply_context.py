"""The same migration file in `sage lint` (the file alone, squawk's behaviour) and in *dry-run / *apply (the file
as *apply runs it: inside the transaction *apply wraps it in, with lock_timeout and statement_timeout set on the
server). Where a finding's severity differs, the *dry-run / *apply message says why."""

from __future__ import annotations

import json

from sage_agent.session.machine import EXIT_OK
from migfiles import write_migration as write

ADD = "alter table public.items add column price bigint;\n"  # a lock on an existing table: the timeout rules
WHY_LOCK = "(info here, a warning in `sage lint`: *apply runs the file with lock_timeout=5000ms set on the server)"
WHY_STATEMENT = ("(info here, a warning in `sage lint`: *apply runs the file with statement_timeout=120000ms set "
                 "on the server)")


def _items(db) -> None:
    db.execute("create table public.items (id bigint primary key, name text)")
    db.execute("insert into public.items select g, 'n' || g from generate_series(1, 100) g")


def _lint_rules(run_sage, project, path) -> dict[str, list[tuple[str, str]]]:
    proc = run_sage("lint", str(path.relative_to(project)), "--reporter", "json", cwd=project)
    assert proc.returncode in (0, 1) and "Traceback" not in proc.stderr, proc.stderr
    out: dict[str, list[tuple[str, str]]] = {}
    for f in json.loads(proc.stdout):
        out.setdefault(f["rule_name"], []).append((f["level"], f["message"]))
    return out


def _findings(proc) -> dict[str, list[tuple[str, str]]]:
    out: dict[str, list[tuple[str, str]]] = {}
    for f in json.loads(proc.stdout)["findings"]:
        out.setdefault(f["rule"], []).append((f["severity"], f["message"]))
    return out


def test_timeout_rules_warn_in_sage_lint_and_are_info_in_dry_run_and_apply_saying_why(run_sage, project, db_url,
                                                                                      db):
    _items(db)
    path = write(project, "20240101000000_price.sql", ADD)
    lint = _lint_rules(run_sage, project, path)
    assert [level for level, _ in lint["require-lock-timeout"]] == ["Warning"]
    assert [level for level, _ in lint["require-statement-timeout"]] == ["Warning"]
    assert "sage lint" not in lint["require-lock-timeout"][0][1]

    dry = run_sage("run", "*dry-run 20240101000000_price.sql", "--db-url", db_url, "--json", cwd=project)
    assert dry.returncode == EXIT_OK, dry.stdout + dry.stderr
    found = _findings(dry)
    ((severity, message),) = found["require-lock-timeout"]
    assert severity == "info" and message.endswith(WHY_LOCK)
    ((severity, message),) = found["require-statement-timeout"]
    assert severity == "info" and message.endswith(WHY_STATEMENT)
    text = run_sage("run", "*dry-run 20240101000000_price.sql", "--db-url", db_url, cwd=project)
    assert "INFO    require-lock-timeout [20240101000000_price.sql:1]" in text.stdout
    assert "info here, a warning in `sage lint`" in text.stdout

    # a timeout switched off is no answer: the warning stays, in *dry-run and in *apply
    off = run_sage("run", "*dry-run 20240101000000_price.sql", "--db-url", db_url, "--json", cwd=project,
                   env={"SAGE_LOCK_TIMEOUT_MS": "0"})
    found = _findings(off)
    assert [s for s, _ in found["require-lock-timeout"]] == ["warning"]
    assert [s for s, _ in found["require-statement-timeout"]] == ["info"]
    assert json.loads(off.stdout)["data"]["verdict"] == "caution"
    applied = run_sage("run", "*apply --snapshot=no --lock-timeout 0", "--yes", "--db-url", db_url, "--json",
                       cwd=project)
    assert applied.returncode == EXIT_OK, applied.stdout + applied.stderr
    found = _findings(applied)
    assert [s for s, _ in found["require-lock-timeout"]] == ["warning"]
    ((severity, message),) = found["require-statement-timeout"]
    assert severity == "info" and message.endswith(WHY_STATEMENT)


def test_apply_grades_the_timeout_rules_with_the_timeouts_it_sets(run_sage, project, db_url, db):
    _items(db)
    write(project, "20240101000000_price.sql", ADD)
    applied = run_sage("run", "*apply --snapshot=no --lock-timeout 2s", "--yes", "--db-url", db_url, "--json",
                       cwd=project)
    assert applied.returncode == EXIT_OK, applied.stdout + applied.stderr
    ((severity, message),) = _findings(applied)["require-lock-timeout"]
    assert severity == "info"
    assert message.endswith("(info here, a warning in `sage lint`: *apply runs the file with lock_timeout=2s set "
                            "on the server)")


def test_dry_run_and_apply_lint_the_file_inside_the_transaction_apply_wraps_it_in(run_sage, project, db_url, db):
    """`sage lint` keeps squawk's view (no transaction assumed: prefer-robust-stmts says "Missing transaction");
    *dry-run and *apply run the file in one transaction, so they do not (squawk's --assume-in-transaction)."""
    _items(db)
    path = write(project, "20240101000000_tidy.sql",
                 "alter table public.items drop constraint if exists items_name_check;\n"
                 "comment on column public.items.name is 'the name';\n"
                 "alter table public.items alter column name set default 'x';\n")
    lint = _lint_rules(run_sage, project, path)
    assert any(m.startswith("Missing transaction") for _, m in lint["prefer-robust-stmts"]), lint
    dry = run_sage("run", "*dry-run 20240101000000_tidy.sql", "--db-url", db_url, "--json", cwd=project)
    assert dry.returncode == EXIT_OK, dry.stdout + dry.stderr
    assert "prefer-robust-stmts" not in _findings(dry)
    applied = run_sage("run", "*apply --snapshot=no", "--yes", "--db-url", db_url, "--json", cwd=project)
    assert applied.returncode == EXIT_OK, applied.stdout + applied.stderr
    assert "prefer-robust-stmts" not in _findings(applied)


def test_a_file_that_cannot_run_in_a_transaction_is_linted_as_it_runs(run_sage, project, db_url, db):
    """CREATE INDEX CONCURRENTLY: *apply runs the file statement by statement, so a failure part way leaves the
    first statements applied and prefer-robust-stmts stands, as in `sage lint`."""
    _items(db)
    path = write(project, "20240101000000_idx.sql", "alter table public.items add column code text;\n"
                                                    "create index concurrently items_code_idx on public.items (code);\n")
    lint = _lint_rules(run_sage, project, path)
    dry = run_sage("run", "*dry-run 20240101000000_idx.sql", "--db-url", db_url, "--json", cwd=project)
    assert dry.returncode == EXIT_OK, dry.stdout + dry.stderr
    robust = _findings(dry)["prefer-robust-stmts"]
    assert robust == [(s.lower(), m) for s, m in lint["prefer-robust-stmts"]] and len(robust) == 2


def test_a_file_with_its_own_begin_commit_is_not_nested_in_dry_run(run_sage, project, db_url, db):
    """The file manages its transaction (*apply runs its statements in its own in place of them): no
    transaction-nesting warning in *dry-run (it made the verdict CAUTION), the same findings as `sage lint`."""
    _items(db)
    path = write(project, "20240101000000_own.sql",
                 "begin;\ncomment on column public.items.name is 'the name';\ncommit;\n")
    lint = _lint_rules(run_sage, project, path)
    assert "transaction-nesting" not in lint and "prefer-robust-stmts" not in lint
    dry = run_sage("run", "*dry-run 20240101000000_own.sql", "--db-url", db_url, "--json", cwd=project)
    assert dry.returncode == EXIT_OK, dry.stdout + dry.stderr
    found = _findings(dry)
    assert "transaction-nesting" not in found and "prefer-robust-stmts" not in found
    assert json.loads(dry.stdout)["data"]["verdict"] == "safe"

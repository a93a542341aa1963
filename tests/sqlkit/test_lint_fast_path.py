"""The lint engine's fast path gives exactly the findings of the full path.

Fast: an ALTER TABLE is shown only to the rules that declare one of its subcommand types (``alter_subtypes``).
Full (``engine.FULL_PATH``): every rule of the statement's node type is called. Compared on every squawk
conformance case, with the default rules and with every rule (opt-in included), and on a file made of all of
them."""
from __future__ import annotations


import pytest

from sage_agent.sqlkit.lint import ALL_RULES, RULES, engine, lint_sql
from sage_agent.sqlkit.split import SqlSyntaxError

from tests.sqlkit.squawk_conformance import load_cases

CASES = load_cases()


def _both(sql: str, rules, pg: int = 18, assume: bool = False, monkeypatch=None):
    def run():
        try:
            return [f.model_dump() for f in lint_sql(sql, "c.sql", pg, rules, assume)]
        except SqlSyntaxError as exc:
            return ("syntax", exc.line, exc.column, exc.message)

    fast = run()
    monkeypatch.setattr(engine, "FULL_PATH", True)
    full = run()
    monkeypatch.setattr(engine, "FULL_PATH", False)
    return fast, full


@pytest.mark.parametrize("rules", [RULES, ALL_RULES], ids=["default-rules", "all-rules"])
def test_every_conformance_case_lints_the_same_on_both_paths(rules, monkeypatch):
    checked = 0
    for case in CASES:
        fast, full = _both(case.sql, rules, case.pg, case.assume_in_transaction, monkeypatch)
        assert fast == full, f"{case.rule}: {case.name} (line {case.line} of squawk_conformance.txt)"
        checked += 1
    assert checked == len(CASES) > 300


def test_all_cases_in_one_file_lint_the_same_on_both_paths(monkeypatch):
    # without the ignore-comment cases (a file-wide ignore would silence the rest)
    text = "".join(case.sql for case in CASES if "squawk-" not in case.sql and _parses(case.sql))
    fast, full = _both(text, RULES, monkeypatch=monkeypatch)
    assert fast == full
    assert len(fast) > 300
    assert {f["rule"] for f in fast} >= {"require-lock-timeout", "prefer-robust-stmts", "changing-column-type",
                                         "adding-not-nullable-field", "ban-drop-column", "identifier-too-long"}


def test_an_alter_table_reaches_only_the_rules_of_its_subcommands(monkeypatch):
    seen: list[str] = []
    for rule in RULES:
        real = type(rule).check

        def spy(self, stmt, ctx, _real=real):
            seen.append(self.id)
            return _real(self, stmt, ctx)

        monkeypatch.setattr(type(rule), "check", spy)
    lint_sql("alter table public.t drop column c;", "f.sql")
    assert "ban-drop-column" in seen and "prefer-robust-stmts" in seen
    assert "adding-field-with-default" not in seen and "changing-column-type" not in seen
    seen.clear()
    monkeypatch.setattr(engine, "FULL_PATH", True)
    lint_sql("alter table public.t drop column c;", "f.sql")
    assert "adding-field-with-default" in seen and "changing-column-type" in seen


def _parses(sql: str) -> bool:
    try:
        lint_sql(sql, "c.sql")
    except SqlSyntaxError:
        return False
    return True

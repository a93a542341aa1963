"""A big file linted by two processes (sqlkit/lint/parallel.py) gives exactly the one-process findings.

What crosses the cut is the risk: transactions, timeouts, tables created (file-level facts), and the memory of
the ordered rules (a NOT VALID constraint validated later, a column type known from earlier, a BEGIN never
committed). Each is cut across here, at every statement boundary of a small file, and the squawk conformance
cases are cut at many places of one file made of all of them."""
from __future__ import annotations


import pytest

from sage_agent.sqlkit.lint import ALL_RULES, RULES, lint_sql
from sage_agent.sqlkit.lint import parallel
from sage_agent.sqlkit.split import SqlSyntaxError, prepare, split_sql

from tests.sqlkit.squawk_conformance import load_cases

ACROSS = """\
set lock_timeout = '5s';
begin;
alter table public.orders add constraint qty_nn check (qty is not null) not valid;
create table public.items (id int primary key, code varchar(10), qty int);
alter table public.orders drop constraint if exists old_c;
commit;
-- validated in a later statement than the one that added it
alter table public.orders validate constraint qty_nn;
alter table public.orders alter column qty set not null;
alter table public.items alter column code type text;
alter table public.items alter column qty set not null;
alter table public.items add constraint items_code unique (code);
alter table public.orders add constraint old_c check (qty > 0);
set statement_timeout = '10s';
create index concurrently items_qty on public.items (qty);
begin;
create index concurrently orders_qty on public.orders (qty);
alter table public.orders alter column note type varchar(20);
drop table public.items;
create table "a_table_name_that_is_much_longer_than_sixty_three_bytes_allowed_by_postgres" (id int);
"""


def _dicts(findings):
    return [f.model_dump() for f in findings]


def _line_starts(text: str) -> list[int]:
    return [i + 1 for i, ch in enumerate(text) if ch == "\n" and text[:i].rstrip().endswith(";")][:-1]


def _two_parts(text: str, cut: int, rules=RULES, server_major: int = 18, assume: bool = False):
    return parallel.lint_two_parts(prepare(text, "f.sql", pieces=True), "f.sql", server_major, list(rules),
                                   assume, text, cut=cut)


@pytest.mark.parametrize("assume", [False, True])
def test_every_cut_of_a_file_with_state_across_it_gives_the_same_findings(assume):
    whole = _dicts(lint_sql(ACROSS, "f.sql", 18, RULES, assume))
    if not assume:  # the rules whose memory crosses the cut all speak in this file
        assert {"adding-not-nullable-field", "changing-column-type", "ban-uncommitted-transaction",
                "ban-concurrent-index-creation-in-transaction", "prefer-robust-stmts", "require-statement-timeout",
                "identifier-too-long"} <= {f["rule"] for f in whole}
    cuts = _line_starts(ACROSS)
    assert len(cuts) > 15
    naive_differs = 0
    for cut in cuts:
        assert _dicts(_two_parts(ACROSS, cut, assume=assume)) == whole, f"cut at offset {cut}"
        naive_differs += _naive(ACROSS, cut, assume) != whole
    assert naive_differs > len(cuts) // 2  # the state across the cut matters at most cuts


def _naive(text: str, cut: int, assume: bool) -> list[dict]:
    """Each part linted on its own (part two blanked in front, so lines stay): what a split without the state
    at the cut would give."""
    one = lint_sql(text[:cut], "f.sql", 18, RULES, assume)
    two = lint_sql(parallel._blank(text[:cut]) + text[cut:], "f.sql", 18, RULES, assume)
    return sorted(_dicts(one + two), key=lambda f: (f["line"], f["rule"]))


def test_the_squawk_cases_in_one_file_cut_in_many_places():
    cases = [c for c in load_cases() if c.pg == 15 and not c.assume_in_transaction]
    parts = []
    for c in cases:
        try:
            split_sql(c.sql)
        except SqlSyntaxError:
            continue
        if "squawk-" not in c.sql:  # ignore comments would silence other cases' findings
            parts.append(c.sql.rstrip() + ("\n" if c.sql.rstrip().endswith(";") else ";\n"))
    text = "".join(parts)
    whole = _dicts(lint_sql(text, "f.sql", 15, ALL_RULES))
    assert len(whole) > 300
    prep = prepare(text, "f.sql", pieces=True)
    cuts = [parallel._cut(prep, share) for share in (0.1, 0.3, 0.5, 0.7, 0.9)]
    assert None not in cuts and len(set(cuts)) == 5
    for cut in cuts:
        assert _dicts(_two_parts(text, cut, ALL_RULES, 15)) == whole, f"cut at offset {cut}"


def test_a_cut_inside_a_begin_atomic_body_falls_back_to_one_process():
    text = ("create table t (id int);\n" * 3 + "create function f() returns int language sql\nbegin atomic\n"
            "select 1;\nselect 2;\nend;\n" + "alter table t add column c int;\n" * 3)
    inside = text.index("select 2;")
    assert _two_parts(text, inside) is None
    whole = _dicts(lint_sql(text, "f.sql", 18))
    assert _dicts(_two_parts(text, text.index("alter table"))) == whole


def test_a_rule_with_memory_not_marked_ordered_makes_the_file_one_process(monkeypatch):
    """The child refuses rather than guess: lint_sql then lints the file whole, same findings."""
    text = ACROSS * 3
    whole = _dicts(lint_sql(text, "f.sql", 18))
    rule = next(r for r in RULES if r.id == "changing-column-type")
    monkeypatch.setattr(type(rule), "ordered", False)
    assert _two_parts(text, _line_starts(text)[20]) is None
    monkeypatch.setattr(parallel, "MIN_CHARS", 0)
    assert _dicts(lint_sql(text, "f.sql", 18, jobs=2)) == whole


def test_lint_sql_with_two_jobs_on_a_big_file(monkeypatch):
    text = ACROSS * 40
    monkeypatch.setattr(parallel, "MIN_CHARS", len(text))
    calls = []
    real = parallel.lint_two_parts
    monkeypatch.setattr(parallel, "lint_two_parts", lambda *a, **k: calls.append(1) or real(*a, **k))
    assert _dicts(lint_sql(text, "f.sql", 18, jobs=2)) == _dicts(lint_sql(text, "f.sql", 18))
    assert calls == [1]


def test_memory_that_cannot_travel_or_a_threaded_process_means_one_process(monkeypatch):
    text = ACROSS * 3
    whole = _dicts(lint_sql(text, "f.sql", 18))
    cut = _line_starts(text)[20]
    assert _two_parts(text, cut) is not None
    rule = next(r for r in RULES if r.id == "prefer-robust-stmts")
    real = type(rule).check

    def keeps_a_lambda(self, stmt, ctx):
        ctx.rule_state("prefer-robust-stmts-extra", lambda: (lambda: None))
        return real(self, stmt, ctx)

    monkeypatch.setattr(type(rule), "check", keeps_a_lambda)
    assert _two_parts(text, cut) is None
    monkeypatch.undo()

    import threading

    stop = threading.Event()
    worker = threading.Thread(target=stop.wait)
    worker.start()
    try:
        assert _two_parts(text, cut) is None
    finally:
        stop.set()
        worker.join()
    monkeypatch.setattr(parallel, "MIN_CHARS", 0)
    assert _dicts(lint_sql(text, "f.sql", 18, jobs=2)) == whole

"""The rule index (sqlkit/lint/rules/__init__.py INDEX) lets `sage lint` import only the rule modules a file's
statement types need. These tests keep it true: the index says what each rule module says, and no rule's code
flags or remembers a statement type its ``node_types`` leaves out (the engine never shows it those)."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from sage_agent.sqlkit.lint import ALL_RULES, Rule, lint_sql
from sage_agent.sqlkit.lint.rules import ALIASES, ALTER_SUBTYPES, INDEX, rule_class
from sage_agent.sqlkit.split import SqlSyntaxError
from tests.sqlkit.squawk_conformance import load_cases

RULES_DIR = Path(__file__).resolve().parents[2] / "sage_agent" / "sqlkit" / "lint" / "rules"


def test_the_index_lists_every_rule_module_once_in_order():
    modules = sorted(p.stem for p in RULES_DIR.glob("*.py") if not p.stem.startswith("_"))
    ids = [rule_id for rule_id, _types, _flags in INDEX]
    assert ids == sorted(ids) and len(set(ids)) == len(ids)
    assert [i.replace("-", "_") for i in ids] == modules
    assert [r.id for r in ALL_RULES] == ids


@pytest.mark.parametrize("rule_id,types,flags", INDEX, ids=[row[0] for row in INDEX])
def test_the_index_says_what_the_rule_module_says(rule_id, types, flags):
    cls = rule_class(rule_id)
    declared = None if cls.node_types is None else sorted(t.__name__ for t in cls.node_types)
    assert (None if types is None else sorted(types.split())) == declared
    assert ("opt-in" in flags, "ordered" in flags, "finish" in flags) == (
        cls.opt_in, cls.ordered, cls.finish is not Rule.finish)
    assert tuple(a for a, ids in ALIASES.items() if ids == (rule_id,)) == cls.aliases
    subtypes = ALTER_SUBTYPES.get(rule_id)
    assert (None if subtypes is None else frozenset(subtypes.split())) == cls.alter_subtypes


ENGINE_KEYS = {"_created_so_far", "_column_types"}  # the engine's own memory and a per-statement cache


class _Watched(dict):
    """Rule memory that records which keys a rule touches."""

    def __init__(self, data: dict, touched: set) -> None:
        super().__init__(data)
        self.touched = touched

    def __getitem__(self, key):
        self.touched.add(key)
        return super().__getitem__(key)

    def __setitem__(self, key, value):
        self.touched.add(key)
        super().__setitem__(key, value)

    def __contains__(self, key):
        self.touched.add(key)
        return super().__contains__(key)

    def get(self, key, default=None):
        self.touched.add(key)
        return super().get(key, default)

    def setdefault(self, key, default=None):
        self.touched.add(key)
        return super().setdefault(key, default)

    def pop(self, key, *default):
        self.touched.add(key)
        return super().pop(key, *default)


class _EveryStatement(Rule):
    """A rule shown every statement, whatever its node_types: on a type it does not declare it must find
    nothing and leave rule memory alone."""

    node_types = None

    def __init__(self, rule: Rule) -> None:
        self.rule = rule
        self.id, self.ordered, self.severity = rule.id, rule.ordered, rule.severity

    def check(self, stmt, ctx):
        declared = self.rule.node_types
        if declared is None or isinstance(stmt.node, declared):
            return self.rule.check(stmt, ctx)
        touched: set = set()
        state, shared = ctx.state, ctx.shared
        ctx.state, ctx.shared = _Watched(state, touched), _Watched(shared, touched)
        try:
            found = self.rule.check(stmt, ctx)
        finally:
            ctx.state, ctx.shared = state, shared
        kind = type(stmt.node).__name__
        assert found == [], f"{self.id} flags a {kind}, not in its node_types"
        assert touched <= ENGINE_KEYS, f"{self.id} uses its memory on a {kind}, not in its node_types"
        return found

    def finish(self, ctx):
        return self.rule.finish(ctx)


# Statement types the conformance cases have few of, each next to what rules remember.
MORE = """create table t (a varchar(10), b int, c timestamp);
begin;
alter table t alter column a type text;
cluster t using i;
vacuum full t;
reindex table t;
comment on table t is 'x';
grant select on t to anon;
revoke select on t from anon;
alter table t owner to postgres;
alter type e rename value 'a' to 'b';
alter table t set schema s;
alter sequence q restart with 5;
alter role r with superuser;
create view v as select a, a as a from t;
create trigger g before update on t for each row execute function f();
update t set a = 1, a = 2;
merge into t using u on t.b = u.b when matched then update set a = u.a;
copy t from stdin;
\\.
refresh materialized view m;
lock table t in access exclusive mode;
do $$ begin perform 1; end $$;
commit;
"""


def _corpus() -> list[tuple[str, int, bool]]:
    """(sql, server major, assume in transaction): squawk's conformance cases and statements of other types."""
    out = [(c.sql, c.pg, c.assume_in_transaction) for c in load_cases()]
    return out + [(MORE, pg, assume) for pg in (11, 15, 19) for assume in (False, True)]


def test_no_rule_flags_or_remembers_a_statement_type_it_does_not_declare():
    every = [_EveryStatement(r) for r in ALL_RULES]
    linted = 0
    for sql, pg, assume in _corpus():
        try:
            dispatched = [f.model_dump() for f in lint_sql(sql, "c.sql", pg, ALL_RULES, assume)]
        except SqlSyntaxError:
            continue
        shown_all = [f.model_dump() for f in lint_sql(sql, "c.sql", pg, every, assume)]
        assert shown_all == dispatched, sql
        linted += 1
    assert linted > 400


def test_the_check_fails_when_a_rule_flags_an_undeclared_type(monkeypatch):
    """Break one declaration: the test above would catch it."""
    rule = next(r for r in ALL_RULES if r.id == "ban-drop-table")
    monkeypatch.setattr(type(rule), "node_types", (type(lint_sql.__code__),))  # declares nothing SQL has
    monkeypatch.setattr(type(rule), "check", lambda self, stmt, ctx: [self.finding(stmt, ctx, "dropped")]
                        if stmt.node.__class__.__name__ == "DropStmt" else [])
    with pytest.raises(AssertionError, match="ban-drop-table flags a DropStmt"):
        lint_sql("drop table t;", "c.sql", 15, [_EveryStatement(rule)])


_PROBE = """
import json, sys
from sage_agent.sqlkit.lint import lint_sql, select_rules
from sage_agent.sqlkit.lint.rules import rule_by_id, rule_class

def loaded():
    return sorted(m.rsplit(".", 1)[1] for m in sys.modules if m.startswith("sage_agent.sqlkit.lint.rules."))

rules = select_rules(include=["ban-drop-index"])
found = lint_sql(sys.argv[1], "p.sql", 18, rules)
out = {"found": sorted({f.rule for f in found}), "loaded": loaded(), "kinds": {r.id: type(r).__name__ for r in rules}}
view, table = rule_by_id("ban-drop-view"), rule_by_id("renaming-table")
out["asked"] = [sorted(view.kinds), type(view).__name__, table.summary == rule_class("renaming-table").summary,
                type(table).__name__, repr(rule_by_id("renaming-column")), type(rule_by_id("renaming-column")).__name__]
from sage_agent.sqlkit.lint import ALL_RULES
out["same"] = all(any(a is b for b in ALL_RULES) for a in rules) and type(rules[0]).__name__ != "_Pending"
out["after"] = loaded()
print(json.dumps(out))
"""


def test_only_the_rules_of_the_statement_types_present_are_imported():
    """A file of CREATE INDEX statements imports the index rules and the every-statement ones, nothing else.
    A rule not imported yet becomes the real rule in place when anything beyond its index entry is asked (the
    lists that hold it then hold the real rule); ALL_RULES imports them all."""
    sql = "create index i on t (a);\ncreate index if not exists j on t (b);\n"
    out = subprocess.run([sys.executable, "-c", _PROBE, sql], capture_output=True, text=True, timeout=120,
                         cwd=Path(__file__).resolve().parents[2])
    assert out.returncode == 0, out.stderr
    got = json.loads(out.stdout)
    assert got["found"] == ["prefer-robust-stmts", "require-concurrent-index-creation", "require-lock-timeout",
                            "require-statement-timeout"]
    assert got["loaded"] == ["_timeouts", "ban_concurrent_index_creation_in_transaction",
                             "ban_uncommitted_transaction", "identifier_too_long", "prefer_robust_stmts",
                             "require_concurrent_index_creation", "require_lock_timeout", "require_statement_timeout"]
    assert got["kinds"]["require-concurrent-index-creation"] == "RequireConcurrentIndexCreation"
    assert got["kinds"]["ban-drop-index"] == "_Pending"  # included, but no DROP in the file
    assert got["kinds"]["ban-drop-table"] == "_Pending"
    assert got["asked"] == [["OBJECT_MATVIEW", "OBJECT_VIEW"], "BanDropView", True, "RenamingTable",
                            "<Rule renaming-column>", "_Pending"]
    assert got["same"] is True
    assert got["after"] == sorted(p.stem for p in RULES_DIR.glob("*.py") if p.stem != "__init__")  # all of them

"""The lint/split speed-ups must not change a single result.

* split_sql's fast tree building equals pglast's validated parse (same values, same types);
* linting a file of many repeated statement shapes gives, statement by statement, exactly
  what linting each statement alone gives (no cache/dispatch can leak between statements);
* the engine's per-node-type rule dispatch gives the same findings as calling every rule.
"""
from __future__ import annotations

import pytest
from pglast import parser as _pg

from sage_agent.sqlkit import split as split_mod
from sage_agent.sqlkit.lint import RULES, lint_sql, lint_statements
from sage_agent.sqlkit.split import split_sql

VARIED = """\
-- header comment
set lock_timeout = '5s';
begin;
create table public.a (id serial primary key, c char(3), v varchar(20), ts timestamp, n int,
  s smallint, flag boolean not null default false, t text default 'x' /* inline */);
alter table public.a add column b bool default true, add column z int not null;
alter table public.a add constraint a_fk foreign key (n) references public.b (id);
alter table public.a alter column v type text;
commit;
create index concurrently if not exists a_v on public.a (v);
select true, false, null, 1.5, B'101', 'é', $$dollar; -- not a comment$$;
copy public.a (id) from stdin;
1
2
\\.
alter table public.a alter column v set not null; -- squawk-ignore adding-not-nullable-field
/* block
   comment */ drop index public.a_v;
create domain d as int check (value > 0);
alter type mood add value 'ok';
vacuum full public.a;
reindex table public.a;
truncate public.a cascade;
alter table public.a rename column v to w;
alter table public.a rename to a2;
create table "ünïcödé_tãblé" (x int);
create table this_is_a_rather_long_identifier_that_goes_on_and_on_and_on_and_on_x (x int);
create table "this is a quoted identifier that is much longer than sixty-three bytes!" (x int);
drop table public.a2;
begin;
"""

SHAPES = [
    "create table public.t{i} (id serial primary key, title varchar(100), at timestamp);",
    "alter table public.t{i} add column note text default random()::text;",
    "alter table public.t{i} add column owner int not null;",
    "create index t{i}_idx on public.t{i} (title);",
    "alter table public.t{i} add constraint t{i}_c check (length(title) < 5);",
    "alter table public.t{i} alter column title set not null;",
    "insert into public.t{i} (title) values ('a;b');",
    "create policy p{i} on public.t{i} for select using (true);",
    "drop index public.t{i}_idx;",
    "alter table public.t{i} alter column at{i} type bigint;",
    "alter table public.t{i} rename column title to name;",
    "-- squawk-ignore prefer-robust-stmts\ncreate table public.u{i} (id int);",
    "alter table public.t{i} add constraint t{i}_u unique (title);",
    "drop table public.t{i};",
    "create index concurrently t{i}_c_idx\n  on public.t{i} (owner);",
]
PRELUDE = "set lock_timeout = '1s'; set statement_timeout = '1s';\n"


def test_fast_tree_equals_validated_parse():
    masked, _ = split_mod._mask_copy_data(VARIED)
    fast = split_mod._parse(masked)
    slow = _pg.parse_sql(masked)
    assert fast == slow
    assert repr(fast) == repr(slow)  # same value types too (bool vs int, enum members...)
    assert [(r.stmt_location, r.stmt_len) for r in fast] == [(r.stmt_location, r.stmt_len) for r in slow]


def _enum_fields(tree):
    """(node class, attribute, value) of every enum-valued attribute in a parse tree."""
    from enum import Enum

    from pglast import ast

    out, todo = [], list(tree)
    while todo:
        item = todo.pop()
        if isinstance(item, (tuple, list)):
            todo.extend(item)
        elif isinstance(item, ast.Node):
            for name in item.__slots__:
                value = getattr(item, name, None)
                if isinstance(value, Enum):
                    out.append((type(item).__name__, name, value))
                else:
                    todo.append(value)
    return out


def test_fast_enum_lookup_gives_pglasts_own_members():
    """The fast build looks enum members up in a map instead of calling the enum class: the very same member
    objects, and pglast.enums is back in the parser module afterwards (also after a syntax error)."""
    import pglast
    from pglast import enums

    masked, _ = split_mod._mask_copy_data(VARIED)
    found = _enum_fields(split_mod._parse(masked))
    assert len(found) > 20 and {name for _cls, name, _v in found} >= {"subtype", "behavior", "kind", "contype"}
    for _cls, _name, value in found:
        assert value is getattr(enums, type(value).__name__)(value.value)
    assert _pg.enums is pglast.enums
    with pytest.raises(_pg.ParseError):
        split_mod._parse("alter table t add column;")
    assert _pg.enums is pglast.enums


def test_fast_enum_lookup_of_a_value_not_in_the_map():
    """A value the map lacks goes to the enum class: an IntFlag combination gives the class's own member, a
    value no enum has raises the class's own error."""
    from pglast import enums

    combined = enums.TableLikeOption.CREATE_TABLE_LIKE_COMMENTS | enums.TableLikeOption.CREATE_TABLE_LIKE_INDEXES
    assert split_mod._FAST_ENUMS.TableLikeOption(combined.value) is enums.TableLikeOption(combined.value)
    with pytest.raises(ValueError, match="is not a valid AlterTableType"):
        split_mod._FAST_ENUMS.AlterTableType(10_000)


def test_statements_are_what_the_constructor_builds():
    """build_statements makes each Statement in one step, not through ``__init__``: every field is there,
    equal to a Statement built the ordinary way (==, hash, repr), and it stays immutable."""
    stmts = split_sql(VARIED, "v.sql")
    assert any(s.comments for s in stmts) and any(s.trailing_comment for s in stmts) and any(s.copy_data for s in stmts)
    for stmt in stmts:
        again = split_mod.Statement(**{name: getattr(stmt, name) for name in split_mod._FIELDS})
        assert stmt == again and repr(stmt) == repr(again) and vars(stmt) == vars(again)
        with pytest.raises(AttributeError, match="immutable"):
            stmt.line = 0
        with pytest.raises(AttributeError, match="immutable"):
            del stmt.text
        moved = stmt.replace(line=stmt.line + 1)
        assert moved != stmt and moved.line == stmt.line + 1 and moved.text == stmt.text
    # the dataclass's repr: every field but `lines` (neither shown nor compared)
    assert repr(stmts[0]).startswith("Statement(text=\"set lock_timeout = '5s'\", line=2, end_line=2, node=<")
    assert repr(stmts[0]).endswith(", start=18, end=41, filename='v.sql')")
    with pytest.raises(TypeError):
        stmts[0].replace(linee=3)


def test_split_fast_path_matches_scanner_path(monkeypatch):
    """Statements, comments and offsets are the same as with the scanner on every statement."""
    fast = split_sql(VARIED, "v.sql")
    monkeypatch.setattr(split_mod, "_plain_bounds", lambda chunk: None)
    monkeypatch.setattr(split_mod, "_may_have_comment", lambda text: True)
    monkeypatch.setattr(split_mod, "_FAST_BUILD_OK", False)
    slow = split_sql(VARIED, "v.sql")
    assert fast == slow
    assert [(s.start, s.end, s.comments, s.trailing_comment, s.copy_data) for s in fast] == \
        [(s.start, s.end, s.comments, s.trailing_comment, s.copy_data) for s in slow]


class _EveryStatement:
    """A rule proxy without node_types: the engine calls it for every statement."""

    node_types = None

    def __init__(self, rule):
        self._rule = rule
        self.id, self.aliases = rule.id, rule.aliases

    def check(self, stmt, ctx):
        return self._rule.check(stmt, ctx)

    def finish(self, ctx):
        return self._rule.finish(ctx)


@pytest.mark.parametrize("assume", [False, True])
def test_dispatch_equals_calling_every_rule(assume):
    text = VARIED + "".join(s.format(i=i % 3) + "\n" for i, s in enumerate(SHAPES * 3))
    stmts = split_sql(text, "v.sql")
    fast = lint_statements(stmts, "v.sql", assume_in_transaction=assume)
    every = lint_statements(split_sql(text, "v.sql"), "v.sql", assume_in_transaction=assume,
                            rules=[_EveryStatement(r) for r in RULES])
    assert [f.model_dump() for f in fast] == [f.model_dump() for f in every]
    assert {f.rule for f in fast} >= {"identifier-too-long", "prefer-text-field", "ban-char-field",
                                      "adding-field-with-default", "changing-column-type"}


def test_repeated_shapes_lint_like_each_statement_alone():
    """Many repeated shapes (same text and same shape with other names): per statement, the
    file's findings are exactly the findings of that statement linted on its own."""
    parts = [PRELUDE]
    for rep in range(12):
        for k, shape in enumerate(SHAPES):
            i = rep * 100 + k if rep % 2 else k  # even rounds repeat the exact same text
            if "at{i} type" in shape or "drop table" in shape or "unique" in shape:
                i = rep * 100 + k  # these shapes remember earlier statements: keep them distinct
            parts.append(shape.format(i=i) + "\n")
    text = "".join(parts)
    findings = lint_sql(text, "many.sql")
    stmts = split_sql(text, "many.sql")
    assert len(stmts) == 2 + 12 * len(SHAPES)
    expected = []
    for stmt in stmts[2:]:
        source = "\n".join([*stmt.comments, stmt.text]) + ";"
        first_line = stmt.line - len(stmt.comments)
        for f in lint_sql(PRELUDE + source, "many.sql"):
            shift = first_line - 2  # the statement starts on line 2 of the one-statement file
            expected.append(f.model_copy(update={"line": f.line + shift,
                                                 "statement_line": f.statement_line + shift}))
    expected.sort(key=lambda f: (f.line, f.rule))
    assert len(findings) > 12 * len(SHAPES)
    assert [f.model_dump() for f in findings] == [f.model_dump() for f in expected]

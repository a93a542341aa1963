"""Run the rules over a file's statements, tracking transaction/timeout state and
honouring squawk's ignore comments (see :mod:`.ignores`)."""
from __future__ import annotations

from collections.abc import Iterable, Sequence
from operator import attrgetter
from typing import Any

from pglast import ast

from ..nodes import qualified
from ..split import Statement, build_statements, no_gc, prepare, split_sql
from .ignores import Ignores, parse_ignores
from .model import LintContext, LintFinding, Rule

ALL = "*"
_BY_LINE_RULE = attrgetter("line", "rule")  # the findings' order: by line, then rule id
# rule selection -> statement class -> the rules that look at it (kept across the files of one run)
_BY_TYPE: dict[tuple[Rule, ...], dict[type, list[Rule]]] = {}


class LintChain:
    """Memory shared by the files of one migration sequence, linted in order: a constraint
    validated by an earlier file makes a later SET NOT NULL safe, as it would be on the server."""

    def __init__(self, state: dict[str, Any] | None = None) -> None:
        self.state: dict[str, Any] = {} if state is None else state


def _tx_kind(node: object) -> str | None:
    if isinstance(node, ast.TransactionStmt):
        k = node.kind._name_
        if k in ("TRANS_STMT_BEGIN", "TRANS_STMT_START"):
            return "begin"
        if k in ("TRANS_STMT_COMMIT", "TRANS_STMT_ROLLBACK", "TRANS_STMT_PREPARE"):
            return "end"
    return None


def _created_table(node: object) -> str | None:
    if isinstance(node, ast.CreateStmt):
        return qualified(node.relation)
    if isinstance(node, ast.CreateTableAsStmt):
        return qualified(node.into.rel)
    return None


def _tables_created(events: Sequence[Event], assume: bool) -> tuple[frozenset[str], frozenset[str]]:
    """(tables created inside a transaction, tables created anywhere) in this file.
    A table created in the running transaction is invisible to everyone else, so locking
    or scanning it is harmless (squawk's exemption)."""
    inside, in_tx, anywhere = assume, set(), set()
    for kind, _setting, name in events:
        if kind:
            inside = kind == "begin"
            continue
        if name:
            anywhere.add(name)
            if inside:
                in_tx.add(name)
    return frozenset(in_tx), frozenset(anywhere)


def _timeout_setting(node: object) -> tuple[str, bool] | None:
    if isinstance(node, ast.VariableSetStmt) and node.name:
        name = node.name.lower()
        if name in ("lock_timeout", "statement_timeout"):
            if node.kind._name_.startswith("VAR_RESET"):
                return name, False
            return name, True  # squawk counts any SET of the name, whatever the value
    return None


# What the engine itself tracks from one statement: (transaction begin/end, timeout SET/RESET, table created).
Event = tuple["str | None", "tuple[str, bool] | None", "str | None"]


_EVENT_NODES = (ast.TransactionStmt, ast.VariableSetStmt, ast.CreateStmt, ast.CreateTableAsStmt)
_NO_EVENT: Event = (None, None, None)


def statement_events(statements: Sequence[Statement]) -> list[Event]:
    return [(_tx_kind(s.node), _timeout_setting(s.node), _created_table(s.node))
            if isinstance(s.node, _EVENT_NODES) else _NO_EVENT for s in statements]


# True: the reference path the fast one must equal (tests): every rule on every statement of its node types.
FULL_PATH = False


def _applicable(rules: Sequence[Rule], node_type: type, key: object) -> list[Rule]:
    subtypes = key if isinstance(key, frozenset) else None
    return [r for r in rules if (r.node_types is None or issubclass(node_type, r.node_types))
            and (subtypes is None or getattr(r, "alter_subtypes", None) is None
                 or not r.alter_subtypes.isdisjoint(subtypes))]


def check_statements(statements: Sequence[Statement], events: Sequence[Event], ctx: LintContext,
                     rules: Sequence[Rule], offset: int = 0) -> list[LintFinding]:
    """Run ``rules`` over the statements in order, keeping the context's transaction / timeout / created-table
    state; ``offset``: index of the first statement in the file."""
    if len(_BY_TYPE) > 64:  # a long-running process that tried many selections
        _BY_TYPE.clear()
    by_type = _BY_TYPE.setdefault((tuple(rules), FULL_PATH), {})  # statement kind -> its rules, in rule order
    alter_table = ast.AlterTableStmt
    findings: list[LintFinding] = []
    for i, stmt in enumerate(statements):
        ctx.index = offset + i
        node = stmt.node
        node_type = type(node)
        # an ALTER TABLE's kind includes its subcommand types: a rule about ADD COLUMN skips DROP INDEX ...
        key = (frozenset([c.subtype._name_ for c in node.cmds or ()])
               if node_type is alter_table and not FULL_PATH else node_type)
        applicable = by_type.get(key)
        if applicable is None:
            applicable = by_type[key] = _applicable(rules, node_type, key)
        for rule in applicable:
            findings += rule.check(stmt, ctx)
        kind, setting, created = events[i]
        if kind:
            ctx.in_transaction = kind == "begin"
        if setting:
            setattr(ctx, f"{setting[0]}_set", setting[1])
        if created:
            ctx.state.setdefault("_created_so_far", set()).add(created)
    return findings


def conclude(findings: list[LintFinding], rules: Sequence[Rule], ignores: Ignores, anywhere: frozenset[str],
             filename: str) -> list[LintFinding]:
    """After every statement and ``finish``: unknown ignore names, ignore comments, new-table marks, order."""
    # lazy: not needed to start `sage --version`, `*help` or `sage mcp`
    from .rules import rule_by_id

    enabled = {r.id for r in rules}
    if "unused-ignore" in enabled:
        unused = rule_by_id("unused-ignore")
        findings += [LintFinding(rule=unused.id, severity=unused.severity, line=u.line, column=u.column,
                                 message=f"unknown name {u.name}", safe_alternative=unused.safe_alternative,
                                 statement_line=u.line, filename=filename) for u in ignores.unknown]
    if ignores.file_all or ignores.file_rules or ignores.by_line:  # most files have no ignore comment
        findings = [f for f in findings if not ignores.covers(f.rule, f.line)]
    if anywhere:
        for f in findings:
            if f.table and f.table in anywhere:
                f.new_table = True
    findings.sort(key=_BY_LINE_RULE)
    return findings


def file_ignores(source: str | None, statements: Sequence[Statement],
                 extra_file_comments: Iterable[str] = ()) -> Ignores:
    # lazy: not needed to start `sage --version`, `*help` or `sage mcp`
    from .rules import canonical_names

    if source is not None:
        return parse_ignores(source, canonical_names)
    return _fallback_ignores(statements, extra_file_comments)


def _fallback_ignores(statements: Sequence[Statement], file_comments: Iterable[str]) -> Ignores:
    """Ignore comments when the source text is not at hand: each statement's own comments
    count as written on the line above it (the usual place)."""
    # lazy: not needed to start `sage --version`, `*help` or `sage mcp`
    from .rules import canonical_names

    lines: list[str] = []
    mapping: dict[int, int] = {}  # synthetic line -> real line
    for s in statements:
        for c in (*s.comments, s.trailing_comment or ""):
            if "squawk-" in c:
                mapping[len(lines) + 1] = s.line - 1 if c != s.trailing_comment else s.end_line
                lines.append(c.replace("\n", " "))
    synthetic = "\n".join(lines)
    ign = parse_ignores(synthetic, canonical_names)
    ign.by_line = {mapping.get(k, k): v for k, v in ign.by_line.items()}
    for u in ign.unknown:
        u.line = mapping.get(u.line, u.line)
    extra = parse_ignores("\n".join(c for c in file_comments if "squawk-ignore-file" in c
                                    or "squawk-disable-assume" in c), canonical_names)
    ign.file_all |= extra.file_all
    ign.file_rules |= extra.file_rules
    ign.disable_assume_in_transaction |= extra.disable_assume_in_transaction
    return ign


def lint_statements(statements: Sequence[Statement], filename: str = "<sql>",
                    server_major: int = 18, rules: Sequence[Rule] | None = None,
                    assume_in_transaction: bool = False,
                    extra_file_comments: Iterable[str] = (), *, source: str | None = None,
                    chain: LintChain | None = None) -> list[LintFinding]:
    """Lint already-split statements; findings are sorted by line.

    ``source``: the file's text, for squawk's line-based ignore comments (without it, the
    comments attached to each statement are used). ``chain``: shared memory when the file is
    one of an ordered sequence of migrations.
    """
    with no_gc():
        return _lint_statements(statements, filename, server_major, rules, assume_in_transaction,
                                extra_file_comments, source, chain)


def _lint_statements(statements: Sequence[Statement], filename: str, server_major: int,
                     rules: Sequence[Rule] | None, assume_in_transaction: bool,
                     extra_file_comments: Iterable[str], source: str | None,
                     chain: LintChain | None) -> list[LintFinding]:
    rules = list(_default_rules() if rules is None else rules)
    ignores = file_ignores(source, statements, extra_file_comments)
    if ignores.disable_assume_in_transaction:
        assume_in_transaction = False
    events = statement_events(statements)
    in_tx, anywhere = _tables_created(events, assume_in_transaction)
    ctx = LintContext(
        server_major=server_major, filename=filename, statements=list(statements),
        assume_in_transaction=assume_in_transaction, tables_created_in_file=in_tx,
        tables_created_anywhere=anywhere,
        shared=chain.state if chain is not None else {},
    )
    findings = check_statements(statements, events, ctx, rules)
    for rule in rules:
        findings += rule.finish(ctx)
    return conclude(findings, rules, ignores, anywhere, filename)


def _default_rules() -> list[Rule]:
    """The rules on by default; a rule's module is imported when it first checks a statement (see .rules)."""
    # lazy: not needed to start `sage --version`, `*help` or `sage mcp`
    from .rules import select_rules

    return select_rules()


def lint_sql(text: str, filename: str = "<sql>", server_major: int = 18,
             rules: Sequence[Rule] | None = None,
             assume_in_transaction: bool = False, *, chain: LintChain | None = None,
             jobs: int = 1) -> list[LintFinding]:
    """Split and lint a SQL script (raises SqlSyntaxError on invalid SQL). ``jobs`` > 1: a big file (and not
    part of a chain) is linted by two processes, same findings (see :mod:`.parallel`)."""
    with no_gc():
        if jobs > 1 and chain is None and len(text) >= _parallel.MIN_CHARS:
            prep = prepare(text, filename, pieces=True)
            chosen = _default_rules() if rules is None else rules
            found = _parallel.lint_two_parts(prep, filename, server_major, chosen, assume_in_transaction, text)
            if found is not None:
                return found
            statements = build_statements(prep.masked, prep.copy_blocks, filename)
        else:
            statements = split_sql(text, filename)
        return _lint_statements(statements, filename, server_major, rules, assume_in_transaction,
                                (), text, chain)


def lint_files(files: Sequence[tuple[str, str]], server_major: int = 18,
               rules: Sequence[Rule] | None = None,
               assume_in_transaction: bool = False) -> dict[str, list[LintFinding]]:
    """Lint an ordered migration sequence ``[(filename, text), ...]`` as one chain
    (raises SqlSyntaxError on the first invalid file)."""
    chain = LintChain()
    return {name: lint_sql(text, name, server_major, rules, assume_in_transaction, chain=chain)
            for name, text in files}


from . import parallel as _parallel  # noqa: E402 - it builds on the functions above

"""Run the rules over a file's statements, tracking transaction/timeout state and
honouring squawk-compatible ``-- squawk-ignore`` comments."""
from __future__ import annotations

import re
from collections.abc import Iterable, Sequence

from pglast import ast
from pglast import parser as _pg

from ..nodes import qualified
from ..split import Statement, no_gc, split_sql
from .model import LintContext, LintFinding, Rule

_IGNORE_RE = re.compile(r"squawk-ignore(?!-file)[ \t]+([\w\-]+(?:[ \t]*,[ \t]*[\w\-]+)*)", re.I)
_IGNORE_FILE_RE = re.compile(r"squawk-ignore-file\b[ \t]*([\w\-]+(?:[ \t]*,[ \t]*[\w\-]+)*)?", re.I)
ALL = "*"


def _rule_list(text: str | None) -> set[str]:
    return {r.strip().lower() for r in (text or "").split(",") if r.strip()}


def statement_ignores(stmt: Statement) -> set[str]:
    """Rule ids silenced for one statement by comments directly above / after it."""
    out: set[str] = set()
    for c in (*stmt.comments, stmt.trailing_comment or ""):
        for m in _IGNORE_RE.finditer(c):
            out |= _rule_list(m.group(1))
    return out


def file_ignores(comments: Iterable[str]) -> set[str]:
    """Rule ids silenced for the whole file (``ALL`` when no rule is named)."""
    out: set[str] = set()
    for c in comments:
        for m in _IGNORE_FILE_RE.finditer(c):
            out |= _rule_list(m.group(1)) or {ALL}
    return out


def _tx_kind(node: object) -> str | None:
    if isinstance(node, ast.TransactionStmt):
        k = node.kind.name
        if k in ("TRANS_STMT_BEGIN", "TRANS_STMT_START"):
            return "begin"
        if k in ("TRANS_STMT_COMMIT", "TRANS_STMT_ROLLBACK", "TRANS_STMT_PREPARE"):
            return "end"
    return None


def _tables_created_in_transaction(stmts: Sequence[Statement], assume: bool) -> frozenset[str]:
    """Tables created inside a transaction in this file: nobody else can see them yet,
    so locking/scanning them is harmless (squawk's exemption rule)."""
    inside, out = assume, set()
    for s in stmts:
        kind = _tx_kind(s.node)
        if kind:
            inside = kind == "begin"
        elif inside and isinstance(s.node, ast.CreateStmt):
            out.add(qualified(s.node.relation))
        elif inside and isinstance(s.node, ast.CreateTableAsStmt):
            out.add(qualified(s.node.into.rel))
    return frozenset(out)


def _timeout_setting(node: object) -> tuple[str, bool] | None:
    if isinstance(node, ast.VariableSetStmt) and node.name:
        name = node.name.lower()
        if name in ("lock_timeout", "statement_timeout"):
            if node.kind.name.startswith("VAR_RESET"):
                return name, False
            vals = [getattr(getattr(a, "val", None), "ival", None) for a in node.args or ()]
            svals = [getattr(getattr(a, "val", None), "sval", None) for a in node.args or ()]
            off = vals == [0] or svals == ["0"]
            return name, not off
    return None


def _canonical(rule_ids: set[str], rules: Sequence[Rule]) -> set[str]:
    alias = {a: r.id for r in rules for a in r.aliases}
    return {alias.get(r, r) for r in rule_ids}


def lint_statements(statements: Sequence[Statement], filename: str = "<sql>",
                    server_major: int = 18, rules: Sequence[Rule] | None = None,
                    assume_in_transaction: bool = False,
                    extra_file_comments: Iterable[str] = ()) -> list[LintFinding]:
    """Lint already-split statements; findings are sorted by line."""
    with no_gc():
        return _lint_statements(statements, filename, server_major, rules, assume_in_transaction,
                                extra_file_comments)


def _lint_statements(statements: Sequence[Statement], filename: str, server_major: int,
                     rules: Sequence[Rule] | None, assume_in_transaction: bool,
                     extra_file_comments: Iterable[str]) -> list[LintFinding]:
    from .rules import RULES

    rules = list(RULES if rules is None else rules)
    comments = [c for s in statements for c in (*s.comments, s.trailing_comment or "")]
    ignored_file = _canonical(file_ignores([*comments, *extra_file_comments]), rules)
    ctx = LintContext(
        server_major=server_major, filename=filename, statements=list(statements),
        assume_in_transaction=assume_in_transaction,
        tables_created_in_file=_tables_created_in_transaction(statements, assume_in_transaction),
    )
    alias = {a: r.id for r in rules for a in r.aliases}
    by_type: dict[type, list[Rule]] = {}  # rules that look at a statement class, in rule order
    findings: list[LintFinding] = []
    for i, stmt in enumerate(statements):
        ctx.index = i
        node_type = type(stmt.node)
        applicable = by_type.get(node_type)
        if applicable is None:
            applicable = by_type[node_type] = [
                r for r in rules if r.node_types is None or issubclass(node_type, r.node_types)]
        own = statement_ignores(stmt) if stmt.comments or stmt.trailing_comment else set()
        ignored = {alias.get(r, r) for r in own} | ignored_file
        for rule in applicable:
            for f in rule.check(stmt, ctx):
                if f.rule not in ignored and ALL not in ignored:
                    findings.append(f)
        kind = _tx_kind(stmt.node)
        if kind:
            ctx.in_transaction = kind == "begin"
        setting = _timeout_setting(stmt.node)
        if setting:
            setattr(ctx, f"{setting[0]}_set", setting[1])
    for rule in rules:
        findings += [f for f in rule.finish(ctx) if f.rule not in ignored_file and ALL not in ignored_file]
    findings.sort(key=lambda f: (f.line, f.rule))
    return findings


def lint_sql(text: str, filename: str = "<sql>", server_major: int = 18,
             rules: Sequence[Rule] | None = None,
             assume_in_transaction: bool = False) -> list[LintFinding]:
    """Split and lint a SQL script (raises SqlSyntaxError on invalid SQL)."""
    with no_gc():
        return _lint_sql(text, filename, server_major, rules, assume_in_transaction)


def _lint_sql(text: str, filename: str, server_major: int, rules: Sequence[Rule] | None,
              assume_in_transaction: bool) -> list[LintFinding]:
    statements = split_sql(text, filename)
    try:
        all_comments = [c.str for c in _pg.comments(text)] if statements else []
    except Exception:
        all_comments = []
    return lint_statements(statements, filename, server_major, rules, assume_in_transaction,
                           all_comments)

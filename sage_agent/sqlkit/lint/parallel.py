"""Lint one big file on two cores, with exactly the findings of the one-process engine.

Building pglast's Python parse trees is most of the time on a big file, and it cannot be shared between
processes, so the file is cut in two at a statement boundary and each process builds the trees of its part
(a forked child takes the second part; its first part is blanked out, so lines and offsets stay the file's).
What crosses the cut is small and goes through a pipe:

1. both sides parse; the child sends what the engine tracks from its statements (transactions, timeout
   settings, tables created), so both know the file-level facts (tables created anywhere / inside a
   transaction) and the state at the cut;
2. the parent runs every rule on part one; meanwhile the child runs the rules that judge each statement alone;
3. the parent sends the memory of the *ordered* rules (``Rule.ordered``: they remember earlier statements)
   as it stands at the cut; the child runs those rules on part two, then ``finish``, and sends its findings.

The findings are merged and concluded (ignore comments, order) as in :func:`.engine.lint_sql`. If a rule
that is not marked ordered touches rule memory in the child, or either part does not parse on its own, or
the child fails, the caller lints the file in one process instead: slower, never different.
"""
from __future__ import annotations

import sys
import threading
from collections.abc import Sequence
from typing import Any

from ..split import Prepared, SqlSyntaxError, Statement, build_statements
from .engine import (_tables_created, check_statements, conclude, file_ignores, statement_events)
from .model import LintContext, LintFinding, Rule

MIN_CHARS = 400_000  # below this a second process costs about what it saves
_SHARE = 0.5  # part one's share of the file (the two processes then end about together: bench/results/lint.md)
_SPACE = " \t\r\f\v"


class NeedsOrder(Exception):
    """A rule not marked ``ordered`` read or wrote rule memory: lint the file in one process."""


class _NoMemory(dict):
    """``ctx.state`` / ``ctx.shared`` while the child runs the unordered rules: only the engine's own key and
    the per-statement column-type cache may be used."""

    allowed: frozenset[str] = frozenset()

    def _check(self, key: Any) -> None:
        if key not in self.allowed:
            raise NeedsOrder(key)

    def __getitem__(self, key):
        self._check(key)
        return super().__getitem__(key)

    def __setitem__(self, key, value):
        self._check(key)
        super().__setitem__(key, value)

    def __contains__(self, key):
        self._check(key)
        return super().__contains__(key)

    def get(self, key, default=None):
        self._check(key)
        return super().get(key, default)

    def setdefault(self, key, default=None):
        self._check(key)
        return super().setdefault(key, default)

    def pop(self, key, *default):
        self._check(key)
        return super().pop(key, *default)


class _EngineOnly(_NoMemory):
    allowed = frozenset({"_created_so_far", "_column_types"})


def is_ordered(rule: Rule) -> bool:
    return rule.ordered or type(rule).finish is not Rule.finish


def _cut(prep: Prepared, share: float) -> int | None:
    """Offset just past the line end after a statement's `;`, near ``share`` of the text, where nothing but
    spaces follows the `;` on its line (no trailing comment to hand to the wrong side)."""
    text, pieces = prep.masked, prep.pieces
    if not pieces or len(pieces) < 4:
        return None
    target = int(len(text) * share)
    lo, hi = 0, len(pieces) - 1
    while lo < hi:  # first piece ending at or after the target
        mid = (lo + hi) // 2
        if pieces[mid].stop < target:
            lo = mid + 1
        else:
            hi = mid
    for k in sorted(range(max(1, lo - 200), min(len(pieces) - 2, lo + 200)), key=lambda k: abs(k - lo)):
        stop = pieces[k].stop
        if stop >= len(text) or text[stop] != ";":
            continue
        nl = text.find("\n", stop + 1)
        if nl < 0 or text[stop + 1:nl].strip(_SPACE):
            continue
        if pieces[k + 1].start > nl:
            return nl + 1
    return None


def _blank(text: str) -> str:
    """Same length and line breaks, every other character a space."""
    return "\n".join(" " * len(line) for line in text.split("\n"))


def _findings_out(findings: list[LintFinding]) -> list[tuple]:
    return [tuple(vars(f).values()) for f in findings]


def _findings_in(rows: list[tuple]) -> list[LintFinding]:
    return [LintFinding(*row) for row in rows]


def _engine_state(events) -> tuple[bool, bool, bool, set[str]]:
    """(in transaction, lock_timeout set, statement_timeout set, tables created) after ``events``."""
    in_tx, lock_set, stmt_set, created = False, False, False, set()
    for kind, setting, name in events:
        if kind:
            in_tx = kind == "begin"
        if setting:
            if setting[0] == "lock_timeout":
                lock_set = setting[1]
            else:
                stmt_set = setting[1]
        if name:
            created.add(name)
    return in_tx, lock_set, stmt_set, created


def _context(base: dict, statements: list, start: tuple, state: dict, shared: dict) -> LintContext:
    ctx = LintContext(statements=statements, state=state, shared=shared, **base)
    ctx.in_transaction, ctx.lock_timeout_set, ctx.statement_timeout_set = start[:3]
    if start[3]:
        state["_created_so_far"] = set(start[3])
    return ctx


def _child(conn, parent_end, prep: Prepared, cut: int, filename: str, rules: list[Rule]) -> None:
    parent_end.close()  # forked with both ends open: keep only ours, so a parent gone means end of file here
    try:
        statements = build_statements(_blank(prep.masked[:cut]) + prep.masked[cut:], prep.copy_blocks, filename)
        events = statement_events(statements)
        conn.send(("parsed", events, statements[0].start if statements else None))
        msg = conn.recv()
        if msg[0] != "go":
            return
        _, base, n_before, start = msg
        padded = [None] * n_before + statements
        unordered = [r for r in rules if not is_ordered(r)]
        ordered = [r for r in rules if is_ordered(r)]
        ctx = _context(base, padded, start, _EngineOnly(), _NoMemory())
        found = check_statements(statements, events, ctx, unordered, n_before)
        msg = conn.recv()
        if msg[0] != "memory":
            return
        _, state, shared = msg
        ctx = _context(base, padded, start, state, shared)
        found += check_statements(statements, events, ctx, ordered, n_before)
        for rule in ordered:
            found += rule.finish(ctx)
        conn.send(("done", _findings_out(found)))
    except NeedsOrder as exc:
        _tell(conn, ("fallback", f"rule memory {exc.args[0]!r} used by a rule not marked ordered"))
    except KeyboardInterrupt:  # Ctrl-C reaches both processes; the parent says "interrupted"
        pass
    except Exception as exc:  # noqa: BLE001 - e.g. part two alone does not parse: the parent lints it whole
        _tell(conn, ("fallback", f"{type(exc).__name__}: {exc}"))
    finally:
        conn.close()


def _tell(conn, msg: tuple) -> None:
    """Send if the parent still listens: it stops reading when it gave up on two processes (its own part
    needed one), and a traceback from the child would only confuse the user."""
    try:
        conn.send(msg)
    except OSError:
        pass


def lint_two_parts(prep: Prepared, filename: str, server_major: int, rules: Sequence[Rule],
                   assume_in_transaction: bool, source: str, cut: int | None = None) -> list[LintFinding] | None:
    """The findings of the file, linted by two processes; None when it must be linted in one.
    ``cut``: where part two starts (a line start; default: near the middle, after a statement)."""
    if threading.active_count() > 1:  # forking a threaded process (MCP server, REPL) may copy a held lock
        return None
    cut = _cut(prep, _SHARE) if cut is None else cut
    if cut is None:
        return None
    # lazy: only a big file needs a second process; small files must start fast
    import multiprocessing

    try:
        context = multiprocessing.get_context("fork")
    except ValueError:  # no fork on this platform
        return None
    rules = list(rules)
    for stream in (sys.stdout, sys.stderr):  # the child must not write out what the parent buffered
        try:
            stream.flush()
        except (OSError, ValueError, AttributeError):
            pass
    ours, theirs = context.Pipe()
    child = context.Process(target=_child, args=(theirs, ours, prep, cut, filename, rules), daemon=True)
    child.start()
    theirs.close()
    try:
        return _parent(ours, prep, cut, filename, server_major, rules, assume_in_transaction, source)
    except (EOFError, OSError):  # the child died: lint in one process
        return None
    except (SqlSyntaxError, RecursionError):  # part one alone does not parse: the whole file says why
        return None
    finally:
        ours.close()
        child.join(timeout=5)
        if child.is_alive():
            child.kill()
            child.join()


def _parent(conn, prep: Prepared, cut: int, filename: str, server_major: int, rules: list[Rule],
            assume_in_transaction: bool, source: str) -> list[LintFinding] | None:
    first: list[Statement] = build_statements(prep.masked[:cut], prep.copy_blocks, filename)
    msg = conn.recv()
    if msg[0] != "parsed" or not first or msg[2] is None or first[-1].end >= cut or msg[2] < cut:
        conn.send(("stop",))
        return None
    events_one, events_two = statement_events(first), msg[1]
    ignores = file_ignores(source, [])
    assume = assume_in_transaction and not ignores.disable_assume_in_transaction
    in_tx, anywhere = _tables_created(events_one + events_two, assume)
    base = dict(server_major=server_major, filename=filename, assume_in_transaction=assume,
                tables_created_in_file=in_tx, tables_created_anywhere=anywhere)
    conn.send(("go", base, len(first), _engine_state(events_one)))
    padded = first + [None] * len(events_two)
    # The ordered rules first, so their memory at the cut reaches the child while this process runs the rest:
    # the child's ordered pass over part two then overlaps the unordered pass here instead of following it.
    ordered = [r for r in rules if is_ordered(r)]
    ctx = LintContext(statements=padded, shared={}, **base)
    found = check_statements(first, events_one, ctx, ordered)
    state = {k: v for k, v in ctx.state.items() if k != "_column_types"}
    try:
        import pickle  # lazy: only a big file in two processes needs it

        payload = pickle.dumps(("memory", state, ctx.shared), protocol=pickle.HIGHEST_PROTOCOL)
    except Exception:  # noqa: BLE001 - a rule keeps something that cannot travel: lint in one process
        return None
    conn.send_bytes(payload)
    # the unordered rules may use only the engine's own memory, here as in the child (NeedsOrder otherwise)
    ctx = _context(base, padded, (False, False, False, ()), _EngineOnly(), _NoMemory())
    try:
        found += check_statements(first, events_one, ctx, [r for r in rules if not is_ordered(r)])
    except NeedsOrder:
        return None
    # part one's parse trees are freed one object at a time (about 0.1 s on 2.5 MB): now, while the child
    # may still be working, rather than after its findings arrive; the findings hold none of them
    del first, padded, ctx
    msg = conn.recv()
    if msg[0] != "done":
        return None
    return conclude(found + _findings_in(msg[1]), rules, ignores, anywhere, filename)

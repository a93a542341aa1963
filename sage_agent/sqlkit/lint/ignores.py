"""squawk-compatible ignore comments, with squawk's exact semantics (squawk 2.70).

* ``-- squawk-ignore r1, r2`` (or ``/* ... */``) silences those rules for findings that start on
  the comment's line or on the line after it; names are case-sensitive and comma separated; a
  trailing ``-- note`` is allowed.
* ``-- squawk-ignore-file r1`` silences rules for the whole file, wherever it appears;
  ``-- squawk-ignore-file`` alone silences every rule.
* ``-- squawk-disable-assume-in-transaction`` turns off ``assume_in_transaction`` for the file.
* An unknown name is reported as an ``unused-ignore`` finding at the name.
"""
from __future__ import annotations

import re
from collections.abc import Callable

from pglast import parser as _pg

from ..split import LineIndex

IGNORE_LINE = "squawk-ignore"
IGNORE_FILE = "squawk-ignore-file"
DISABLE_ASSUME = "squawk-disable-assume-in-transaction"
_COMMENT_RE = re.compile(r"--[^\n\r]*|/\*.*?\*/", re.S)


class UnknownName:
    """A name in an ignore comment that is no rule. Plain classes here: `sage lint` starts faster without
    building dataclasses."""

    def __init__(self, line: int, column: int, name: str) -> None:
        self.line, self.column, self.name = line, column, name

    def __eq__(self, other: object) -> bool:
        return isinstance(other, UnknownName) and vars(self) == vars(other)

    def __repr__(self) -> str:
        return f"UnknownName(line={self.line!r}, column={self.column!r}, name={self.name!r})"


class Ignores:
    """Which rules are silenced where, parsed from one file's comments."""

    def __init__(self, by_line: dict[int, frozenset[str]] | None = None, file_rules: set[str] | None = None,
                 file_all: bool = False, unknown: list[UnknownName] | None = None,
                 disable_assume_in_transaction: bool = False) -> None:
        self.by_line: dict[int, frozenset[str]] = {} if by_line is None else by_line
        self.file_rules: set[str] = set() if file_rules is None else file_rules
        self.file_all = file_all
        self.unknown: list[UnknownName] = [] if unknown is None else unknown
        self.disable_assume_in_transaction = disable_assume_in_transaction

    def covers(self, rule: str, line: int) -> bool:
        """True when a finding of ``rule`` starting on ``line`` is silenced."""
        if self.file_all or rule in self.file_rules:
            return True
        for ln in (line, line - 1):
            names = self.by_line.get(ln)
            if names is not None and rule in names:
                return True
        return False


def _trim_trailing_comment(text: str) -> str:
    text = text.strip()
    idx = text.find("--")
    return text if idx < 0 else text[:idx].rstrip()


def _comments(text: str) -> list[tuple[int, str]]:
    """(offset, text) of every comment; the scanner knows strings and dollar quotes."""
    try:
        return [(t.start, text[t.start:t.end + 1]) for t in _pg.scan(text)
                if t.name in ("SQL_COMMENT", "C_COMMENT")]
    except Exception:  # e.g. COPY data the scanner cannot read: fall back to a plain match
        return [(m.start(), m.group()) for m in _COMMENT_RE.finditer(text)]


def parse_ignores(text: str, canonical: Callable[[str], tuple[str, ...] | None]) -> Ignores:
    """Parse ignore comments; ``canonical(name)`` gives the rule ids a name stands for
    (an alias may stand for several) or None for an unknown name."""
    out = Ignores()
    if "squawk-" not in text:
        return out
    lines = LineIndex(text)
    for pos, comment in _comments(text):
        if "squawk-" not in comment:
            continue
        if comment.startswith("--"):
            body, body_pos = comment[2:], pos + 2
        else:
            body, body_pos = comment[2:-2], pos + 2
        stripped = body.lstrip()
        lead = len(body) - len(stripped)
        trimmed = _trim_trailing_comment(stripped)
        if trimmed == DISABLE_ASSUME:
            out.disable_assume_in_transaction = True
            continue
        for prefix, is_file in ((IGNORE_FILE, True), (IGNORE_LINE, False)):
            if not trimmed.startswith(prefix):
                continue
            rest = trimmed[len(prefix):]
            names_pos = body_pos + lead + len(prefix)
            names: set[str] = set()
            offset = 0
            for part in rest.split(","):
                if part:
                    ids = canonical(part.strip())
                    if ids is not None:
                        names.update(ids)
                    else:
                        start = names_pos + offset + (len(part) - len(part.lstrip()))
                        out.unknown.append(UnknownName(lines.line(start), lines.column(start), part.strip()))
                offset += len(part) + 1
            if is_file:
                if not rest.strip():
                    out.file_all = True
                else:
                    out.file_rules |= names
            else:
                out.by_line[lines.line(names_pos)] = frozenset(names)
            break
    return out

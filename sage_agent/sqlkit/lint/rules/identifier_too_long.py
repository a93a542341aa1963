"""Identifiers over 63 bytes are silently truncated, so two long names can collide.

The check runs on lexer tokens, not the AST: the parser has already truncated
the names by the time pglast hands us the tree.
"""
import re

from pglast import parser as _pg

from ..model import Rule

MAX_BYTES = 63


def _ident_text(raw: str) -> str:
    if raw.startswith('"') and raw.endswith('"'):
        return raw[1:-1].replace('""', '"')
    return raw


# An unquoted identifier is a run of [A-Za-z0-9_$] and non-ASCII characters (scan.l
# ident_start/ident_cont); over 63 bytes needs at least 16 such characters (4 bytes max each).
_LONG_RUN = r"[A-Za-z0-9_$\u0080-\U0010FFFF]{16,}"  # compiled on first use: a few ms, and most files are ASCII
# ASCII: one byte a character, so a run of 64. Found by mapping identifier bytes to `a` and others to a space
# (bytes.translate), then a substring search: several times faster than the regex [A-Za-z0-9_$]{64,}.
_IDENT_BYTES = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_$")
_TO_RUNS = bytes(0x61 if i in _IDENT_BYTES else 0x20 for i in range(256))
_ASCII_RUN = b"a" * (MAX_BYTES + 1)
_QUOTED = re.compile(r'"((?:[^"]|"")*)"')
# Where one of these appears a `"` may sit in a string, comment or dollar quote, or be a U&"..." escape.
_NOT_PLAIN = ("'", "$", "--", "/*", "&", "\\")


def _may_have_long_identifier(text: str) -> bool:
    """Cheap prefilter: False only when no identifier in ``text`` can exceed MAX_BYTES."""
    first = text.find('"')
    # A quoted identifier over 63 bytes spans over 60 characters from its first `"` to its last (`U&"` and `""`
    # included), or over 12 when the text holds characters of up to 4 bytes: when the text's first and last
    # quotes are closer than that, no quoted identifier can be too long.
    if first >= 0 and text.rfind('"') - first > (60 if text.isascii() else 12):
        if any(s in text for s in _NOT_PLAIN):  # the scanner knows what each quote is
            return True
        # no strings, comments or escapes: every `"` delimits an identifier (`""` is a quote inside one)
        if any(len(m.group(1).replace('""', '"').encode()) > MAX_BYTES for m in _QUOTED.finditer(text)):
            return True
    if text.isascii():
        return len(text) > MAX_BYTES and _ASCII_RUN in text.encode("ascii").translate(_TO_RUNS)
    return any(len(m.group().encode()) > MAX_BYTES for m in re.finditer(_LONG_RUN, text))


class IdentifierTooLong(Rule):
    id = "identifier-too-long"
    severity = "warning"
    summary = "Identifiers longer than 63 bytes are truncated silently"
    safe_alternative = "Use a name of at most 63 bytes"

    def check(self, stmt, ctx):
        if not _may_have_long_identifier(stmt.text):
            return []
        try:
            tokens = _pg.scan(stmt.text)
        except Exception:
            return []
        out = []
        for tok in tokens:
            if tok.name != "IDENT":
                continue
            name = _ident_text(stmt.text[tok.start:tok.end + 1])
            size = len(name.encode())
            if size > MAX_BYTES:
                out.append(self.finding(stmt, ctx, f"Identifier {name!r} is {size} bytes; PostgreSQL "
                                        f"truncates it to {MAX_BYTES}.", location=stmt.start + tok.start))
        return out

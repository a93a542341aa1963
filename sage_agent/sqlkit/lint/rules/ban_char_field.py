"""char(n) pads with spaces and is almost always a mistake."""
from ._types import ColumnTypeRule


class BanCharField(ColumnTypeRule):
    id = "ban-char-field"
    summary = "Do not use char(n)"
    safe_alternative = "text (or varchar)"
    bad_types = frozenset({"bpchar", "char", "character"})
    message = "char(n) is blank-padded and almost always a mistake; use text."

"""timestamp without time zone drops the UTC offset, a classic source of bugs."""
from ._types import ColumnTypeRule


class PreferTimestamptz(ColumnTypeRule):
    id = "prefer-timestamp-tz"  # squawk's id; the docs' spelling is accepted too
    aliases = ("prefer-timestamptz",)
    summary = "Use timestamptz instead of timestamp"
    safe_alternative = "timestamptz"
    bad_types = frozenset({"timestamp"})
    message = "timestamp without time zone discards the UTC offset; use timestamptz."

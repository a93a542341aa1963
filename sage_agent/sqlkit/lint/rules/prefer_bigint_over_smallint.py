"""16-bit integers overflow at 32767; widening later rewrites the table."""
from ._types import ColumnTypeRule


class PreferBigintOverSmallint(ColumnTypeRule):
    id = "prefer-bigint-over-smallint"
    summary = "smallint/smallserial columns overflow quickly; use bigint"
    safe_alternative = "bigint"
    bad_types = frozenset({"int2", "smallint", "smallserial", "serial2"})
    message = "{type} is a 16-bit integer and can overflow; widening it later rewrites the table."

"""32-bit integer ids overflow at 2^31; widening later rewrites the table."""
from ._types import ColumnTypeRule


class PreferBigintOverInt(ColumnTypeRule):
    id = "prefer-bigint-over-int"
    summary = "int/serial columns can overflow; use bigint"
    safe_alternative = "bigint (or bigint GENERATED ... AS IDENTITY)"
    bad_types = frozenset({"int4", "int", "integer", "serial", "serial4"})
    message = "{type} is a 32-bit integer and can overflow; widening it later rewrites the table."

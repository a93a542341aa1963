"""varchar(n): raising the limit later needs ACCESS EXCLUSIVE; text + CHECK is easier to change."""
from ._types import ColumnTypeRule


class PreferTextField(ColumnTypeRule):
    id = "prefer-text-field"
    summary = "Prefer text (with a CHECK on length) over varchar(n)"
    safe_alternative = "text with CHECK (char_length(col) <= n) added NOT VALID"
    message = "varchar(n): changing the length limit later takes an ACCESS EXCLUSIVE lock."

    def matches(self, name, mods):
        return name == "varchar" and bool(mods)

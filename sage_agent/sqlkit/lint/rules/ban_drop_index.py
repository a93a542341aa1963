"""Opt-in: DROP INDEX may remove a uniqueness guarantee or slow queries down."""
from ._objects import DropObjectRule


class BanDropIndex(DropObjectRule):
    id = "ban-drop-index"
    summary = "DROP INDEX may remove a guarantee or change query plans"
    safe_alternative = "Check that no constraint or hot query relies on the index first"
    kinds = frozenset({'OBJECT_INDEX'})
    message = "Dropping an index may remove a guarantee or change query plans for existing clients."
    opt_in = True

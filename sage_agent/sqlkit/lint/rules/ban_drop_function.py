"""DROP FUNCTION/PROCEDURE breaks callers, triggers and defaults using it."""
from ._objects import DropObjectRule


class BanDropFunction(DropObjectRule):
    id = "ban-drop-function"
    summary = "DROP FUNCTION breaks existing clients"
    safe_alternative = "Keep the object until no client uses it, then drop it in a later release"
    kinds = frozenset({'OBJECT_FUNCTION', 'OBJECT_PROCEDURE', 'OBJECT_ROUTINE', 'OBJECT_AGGREGATE'})

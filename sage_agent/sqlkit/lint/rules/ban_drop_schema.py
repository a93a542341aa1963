"""DROP SCHEMA removes every object clients use in it."""
from ._objects import DropObjectRule


class BanDropSchema(DropObjectRule):
    id = "ban-drop-schema"
    summary = "DROP SCHEMA breaks existing clients"
    safe_alternative = "Keep the object until no client uses it, then drop it in a later release"
    kinds = frozenset({'OBJECT_SCHEMA'})

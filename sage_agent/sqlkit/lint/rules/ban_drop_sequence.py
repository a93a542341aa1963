"""DROP SEQUENCE breaks defaults and clients calling nextval on it."""
from ._objects import DropObjectRule


class BanDropSequence(DropObjectRule):
    id = "ban-drop-sequence"
    summary = "DROP SEQUENCE breaks existing clients"
    safe_alternative = "Keep the object until no client uses it, then drop it in a later release"
    kinds = frozenset({'OBJECT_SEQUENCE'})

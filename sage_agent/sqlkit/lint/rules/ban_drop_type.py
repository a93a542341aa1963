"""DROP TYPE (and casts/operators) breaks clients and columns using it."""
from ._objects import DropObjectRule


class BanDropType(DropObjectRule):
    id = "ban-drop-type"
    summary = "DROP TYPE breaks existing clients"
    safe_alternative = "Keep the object until no client uses it, then drop it in a later release"
    kinds = frozenset({'OBJECT_TYPE', 'OBJECT_CAST', 'OBJECT_OPERATOR'})

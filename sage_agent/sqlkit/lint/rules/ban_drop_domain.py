"""DROP DOMAIN breaks clients (and columns) using the domain."""
from ._objects import DropObjectRule


class BanDropDomain(DropObjectRule):
    id = "ban-drop-domain"
    summary = "DROP DOMAIN breaks existing clients"
    safe_alternative = "Keep the object until no client uses it, then drop it in a later release"
    kinds = frozenset({'OBJECT_DOMAIN'})

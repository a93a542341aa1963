"""DROP VIEW breaks every client still reading the view."""
from ._objects import DropObjectRule


class BanDropView(DropObjectRule):
    id = "ban-drop-view"
    summary = "DROP VIEW breaks existing clients"
    safe_alternative = "Keep the object until no client uses it, then drop it in a later release"
    kinds = frozenset({'OBJECT_VIEW', 'OBJECT_MATVIEW'})

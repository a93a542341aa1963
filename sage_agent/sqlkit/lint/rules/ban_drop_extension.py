"""DROP EXTENSION also drops its functions and types."""
from ._objects import DropObjectRule


class BanDropExtension(DropObjectRule):
    id = "ban-drop-extension"
    summary = "DROP EXTENSION removes the objects it owns"
    safe_alternative = "Keep the object until no client uses it, then drop it in a later release"
    kinds = frozenset({'OBJECT_EXTENSION'})
    message = "Dropping an extension also removes its functions, types, and other objects, which may break existing clients."

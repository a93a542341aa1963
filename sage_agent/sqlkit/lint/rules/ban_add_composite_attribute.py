"""Opt-in: a new attribute changes the shape of composite values clients receive."""
from ._objects import AlterCmdRule


class BanAddCompositeAttribute(AlterCmdRule):
    id = "ban-add-composite-attribute"
    summary = "ALTER TYPE ADD ATTRIBUTE changes composite values"
    safe_alternative = "Create a new type and move clients to it"
    subtypes = frozenset({'AT_AddColumn'})
    message = "Adding a composite attribute changes the shape of values existing clients receive."
    objtypes = frozenset({'OBJECT_TYPE'})
    opt_in = True

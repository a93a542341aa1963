"""Opt-in: a new column changes row shape and breaks positional INSERTs / SELECT *."""
from ._objects import AlterCmdRule


class BanAddColumn(AlterCmdRule):
    id = "ban-add-column"
    summary = "ADD COLUMN changes the shape of rows"
    safe_alternative = "Make sure no client uses SELECT * or positional INSERT"
    subtypes = frozenset({'AT_AddColumn'})
    message = "Adding a column changes the shape of rows existing clients receive and can break positional inserts."
    objtypes = frozenset({'OBJECT_TABLE'})
    opt_in = True

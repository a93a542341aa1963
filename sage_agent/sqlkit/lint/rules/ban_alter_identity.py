"""ADD/DROP IDENTITY changes which inserts succeed."""
from ._objects import AlterCmdRule


class BanAlterIdentity(AlterCmdRule):
    id = "ban-alter-identity"
    summary = "Changing a column's identity breaks inserts"
    safe_alternative = "Move writers first; change identity in a release of its own"
    subtypes = frozenset({'AT_AddIdentity', 'AT_DropIdentity'})
    message = "Changing column identity may break inserts from existing clients."

"""Opt-in: SET EXPRESSION changes values existing clients read (and rewrites the table)."""
from ._objects import AlterCmdRule


class BanAlterGeneratedExpression(AlterCmdRule):
    id = "ban-alter-generated-expression"
    summary = "SET EXPRESSION changes values clients read"
    safe_alternative = "Add a new generated column instead"
    subtypes = frozenset({'AT_SetExpression'})
    message = "Changing a generated column expression may change values read by existing clients."
    opt_in = True

"""DROP EXPRESSION turns a generated column into a plain one that nobody maintains."""
from ._objects import AlterCmdRule


class BanDropGeneratedExpression(AlterCmdRule):
    id = "ban-drop-generated-expression"
    summary = "DROP EXPRESSION breaks clients reading the computed value"
    safe_alternative = "Keep the generated column until readers compute the value themselves"
    subtypes = frozenset({'AT_DropExpression'})
    message = "Dropping a generated expression may break existing clients."

"""SET SCHEMA moves an object; clients using the old qualified name break."""
from pglast import ast

from ..model import Rule


class BanSetSchema(Rule):
    node_types = (ast.AlterObjectSchemaStmt,)
    id = "ban-set-schema"
    severity = "warning"
    summary = "SET SCHEMA breaks clients using the old qualified name"
    safe_alternative = "Create the object in the new schema and move clients before dropping the old one"

    def check(self, stmt, ctx):
        if not isinstance(stmt.node, self.node_types):
            return []
        return [self.finding(stmt, ctx, "Moving an object to another schema may break existing clients.")]

"""Opt-in: unqualified table names resolve through search_path, which differs between sessions."""
from pglast import ast

from ..model import Rule

MESSAGE = "Table name is not schema-qualified. Use schema.table (e.g., public.my_table)."


def _unqualified(rel) -> bool:
    return rel is not None and not rel.schemaname and rel.relpersistence != "t"


class RequireTableSchema(Rule):
    node_types = (ast.CreateStmt, ast.CreateTableAsStmt, ast.AlterTableStmt, ast.DropStmt,
                  ast.AlterObjectSchemaStmt, ast.RenameStmt)
    id = "require-table-schema"
    severity = "warning"
    opt_in = True
    summary = "Schema-qualify table names"
    safe_alternative = "Write schema.table, e.g. public.my_table"

    def check(self, stmt, ctx):
        if not isinstance(stmt.node, self.node_types):
            return []
        n = stmt.node
        if isinstance(n, ast.CreateStmt):
            bad = _unqualified(n.relation)
        elif isinstance(n, ast.CreateTableAsStmt):
            bad = n.objtype._name_ == "OBJECT_TABLE" and _unqualified(n.into.rel)
        elif isinstance(n, ast.AlterTableStmt):
            bad = n.objtype._name_ == "OBJECT_TABLE" and _unqualified(n.relation)
        elif isinstance(n, (ast.AlterObjectSchemaStmt, ast.RenameStmt)):
            kind = n.objectType if isinstance(n, ast.AlterObjectSchemaStmt) else n.renameType
            bad = kind.name == "OBJECT_TABLE" and _unqualified(n.relation)
        else:
            bad = n.removeType._name_ == "OBJECT_TABLE" and any(
                len(obj) == 1 for obj in n.objects or () if isinstance(obj, (tuple, list)))
        return [self.finding(stmt, ctx, MESSAGE)] if bad else []

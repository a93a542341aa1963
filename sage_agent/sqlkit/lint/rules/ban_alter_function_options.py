"""Opt-in: SECURITY DEFINER, search_path, volatility ... change how a function behaves."""
from pglast import ast

from ..model import Rule

_NOUN = {"OBJECT_PROCEDURE": "procedure", "OBJECT_ROUTINE": "routine", "OBJECT_AGGREGATE": "aggregate"}


class BanAlterFunctionOptions(Rule):
    node_types = (ast.AlterFunctionStmt,)
    id = "ban-alter-function-options"
    severity = "warning"
    opt_in = True
    summary = "ALTER FUNCTION options change behaviour"
    safe_alternative = "Create a new function version instead"

    def check(self, stmt, ctx):
        if not isinstance(stmt.node, self.node_types):
            return []
        noun = _NOUN.get(stmt.node.objtype._name_, "function")
        return [self.finding(stmt, ctx, f"Changing {noun} options may change behaviour for existing clients.")]

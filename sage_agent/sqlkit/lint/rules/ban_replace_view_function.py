"""Opt-in: CREATE OR REPLACE swaps behaviour under running clients without a trace."""
from pglast import ast

from ..model import Rule


class BanReplaceViewFunction(Rule):
    node_types = (ast.CreateFunctionStmt, ast.ViewStmt, ast.RuleStmt, ast.CreateTrigStmt)
    id = "ban-replace-view-function"
    severity = "warning"
    opt_in = True
    summary = "CREATE OR REPLACE silently changes behaviour"
    safe_alternative = "Create a new version under a new name and move clients to it"

    def check(self, stmt, ctx):
        if not isinstance(stmt.node, self.node_types):
            return []
        n = stmt.node
        if not n.replace:
            return []
        if isinstance(n, ast.RuleStmt):
            return [self.finding(stmt, ctx, "Replacing a rule may silently change behaviour for existing clients.")]
        if isinstance(n, ast.CreateTrigStmt):
            return [self.finding(stmt, ctx, "Replacing a trigger may silently change behaviour for existing clients.")]
        return [self.finding(stmt, ctx, "Replacing a view, function, or procedure may silently change "
                             "behaviour for existing clients.")]

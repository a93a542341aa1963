"""An ignore comment naming a rule that does not exist silences nothing (a typo, usually).
The findings are produced by the engine from :mod:`..ignores`; this class carries the rule id."""
from ..model import Rule


class UnusedIgnore(Rule):
    node_types = ()
    id = "unused-ignore"
    severity = "warning"
    summary = "An ignore comment names a rule that does not exist"
    safe_alternative = "Fix the rule name in the squawk-ignore comment"

    def check(self, stmt, ctx):
        if not isinstance(stmt.node, self.node_types):
            return []
        return []

"""Without statement_timeout a slow DDL can hold its lock for an unbounded time."""
from ..model import Rule
from ._timeouts import waits_on


class RequireStatementTimeout(Rule):
    id = "require-statement-timeout"
    ordered = True
    severity = "warning"
    summary = "Set statement_timeout before potentially slow DDL"
    safe_alternative = "SET statement_timeout = '5s'; (longer for CONCURRENTLY builds)"

    def check(self, stmt, ctx):
        done = ctx.rule_state(self.id, lambda: [False])
        if done[0] or ctx.statement_timeout_set:
            return []
        info = waits_on(stmt, ctx)
        if info is None:
            return []
        done[0] = True
        return [self.finding(stmt, ctx, "No SET statement_timeout before this potentially slow statement.",
                             lock=info, table=info.table)]

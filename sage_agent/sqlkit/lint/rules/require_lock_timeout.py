"""Without lock_timeout a DDL waiting for its lock queues every later query behind it."""
from ..model import Rule
from ._timeouts import possibly_slow


class RequireLockTimeout(Rule):
    id = "require-lock-timeout"
    severity = "warning"
    summary = "Set lock_timeout before DDL so a blocked lock request fails fast instead of stalling traffic"
    safe_alternative = "SET lock_timeout = '2s'; (and retry the migration on timeout)"

    def check(self, stmt, ctx):
        done = ctx.rule_state(self.id, lambda: [False])
        if done[0] or ctx.lock_timeout_set or not possibly_slow(stmt.node):
            return []
        done[0] = True  # once per file, like squawk
        return [self.finding(stmt, ctx, "No SET lock_timeout before this statement: while it waits for "
                             "its lock, every later query on the table queues behind it.")]

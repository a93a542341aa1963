"""Without lock_timeout a DDL waiting for its lock queues every later query behind it."""
from ..model import Rule
from ._timeouts import waits_on


class RequireLockTimeout(Rule):
    id = "require-lock-timeout"
    ordered = True
    severity = "warning"
    summary = "Set lock_timeout before DDL so a blocked lock request fails fast instead of stalling traffic"
    safe_alternative = "SET lock_timeout = '2s'; (and retry the migration on timeout)"

    def check(self, stmt, ctx):
        done = ctx.rule_state(self.id, lambda: [False])
        if done[0] or ctx.lock_timeout_set:
            return []
        info = waits_on(stmt, ctx)
        if info is None:
            return []
        done[0] = True  # once per file, like squawk
        what = f"its {info.lock} lock" if info.lock else "its lock"
        on = f" on {info.table}" if info.table else ""
        return [self.finding(stmt, ctx, f"No SET lock_timeout before this statement: while it waits for "
                             f"{what}{on}, every later query on the table queues behind it.",
                             lock=info, table=info.table)]

"""Opt-in: enabling/disabling triggers, rules or RLS changes side effects clients rely on."""
from ._objects import AlterCmdRule

_TRIGGERS = {"AT_EnableTrig", "AT_EnableAlwaysTrig", "AT_EnableReplicaTrig", "AT_DisableTrig",
             "AT_EnableTrigAll", "AT_DisableTrigAll", "AT_EnableTrigUser", "AT_DisableTrigUser",
             "AT_EnableRule", "AT_EnableAlwaysRule", "AT_EnableReplicaRule", "AT_DisableRule"}
_RLS = {"AT_DisableRowSecurity", "AT_ForceRowSecurity", "AT_NoForceRowSecurity"}  # enabling RLS is not flagged here


class BanDisableTrigger(AlterCmdRule):
    id = "ban-disable-trigger"
    opt_in = True
    summary = "Changing trigger, rule or RLS firing changes side effects"
    safe_alternative = "Keep triggers enabled; change their function instead"
    subtypes = frozenset(_TRIGGERS | _RLS)

    def message_for(self, cmd):
        # lazy: not needed to start `sage --version`, `*help` or `sage mcp`
        from .. import helpers as h
        if h.subtype(cmd) in _RLS:
            return "Changing row level security can change visible rows or reject access for existing clients."
        return "Changing trigger or rule firing may change database side effects for existing clients."

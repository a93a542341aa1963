"""Opt-in: security_barrier / security_invoker / check_option change what a view returns."""
from ._objects import AlterCmdRule


class BanAlterViewOptions(AlterCmdRule):
    id = "ban-alter-view-options"
    opt_in = True
    summary = "ALTER VIEW SET/RESET options change behaviour"
    safe_alternative = "Create a new view with the options and move clients"
    subtypes = frozenset({"AT_SetRelOptions", "AT_ResetRelOptions"})
    objtypes = frozenset({"OBJECT_VIEW", "OBJECT_MATVIEW"})
    message = "Changing view options may change behaviour for existing clients."

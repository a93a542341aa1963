"""Opt-in: enabling/forcing RLS changes which rows every client sees."""
from ._objects import AlterCmdRule


class BanAlterRowLevelSecurity(AlterCmdRule):
    id = "ban-alter-row-level-security"
    summary = "Changing row level security changes access"
    safe_alternative = "Create the policies first, then enable RLS in the same transaction"
    subtypes = frozenset({'AT_EnableRowSecurity', 'AT_DisableRowSecurity', 'AT_ForceRowSecurity', 'AT_NoForceRowSecurity'})
    message = "Changing row level security may change access for existing clients."
    opt_in = True

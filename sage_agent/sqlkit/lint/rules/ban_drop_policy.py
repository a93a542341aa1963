"""Opt-in: dropping an RLS policy or a rule changes what clients see."""
from ._objects import DropObjectRule


class BanDropPolicy(DropObjectRule):
    id = "ban-drop-policy"
    summary = "DROP POLICY/RULE silently changes behaviour"
    safe_alternative = "Replace the policy in one transaction instead of dropping it"
    kinds = frozenset({'OBJECT_POLICY', 'OBJECT_RULE'})
    message = "Dropping a policy or rule may silently change behaviour for existing clients."
    opt_in = True

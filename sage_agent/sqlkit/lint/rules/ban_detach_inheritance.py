"""Opt-in: NO INHERIT / DETACH PARTITION changes which rows the parent table shows."""
from .. import helpers as h
from ._objects import AlterCmdRule


class BanDetachInheritance(AlterCmdRule):
    id = "ban-detach-inheritance"
    opt_in = True
    summary = "NO INHERIT / DETACH PARTITION changes rows seen through the parent"
    safe_alternative = "Move clients to the child table first"
    subtypes = frozenset({"AT_DropInherit", "AT_DetachPartition"})

    def message_for(self, cmd):
        if h.subtype(cmd) == "AT_DetachPartition":
            return ("Detaching a partition changes which rows existing clients can read and write "
                    "through the parent table.")
        return "NO INHERIT changes which rows existing clients can read and write through the parent table."

"""Opt-in: REPLICA IDENTITY changes what logical replication sends."""
from ._objects import AlterCmdRule


class BanReplicaIdentity(AlterCmdRule):
    id = "ban-replica-identity"
    summary = "REPLICA IDENTITY changes replication"
    safe_alternative = "Coordinate with every subscriber first"
    subtypes = frozenset({'AT_ReplicaIdentity'})
    message = "Changing replica identity may silently change replication for existing clients."
    opt_in = True

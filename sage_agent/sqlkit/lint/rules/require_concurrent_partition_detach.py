"""DETACH PARTITION without CONCURRENTLY takes ACCESS EXCLUSIVE on the parent table."""
from pglast import ast

from .. import helpers as h
from ..model import Rule


class RequireConcurrentPartitionDetach(Rule):
    node_types = (ast.AlterTableStmt,)
    alter_subtypes = frozenset({"AT_DetachPartition"})
    id = "require-concurrent-partition-detach"
    severity = "warning"
    summary = "DETACH PARTITION without CONCURRENTLY blocks reads and writes on the parent"
    safe_alternative = "ALTER TABLE parent DETACH PARTITION child CONCURRENTLY (PG 14+, no transaction block)"

    def check(self, stmt, ctx):
        if not isinstance(stmt.node, self.node_types):
            return []
        return [self.finding(stmt, ctx, "DETACH PARTITION without CONCURRENTLY takes an ACCESS EXCLUSIVE "
                             "lock on the partitioned table.")
                for cmd in h.alter_cmds(stmt.node)
                if h.subtype(cmd) == "AT_DetachPartition" and not getattr(cmd.def_, "concurrent", False)]

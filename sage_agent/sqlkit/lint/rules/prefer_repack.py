"""PG 19+: VACUUM FULL and CLUSTER block the table for the whole rewrite; REPACK does not."""
from pglast import ast

from ..model import Rule
from ._rewrite import full_rewrite

REPACK_MAJOR = 19


class PreferRepack(Rule):
    node_types = (ast.VacuumStmt, ast.ClusterStmt)
    id = "prefer-repack"
    severity = "warning"
    summary = "VACUUM FULL / CLUSTER block the table for the whole rewrite (PG 19+: use REPACK)"
    safe_alternative = "REPACK (PostgreSQL 19+), which rewrites without blocking reads and writes"

    def check(self, stmt, ctx):
        if not isinstance(stmt.node, self.node_types):
            return []
        what = full_rewrite(stmt.node)
        if what is None or ctx.server_major < REPACK_MAJOR:
            return []
        return [self.finding(stmt, ctx, f"`{what}` requires an `ACCESS EXCLUSIVE` lock which blocks reads "
                             "and writes to the table.")]

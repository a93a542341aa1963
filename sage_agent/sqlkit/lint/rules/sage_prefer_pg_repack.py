"""DB Sage's own rule, before PG 19 (no REPACK yet): VACUUM FULL / CLUSTER block the table for
the whole rewrite; the pg_repack extension rewrites online with a brief lock at the end."""
from pglast import ast

from ..model import Rule
from ._rewrite import full_rewrite
from .prefer_repack import REPACK_MAJOR


class SagePreferPgRepack(Rule):
    node_types = (ast.VacuumStmt, ast.ClusterStmt)
    id = "sage-prefer-pg-repack"
    severity = "warning"
    summary = "VACUUM FULL / CLUSTER block the table for the whole rewrite (before PG 19: use pg_repack)"
    safe_alternative = "pg_repack (or pg_squeeze), which rewrites online with a brief lock at the end"

    def check(self, stmt, ctx):
        if not isinstance(stmt.node, self.node_types):
            return []
        what = full_rewrite(stmt.node)
        if what is None or ctx.server_major >= REPACK_MAJOR:
            return []
        return [self.finding(stmt, ctx, f"{what.upper()} rewrites the table under an ACCESS EXCLUSIVE lock, "
                             "blocking reads and writes for the whole run.")]

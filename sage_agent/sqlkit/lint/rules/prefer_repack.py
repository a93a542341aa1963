"""VACUUM FULL and CLUSTER rewrite the table under ACCESS EXCLUSIVE for their whole run."""
from pglast import ast

from ...nodes import defelem_names
from ..model import Rule


class PreferRepack(Rule):
    node_types = (ast.VacuumStmt, ast.ClusterStmt)
    id = "prefer-repack"
    severity = "error"
    summary = "VACUUM FULL / CLUSTER block the table for the whole rewrite"
    safe_alternative = "pg_repack (or pg_squeeze), which rewrites online with a brief lock at the end"

    def check(self, stmt, ctx):
        n = stmt.node
        full = isinstance(n, ast.VacuumStmt) and n.is_vacuumcmd and "full" in defelem_names(n.options)
        if full or isinstance(n, ast.ClusterStmt):
            what = "VACUUM FULL" if full else "CLUSTER"
            return [self.finding(stmt, ctx, f"{what} rewrites the table under an ACCESS EXCLUSIVE lock, "
                                 "blocking reads and writes for the whole run.")]
        return []

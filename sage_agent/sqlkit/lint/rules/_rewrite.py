"""Which statements rewrite a whole table under ACCESS EXCLUSIVE (VACUUM FULL, CLUSTER)."""
from pglast import ast

_FALSE = {"false", "off", "0", "no"}


def _truthy(defelem) -> bool:
    arg = defelem.arg
    if arg is None:
        return True
    val = getattr(arg, "sval", None)
    if val is None:
        val = getattr(arg, "ival", None)
    if val is None:
        val = getattr(getattr(arg, "val", None), "ival", None)
    return str(val).lower() not in _FALSE


def is_vacuum_full(node) -> bool:
    """VACUUM FULL / VACUUM (FULL [true]) — not VACUUM (FULL false)."""
    return isinstance(node, ast.VacuumStmt) and bool(node.is_vacuumcmd) and any(
        getattr(o, "defname", None) == "full" and _truthy(o) for o in node.options or ())


def full_rewrite(node) -> str | None:
    """'vacuum full' or 'cluster' when the statement rewrites tables while blocking them."""
    if is_vacuum_full(node):
        return "vacuum full"
    if isinstance(node, ast.ClusterStmt):
        return "cluster"
    return None

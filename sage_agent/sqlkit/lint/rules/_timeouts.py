"""Which statements wait on locks long enough to need a lock/statement timeout first."""
from pglast import ast

_SLOW_PREFIXES = ("Create", "Alter", "Drop", "Define", "Rename", "Comment", "CompositeType",
                  "Index", "View", "Rule", "ImportForeignSchema", "Cluster", "Lock",
                  "RefreshMatView", "Reindex", "Truncate", "Load")


def possibly_slow(node) -> bool:
    """DDL and maintenance take table locks; plain CREATE TABLE and DML do not queue behind them."""
    if isinstance(node, ast.CreateStmt):
        return False  # a new table conflicts with nobody
    if isinstance(node, ast.VacuumStmt):
        return bool(node.is_vacuumcmd)
    return type(node).__name__.startswith(_SLOW_PREFIXES)

"""The same column assigned twice (UPDATE SET a = 1, a = 2; INSERT (a, a); CREATE TABLE (a, a) ...)
is an error at run time or a silent last-one-wins bug."""
from collections import defaultdict

from pglast import ast

from ...nodes import names
from .. import helpers as h
from ..model import Rule


def _target_key(rt) -> tuple[str, tuple[str, ...] | None]:
    """(column, field path) of an assignment target; path None: a subscript (never a clash)."""
    path: list[str] = []
    for ind in rt.indirection or ():
        if isinstance(ind, ast.String):
            path.append(ind.sval)
        else:
            return rt.name, None
    return rt.name, tuple(path)


def _clashes(targets) -> list:
    """Targets that assign a column (or field) another target in the list also assigns."""
    named = [rt.name for rt in targets if isinstance(rt, ast.ResTarget) and rt.name]
    if len(set(named)) == len(named):  # only targets of one column can clash
        return []
    by_col = defaultdict(list)
    for rt in targets:
        if isinstance(rt, ast.ResTarget) and rt.name:
            by_col[rt.name].append((rt, _target_key(rt)[1]))
    bad = []
    for items in by_col.values():
        for i, (rt, p) in enumerate(items):
            if p is None:
                continue
            if any(j != i and q is not None and (q[:len(p)] == p or p[:len(q)] == q)
                   for j, (_, q) in enumerate(items)):
                bad.append(rt)
    return bad


def _output_name(rt) -> str:
    if rt.name:
        return rt.name
    v = rt.val
    if isinstance(v, ast.ColumnRef):
        last = v.fields[-1]
        return last.sval if isinstance(last, ast.String) else "?column?"
    if isinstance(v, ast.FuncCall):
        return names(v.funcname)[-1]
    if isinstance(v, ast.TypeCast) and isinstance(v.arg, ast.ColumnRef):
        return _output_name(ast.ResTarget(val=v.arg))
    return "?column?"


def _duplicate_names(items) -> list:
    """Items whose name (item[0]) appears more than once."""
    if len({name for name, _ in items}) == len(items):
        return []
    seen = defaultdict(list)
    for name, node in items:
        seen[name].append(node)
    return [node for nodes in seen.values() if len(nodes) > 1 for node in nodes]


class BanDuplicateColumnAssignments(Rule):
    node_types = (ast.UpdateStmt, ast.InsertStmt, ast.MergeStmt, ast.CreateStmt, ast.CreateForeignTableStmt,
                  ast.ViewStmt, ast.SelectStmt)
    id = "ban-duplicate-column-assignments"
    severity = "warning"
    summary = "The same column is assigned or defined more than once"
    safe_alternative = "Keep one assignment per column"

    def check(self, stmt, ctx):
        if not isinstance(stmt.node, self.node_types):
            return []
        n = stmt.node
        hits = []
        if isinstance(n, ast.UpdateStmt):
            hits = _clashes(n.targetList or ())
        elif isinstance(n, ast.InsertStmt):
            hits = _clashes(n.cols or ())
            if n.onConflictClause is not None:
                hits += _clashes(n.onConflictClause.targetList or ())
        elif isinstance(n, ast.MergeStmt):
            for clause in n.mergeWhenClauses or ():
                hits += _clashes(clause.targetList or ())
        elif isinstance(n, (ast.CreateStmt, ast.CreateForeignTableStmt)):
            n = n.base if isinstance(n, ast.CreateForeignTableStmt) else n
            hits = _duplicate_names([(e.colname, e) for e in n.tableElts or () if isinstance(e, ast.ColumnDef)])
        elif isinstance(n, ast.ViewStmt):
            if n.aliases:
                return [self.finding(stmt, ctx, f"Column `{a.sval}` is named more than once.")
                        for a in _duplicate_names([(a.sval, a) for a in n.aliases])]
            q = n.query
            if isinstance(q, ast.SelectStmt) and q.targetList:
                hits = _duplicate_names([(_output_name(rt), rt) for rt in q.targetList])
        elif isinstance(n, ast.SelectStmt) and n.intoClause is not None and n.targetList:
            hits = _duplicate_names([(_output_name(rt), rt) for rt in n.targetList])
        return [self.finding(stmt, ctx, f"Multiple assignments to the same column `{_name(x)}`.",
                             line=h.node_line(stmt, x)) for x in hits]


def _name(node) -> str:
    if isinstance(node, ast.ResTarget):
        return _output_name(node)
    return getattr(node, "colname", None) or "?column?"

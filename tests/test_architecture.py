"""The layers, checked from the source: lower layers never import the areas, the front doors or the agent."""

from __future__ import annotations

import ast
import re
from pathlib import Path

from sage_agent.ops.registry import OPERATION_MODULES

PACKAGE = Path(__file__).resolve().parents[1] / "sage_agent"
LOWER = ("db", "sqlkit", "catalog", "session")
UPPER = ("sage_agent.ops", "sage_agent.frontends", "sage_agent.agent")
# The registry and the result types are the contract every layer shares (the session runs operations and
# returns their results); they import nothing from the areas, so the session may use them.
SHARED = ("sage_agent.ops.registry", "sage_agent.ops.result")


def imported_modules(path: Path) -> list[tuple[int, str]]:
    """Every `import x` / `from x import y` in a file, at module level and inside functions."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found += [(node.lineno, node.module)] + [(node.lineno, f"{node.module}.{a.name}") for a in node.names]
    return found


def upward(module: str) -> bool:
    if any(module == s or module.startswith(s + ".") for s in SHARED):
        return False
    return any(module == u or module.startswith(u + ".") for u in UPPER)


def test_lower_layers_never_import_upward():
    offenders = []
    for layer in LOWER:
        for path in sorted((PACKAGE / layer).rglob("*.py")):
            offenders += [f"{path.relative_to(PACKAGE.parent)}:{line}: {mod}"
                          for line, mod in imported_modules(path) if upward(mod)]
    assert offenders == []


def test_the_shared_layer_imports_no_area():
    for name in SHARED:
        path = PACKAGE.parent / (name.replace(".", "/") + ".py")
        bad = [mod for _, mod in imported_modules(path) if upward(mod)]
        assert bad == [], path


def test_the_walk_sees_function_level_imports(tmp_path):
    probe = tmp_path / "probe.py"
    probe.write_text("def f():\n    from sage_agent.ops.observe import sqlexec\n")
    assert [m for _, m in imported_modules(probe) if upward(m)] == ["sage_agent.ops.observe",
                                                                   "sage_agent.ops.observe.sqlexec"]


def test_every_operation_module_is_registered():
    listed = {f"sage_agent.ops.{name}" for name in OPERATION_MODULES}
    declaring = set()
    for path in (PACKAGE / "ops").rglob("*.py"):
        if re.search(r"^@operation\(", path.read_text(encoding="utf-8"), re.M):
            declaring.add(".".join(path.relative_to(PACKAGE.parent).with_suffix("").parts))
    assert declaring - listed == set()
    assert listed - declaring == set()


def test_areas_never_import_the_front_doors():
    """An area runs under every front door; only the agent area talks to the agent (its own conversation)."""
    offenders = []
    for path in sorted((PACKAGE / "ops").rglob("*.py")):
        banned = ("sage_agent.frontends", "sage_agent.cli") + (() if "agent" in path.parts[-2:-1] else ("sage_agent.agent",))
        offenders += [f"{path.relative_to(PACKAGE.parent)}:{line}: {mod}" for line, mod in imported_modules(path)
                      if any(mod == b or mod.startswith(b + ".") for b in banned)]
    assert offenders == []


def unlabelled_lazy_imports(path: Path) -> list[int]:
    """Lines of imports inside functions that do not say why they are lazy: `# lazy: reason` on the comment
    line above their block of consecutive imports, or on the import's own line."""
    lines = path.read_text(encoding="utf-8").split("\n")
    found = []
    for fn in ast.walk(ast.parse("\n".join(lines))):
        if not isinstance(fn, (ast.FunctionDef, ast.AsyncFunctionDef)):
            continue
        for node in ast.walk(fn):
            for body in (getattr(node, f, None) for f in ("body", "orelse", "finalbody")):
                if not isinstance(body, list):
                    continue
                block_label = ""
                for i, stmt in enumerate(body):
                    if not isinstance(stmt, (ast.Import, ast.ImportFrom)):
                        continue
                    if i == 0 or not isinstance(body[i - 1], (ast.Import, ast.ImportFrom)):
                        block_label = lines[stmt.lineno - 2] if stmt.lineno > 1 else ""
                    if "# lazy:" not in block_label + lines[stmt.lineno - 1]:
                        found.append(stmt.lineno)
    return found


def test_imports_sit_at_the_top_unless_they_say_why_they_are_lazy():
    missing = [f"{path.relative_to(PACKAGE.parent)}:{line}" for path in sorted(PACKAGE.rglob("*.py"))
               for line in unlabelled_lazy_imports(path)]
    assert missing == [], "imports inside functions without a `# lazy: reason` comment:\n" + "\n".join(missing)


def test_the_lazy_label_check_sees_an_unlabelled_import(tmp_path):
    source = tmp_path / "m.py"
    source.write_text("def f():\n    import json\n    return json\n\n\ndef g():\n    # lazy: start-up\n"
                      "    import csv\n    import gzip\n    return csv, gzip\n")
    assert unlabelled_lazy_imports(source) == [2]

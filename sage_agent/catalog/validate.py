"""`sage validate`: persona commands, task files, registered operations, templates and checklists agree."""

from __future__ import annotations

import ast
import importlib
import re
from dataclasses import dataclass, field
from pathlib import Path

from pydantic_core import PydanticUndefined

from sage_agent.catalog.errors import CatalogError
from sage_agent.catalog.paths import PACKAGE_DIR, catalog_root, knowledge_dir, personas_dir, tasks_dir
from sage_agent.catalog.persona import parse_persona
from sage_agent.catalog.tasks import parse_task
from sage_agent.ops.registry import load_operations
from sage_agent.session.machine import coerce

# Loaders for other catalog kinds register here as "module:function" taking a Path and raising CatalogError.
KNOWLEDGE_PARSERS: dict[str, str] = {
    "templates": "sage_agent.catalog.templates:parse_template",
    "checklists": "sage_agent.catalog.checklists:parse_checklist",
}


@dataclass
class Report:
    problems: list[str] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.problems

    def add(self, path: str, line: int | None, message: str) -> None:
        self.problems.append(f"{path}:{line}: {message}" if line else f"{path}: {message}")


def _default_of(spec) -> object:
    return None if spec.default is None else coerce(spec, spec.default)


def validate_catalog() -> Report:
    report = Report()
    persona_path = personas_dir() / "db-sage.md"
    try:
        persona = parse_persona(persona_path)
    except CatalogError as exc:
        report.add(exc.path, exc.line, exc.message)
        return report
    tasks = {}
    for path in sorted(tasks_dir().glob("*.md")):
        try:
            tasks[path.stem] = parse_task(path)
        except CatalogError as exc:
            report.add(exc.path, exc.line, exc.message)
    operations = load_operations()
    report.counts = {"commands": len(persona.commands), "tasks": len(tasks), "operations": len(operations)}
    by_command = {t.command: t for t in tasks.values()}
    seen_names: dict[str, str] = {}
    for task in tasks.values():
        for name in [task.command, *task.aliases]:
            if name in seen_names and seen_names[name] != task.id:
                report.add(task.path, None, f"*{name} is also claimed by {seen_names[name]}.md")
            seen_names[name] = task.id

    for cmd in persona.commands:
        task = by_command.get(cmd.name)
        if task is None:
            report.add(persona.path, cmd.line, f"persona command *{cmd.name} has no task file with that Activation")
            continue
        if cmd.args != task.args:
            report.add(persona.path, cmd.line,
                       f"*{cmd.name} arguments {' '.join(cmd.args) or '(none)'} differ from {task.id}.md: "
                       f"{' '.join(task.args) or '(none)'}")
    listed = set(persona.dependencies.tasks)
    for task in tasks.values():
        if persona.command(task.command) is None:
            report.add(task.path, None, f"*{task.command} is not listed in the persona's commands")
        if f"{task.id}.md" not in listed:
            report.add(persona.path, None, f"dependencies.tasks does not list {task.id}.md")
        op = operations.get(task.id)
        if op is None:
            report.add(task.path, None, f"no operation is registered for task {task.id}")
            continue
        fields = op.input_model.model_fields
        specs = {s.key: s for s in task.user_inputs()}
        for key in sorted(set(fields) - set(specs)):
            report.add(task.path, None, f"operation input `{key}` has no elicitation line")
        for key, spec in specs.items():
            if key not in fields:
                report.add(task.path, spec.line, f"elicitation `{key}` is not an input of the operation")
                continue
            info = fields[key]
            if spec.required and not info.is_required():
                report.add(task.path, spec.line, f"`{key}` is required here but optional in the operation's model")
            if not spec.required and info.is_required():
                report.add(task.path, spec.line, f"`{key}` is optional here but required in the operation's model")
            if not spec.required and info.default is not PydanticUndefined and _default_of(spec) != info.default:
                report.add(task.path, spec.line,
                           f"`{key}` default {spec.default!r} differs from the operation's {info.default!r}")
        if op.max_risk == "destructive" and not task.confirm_word:
            report.add(task.path, None, "a destructive operation needs a 'Type \"WORD\" to confirm' line")
    for task_id in sorted(set(operations) - set(tasks)):
        report.add(str(tasks_dir()), None, f"operation {task_id} has no task file {task_id}.md")
    for name in sorted(listed - {f"{t}.md" for t in tasks}):
        report.add(persona.path, None, f"dependencies.tasks lists {name}, which does not exist")

    for kind in ("templates", "checklists", "data"):
        folder = knowledge_dir() / kind
        names = getattr(persona.dependencies, kind)
        report.counts[kind] = len(names)
        parser = _parser(kind)
        for name in names:
            path = folder / name
            if not path.is_file():
                report.add(persona.path, None, f"dependencies.{kind} lists {name}, missing from knowledge/{kind}/")
            elif parser:
                try:
                    parser(path)
                except CatalogError as exc:
                    report.add(exc.path, exc.line, exc.message)
        if folder.is_dir():
            for path in sorted(folder.iterdir()):
                if path.is_file() and not path.name.startswith(".") and path.name not in names:
                    report.add(str(path), None, f"not listed in the persona's dependencies.{kind}")
    for path, line, name in command_references(set(seen_names)):
        report.add(path, line, f"*{name} is not a command or an alias (see *help)")
    return report


# `*name` in prose: not inside a word or a path, not `**kwargs`, not a glob (`*.sql`) or `count(*)`.
_COMMAND_REF = re.compile(r"(?<![\w*/.\\)\]])\*([a-z][a-z0-9]*(?:-[a-z0-9]+)*)(?![\w*(-])")
_ITALIC = re.compile(r"(?<![\w*])\*[^*\s`][^*`\n]*?\*(?![\w*])")  # markdown emphasis: *which rows*
PLACEHOLDERS = {"command", "another", "other"}  # how usage lines say "a command"


def _python_strings(path: Path) -> list[tuple[int, str]]:
    try:
        tree = ast.parse(path.read_text(encoding="utf-8"))
    except SyntaxError:
        return []
    return [(n.lineno, n.value) for n in ast.walk(tree) if isinstance(n, ast.Constant) and isinstance(n.value, str)]


def command_references(names: set[str], code: list[Path] | None = None,
                       docs: list[Path] | None = None) -> list[tuple[str, int, str]]:
    """Every `*command` named in the code's strings or the catalog's markdown that is not a command or an alias."""
    root = catalog_root()
    if code is None:
        code = sorted(PACKAGE_DIR.rglob("*.py"))
    if docs is None:
        docs = sorted({*root.glob("*.md"), *(root / "docs").rglob("*.md"), *tasks_dir().glob("*.md"),
                       *personas_dir().glob("*.md"), *knowledge_dir().rglob("*.md")})
    found: list[tuple[str, int, str]] = []
    for path in code:
        for line, text in _python_strings(path):
            found += [(str(path), line, m[1]) for m in _COMMAND_REF.finditer(text)]
    for path in docs:
        for line, text in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
            found += [(str(path), line, m[1]) for m in _COMMAND_REF.finditer(_ITALIC.sub("", text))]
    return [(p, line, name) for p, line, name in found if name not in names and name not in PLACEHOLDERS]


def _parser(kind: str):
    spec = KNOWLEDGE_PARSERS.get(kind)
    if not spec:
        return None
    module, _, func = spec.partition(":")
    try:
        return getattr(importlib.import_module(module), func)
    except (ImportError, AttributeError):
        return None

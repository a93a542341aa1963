"""Task files in the seed's template, parsed into typed specs. The markdown is the single source of
command names, aliases, prompts, choices and defaults."""

from __future__ import annotations

import re
from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import BaseModel

from sage_agent.catalog.errors import CatalogError
from sage_agent.catalog.paths import tasks_dir

REQUIRED_SECTIONS = ("Purpose", "Activation", "Elicitation", "Execution", "Error Handling", "Output")
_TITLE = re.compile(r"^# Task:\s*(?P<title>.+)$")
_SECTION = re.compile(r"^## (?P<name>.+?)\s*$")
_CMD = re.compile(r"`\*(?P<name>[a-z][a-z0-9-]*)(?P<args>(?:\s+(?:\{[a-z_]+\}|\[[a-z_]+\]))*)`")
_INPUT = re.compile(r"^- \[ \] (?P<label>.+?)\s*\(`(?P<key>[a-z_][a-z0-9_]*)`\)\s*:\s*(?P<spec>.*)$")
_CONFIRM_WORD = re.compile(r'Type "(?P<word>[A-Z][A-Z_]*)" to confirm')
_PAREN = re.compile(r"\((?P<inner>[^()]*)\)\s*$")

InputKind = Literal["text", "choice", "bool", "confirm", "env"]


class InputSpec(BaseModel):
    """One elicitation line: `- [ ] Label (`key`): _____ (required)`."""

    key: str
    label: str
    kind: InputKind
    required: bool
    default: str | None = None
    choices: list[str] = []
    word: str | None = None  # for kind == "confirm"
    line: int

    @property
    def flag(self) -> str:
        return "--" + self.key.replace("_", "-")

    def prompt_text(self) -> str:
        hint = ""
        if self.kind == "bool":
            hint = f" (yes/no, default {self.default})" if self.default else " (yes/no)"
        elif self.choices:
            hint = f" ({'/'.join(self.choices)}" + (f", default {self.default})" if self.default else ")")
        elif self.default is not None:
            hint = f" (default {self.default})"
        return f"{self.label}{hint}: "


class TaskSpec(BaseModel):
    id: str
    path: str
    title: str
    purpose: str
    command: str
    args: list[str]
    aliases: list[str]
    inputs: list[InputSpec]
    sections: dict[str, str]

    @property
    def usage(self) -> str:
        return " ".join([f"*{self.command}", *self.args])

    @property
    def positional_keys(self) -> list[str]:
        return [a.strip("{}[]") for a in self.args]

    def input(self, key: str) -> InputSpec | None:
        return next((i for i in self.inputs if i.key == key), None)

    @property
    def confirm_word(self) -> str | None:
        return next((i.word for i in self.inputs if i.kind == "confirm"), None)

    def user_inputs(self) -> list[InputSpec]:
        """Inputs an operation receives (environment and typed confirmations belong to the session)."""
        return [i for i in self.inputs if i.kind not in ("confirm", "env")]


def _parse_input(path: Path, lineno: int, line: str) -> InputSpec:
    match = _INPUT.match(line)
    if not match:
        raise CatalogError(path, lineno, "bad elicitation line: expected '- [ ] Label (`key`): _____ (required)'")
    label, key, spec = match["label"].strip(), match["key"], match["spec"].strip()
    word = _CONFIRM_WORD.search(label)
    if word:
        return InputSpec(key=key, label=label, kind="confirm", required=True, word=word["word"], line=lineno)
    paren = _PAREN.search(spec)
    if not paren:
        raise CatalogError(path, lineno, f"elicitation for `{key}` needs a trailing (required), (optional), "
                                         "(default X) or (a/b - default a)")
    inner = paren["inner"].strip()
    choices: list[str] = []
    rest = inner
    head, sep, tail = inner.partition(" - ")
    if "/" in head and " " not in head.strip():
        choices = [c.strip() for c in head.split("/") if c.strip()]
        rest = tail if sep else ""
    rest = rest.strip()
    required, default = False, None
    if rest == "required":
        required = True
    elif rest == "optional":
        pass
    elif rest.startswith("default"):
        default = rest[len("default"):].lstrip(" :").strip()
        if not default:
            raise CatalogError(path, lineno, f"`{key}`: empty default")
    elif rest == "" and choices:
        required = True
    else:
        raise CatalogError(path, lineno, f"`{key}`: cannot read {inner!r}")
    if choices and default is not None and default not in choices:
        raise CatalogError(path, lineno, f"`{key}`: default {default!r} is not one of {choices}")
    if key == "env":
        kind: InputKind = "env"
    elif choices == ["yes", "no"]:
        kind = "bool"
    elif choices:
        kind = "choice"
    else:
        kind = "text"
    return InputSpec(key=key, label=label, kind=kind, required=required, default=default,
                     choices=[] if kind == "bool" else choices, line=lineno)


def parse_task(path: Path) -> TaskSpec:
    lines = path.read_text(encoding="utf-8").splitlines()
    if not lines or not _TITLE.match(lines[0]):
        raise CatalogError(path, 1, "a task file starts with '# Task: <title>'")
    title = _TITLE.match(lines[0])["title"].strip()  # type: ignore[index]
    sections: dict[str, tuple[int, list[str]]] = {}
    current = None
    for i, line in enumerate(lines[1:], start=2):
        m = _SECTION.match(line)
        if m:
            current = m["name"]
            if current in sections:
                raise CatalogError(path, i, f"section '## {current}' appears twice")
            sections[current] = (i, [])
        elif current:
            sections[current][1].append(line)
    for name in REQUIRED_SECTIONS:
        if name not in sections:
            raise CatalogError(path, None, f"missing section '## {name}'")
    act_line, act = sections["Activation"]
    commands = [m for m in _CMD.finditer("\n".join(act))]
    if not commands:
        raise CatalogError(path, act_line, "'## Activation' names no `*command`")
    inputs: list[InputSpec] = []
    el_line, el = sections["Elicitation"]
    seen: set[str] = set()
    for offset, line in enumerate(el, start=1):
        if line.startswith("- [ ]"):
            spec = _parse_input(path, el_line + offset, line)
            if spec.key in seen:
                raise CatalogError(path, el_line + offset, f"input `{spec.key}` is declared twice")
            seen.add(spec.key)
            inputs.append(spec)
    args = commands[0]["args"].split()
    for arg in args:
        if arg.strip("{}[]") not in seen:
            raise CatalogError(path, act_line, f"argument {arg} of *{commands[0]['name']} has no elicitation line")
    return TaskSpec(
        id=path.stem, path=str(path), title=title, purpose=" ".join(l.strip() for l in sections["Purpose"][1] if l.strip()),
        command=commands[0]["name"], args=args, aliases=sorted({m["name"] for m in commands[1:]} - {commands[0]["name"]}),
        inputs=inputs, sections={k: "\n".join(v[1]).strip() for k, v in sections.items()},
    )


@lru_cache(maxsize=4)
def load_tasks(directory: Path | None = None) -> dict[str, TaskSpec]:
    folder = directory or tasks_dir()
    return {p.stem: parse_task(p) for p in sorted(folder.glob("*.md"))}


def cmd(task_id: str, args: str = "") -> str:
    """How a message names a command: `cmd("db-check-locks")` -> "*locks" (from the task file, never restated)."""
    name = f"*{load_tasks()[task_id].command}"
    return f"{name} {args}" if args else name


def command_index(tasks: dict[str, TaskSpec]) -> dict[str, str]:
    """Map every command and alias to its task id."""
    index: dict[str, str] = {}
    for task in tasks.values():
        for name in [task.command, *task.aliases]:
            index.setdefault(name, task.id)
    return index



def close_commands(name: str, tasks: dict[str, TaskSpec], limit: int = 3) -> list[str]:
    """What a mistyped command name was meant to be: the commands it starts (rls -> rls-audit, rls-apply), then
    the names nearly as close as the closest (boostrap -> bootstrap, not also cost at half the likeness); one
    name per task (an alias and its command are one suggestion)."""
    # lazy: only for an unknown command
    import difflib

    word = name.lstrip("*").lower()
    index = command_index(tasks)
    scored = sorted(((difflib.SequenceMatcher(None, word, n).ratio(), n) for n in index), key=lambda x: (-x[0], x[1]))
    best = scored[0][0] if scored else 0.0
    picked: list[str] = []
    seen: set[str] = set()
    prefixed = [n for _, n in scored if len(word) >= 3 and n.startswith(word)]
    close = [n for ratio, n in scored if ratio >= max(0.6, best - 0.15)]
    for n in prefixed + close:
        if index[n] not in seen:
            seen.add(index[n])
            picked.append(n)
    return picked[:limit]

# What a person asks about, by task id (names come from the task files): "why is my query slow?" -> *explain ...
_INTENTS: list[tuple[tuple[str, ...], tuple[str, ...]]] = [
    (("slow", "fast", "faster", "speed", "performance", "perf", "plan", "index", "indexes", "tune", "tuning"),
     ("db-explain", "query-optimization", "db-analyze-hotpaths")),
    (("lock", "locks", "locked", "blocked", "blocking", "stuck", "waiting", "hang", "hangs"),
     ("db-check-locks", "db-monitor-queries")),
    (("vacuum", "bloat", "bloated", "dead", "wraparound", "autovacuum"), ("db-vacuum-status", "schema-audit")),
    (("rls", "policy", "policies", "secure", "security", "exposed", "leak", "permission", "permissions"),
     ("db-rls-audit", "db-policy-apply")),
    (("undo", "revert", "rollback", "back"), ("db-rollback", "db-snapshot", "db-migrations")),
    (("backup", "dump", "restore"), ("db-backup", "db-restore")),
    (("migrate", "migration", "migrations", "deploy", "pending"), ("db-migrations", "db-dry-run", "db-apply-migration")),
    (("csv", "import", "load"), ("db-load-csv",)),
    (("connect", "connection", "connected", "env", "environment", "setup"), ("db-env-check", "db-bootstrap")),
    (("drift", "differ", "difference", "compare"), ("db-compare-schemas",)),
    (("test", "tests", "smoke"), ("db-smoke-test", "db-test-suite")),
    (("activity", "running", "queries", "connections"), ("db-monitor-queries", "db-analyze-hotpaths")),
]


def suggest_commands(text: str, limit: int = 3) -> list[str]:
    """The commands a plain-language question is most likely about (without a model): intent words first, then
    command names that look like a word of the question. Aliases are not offered (`*query` is *run-sql)."""
    # lazy: only for a question without a model
    import difflib

    tasks = load_tasks()
    words = [w.strip("*?,.!'\"").lower() for w in text.split()]
    ids: list[str] = []
    for keys, task_ids in _INTENTS:
        if any(w in keys for w in words):
            ids += [t for t in task_ids if t in tasks and t not in ids]
    if not ids:
        names = {t.command: t.id for t in tasks.values()}
        for word in words:
            if len(word) < 3:
                continue
            for match in difflib.get_close_matches(word, list(names), n=2, cutoff=0.6):
                if names[match] not in ids:
                    ids.append(names[match])
    return [f"*{tasks[t].command}" for t in ids[:limit]]

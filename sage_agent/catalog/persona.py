"""The persona file: an AIOS/BMAD agent file, markdown with one fenced yaml block."""

from __future__ import annotations

import re
from functools import lru_cache
from pathlib import Path

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from sage_agent.catalog.errors import CatalogError
from sage_agent.catalog.paths import personas_dir

_FENCE = re.compile(r"^```ya?ml\s*$")
_COMMAND = re.compile(r"^(?P<name>[a-z][a-z0-9-]*)(?P<args>(?:\s+(?:\{[a-z_]+\}|\[[a-z_]+\]))*)\s*:\s*(?P<desc>.+)$")


class AgentInfo(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)
    name: str
    id: str
    title: str
    icon: str
    when_to_use: str = Field(alias="whenToUse")


class PersonaInfo(BaseModel):
    model_config = ConfigDict(extra="forbid")
    role: str
    style: str
    identity: str
    focus: str
    core_principles: list[str]


class CommandSpec(BaseModel):
    name: str
    args: list[str]  # "{x}" required, "[x]" optional
    description: str
    group: str
    line: int

    @property
    def usage(self) -> str:
        return " ".join([f"*{self.name}", *self.args])


class Dependencies(BaseModel):
    model_config = ConfigDict(extra="forbid")
    tasks: list[str] = []
    templates: list[str] = []
    checklists: list[str] = []
    data: list[str] = []


class Persona(BaseModel):
    path: str
    agent: AgentInfo
    persona: PersonaInfo
    activation_instructions: list[str]
    commands: list[CommandSpec]
    dependencies: Dependencies

    def command(self, name: str) -> CommandSpec | None:
        return next((c for c in self.commands if c.name == name), None)

    def groups(self) -> dict[str, list[CommandSpec]]:
        out: dict[str, list[CommandSpec]] = {}
        for cmd in self.commands:
            out.setdefault(cmd.group, []).append(cmd)
        return out


def _yaml_block(path: Path, text: str) -> tuple[str, int]:
    lines = text.splitlines()
    start = None
    for i, line in enumerate(lines):
        if start is None and _FENCE.match(line.strip()):
            start = i + 1
        elif start is not None and line.strip() == "```":
            return "\n".join(lines[start:i]), start
    raise CatalogError(path, None, "no fenced ```yaml block found")


def parse_persona(path: Path) -> Persona:
    text = path.read_text(encoding="utf-8")
    block, offset = _yaml_block(path, text)
    try:
        data = yaml.safe_load(block)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = offset + mark.line + 1 if mark else None
        raise CatalogError(path, line, f"invalid YAML: {getattr(exc, 'problem', exc)}") from None
    if not isinstance(data, dict):
        raise CatalogError(path, offset, "the yaml block must be a mapping")
    block_lines = block.splitlines()

    def line_of(needle: str) -> int | None:
        for i, ln in enumerate(block_lines):
            if needle in ln:
                return offset + i + 1
        return None

    commands: list[CommandSpec] = []
    raw_commands = data.get("commands")
    if not isinstance(raw_commands, dict):
        raise CatalogError(path, line_of("commands:"), "`commands` must map group names to lists of commands")
    for group, items in raw_commands.items():
        for item in items or []:
            match = _COMMAND.match(str(item).strip())
            if not match:
                raise CatalogError(path, line_of(str(item)[:30]),
                                   f"bad command line {item!r}: expected 'name {{required}} [optional]: description'")
            commands.append(CommandSpec(name=match["name"], args=match["args"].split(), description=match["desc"],
                                        group=str(group), line=line_of(str(item)[:30]) or offset))
    try:
        return Persona(path=str(path), agent=data.get("agent"), persona=data.get("persona"),
                       activation_instructions=data.get("activation-instructions"), commands=commands,
                       dependencies=data.get("dependencies") or {})
    except ValidationError as exc:
        err = exc.errors()[0]
        key = str(err["loc"][0]) if err["loc"] else ""
        raise CatalogError(path, line_of(key.replace("_", "-") + ":") or line_of(key), f"{'.'.join(map(str, err['loc']))}: {err['msg']}") from None


@lru_cache(maxsize=4)
def load_persona(path: Path | None = None) -> Persona:
    return parse_persona(path or personas_dir() / "db-sage.md")

"""Parsing a command line (`*snapshot before --mode with-data`) into a task id and raw input values."""

from __future__ import annotations

import shlex
from dataclasses import dataclass, field

from sage_agent.catalog.tasks import TaskSpec


_BOOL_WORDS = {"yes", "no", "true", "false", "y", "n", "on", "off"}


class CommandLineError(ValueError):
    """Bad command line: exit code 2."""


@dataclass
class ParsedCommand:
    name: str
    tokens: list[str] = field(default_factory=list)
    raw_rest: str = ""  # the line after the command name, unsplit (for `*run-sql select * from t`)


def split_command(line: str) -> ParsedCommand:
    line = line.strip()
    if not line.startswith("*"):
        raise CommandLineError(f"not a command: {line[:40]!r} (commands start with *, try *help)")
    try:
        tokens = shlex.split(line[1:])
    except ValueError as exc:
        raise CommandLineError(f"cannot read the command line: {exc}") from None
    if not tokens:
        raise CommandLineError("empty command: try *help")
    body = line[1:].lstrip()
    rest = body[len(body.split(None, 1)[0]):].strip() if body else ""
    return ParsedCommand(tokens[0].lower(), tokens[1:], rest)


def bind_values(task: TaskSpec, parsed: ParsedCommand) -> dict[str, str]:
    """Positionals by the Activation signature, `--key value` / `--key=value` / `--flag` by input key."""
    known = {i.key: i for i in task.user_inputs()}
    positionals: list[str] = []
    values: dict[str, str] = {}
    tokens = parsed.tokens
    i = 0
    while i < len(tokens):
        tok = tokens[i]
        if tok.startswith("--") and len(tok) > 2:
            key, eq, value = tok[2:].partition("=")
            key = key.replace("-", "_")
            spec = known.get(key)
            if spec is None:
                flags = ", ".join(sorted(s.flag for s in known.values())) or "none"
                raise CommandLineError(f"*{task.command} has no option --{key.replace('_', '-')} (options: {flags})")
            if eq:
                values[key] = value
            elif spec.kind == "bool":
                following = tokens[i + 1].lower() if i + 1 < len(tokens) else ""
                if following in _BOOL_WORDS:  # `--create yes` as well as `--create`
                    values[key] = following
                    i += 1
                else:
                    values[key] = "yes"
            elif i + 1 < len(tokens):
                values[key] = tokens[i + 1]
                i += 1
            else:
                raise CommandLineError(f"{spec.flag} needs a value")
        else:
            positionals.append(tok)
        i += 1
    keys = task.positional_keys
    if len(positionals) > len(keys) == 1 and not values and parsed.raw_rest:
        # a command with one argument takes the rest of the line as it was typed (SQL, file paths...)
        positionals = [parsed.raw_rest]
    if len(positionals) > len(keys):
        raise CommandLineError(f"too many arguments for *{task.command}: usage {task.usage}")
    for key, value in zip(keys, positionals):
        values.setdefault(key, value)
    return values

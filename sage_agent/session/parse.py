"""Parsing a command line (`*snapshot before --mode with-data`) into a task id and raw input values.

One grammar for every command (documented by `*help CMD`): positionals in the Activation order, `--key value`,
`--key=value`, `--flag` / `--flag no` for yes/no inputs, `--set key=value` for any input, and `--` before free
text (SQL) that would otherwise be split: `*run-sql --write -- update t set a = 'x y'`."""

from __future__ import annotations

import difflib
import shlex
from dataclasses import dataclass, field

from sage_agent.catalog.tasks import InputSpec, TaskSpec


_BOOL_WORDS = {"yes", "no", "true", "false", "y", "n", "on", "off"}
_FREE_TEXT_KEYS = {"sql", "query"}  # inputs that hold a statement: quote it or put it after `--`


class CommandLineError(ValueError):
    """Bad command line: exit code 2."""


@dataclass
class ParsedCommand:
    name: str
    tokens: list[str] = field(default_factory=list)
    raw_rest: str = ""  # the line after the command name, unsplit (for `*run-sql select * from t`)
    after_dashes: str | None = None  # the raw text after a standalone `--` that follows only options


def split_command(line: str) -> ParsedCommand:
    line = line.strip()
    if not line.startswith("*"):
        raise CommandLineError(f"not a command: {line[:40]!r} (commands start with *, try *help)")
    body = line[1:].lstrip()
    name = body.split(None, 1)[0] if body else ""
    rest = body[len(name):].strip()
    head, after = _split_dashes(rest)
    try:
        tokens = shlex.split(head if after is not None else rest)
    except ValueError as exc:
        raise CommandLineError(f"cannot read the command line: {exc}") from None
    if not name:
        raise CommandLineError("empty command: try *help")
    return ParsedCommand(name.lower(), tokens, rest, after)


def _split_dashes(rest: str) -> tuple[str, str | None]:
    """`--write -- update t set a = 'x'` -> ("--write", "update t set a = 'x'"): a standalone `--` ends the
    options when everything before it is an option (so `select 1 -- comment` stays SQL)."""
    words = rest.split(" ")
    for i, word in enumerate(words):
        if word == "--":
            head = " ".join(words[:i])
            try:
                before = shlex.split(head)
            except ValueError:
                return rest, None
            if before and not before[0].startswith("--"):
                return rest, None
            return head, " ".join(words[i + 1:]).strip()
    return rest, None


def flag_usage(spec: InputSpec, position: int | None = None) -> str:
    """How to pass one input on a command line, exactly as the parser reads it (shown by `*help CMD`)."""
    if spec.kind == "bool":
        how = f"{spec.flag} (or {spec.flag} no)"
    elif spec.kind == "choice":
        how = f"{spec.flag} {'|'.join(spec.choices)}"
    else:
        how = f"{spec.flag} {spec.key.upper()}"
    if position is not None:
        nth = {1: "1st", 2: "2nd", 3: "3rd"}.get(position, f"{position}th")
        word = spec.key if spec.kind == "bool" else spec.key.upper()
        how = f"{nth} argument ({word}) or {how}"
    return how


def _key_value(task: TaskSpec, known: dict[str, InputSpec], text: str, source: str) -> tuple[str, str]:
    key, eq, value = text.partition("=")
    if not eq or not key:
        raise CommandLineError(f"{source} needs key=value (got {text!r})")
    return key.strip().replace("-", "_"), value


def bind_values(task: TaskSpec, parsed: ParsedCommand) -> dict[str, str]:
    """Positionals by the Activation signature, `--key value` / `--key=value` / `--flag` / `--set key=value` by
    input key. `--set` keys that are not inputs go to a `vars` input when the command has one (template
    variables of *create-doc)."""
    known = {i.key: i for i in task.user_inputs()}
    positionals: list[str] = []
    values: dict[str, str] = {}
    extra_vars: list[str] = []
    tokens = parsed.tokens
    i = 0
    while i < len(tokens):
        tok = tokens[i]
        if tok == "--set":
            if i + 1 >= len(tokens):
                raise CommandLineError("--set needs key=value")
            key, value = _key_value(task, known, tokens[i + 1], "--set")
            if key in known:
                values[key] = value
            elif "vars" in known:
                extra_vars.append(f"{key}={value}")
            else:
                raise CommandLineError(_no_input(task, key, "--set"))
            i += 2
            continue
        if tok.startswith("--") and len(tok) > 2:
            key, eq, value = tok[2:].partition("=")
            key = key.replace("-", "_")
            spec = known.get(key)
            if spec is None:
                flags = ", ".join(sorted(s.flag for s in known.values())) or "none"
                raise CommandLineError(f"*{task.command} has no option --{key.replace('_', '-')} (options: {flags})"
                                       + _unknown_option_hint(task, known, tokens, i))
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
    if parsed.after_dashes is not None:
        if not keys:
            raise CommandLineError(f"*{task.command} takes no arguments: usage {task.usage}")
        positionals = positionals + [parsed.after_dashes] if parsed.after_dashes else positionals
    elif len(positionals) > len(keys) == 1 and not values and not extra_vars and parsed.raw_rest:
        # a command with one argument takes the rest of the line as it was typed (SQL, file paths...)
        positionals = [parsed.raw_rest]
    if len(positionals) > len(keys):
        raise CommandLineError(f"too many arguments for *{task.command}: usage {task.usage}" + _free_text_hint(task))
    _bind_positionals(task, keys, positionals, values)
    if extra_vars:
        values["vars"] = ";".join(([values["vars"]] if values.get("vars") else []) + extra_vars)
    return values


def _bind_positionals(task: TaskSpec, keys: list[str], positionals: list[str], values: dict[str, str]) -> None:
    """Each positional to its slot; an optional slot also takes what a later one documents: a yes/no input by its
    own name (`*test-suite generate`), a choice by its value (`*snapshot with-data`)."""
    slot = 0
    for value in positionals:
        while slot < len(keys):
            spec = task.input(keys[slot])
            later = _documented_later(task, keys[slot:], value)
            if spec is not None and spec.kind == "bool":
                if value.lower() in (spec.key, spec.key.replace("_", "-")):
                    value = "yes"
                break
            if later and later != keys[slot] and spec is not None and not spec.required and not (
                    spec.kind == "choice" and value in spec.choices):
                slot = keys.index(later)
                continue
            break
        if slot >= len(keys):
            raise CommandLineError(f"too many arguments for *{task.command}: usage {task.usage}"
                                   + _free_text_hint(task))
        values.setdefault(keys[slot], value)
        slot += 1


def _documented_later(task: TaskSpec, keys: list[str], value: str) -> str | None:
    for key in keys:
        spec = task.input(key)
        if spec is None:
            continue
        if spec.kind == "choice" and value in spec.choices:
            return key
        if spec.kind == "bool" and value.lower() in (spec.key, spec.key.replace("_", "-")):
            return key
    return None


def _no_input(task: TaskSpec, key: str, source: str) -> str:
    known = sorted(i.key for i in task.user_inputs())
    return (f"*{task.command} has no input {key} (given by {source}; inputs: {', '.join(known) or 'none'})")


# `sage run`'s own options (with whether they take a value): typed inside the quoted line they reach the command
_RUN_FLAGS = {"yes": False, "allow_unsafe": False, "json": False, "markdown": False, "confirm": True, "env": True,
              "db_url": True, "direct_url": True}


def _unknown_option_hint(task: TaskSpec, known: dict, tokens: list[str], i: int) -> str:
    """A typo: the flag it looks like. `sage run "*apply --yes"`: --yes is sage run's, not *apply's: where it
    goes, as a line to copy (at the REPL the question is asked instead)."""
    key, eq, _ = tokens[i][2:].partition("=")
    key = key.replace("-", "_")
    takes_value = _RUN_FLAGS.get(key)
    if takes_value is None:
        close = difflib.get_close_matches(key, [*known, *_RUN_FLAGS], n=1, cutoff=0.75)
        if not close:
            return _free_text_hint(task)
        run = " (an option of `sage run`: after the quoted command)" if close[0] in _RUN_FLAGS else ""
        return f". Did you mean --{close[0].replace('_', '-')}{run}?" + _free_text_hint(task).replace(". ", " ", 1)
    pair = takes_value and not eq and i + 1 < len(tokens)
    flag = f"{tokens[i]} {tokens[i + 1]}" if pair else tokens[i]
    rest = [t for j, t in enumerate(tokens) if j != i and not (pair and j == i + 1)]
    line = " ".join([f"*{task.command}", *rest])
    asked = "; at the REPL, leave it out and answer the question" if key in ("yes", "confirm", "allow_unsafe") else ""
    return (f". --{key.replace('_', '-')} is an option of `sage run`, not of *{task.command}: put it after the "
            f"quoted command: sage run \"{line}\" {flag}{asked}")


def _free_text_hint(task: TaskSpec) -> str:
    keys = [k for k in task.positional_keys if k in _FREE_TEXT_KEYS]
    if not keys:
        return ""
    return (f". SQL with options: quote it (*{task.command} \"select ...\" --option) or put it last after `--` "
            f"(*{task.command} --option -- select ...)")

"""The targets file of a fleet run (`sage run "*rls-audit" --targets FILE`): a YAML list of databases.

```yaml
- name: tenant-a
  url: postgresql://sage:${TENANT_A_PASSWORD}@db-a.internal:5432/app
  tags: [eu, paying]
- name: staging
  env: staging          # resolved like --env staging (SAGE_STAGING_DB_URL, SUPABASE_DB_URL, .env ...)
- name: billing
  url: ${BILLING_DB_URL}
  env: prod             # beside a url, a label: writes on it need the typed word PRODUCTION
```

Each entry is checked with a pydantic model; a problem is reported as `FILE:LINE: what is wrong` before anything
runs. `${VAR}` in a URL is read from the environment (or the project's `.env`), so no password needs to live in
the file. A URL that cannot be a PostgreSQL URL is that target's own failure (the others still run)."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from sage_agent.config import settings
from sage_agent.db.env import ENV_NAMES, FLEET_SOURCE, ConfigError, Target, check_url, merged_environ, resolve_target
from sage_agent.db.redact import redact, register_url
from sage_agent.errors import NotUtf8, read_utf8

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$")
_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


class TargetsFileError(ConfigError):
    """The targets file cannot be used: the message names the file and line and says how to fix it."""


class FleetTarget(BaseModel):
    """One database of the fleet: a `name` and a `url`, or an `env` (local, dev, staging, prod) resolved like --env.
    Beside a url, `env` only labels it: `env: prod` makes every write on it ask for the typed word PRODUCTION."""

    model_config = ConfigDict(extra="forbid")

    name: str
    url: str | None = None
    direct_url: str | None = None  # the session URL beside a pooler URL (like --direct-url)
    env: str | None = None
    tags: list[str] = Field(default_factory=list)
    line: int = Field(default=0, exclude=True)  # where the entry starts in the file (1-based), for messages

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        if not _NAME.match(value):
            raise ValueError("a name is 1-63 letters, digits, '_', '.' or '-', starting with a letter or digit")
        return value

    @field_validator("tags", mode="before")
    @classmethod
    def _tags(cls, value: Any) -> Any:
        return [value] if isinstance(value, str) else value

    @field_validator("env")
    @classmethod
    def _env(cls, value: str | None) -> str | None:
        if value is not None and value not in ENV_NAMES:
            raise ValueError(f"choose one of {', '.join(ENV_NAMES)}")
        return value

    @model_validator(mode="after")
    def _url_or_env(self) -> "FleetTarget":
        if self.url is None and self.env is None:
            raise ValueError("give a url, or an env (local, dev, staging, prod) to resolve")
        if self.direct_url is not None and self.url is None:
            raise ValueError("direct_url goes beside a url (an env brings its own direct URL variable)")
        return self


@dataclass
class FleetEntry:
    """A target of the file made usable: its resolved database, or why it cannot be used (that target fails)."""

    spec: FleetTarget
    target: Target | None
    problem: str | None = None

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def display_url(self) -> str:
        return self.target.display_url if self.target else redact(self.spec.url or f"env {self.spec.env}")


def load_targets(path: Path) -> list[FleetTarget]:
    """Read and check the file; raise TargetsFileError (`FILE:LINE: ...`) for anything wrong with its shape."""
    where = str(path)
    try:
        text = read_utf8(path)
    except FileNotFoundError:
        raise TargetsFileError(f"{where}: no such targets file; write a YAML list of `- name: ...` with `url:` or "
                               "`env:` (see README: Fleets)") from None
    except NotUtf8 as exc:
        raise TargetsFileError(f"{where}: the targets file is not UTF-8 text (byte {exc.start}); save it as UTF-8 "
                               "YAML") from None
    except IsADirectoryError:
        raise TargetsFileError(f"{where}: is a folder; give the targets YAML file inside it") from None
    except OSError as exc:
        raise TargetsFileError(f"{where}: cannot read the targets file ({exc.strerror}); check its permissions") from None
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        at = f":{mark.line + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise TargetsFileError(f"{where}{at}: not valid YAML: {problem}") from None
    if root is None:
        raise TargetsFileError(f"{where}: the targets file is empty; list at least one `- name: ...` with `url:` "
                               "or `env:`")
    if isinstance(root, yaml.MappingNode):  # also accepted: `targets: [...]`
        keys = {k.value: v for k, v in root.value if isinstance(k, yaml.ScalarNode)}
        if set(keys) != {"targets"}:
            raise TargetsFileError(f"{where}:{root.start_mark.line + 1}: expected a list of targets (or one key "
                                   f"`targets:` holding it), found the keys {', '.join(map(str, keys))}")
        root = keys["targets"]
    if not isinstance(root, yaml.SequenceNode):
        raise TargetsFileError(f"{where}:{root.start_mark.line + 1}: expected a YAML list of targets "
                               "(`- name: ...`), not a single value")
    if not root.value:
        raise TargetsFileError(f"{where}: the list of targets is empty")
    data = yaml.SafeLoader(text).get_single_data()
    items = data["targets"] if isinstance(data, dict) else data
    targets: list[FleetTarget] = []
    seen: dict[str, int] = {}
    for node, item in zip(root.value, items):
        line = node.start_mark.line + 1
        if not isinstance(item, dict):
            raise TargetsFileError(f"{where}:{line}: each target is a mapping with `name:` and `url:` or `env:`, "
                                   f"not {type(item).__name__} {redact(str(item))!r}")
        try:
            spec = FleetTarget(**{str(k): v for k, v in item.items()}, line=line)
        except ValidationError as exc:
            raise TargetsFileError(_explain(where, node, line, exc)) from None
        except TypeError as exc:  # a key that is not a string
            raise TargetsFileError(f"{where}:{line}: {exc}") from None
        if spec.name in seen:
            raise TargetsFileError(f"{where}:{line}: the name {spec.name!r} is already used on line "
                                   f"{seen[spec.name]}; every target needs its own name")
        seen[spec.name] = line
        targets.append(spec)
    return targets


def _explain(where: str, node: yaml.Node, line: int, exc: ValidationError) -> str:
    """The first error of one entry, at the line of the key it is about."""
    err = exc.errors()[0]
    key = str(err["loc"][0]) if err["loc"] else ""
    if isinstance(node, yaml.MappingNode):
        for k, v in node.value:
            if isinstance(k, yaml.ScalarNode) and k.value == key:
                line = k.start_mark.line + 1
    message = err["msg"].removeprefix("Value error, ")
    if err["type"] == "extra_forbidden":
        message = f"unknown key {key!r} (keys: name, url, env, direct_url, tags)"
    elif err["type"] == "missing":
        message = f"missing {key!r}"
    elif key:
        message = f"{key}: {message}"
    return f"{where}:{line}: {redact(message)}"


def select(targets: list[FleetTarget], only: list[str] | None) -> list[FleetTarget]:
    """The targets carrying any of the `--only` tags (or names); all of them without --only."""
    if not only:
        return list(targets)
    wanted = {t for group in only for t in group.split(",") if t}
    known = {tag for t in targets for tag in t.tags} | {t.name for t in targets}
    unknown = sorted(wanted - known)
    if unknown:
        raise TargetsFileError(f"--only {', '.join(unknown)}: no target has that tag or name (tags: "
                               f"{', '.join(sorted({tag for t in targets for tag in t.tags})) or 'none'})")
    return [t for t in targets if wanted & ({*t.tags, t.name})]


def resolve_entry(spec: FleetTarget, project: Path, file: Path, environ: dict[str, str] | None = None) -> FleetEntry:
    """The database a target means. A bad URL or an unset ${VAR} is this target's problem, not the run's."""
    where = f"{file}:{spec.line}"
    register_url(spec.url)  # whatever its scheme: a URL refused below still has its password hidden
    register_url(spec.direct_url)
    try:
        if spec.url is None:
            return FleetEntry(spec, resolve_target(project, spec.env or "local", environ=environ))
        env = merged_environ(project, environ)
        url = _expand(spec.url or "", env, where)
        direct = _expand(spec.direct_url, env, where) if spec.direct_url else None
        register_url(url)
        register_url(direct)
        url, direct = check_url(url), (check_url(direct) if direct else None)
        return FleetEntry(spec, Target(spec.env or "local", url, f"{FLEET_SOURCE} {file.name}:{spec.line}", direct_url=direct))
    except ConfigError as exc:
        return FleetEntry(spec, None, f"{where}: target {spec.name}: {redact(str(exc))}")


def _expand(value: str, env: dict[str, str], where: str) -> str:
    def one(match: re.Match) -> str:
        name = match.group(1)
        if name not in env:
            raise ConfigError(f"${{{name}}} is not set (export it or put it in .env)")
        return env[name]

    return _VAR.sub(one, value)


def default_parallel() -> int:
    """Threads when --parallel is not given: SAGE_FLEET_PARALLEL, else one per core."""
    configured = settings().fleet_parallel
    return configured if configured > 0 else (os.cpu_count() or 1)

"""Lint settings from squawk's ``.squawk.toml`` (same keys, same meaning), so a repository that
already runs squawk in CI gets the same rules from ``sage lint``.

Keys (squawk 2.70): ``excluded_rules``, ``included_rules`` (opt-in rules), ``pg_version``
("16" or "16.2"), ``assume_in_transaction``, ``excluded_paths``; ``[upload_to_github]`` is
squawk's own and ignored. Like squawk, the file is found by walking up from the working
directory, and a command-line value replaces the file's value for the same key.
"""
from __future__ import annotations

import tomllib
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from .rules import Rule, expand, select_rules

FILE_NAME = ".squawk.toml"


class LintConfigError(ValueError):
    """The config file cannot be used; the message names the file and the key."""


@dataclass
class LintConfig:
    """Resolved lint settings (a dataclass, not pydantic: `sage lint` must start fast)."""

    excluded_rules: list[str] = field(default_factory=list)
    included_rules: list[str] = field(default_factory=list)
    pg_version: int | None = None  # server major; None: the caller's default
    assume_in_transaction: bool = False
    excluded_paths: list[str] = field(default_factory=list)
    source: str | None = None  # the file it came from

    def __post_init__(self) -> None:
        for key in ("excluded_rules", "included_rules", "excluded_paths"):
            value = getattr(self, key)
            if not isinstance(value, list) or not all(isinstance(x, str) for x in value):
                raise ValueError(f"{key}: must be a list of strings, got {value!r}")
        expand([*self.excluded_rules, *self.included_rules])  # UnknownRuleError names every unknown rule
        self.pg_version = _major(self.pg_version)
        if not isinstance(self.assume_in_transaction, bool):
            raise ValueError(f"assume_in_transaction: must be true or false, got {self.assume_in_transaction!r}")

    def rules(self) -> list[Rule]:
        """The rule set these settings select (excluded wins over included, as in squawk)."""
        return select_rules(self.included_rules, self.excluded_rules)

    def merged(self, *, exclude: list[str] | None = None, include: list[str] | None = None,
               pg_version: int | None = None, assume_in_transaction: bool | None = None) -> "LintConfig":
        """Command-line values replace the file's (squawk: ``--exclude`` overrides the whole list)."""
        data = asdict(self)
        if exclude is not None:
            data["excluded_rules"] = list(exclude)
        if include is not None:
            data["included_rules"] = list(include)
        if pg_version is not None:
            data["pg_version"] = pg_version
        if assume_in_transaction is not None:
            data["assume_in_transaction"] = assume_in_transaction
        return LintConfig(**data)


def _major(value: Any) -> int | None:
    if value is None or (isinstance(value, int) and not isinstance(value, bool)):
        return value
    text = str(value).strip()
    try:
        return int(text.split(".", 1)[0])
    except ValueError:
        raise ValueError(f'pg_version: must look like "16" or "16.2", got {value!r}') from None


def find_config(start: Path | None = None) -> Path | None:
    """The nearest .squawk.toml in ``start`` (default: the working directory) or a parent."""
    here = (start or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        candidate = folder / FILE_NAME
        if candidate.is_file():
            return candidate
    return None


def load_config(path: Path | None = None, *, start: Path | None = None) -> LintConfig:
    """Settings from ``path`` (or the nearest .squawk.toml); defaults when there is none.
    Raises LintConfigError (bad TOML, wrong type, unknown rule) with the file and the cause."""
    found = path if path is not None else find_config(start)
    if found is None:
        return LintConfig()
    try:
        data = tomllib.loads(Path(found).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        raise LintConfigError(f"{found}: cannot read the lint config: {exc}") from exc
    except tomllib.TOMLDecodeError as exc:
        raise LintConfigError(f"{found}: not valid TOML: {exc}") from exc
    return config_from_mapping(data, str(found))


def config_from_mapping(data: dict, source: str = "<config>") -> LintConfig:
    """Validate a mapping (a .squawk.toml, or DB Sage's own ``[lint]`` section); keys squawk has
    that DB Sage does not use (``upload_to_github``) are ignored."""
    known = {f.name for f in fields(LintConfig)} - {"source"}
    try:
        return LintConfig(**{k: v for k, v in data.items() if k in known}, source=source)
    except ValueError as exc:
        raise LintConfigError(f"{source}: {exc}") from exc

"""Lint settings: command-line flags, then `sage.toml [lint]`, then squawk's `.squawk.toml`.

For each key the first source that sets it wins (flags over files), as squawk's own flags override its file.
`.squawk.toml` is found as squawk finds it: from the current folder upwards (or `--config PATH`).
Plain classes, not pydantic or dataclasses: this module is on `sage lint`'s start-up path.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

SEVERITIES = ("info", "warning", "error")
PROJECT_CONFIG = "sage.toml"
SQUAWK_CONFIG = ".squawk.toml"


class LintUsageError(ValueError):
    """Bad usage (unknown rule, bad config, bad path): `sage lint` exits 2 with this message, and `hint` (what
    to do instead) on a `next:` line when there is one."""

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.hint = hint


class LintConfig:
    """What one lint run uses. `None` means "not set here" so sources can be layered. A plain class, not a
    dataclass: each dataclass costs `sage lint`'s start-up about a millisecond to build."""

    def __init__(self, pg_version: int | None = None, assume_in_transaction: bool | None = None,
                 exclude: list[str] | None = None, include: list[str] | None = None,
                 excluded_paths: list[str] | None = None, fail_on: str | None = None,
                 sources: list[str] | None = None) -> None:
        self.pg_version = pg_version  # server major, e.g. 15
        self.assume_in_transaction = assume_in_transaction
        self.exclude = exclude
        self.include = include
        self.excluded_paths = excluded_paths
        self.fail_on = fail_on
        self.sources: list[str] = [] if sources is None else sources  # files the settings came from

    def __eq__(self, other: object) -> bool:
        return isinstance(other, LintConfig) and vars(self) == vars(other)

    def __repr__(self) -> str:
        return f"LintConfig({', '.join(f'{k}={v!r}' for k, v in vars(self).items())})"

    def over(self, other: "LintConfig") -> "LintConfig":
        """This config's values, falling back to `other`'s for keys this one does not set."""
        merged = LintConfig(sources=[*self.sources, *other.sources])
        for key in ("pg_version", "assume_in_transaction", "exclude", "include", "excluded_paths", "fail_on"):
            mine = getattr(self, key)
            setattr(merged, key, mine if mine is not None else getattr(other, key))
        return merged


def parse_pg_version(value: Any, where: str) -> int:
    """`15`, `"15"`, `"15.4"`, `13.0` -> the major version."""
    text = str(value).strip()
    head = text.split(".", 1)[0]
    if not head.isdigit() or not 9 <= int(head) <= 99:
        raise LintUsageError(f"{where}: pg_version {value!r} is not a PostgreSQL version (e.g. 15 or \"15.4\")")
    return int(head)


def split_rules(values: list[str] | str | None) -> list[str]:
    """`a,b` and repeated flags -> ['a', 'b'] (lower-case, stripped)."""
    if values is None:
        return []
    items = [values] if isinstance(values, str) else list(values)
    return [part.strip().lower() for item in items for part in str(item).split(",") if part.strip()]


def _read_toml(path: Path) -> dict[str, Any]:
    # lazy: most runs have no config file, and `sage lint` must start fast
    import tomllib

    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise LintUsageError(f"{path}: not valid TOML ({exc}); fix the file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise LintUsageError(f"{path}: cannot read it ({exc})") from None


def _list(value: Any, key: str, where: str) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise LintUsageError(f"{where}: {key} must be a list of strings, e.g. {key} = [\"ban-drop-column\"]")
    return value


def _bool(value: Any, key: str, where: str) -> bool:
    if not isinstance(value, bool):
        raise LintUsageError(f"{where}: {key} must be true or false")
    return value


def read_squawk_toml(path: Path) -> LintConfig:
    """squawk's file through sqlkit's loader (squawk's keys and meaning: excluded_rules, included_rules,
    excluded_paths, pg_version, assume_in_transaction; `upload_to_github` ignored)."""
    # lazy: pglast (the SQL parser) loads only when SQL is parsed
    from sage_agent.sqlkit.lint.config import load_config as load_squawk

    try:
        sq = load_squawk(path)
    except ValueError as exc:  # LintConfigError, UnknownRuleError: bad TOML, a wrong type, an unknown rule
        raise LintUsageError(str(exc) if str(path) in str(exc) else f"{path}: {exc}") from None
    data = _read_toml(path)  # which keys the file sets (an absent key must not override a lower source)
    cfg = LintConfig(sources=[str(path)])
    if "excluded_rules" in data:
        cfg.exclude = split_rules(sq.excluded_rules)
    if "included_rules" in data:
        cfg.include = split_rules(sq.included_rules)
    if "excluded_paths" in data:
        cfg.excluded_paths = list(sq.excluded_paths)
    if "pg_version" in data:
        cfg.pg_version = parse_pg_version(sq.pg_version, str(path))
    if "assume_in_transaction" in data:
        cfg.assume_in_transaction = sq.assume_in_transaction
    return cfg


_PROJECT_KEYS = {"exclude", "include", "pg_version", "assume_in_transaction", "excluded_paths", "fail_on"}


def read_project_lint(path: Path) -> LintConfig:
    """`sage.toml`, section `[lint]`: exclude, include, pg_version, assume_in_transaction, excluded_paths,
    fail_on. Unknown keys are an error (a typo must not silently switch a check off)."""
    data = _read_toml(path)
    where = f"{path} [lint]"
    section = data.get("lint", {})
    if not isinstance(section, dict):
        raise LintUsageError(f"{where}: [lint] must be a table")
    unknown = sorted(set(section) - _PROJECT_KEYS)
    if unknown:
        raise LintUsageError(f"{where}: unknown key(s) {', '.join(unknown)}; known: {', '.join(sorted(_PROJECT_KEYS))}")
    cfg = LintConfig(sources=[where] if section else [])
    if "exclude" in section:
        cfg.exclude = split_rules(_list(section["exclude"], "exclude", where))
    if "include" in section:
        cfg.include = split_rules(_list(section["include"], "include", where))
    if "excluded_paths" in section:
        cfg.excluded_paths = _list(section["excluded_paths"], "excluded_paths", where)
    if "pg_version" in section:
        cfg.pg_version = parse_pg_version(section["pg_version"], where)
    if "assume_in_transaction" in section:
        cfg.assume_in_transaction = _bool(section["assume_in_transaction"], "assume_in_transaction", where)
    if "fail_on" in section:
        cfg.fail_on = check_fail_on(section["fail_on"], where)
    return cfg


def check_fail_on(value: Any, where: str = "--fail-on") -> str:
    text = str(value).strip().lower()
    if text not in SEVERITIES:
        raise LintUsageError(f"{where}: fail_on {value!r}: choose one of {', '.join(SEVERITIES)}")
    return text


def find_squawk_toml(start: Path) -> Path | None:
    """The nearest `.squawk.toml` from `start` upwards, as squawk looks for it."""
    for folder in (start, *start.parents):
        candidate = folder / SQUAWK_CONFIG
        if candidate.is_file():
            return candidate
    return None


def load_config(project: Path, cwd: Path, flags: LintConfig, squawk_config: Path | None = None) -> LintConfig:
    """Flags over `sage.toml [lint]` (in the project folder) over `.squawk.toml`."""
    cfg = flags
    project_file = project / PROJECT_CONFIG
    if project_file.is_file():
        cfg = cfg.over(read_project_lint(project_file))
    if squawk_config is not None:
        if not squawk_config.is_file():
            raise LintUsageError(f"--config {squawk_config}: no such file")
        cfg = cfg.over(read_squawk_toml(squawk_config))
    else:
        found = find_squawk_toml(cwd)
        if found is None and project != cwd:
            found = find_squawk_toml(project)
        if found is not None:
            cfg = cfg.over(read_squawk_toml(found))
    return cfg


def select_rules(cfg: LintConfig) -> list:
    """The rules to run: the default ones plus `include`d opt-in ones, minus `exclude` (exclude wins, as in
    squawk). Unknown names are a usage error naming the closest rule."""
    # lazy: pglast (the SQL parser) loads only when SQL is parsed
    from sage_agent.sqlkit.lint.rules import ALIASES, registered

    every = registered()  # a rule's module loads when it first checks a statement
    known: dict[str, tuple[str, ...]] = {r.id: (r.id,) for r in every}  # opt-in rules are known too
    known.update(ALIASES)  # prefer-timestamptz, require-timeout-settings (both timeout rules)
    for key in ("exclude", "include"):
        for name in getattr(cfg, key) or []:
            if name not in known:
                # lazy: not needed to start `sage --version`, `*help` or `sage mcp`
                import difflib

                close = difflib.get_close_matches(name, list(known), n=1)
                hint = f" (did you mean {close[0]}?)" if close else ""
                origin = "--" + key if not cfg.sources else f"--{key} or {', '.join(cfg.sources)}"
                raise LintUsageError(f"unknown rule {name!r} in {origin}{hint}; `sage lint --list-rules` lists them")
    excluded = {i for n in cfg.exclude or [] for i in known[n]}
    included = {i for n in cfg.include or [] for i in known[n]}
    return [r for r in every if r.id not in excluded and (not r.opt_in or r.id in included)]

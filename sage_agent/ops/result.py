"""The typed result every operation returns; rendered as text, markdown or JSON by the front doors."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field

Status = Literal["ok", "warning", "failed", "cancelled"]
Severity = Literal["error", "warning", "info"]


class Table(BaseModel):
    title: str = ""
    columns: list[str]
    rows: list[list[Any]]
    truncated: bool = False
    total_rows: int | None = None
    empty: str = ""  # what the text and markdown say instead of an empty box ("no active queries"); default "none"


class Finding(BaseModel):
    rule: str
    severity: Severity
    message: str
    location: str | None = None
    detail: str | None = None
    fix: str | None = None


class OpResult(BaseModel):
    """What an operation did. `status` decides the exit code of a headless run (failed -> 1)."""

    operation: str
    status: Status = "ok"
    summary: str
    facts: dict[str, Any] = Field(default_factory=dict)
    tables: list[Table] = Field(default_factory=list)
    findings: list[Finding] = Field(default_factory=list)
    notes: list[str] = Field(default_factory=list)
    artifacts: list[str] = Field(default_factory=list)
    next_steps: list[str] = Field(default_factory=list)
    data: dict[str, Any] = Field(default_factory=dict)
    markdown: str | None = None  # a full report, when the operation writes one
    exit_code: int | None = None  # a headless run's exit code when not failed (e.g. 4: *compare-schemas drift)


class OpError(RuntimeError):
    """An operation failed in a way the user can act on: what happened, and what to do next."""

    def __init__(self, message: str, hint: str | None = None, *, exit_code: int = 1) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint
        self.exit_code = exit_code

    def __str__(self) -> str:
        return f"{self.message}" + (f"\n  next: {self.hint}" if self.hint else "")


class NeedsInput(OpError):
    """A decision (or a valid value) only the person can give, found once the operation has looked at the database:
    `key` is the task input it sets, `choices` come from the database. The session asks the person (REPL; MCP
    elicitation) and runs the operation again with the answer; headless it fails with exit 2 naming the flag.
    Raise it before anything has changed."""

    def __init__(self, key: str, prompt: str, *, reason: str = "", choices: list[str] | tuple[str, ...] = (),
                 default: str | None = None, hint: str | None = None) -> None:
        self.key = key
        self.prompt = prompt
        self.reason = reason
        self.choices = list(choices)
        self.default = default
        flag = "--" + key.replace("_", "-")
        if self.choices == ["yes", "no"]:
            how = f"pass {flag} (or {flag} no)"
        elif self.choices:
            how = f"pass {flag} " + "|".join(self.choices)
        else:
            how = f"pass {flag} VALUE"
        super().__init__(reason or f"{prompt}: a value is needed", hint or how, exit_code=2)


def human_bytes(n: float | None) -> str:
    """A size as PostgreSQL's pg_size_pretty writes it (1024-based, kB MB GB TB): one spelling everywhere."""
    if n is None:
        return ""
    size = float(n)
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if abs(size) < 1024 or unit == "TB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} TB"

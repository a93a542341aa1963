"""Handoff files between agents (@architect, @dev, @qa, @devops <-> @db-sage) and the runner of their steps.

A handoff is a YAML document in .aios/handoffs/. Both directions use this module: `*handoff` (an outgoing
handoff, ops/integration/handoff.py) and `sage handoff receive` (acting on an incoming one,
frontends/handoff.py). Every step is a `*command` line run through one Session, so the same checks and
confirmations apply as when the person types it.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from pydantic import BaseModel, ConfigDict, Field, ValidationError

AGENT_ID = "db-sage"
HANDOFF_DIR = Path(".aios/handoffs")
KNOWN_AGENTS = ("architect", "dev", "qa", "devops", "db-sage", "pm", "po", "sm", "analyst", "ux-expert")


class HandoffError(ValueError):
    """A handoff that cannot be used: the message names the file, the field and the fix."""


class StoryContext(BaseModel):
    model_config = ConfigDict(extra="forbid")
    id: str | None = None
    path: str | None = None
    status: str | None = None
    branch: str | None = None


class Handoff(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)
    from_: str = Field(alias="from")
    to: str
    story: StoryContext | None = None
    request: str
    inputs: dict[str, str | int | float | bool] = {}
    artifacts: list[str] = []
    checksums: dict[str, str] = {}  # artifact -> "sha256:<hex>" when the handoff was written
    decisions: list[str] = []
    blockers: list[str] = []
    next_action: str | None = None
    consumed: bool = False
    created: str | None = None
    consumed_at: str | None = None
    result: dict[str, Any] | None = None

    @property
    def sender(self) -> str:
        return agent_id(self.from_)

    @property
    def recipient(self) -> str:
        return agent_id(self.to)

    def to_yaml(self) -> str:
        import yaml  # lazy: PyYAML costs start-up time and only handoffs need it

        doc = self.model_dump(by_alias=True, exclude_none=True, mode="json")
        return yaml.safe_dump(doc, sort_keys=False, allow_unicode=True, width=100)


def agent_id(name: str) -> str:
    return name.strip().lstrip("@").lower()


def handoff_dir(project: Path) -> Path:
    return project / HANDOFF_DIR


def rel_path(project: Path, path: Path) -> str:
    try:
        return str(path.resolve().relative_to(project.resolve()))
    except ValueError:
        return str(path)


def load_handoff(path: Path, project: Path, *, for_agent: str | None = AGENT_ID, check_artifacts: bool = True) -> Handoff:
    """Read and check one handoff. Unknown fields, wrong types, another recipient, missing files -> HandoffError."""
    import yaml  # lazy: see Handoff.to_yaml

    label = rel_path(project, path)
    if not path.is_file():
        raise HandoffError(f"handoff not found: {label}")
    try:
        doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError as exc:
        raise HandoffError(f"{label}: not UTF-8 text (byte {exc.start}); a handoff is a YAML file") from None
    except yaml.YAMLError as exc:
        first = " ".join(str(exc).split())  # PyYAML's message spans lines (with a caret); keep it on one
        raise HandoffError(f"{label}: not valid YAML: {first[:200]}") from None
    if not isinstance(doc, dict):
        raise HandoffError(f"{label}: a handoff is a YAML mapping (from, to, request, ...)")
    try:
        handoff = Handoff.model_validate(doc)
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            field = ".".join(str(p) for p in err["loc"])
            if err["type"] == "extra_forbidden":
                problems.append(f"unknown field '{field}'")
            elif err["type"] == "missing":
                problems.append(f"missing field '{field}'")
            else:
                problems.append(f"'{field}': {err['msg']}")
        allowed = ", ".join(f.alias or n for n, f in Handoff.model_fields.items())
        raise HandoffError(f"{label}: " + "; ".join(problems) + f" (fields: {allowed})") from None
    if for_agent and handoff.recipient != for_agent:
        raise HandoffError(f"{label} is addressed to @{handoff.recipient}, not @{for_agent}: refused "
                           f"(@{handoff.recipient} should pick it up)")
    if check_artifacts:
        missing = [a for a in handoff.artifacts if not (project / a).exists()]
        if missing:
            raise HandoffError(f"{label} names artifact file(s) that do not exist: {', '.join(missing)} "
                               "(ask the sender to commit them, or fix the paths)")
        changed = [a for a, want in handoff.checksums.items()
                   if (project / a).is_file() and checksum(project / a) != want]
        if changed:
            raise HandoffError(f"{label}: artifact file(s) changed since the handoff was written (sha256 differs): "
                               f"{', '.join(changed)} (ask the sender to hand them off again, or review the "
                               "change and remove the checksum)")
    return handoff


def checksum(path: Path) -> str:
    # lazy: not needed to start `sage --version`, `*help` or `sage mcp`
    from sage_agent.ops.artifacts import sha256_file

    return f"sha256:{sha256_file(path)}"


# Not work products: project scaffolding (README, .gitignore, an empty seed) and earlier handoffs themselves
_NOT_WORK = ("handoff", "db-bootstrap", "supabase-setup")


def session_work(project: Path, to: str) -> list[dict[str, str]]:
    """The files DB Sage produced since its last handoff to `to` (the whole audit trail when there is none),
    oldest first, from `.sage/audit.jsonl`: {"path", "command"} for each file inside the project that still
    exists. This is how a handoff carries the session's migrations, reports, JUnit files and runbooks."""
    # lazy: not needed to start `sage --version`, `*help` or `sage mcp`
    from sage_agent.session import audit

    records = audit.read(project)
    since = ""  # when the last handoff to `to` finished: its own steps (nested) were handed off with it
    for record in records:
        if (record.get("task") == "handoff" and record.get("status") in ("ok", "warning")
                and agent_id(str((record.get("inputs") or {}).get("to") or "")) == to):
            since = str(record.get("finished") or record.get("time") or "")
    root = project.resolve()
    found: dict[str, str] = {}
    for record in records:
        if str(record.get("time") or "") < since or record.get("task") in _NOT_WORK:
            continue
        for raw in record.get("artifacts") or []:
            path = Path(raw) if Path(raw).is_absolute() else project / raw
            try:
                rel = str(path.resolve().relative_to(root))
            except (ValueError, OSError):
                continue  # outside the project: another agent cannot open it by a relative path
            if path.is_file() and not rel.startswith(str(HANDOFF_DIR)) and rel not in found:
                found[rel] = f"*{record.get('command') or '?'}"  # the command that first produced it
    return [{"path": rel, "command": command} for rel, command in found.items()]


def queue(project: Path) -> list[tuple[Path, Handoff | None, str | None]]:
    """Every handoff file, newest first: (path, handoff or None, problem)."""
    folder = handoff_dir(project)
    if not folder.is_dir():
        return []
    items = []
    for path in sorted(folder.glob("*.y*ml"), key=lambda p: (p.stat().st_mtime, p.name), reverse=True):
        try:
            items.append((path, load_handoff(path, project, for_agent=None, check_artifacts=False), None))
        except HandoffError as exc:
            items.append((path, None, str(exc)))
    return items


def newest_pending(project: Path) -> tuple[Path, Handoff] | None:
    for path, handoff, problem in queue(project):
        if handoff and not handoff.consumed and handoff.recipient == AGENT_ID:
            return path, handoff
    return None


def write_handoff(project: Path, handoff: Handoff) -> Path:
    """Write a new handoff (outgoing); its artifacts must exist."""
    missing = [a for a in handoff.artifacts if not (project / a).exists()]
    if missing:
        raise HandoffError(f"cannot hand off missing file(s): {', '.join(missing)}")
    folder = handoff_dir(project)
    folder.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%d%H%M%S", time.gmtime())
    handoff.created = handoff.created or time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    handoff.checksums = {a: checksum(project / a) for a in handoff.artifacts if (project / a).is_file()}
    base = f"{stamp}-{handoff.sender}-to-{handoff.recipient}"
    path = folder / f"{base}.yaml"
    n = 1
    while path.exists():
        n += 1
        path = folder / f"{base}-{n}.yaml"
    path.write_text(handoff.to_yaml(), encoding="utf-8")
    return path


@dataclass
class StepRunner:
    """Runs a handoff's `*command` lines through one session and keeps each step, artifact and blocker."""

    session: Any
    say: Callable[[str], None] = lambda text: None
    steps: list[dict[str, Any]] = field(default_factory=list)
    artifacts: list[str] = field(default_factory=list)
    blockers: list[str] = field(default_factory=list)

    def run(self, line: str, inputs: dict[str, Any] | None = None):
        self.say(f"handoff: {line}")
        out = self.session.run_line(line, dict(inputs or {}), source="the handoff's inputs")
        status = out.result.status if out.result else "failed"
        detail = out.error or (out.result.summary if out.result else "")
        self.steps.append({"step": line, "status": status, "exit_code": out.exit_code, "detail": detail,
                           **({"error": out.error} if out.error else {})})
        if out.result:
            project = self.session.project
            self.artifacts.extend(a for a in out.result.artifacts
                                  if a not in self.artifacts and (project / a).exists())
        if out.exit_code != 0:
            self.blockers.append(f"{line}: {out.error or status}")
        return out

    @property
    def failed(self) -> bool:
        return any(s["exit_code"] != 0 or s["status"] == "failed" for s in self.steps)

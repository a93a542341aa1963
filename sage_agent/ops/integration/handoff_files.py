"""Handoff files between agents (@architect, @dev, @qa, @devops <-> @db-sage) and the runner of their steps.

A handoff is a YAML document in .aios/handoffs/. Both directions use this module: `*handoff` (an outgoing
handoff, ops/integration/handoff.py) and `sage handoff receive` (acting on an incoming one,
frontends/handoff.py). Every step is a `*command` line run through one Session, so the same checks and
confirmations apply as when the person types it.
"""

from __future__ import annotations

import os
import re
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from sage_agent.db.redact import redact, redact_obj
from sage_agent.errors import NotUtf8, read_utf8

AGENT_ID = "db-sage"
HANDOFF_DIR = Path(".aios/handoffs")
KNOWN_AGENTS = ("architect", "dev", "qa", "devops", "db-sage", "pm", "po", "sm", "analyst", "ux-expert")
MAX_BYTES = 256 * 1024  # a handoff is a short YAML document; bigger is refused before it is read
_AGENT_NAME = re.compile(r"[a-z0-9][a-z0-9_-]{0,39}")  # `from`/`to` name the reply's file: no / or ..
_LIST_HINT = "`sage handoff list` shows every handoff in .aios/handoffs/ and why one cannot be read"


class HandoffError(ValueError):
    """A handoff that cannot be used: the message names the file and the field; next_step says what to do."""

    def __init__(self, message: str, next_step: str = "") -> None:
        super().__init__(message)
        self.next_step = next_step or f"ask the sender to write the handoff again, or fix the file; {_LIST_HINT}"


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
        # every handoff DB Sage writes (outgoing, reply, the consumed one) hides connection strings and secrets
        return yaml.safe_dump(redact_obj(doc), sort_keys=False, allow_unicode=True, width=100)


def agent_id(name: str) -> str:
    return name.strip().lstrip("@").lower()


def handoff_dir(project: Path) -> Path:
    return project / HANDOFF_DIR


def rel_path(project: Path, path: Path) -> str:
    try:  # the file's own name, not its link's target: a link is named as it is in the folder
        return str((path.parent.resolve() / path.name).relative_to(project.resolve()))
    except (ValueError, OSError):
        return str(path)


def load_handoff(path: Path, project: Path, *, for_agent: str | None = AGENT_ID, check_artifacts: bool = True) -> Handoff:
    """Read and check one handoff. Unknown fields, wrong types, another recipient, missing files -> HandoffError."""
    import yaml  # lazy: see Handoff.to_yaml

    label = rel_path(project, path)
    check_file(project, path, label)
    try:
        doc = yaml.safe_load(read_utf8(path))
    except NotUtf8 as exc:
        raise HandoffError(f"{label}: not UTF-8 text (byte {exc.start}); a handoff is a YAML file",
                           "save it as UTF-8 (iconv -t UTF-8), or ask the sender to write it again") from None
    except yaml.YAMLError as exc:
        first = " ".join(str(exc).split())  # PyYAML's message spans lines (with a caret); keep it on one
        raise HandoffError(f"{label}: not valid YAML: {first[:200]}",
                           "fix the YAML at that line, or ask the sender to write the handoff again") from None
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
    check_fields(project, handoff, label)
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


def check_file(project: Path, path: Path, label: str) -> None:
    """The handoff file itself, before it is read: a regular file (not a link: it is rewritten when consumed),
    at most MAX_BYTES, and the handoff folder (where the reply is written) inside the project."""
    if path.is_symlink():
        raise HandoffError(f"{label} is a symbolic link: refused (a handoff is rewritten when consumed, and DB Sage "
                           "does not write through a link)", f"copy the file itself into {HANDOFF_DIR}/")
    if path.is_dir():
        raise HandoffError(f"{label} is a folder, not a handoff file", _LIST_HINT)
    if not path.is_file():
        raise HandoffError(f"handoff not found: {label}",
                           f"{_LIST_HINT}; give the file's path relative to the project ({HANDOFF_DIR}/NAME.yaml)")
    size = path.stat().st_size
    if size > MAX_BYTES:
        raise HandoffError(f"{label} is {size:,} bytes: a handoff is at most {MAX_BYTES // 1024} KiB (refused unread)",
                           "ask the sender to attach big content as artifact files instead of inlining it")
    check_folder(project)


def check_folder(project: Path) -> None:
    """.aios/handoffs/, where replies and outgoing handoffs are written, must not link out of the project."""
    folder = handoff_dir(project)
    if (folder.exists() or folder.is_symlink()) and not inside(project, folder):
        raise HandoffError(f"{HANDOFF_DIR}/ points outside the project ({folder.resolve()}): refused (handoffs are "
                           "written there)", f"make {HANDOFF_DIR} a real folder inside the project")


def inside(project: Path, path: Path) -> bool:
    """Whether path, with every symbolic link resolved, is inside the project."""
    try:
        path.resolve().relative_to(project.resolve())
        return True
    except (ValueError, OSError, RuntimeError):
        return False


def check_fields(project: Path, handoff: Handoff, label: str) -> None:
    """Every field that becomes a path: `from` and `to` (the reply's file name), story.path, artifacts and
    checksums (relative paths inside the project, links resolved). Called before anything runs or is written."""
    for field_name, value in (("from", handoff.from_), ("to", handoff.to)):
        if not _AGENT_NAME.fullmatch(agent_id(value)):
            raise HandoffError(f"{label}: '{field_name}' is {value!r}: an agent is named like @dev or @db-sage "
                               "(letters, digits, - and _; no / or ..)", f"fix '{field_name}', e.g. {field_name}: '@dev'")
    paths = [("story.path", handoff.story.path)] if handoff.story and handoff.story.path else []
    paths += [("artifacts", a) for a in handoff.artifacts] + [("checksums", a) for a in handoff.checksums]
    for field_name, rel in paths:
        if problem := outside_problem(project, rel):
            raise HandoffError(f"{label}: {field_name} '{rel}' is {problem}: refused (a handoff names files inside "
                               f"the project, {project.resolve()})",
                               "ask the sender to copy the file into the project and name it by its relative path")


def outside_problem(project: Path, rel: str) -> str | None:
    """Why a path a handoff names is not a file inside the project (None when it is)."""
    if Path(rel).is_absolute():
        return "an absolute path"
    if ".." in Path(rel).parts:
        return "a path out of the project (..)"
    if not inside(project, project / rel):
        return "a link that points outside the project"
    return None


def safe_write(path: Path, text: str) -> None:
    """Write a handoff file without following a link: refused when the target is a symbolic link, written to
    a temporary file in the same folder and moved into place (os.replace), so a reader never sees half a file."""
    if path.is_symlink():
        raise HandoffError(f"{path.name} is a symbolic link: not written (DB Sage does not write through a link)",
                           f"remove the link from {HANDOFF_DIR}/ and run again")
    if path.exists():
        mode = path.stat().st_mode & 0o777  # a rewritten handoff keeps its permissions
    else:
        umask = os.umask(0)
        os.umask(umask)
        mode = 0o666 & ~umask  # as open() would create it: other agents read these files
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")  # mkstemp makes it 0600
    try:
        os.chmod(tmp, mode)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


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
    for path in sorted(folder.glob("*.y*ml"), key=lambda p: (p.lstat().st_mtime, p.name), reverse=True):
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
    """Write a new handoff (outgoing); its artifacts must exist, inside the project."""
    check_fields(project, handoff, "the handoff")
    missing = [a for a in handoff.artifacts if not (project / a).exists()]
    if missing:
        raise HandoffError(f"cannot hand off missing file(s): {', '.join(missing)}")
    check_folder(project)
    folder = handoff_dir(project)
    folder.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%d%H%M%S", time.gmtime())
    handoff.created = handoff.created or time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    handoff.checksums = {a: checksum(project / a) for a in handoff.artifacts if (project / a).is_file()}
    base = f"{stamp}-{handoff.sender}-to-{handoff.recipient}"
    path = folder / f"{base}.yaml"
    n = 1
    while os.path.lexists(path):  # lexists: a dangling link counts as taken
        n += 1
        path = folder / f"{base}-{n}.yaml"
    safe_write(path, handoff.to_yaml())
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
        detail = redact(out.error or (out.result.summary if out.result else ""))
        self.steps.append({"step": line, "status": status, "exit_code": out.exit_code, "detail": detail,
                           **({"error": redact(out.error)} if out.error else {})})
        if out.result:
            project = self.session.project
            self.artifacts.extend(a for a in out.result.artifacts
                                  if a not in self.artifacts and (project / a).exists())
        if out.exit_code != 0:
            self.blockers.append(redact(f"{line}: {out.error or status}"))
        return out

    @property
    def failed(self) -> bool:
        return any(s["exit_code"] != 0 or s["status"] == "failed" for s in self.steps)

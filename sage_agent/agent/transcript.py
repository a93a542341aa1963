"""Transcripts under .sage/sessions/<id>.jsonl, secrets redacted before anything is written."""

from __future__ import annotations

import json
import secrets
import time
from pathlib import Path
from typing import Any

from sage_agent.db.redact import redact_obj


def sessions_dir(project: Path) -> Path:
    return project / ".sage" / "sessions"


def new_session_id() -> str:
    return time.strftime("%Y%m%d-%H%M%S", time.gmtime()) + "-" + secrets.token_hex(3)


class Transcript:
    def __init__(self, project: Path, session_id: str) -> None:
        self.project = project
        self.id = session_id
        self.path = sessions_dir(project) / f"{session_id}.jsonl"

    def write(self, kind: str, **fields: Any) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        record = redact_obj({"kind": kind, "at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), **fields})
        with self.path.open("a", encoding="utf-8") as fh:
            fh.write(json.dumps(record, ensure_ascii=False, default=str) + "\n")


def list_sessions(project: Path) -> list[dict[str, Any]]:
    """Saved sessions, newest first: id, first question, number of messages, modified time."""
    out = []
    folder = sessions_dir(project)
    for path in folder.glob("*.jsonl") if folder.is_dir() else []:
        first, count = "", 0
        for record in _records(path):
            if record.get("kind") == "message":
                count += 1
                if not first and record.get("role") == "user" and isinstance(record.get("content"), str):
                    first = record["content"]
        out.append({"id": path.stem, "first": first[:80], "messages": count, "mtime": path.stat().st_mtime})
    return sorted(out, key=lambda s: (s["mtime"], s["id"]), reverse=True)


def _records(path: Path) -> list[dict[str, Any]]:
    records = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            continue  # a line cut short by a crash: keep the rest
    return records


def load_messages(project: Path, session_id: str) -> list[dict[str, Any]]:
    path = sessions_dir(project) / f"{session_id}.jsonl"
    if not path.is_file() or "/" in session_id:
        raise FileNotFoundError(session_id)
    messages: list[dict[str, Any]] = []
    for record in _records(path):
        if record.get("kind") == "message":
            messages.append({"role": record["role"], "content": record["content"]})
        elif record.get("kind") == "error" and record.get("drop"):
            del messages[len(messages) - int(record["drop"]):]  # a failed request's question was withdrawn
    return sanitize(messages)


def sanitize(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """A conversation the API accepts: starts with the person, ends with a finished assistant turn."""
    while messages and messages[0]["role"] != "user":
        messages.pop(0)
    while messages:
        last = messages[-1]
        content = last["content"]
        pending = isinstance(content, list) and any(b.get("type") == "tool_use" for b in content)
        if last["role"] == "assistant" and not pending:
            break
        messages.pop()
    return messages

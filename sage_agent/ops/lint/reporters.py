"""`sage lint --reporter text|json|gcc|github|gitlab|sarif`. Lines and columns are 1-based everywhere
(squawk's json and gcc reporters count from 0; editors, GitHub and GitLab count from 1)."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Callable

from sage_agent import __version__
from sage_agent.ops.lint.runner import LintRun

REPORTERS = ("text", "json", "gcc", "github", "gitlab", "sarif")
_GITHUB_LEVEL = {"error": "error", "warning": "warning", "info": "notice"}
_GITLAB_SEVERITY = {"error": "major", "warning": "minor", "info": "info"}
_SARIF_LEVEL = {"error": "error", "warning": "warning", "info": "note"}


def _facts(f) -> str:
    parts = [f.lock or "", "rewrites the table" if f.rewrites else "", "scans the table" if f.scans else ""]
    return ", ".join(p for p in parts if p)


def _col(f) -> int:
    return f.column or 1


def text(run: LintRun, color: bool) -> str:
    def paint(code: str, s: str) -> str:
        return f"\033[{code}m{s}\033[0m" if color else s

    tone = {"error": "31;1", "warning": "33;1", "info": "36"}
    lines: list[str] = []
    for report in run.files:
        for f in report.findings:
            head = f"{f.filename}:{f.line}:{_col(f)}: {paint(tone.get(f.severity, '0'), f.severity)} " \
                   f"{paint('1', f.rule)}: {f.message}"
            lines.append(head)
            facts = _facts(f)
            if f.table or facts:
                lines.append(f"    {f.table or ''}{' - ' if f.table and facts else ''}{facts}")
            if f.safe_alternative:
                lines.append(f"    help: {f.safe_alternative}")
        if report.note:
            lines.append(f"{report.path.as_posix()}: {report.note}")
    counts = run.counts()
    files = len(run.files)
    summary = (f"{files} file(s) linted: {counts['error']} error(s), {counts['warning']} warning(s), "
               f"{counts['info']} info")
    if not run.findings:
        summary = f"{files} file(s) linted: no findings"
    lines += [f"note: {n}" for n in run.notes]
    lines.append(summary)
    return "\n".join(lines) + "\n"


_JSON_ROW = ('{"file": %s, "line": %d, "column": %d, "level": %s, "severity": %s, "message": %s, "help": %s, '
             '"rule_name": %s, "table": %s, "lock": %s, "rewrites": %s, "scans": %s, "blocks": %s}')


def _encode_string() -> Callable[[str], str]:
    """json's own string encoder (``ensure_ascii=False``), from its C module when there is one: importing the
    ``json`` package (decoder, scanner, encoder) is about 2 ms of `sage lint`'s start-up on a small file."""
    try:
        from _json import encode_basestring  # lazy: CPython's accelerator, which json.encoder itself uses
    except ImportError:  # another interpreter
        from json.encoder import encode_basestring  # lazy: only where there is no _json
    return encode_basestring


def as_json(run: LintRun) -> str:
    """A list of findings with squawk's keys (file, line, column, level, message, help, rule_name) plus
    DB Sage's lock facts; lines and columns 1-based.

    Byte for byte what ``json.dumps(rows, ensure_ascii=False)`` gives, written row by row with each distinct
    string encoded once: on a big file (60,000 findings) building and dumping dicts was a tenth of the run."""
    encode = _encode_string()
    memo: dict[str | None, str] = {None: "null"}
    known = memo.get  # a hit costs no Python call (most names, levels and help texts repeat)

    def q(value: str | None) -> str:
        out = memo[value] = encode(value)
        return out

    # a message names its table or column, so it rarely repeats: encoded without the memo
    rows = [_JSON_ROW % (known(f.filename) or q(f.filename), f.line, f.column or 1,
                         known(f.severity.capitalize()) or q(f.severity.capitalize()),
                         known(f.severity) or q(f.severity), encode(f.message),
                         known(f.safe_alternative or None) or q(f.safe_alternative or None),
                         known(f.rule) or q(f.rule), known(f.table) or q(f.table), known(f.lock) or q(f.lock),
                         "true" if f.rewrites else "false", "true" if f.scans else "false",
                         known(f.blocks) or q(f.blocks))
            for f in run.findings]
    return "[" + ", ".join(rows) + "]\n"


def gcc(run: LintRun) -> str:
    return "".join(f"{f.filename}:{f.line}:{_col(f)}: {f.severity}: {f.rule} {f.message}\n" for f in run.findings)


def _gh_data(s: str) -> str:
    return s.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def _gh_prop(s: str) -> str:
    return _gh_data(s).replace(":", "%3A").replace(",", "%2C")


def github(run: LintRun) -> str:
    """GitHub Actions workflow commands: each finding becomes an annotation on the pull request's diff."""
    lines = []
    for f in run.findings:
        message = f.message + (f" (help: {f.safe_alternative})" if f.safe_alternative else "")
        lines.append(f"::{_GITHUB_LEVEL.get(f.severity, 'warning')} file={_gh_prop(f.filename)},line={f.line},"
                     f"col={_col(f)},title={_gh_prop(f.rule)}::{_gh_data(message)}\n")
    counts = run.counts()
    lines.append(f"sage lint: {len(run.files)} file(s), {counts['error']} error(s), {counts['warning']} "
                 f"warning(s), {counts['info']} info\n")
    return "".join(lines)


def _fingerprint(f, nth: int) -> str:
    """Stable across runs and line moves: file, rule, message and which occurrence of that triple it is."""
    # lazy: only the gitlab and sarif reporters need it; `sage lint` must start fast
    import hashlib

    return hashlib.sha256(f"{f.filename}\0{f.rule}\0{f.message}\0{nth}".encode()).hexdigest()[:32]


def _numbered(run: LintRun):
    seen: dict[tuple[str, str, str], int] = {}
    for f in run.findings:
        key = (f.filename, f.rule, f.message)
        seen[key] = seen.get(key, 0) + 1
        yield f, seen[key]


def gitlab(run: LintRun) -> str:
    """GitLab Code Quality report (artifacts:reports:codequality)."""
    out = []
    for f, nth in _numbered(run):
        desc = f.message + (f" Suggestion: {f.safe_alternative}" if f.safe_alternative else "")
        out.append({"description": desc, "check_name": f.rule, "fingerprint": _fingerprint(f, nth),
                    "severity": _GITLAB_SEVERITY.get(f.severity, "minor"),
                    "location": {"path": f.filename, "lines": {"begin": f.line}}})
    import json  # lazy: the json reporter, on every run of CI, does without the package

    return json.dumps(out, ensure_ascii=False) + "\n"


def _artifact(filename: str) -> dict:
    """A path relative to the checkout (what code scanning matches against the repository), else a file URI."""
    path = Path(filename)
    if path.is_absolute():
        try:
            path = path.relative_to(Path.cwd())
        except ValueError:
            return {"uri": path.as_uri()}
    parts = [p for p in path.as_posix().split("/") if p not in ("", ".")]
    # lazy: only the sarif reporter needs it; `sage lint` must start fast
    from urllib.parse import quote

    return {"uri": quote("/".join(parts)), "uriBaseId": "%SRCROOT%"}


def sarif(run: LintRun) -> str:
    """SARIF 2.1.0 as GitHub code scanning reads it (upload with github/codeql-action/upload-sarif)."""
    # lazy: pglast (the SQL parser) loads only when SQL is parsed
    from sage_agent.ops.lint.runner import SYNTAX_ERROR, UNREADABLE

    rules = [{"id": r.id, "name": r.id, "shortDescription": {"text": r.summary or r.id},
              "defaultConfiguration": {"level": _SARIF_LEVEL.get(r.severity, "warning")},
              **({"help": {"text": r.safe_alternative}} if r.safe_alternative else {})}
             for r in run.rules]
    extra = {SYNTAX_ERROR: "The file does not parse as PostgreSQL", UNREADABLE: "The file cannot be read as UTF-8"}
    used = {f.rule for f in run.findings}
    for rule_id, desc in extra.items():
        if rule_id in used:
            rules.append({"id": rule_id, "name": rule_id, "shortDescription": {"text": desc},
                          "defaultConfiguration": {"level": "error"}})
    index = {r["id"]: i for i, r in enumerate(rules)}
    results = []
    for f, nth in _numbered(run):
        result = {"ruleId": f.rule, "level": _SARIF_LEVEL.get(f.severity, "warning"),
                  "message": {"text": f.message + (f" Help: {f.safe_alternative}" if f.safe_alternative else "")},
                  "locations": [{"physicalLocation": {
                      "artifactLocation": _artifact(f.filename),
                      "region": {"startLine": max(1, f.line), "startColumn": max(1, _col(f))}}}],
                  "partialFingerprints": {"dbSageFinding/v1": _fingerprint(f, nth)}}
        if f.rule in index:
            result["ruleIndex"] = index[f.rule]
        results.append(result)
    doc = {"$schema": "https://json.schemastore.org/sarif-2.1.0.json", "version": "2.1.0",
           "runs": [{"tool": {"driver": {"name": "DB Sage", "version": __version__, "rules": rules}},
                     "originalUriBaseIds": {"%SRCROOT%": {"uri": Path.cwd().as_uri().rstrip("/") + "/"}},
                     "results": results}]}
    import json  # lazy: the json reporter, on every run of CI, does without the package

    return json.dumps(doc, ensure_ascii=False, indent=1) + "\n"


def render(run: LintRun, reporter: str, *, stream=sys.stdout) -> str:
    color = reporter == "text" and stream.isatty() and not os.environ.get("NO_COLOR")
    table: dict[str, Callable[[LintRun], str]] = {"json": as_json, "gcc": gcc, "github": github,
                                                  "gitlab": gitlab, "sarif": sarif}
    return text(run, color) if reporter == "text" else table[reporter](run)

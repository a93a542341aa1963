"""`sage ide sync` / `sage ide check`: the seed's multi-IDE layout, written from the shipped catalog.

sync writes .aios-core/agents/db-sage.md (+ its tasks, templates, checklists and data under .aios-core/),
.claude/commands/db-sage.md, .cursor/rules/db-sage.mdc, and the MCP client configuration (.mcp.json,
.cursor/mcp.json) that starts `sage mcp`. Idempotent. A file the user edited since DB Sage wrote it (hash
in .aios-core/.db-sage-manifest.json) is never overwritten: sync says so and shows the diff. Existing
MCP configurations are merged (only the `db-sage` server entry is DB Sage's).
check is validate-db-sage.sh as a command with an exit code.
"""

from __future__ import annotations

import argparse
import difflib
import hashlib
import json
import os
import shlex
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sage_agent.catalog.paths import knowledge_dir, personas_dir, tasks_dir

MANIFEST = ".aios-core/.db-sage-manifest.json"
AGENT = ".aios-core/agents/db-sage.md"
CLAUDE = ".claude/commands/db-sage.md"
CURSOR = ".cursor/rules/db-sage.mdc"
MCP_FILES = (".mcp.json", ".cursor/mcp.json")
VALIDATE = ".aios-core/scripts/validate-db-sage.sh"
SERVER = "db-sage"


def _sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def installed_sage() -> list[str]:
    """The command that runs this installation of DB Sage from anywhere: the absolute `sage` script beside the
    interpreter (the venv's bin/), else this interpreter with `-m sage_agent`. Never a bare `sage`: an IDE
    starts MCP servers without the venv on its PATH (and a pyenv shim or another install may answer there)."""
    python = os.path.abspath(sys.executable)  # not resolved: a venv's python is a symlink out of the venv
    script = os.path.join(os.path.dirname(python), "sage")
    if os.path.isfile(script) and os.access(script, os.X_OK):
        return [script]
    return [python, "-m", "sage_agent"]


def mcp_entry() -> dict[str, Any]:
    command, *args = installed_sage()
    return {"command": command, "args": [*args, "mcp"]}


def _catalog_files() -> dict[str, list[Path]]:
    k = knowledge_dir()
    return {"tasks": sorted(tasks_dir().glob("*.md")), "templates": sorted((k / "templates").glob("*")),
            "checklists": sorted((k / "checklists").glob("*.md")), "data": sorted((k / "data").glob("*.md"))}


def agent_document() -> str:
    # lazy: tests replace load_tasks on its module (monkeypatch), which a top-level import would bypass
    from sage_agent.catalog.tasks import load_tasks

    persona = (personas_dir() / "db-sage.md").read_text(encoding="utf-8").rstrip()
    files = _catalog_files()
    tasks = load_tasks()
    lines = [persona, "", "## Installed resources (written by `sage ide sync`; do not edit, re-run sync)", "",
             f"### Tasks ({len(files['tasks'])}) - .aios-core/tasks/"]
    for path in files["tasks"]:
        task = tasks.get(path.stem)
        lines.append(f"- `{task.usage}` - {task.purpose.splitlines()[0]} ({path.name})" if task else f"- {path.name}")
    for kind in ("templates", "checklists", "data"):
        lines += ["", f"### {kind.capitalize()} ({len(files[kind])}) - .aios-core/{kind}/",
                  *[f"- {p.name}" for p in files[kind]]]
    lines += ["", "### Tools", "- MCP server: `sage mcp` (configured in .mcp.json and .cursor/mcp.json)",
              "- Headless: `sage run \"*command\" --json`", ""]
    return "\n".join(lines)


def ide_copies(agent: str) -> dict[str, str]:
    """The IDE files are copies of the agent file: Claude Code's command as is, Cursor's rule with its header."""
    return {CLAUDE: agent,
            CURSOR: "---\ndescription: DB Sage - PostgreSQL/Supabase DBA and database architect (migrations, RLS, "
                    "tuning). Activate with @db-sage.\nglobs:\nalwaysApply: false\n---\n\n" + agent}


def desired_files() -> dict[str, str]:
    agent = agent_document()
    files = {AGENT: agent, **ide_copies(agent)}
    runner = " ".join(shlex.quote(part) for part in installed_sage())
    files[VALIDATE] = ("#!/usr/bin/env bash\n# Validate the DB Sage installation (written by `sage ide sync`).\n"
                       f"exec {runner} ide check \"$@\"\n")
    for kind, paths in _catalog_files().items():
        for path in paths:
            files[f".aios-core/{kind}/{path.name}"] = path.read_text(encoding="utf-8")
    return files


def _diff(rel: str, current: str, desired: str) -> str:
    return "".join(difflib.unified_diff(current.splitlines(True), desired.splitlines(True),
                                        f"{rel} (yours)", f"{rel} (DB Sage)", n=2))


def sync(project: Path) -> dict[str, Any]:
    mpath = project / MANIFEST
    manifest: dict[str, str] = json.loads(mpath.read_text()) if mpath.is_file() else {}
    report: dict[str, list] = {"written": [], "updated": [], "unchanged": [], "kept": [], "merged": []}
    diffs: dict[str, str] = {}
    for rel, text in desired_files().items():
        path = project / rel
        if rel in (CLAUDE, CURSOR) and (project / AGENT).is_file():
            # from the project's agent file (already synced above): an edit there reaches the IDEs
            text = ide_copies((project / AGENT).read_text(encoding="utf-8"))[rel]
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text, encoding="utf-8")
            if rel == VALIDATE:
                path.chmod(0o755)
            manifest[rel] = _sha(text)
            report["written"].append(rel)
            continue
        current = path.read_text(encoding="utf-8")
        if current == text:
            manifest[rel] = _sha(text)
            report["unchanged"].append(rel)
        elif manifest.get(rel) == _sha(current):  # ours, not edited: a newer catalog
            path.write_text(text, encoding="utf-8")
            manifest[rel] = _sha(text)
            report["updated"].append(rel)
        else:
            report["kept"].append(rel)
            diffs[rel] = _diff(rel, current, text)
    entry = mcp_entry()
    for rel in MCP_FILES:
        path = project / rel
        key = f"{rel}#mcpServers.{SERVER}"
        doc: dict[str, Any] = {}
        if path.exists():
            try:
                doc = json.loads(path.read_text(encoding="utf-8") or "{}")
            except json.JSONDecodeError as exc:
                report["kept"].append(rel)
                diffs[rel] = f"{rel} is not valid JSON ({exc}); add this server by hand:\n" + json.dumps(
                    {"mcpServers": {SERVER: entry}}, indent=2)
                continue
            if not isinstance(doc, dict) or not isinstance(doc.get("mcpServers", {}), dict):
                report["kept"].append(rel)
                diffs[rel] = f"{rel}: unexpected shape; add mcpServers.{SERVER} by hand"
                continue
        servers = doc.setdefault("mcpServers", {})
        mine = json.dumps(entry, sort_keys=True)
        existing = servers.get(SERVER)
        if existing is not None and json.dumps(existing, sort_keys=True) == mine:
            manifest[key] = _sha(mine)
            report["unchanged"].append(rel)
            continue
        if existing is not None and manifest.get(key) != _sha(json.dumps(existing, sort_keys=True)):
            report["kept"].append(rel)
            diffs[rel] = _diff(rel, json.dumps({SERVER: existing}, indent=2) + "\n",
                               json.dumps({SERVER: entry}, indent=2) + "\n")
            continue
        others = [k for k in servers if k != SERVER]
        servers[SERVER] = entry
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(doc, indent=2) + "\n", encoding="utf-8")
        manifest[key] = _sha(mine)
        report["merged" if others else ("updated" if existing else "written")].append(rel)
    mpath.parent.mkdir(parents=True, exist_ok=True)
    mpath.write_text(json.dumps(dict(sorted(manifest.items())), indent=2) + "\n", encoding="utf-8")
    report["diffs"] = diffs  # type: ignore[assignment]
    return report


@dataclass
class Check:
    label: str
    ok: bool
    detail: str
    required: bool = True
    next_step: str = ""  # what makes it pass: shown only when it does not


def _mcp_command_problem(entry: Any) -> str | None:
    """Why the configured db-sage server would not start from an IDE (which has no venv on its PATH)."""
    if not isinstance(entry, dict) or not isinstance(entry.get("command"), str):
        return "the db-sage entry has no command"
    command = entry["command"]
    if not os.path.isabs(command):
        return f"command {command!r} is not an absolute path: an IDE without the venv on its PATH cannot start it"
    if not (os.path.isfile(command) and os.access(command, os.X_OK)):
        return f"command {command} does not exist (or is not executable)"
    return None


def check(project: Path) -> tuple[bool, list[Check]]:
    """Required pieces decide the exit code; optional ones (the Supabase CLI) are reported with how to add them."""
    # lazy: not needed to start `sage --version`, `*help` or `sage mcp`
    from sage_agent.db.supabase_cli import find_cli

    sync_step = "sage ide sync"
    files = _catalog_files()
    rows: list[Check] = []
    for rel, label in ((AGENT, "Agent file"), (CLAUDE, "Claude Code command"), (CURSOR, "Cursor rule")):
        rows.append(Check(label, (project / rel).is_file(), rel, next_step=sync_step))
    for kind in ("tasks", "templates", "checklists", "data"):
        have = len([p for p in (project / ".aios-core" / kind).glob("*") if p.is_file()]) \
            if (project / ".aios-core" / kind).is_dir() else 0
        want = len(files[kind])
        rows.append(Check(f"{kind.capitalize()} found", have >= want, f"{have}/{want}", next_step=sync_step))
    configured, broken = [], []
    for rel in MCP_FILES:
        try:
            servers = json.loads((project / rel).read_text()).get("mcpServers", {})
        except (OSError, json.JSONDecodeError, AttributeError):
            continue
        if any(SERVER in name or "supabase" in name or "postgres" in name for name in servers):
            configured.append(rel)
        if SERVER in servers:
            problem = _mcp_command_problem(servers[SERVER])
            if problem:
                broken.append(f"{rel}: {problem}")
    rows.append(Check("MCP configured", bool(configured), ", ".join(configured) or
                      f"no {SERVER}/supabase/postgres server in .mcp.json or .cursor/mcp.json", next_step=sync_step))
    if any(SERVER in json.loads((project / rel).read_text()).get("mcpServers", {}) for rel in configured):
        rows.append(Check("MCP command", not broken, "; ".join(broken) or "absolute path to this installation",
                          next_step=f"{sync_step} (or set \"command\": \"{mcp_entry()['command']}\" in the file)"))
    cli = find_cli(project)
    rows.append(Check("Supabase CLI", cli is not None, f"installed: {cli.version}" if cli else "not installed",
                      required=False, next_step="npm install supabase (or set SUPABASE_CLI); without it *bootstrap "
                                                "and *migration-new write the files themselves"))
    return all(r.ok for r in rows if r.required), rows


# --- the git pre-commit hook ------------------------------------------------------------------------------------
HOOK_MARK = "# db-sage pre-commit hook (written by `sage ide sync --hook`)"
CHAINED = "pre-commit.pre-db-sage"  # a hook that was there before ours, kept and run first


class HookError(RuntimeError):
    """The hook cannot be installed: the message says why and what to do."""


def _git(project: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["git", *args], cwd=project, capture_output=True, text=True, stdin=subprocess.DEVNULL)


def hook_script() -> str:
    sage = " ".join(shlex.quote(part) for part in installed_sage())
    return (f"#!/bin/sh\n{HOOK_MARK}\n"
            "# When the agent file is part of the commit, re-sync the IDE files from it and add them to the commit.\n"
            "# A hook that was here before runs first; its failure stops the commit as before.\n"
            'hooks=$(dirname "$0")\n'
            f'if [ -x "$hooks/{CHAINED}" ]; then "$hooks/{CHAINED}" "$@" || exit $?; fi\n'
            f"exec {sage} ide sync --pre-commit\n")


def install_hook(project: Path) -> str:
    """Install (or refresh) the pre-commit hook; an existing foreign hook is kept as pre-commit.pre-db-sage and
    chained. Idempotent. Returns what was done, for the person."""
    if shutil.which("git") is None:
        raise HookError("git is not installed: the pre-commit hook needs it")
    found = _git(project, "rev-parse", "--git-path", "hooks")
    if found.returncode != 0:
        raise HookError(f"{project} is not in a git repository ({found.stderr.strip() or 'git rev-parse failed'}): "
                        "run `git init` first, then `sage ide sync --hook`")
    hooks = Path(found.stdout.strip())
    hooks = hooks if hooks.is_absolute() else project / hooks
    hook, chained = hooks / "pre-commit", hooks / CHAINED
    script = hook_script()
    hooks.mkdir(parents=True, exist_ok=True)
    note = ""
    if hook.exists() or hook.is_symlink():
        current = hook.read_text(encoding="utf-8", errors="replace") if hook.is_file() else ""
        if HOOK_MARK not in current:
            if chained.exists() or chained.is_symlink():
                raise HookError(f"{hook} is not DB Sage's and {chained} already exists: nothing changed. Merge "
                                f"them by hand, or move {chained.name} away and run `sage ide sync --hook` again")
            hook.rename(chained)  # kept byte for byte (a symlink stays a symlink), run first by ours
            if not os.access(chained, os.X_OK) and chained.is_file():
                note = f" (note: {chained.name} is not executable, so git did not run it before either; it is skipped)"
            else:
                note = f"; your existing hook is kept as {chained.name} and runs first"
        elif current == script:
            return f"pre-commit hook already installed: {hook}"
    hook.write_text(script, encoding="utf-8")
    hook.chmod(0o755)
    return f"pre-commit hook installed: {hook}{note}"


def pre_commit(project: Path) -> tuple[int, str]:
    """What the hook runs: when the agent file is staged, sync and `git add` the IDE files it changed."""
    staged = _git(project, "diff", "--cached", "--name-only", "-z")
    if staged.returncode != 0:
        return 1, f"db-sage hook: git diff --cached failed: {staged.stderr.strip()}"
    if AGENT not in staged.stdout.split("\0"):
        return 0, ""
    report = sync(project)
    changed = [rel for rel in report["written"] + report["updated"] if rel in (CLAUDE, CURSOR)]
    # the manifest records the new files' hashes (so the next sync knows they are still ours): it goes along
    added = _git(project, "add", "--", *changed, MANIFEST) if changed else None
    if added is not None and added.returncode != 0:
        return 1, f"db-sage hook: git add failed: {added.stderr.strip()}"
    lines = []
    if changed:
        lines.append(f"db-sage: {AGENT} changed: re-synced and added to the commit: {', '.join(changed)}")
    for rel in report["kept"]:
        if rel in (CLAUDE, CURSOR):
            lines.append(f"db-sage: {rel} was edited by hand: not re-synced (run `sage ide sync` to see the diff)")
    return 0, "\n".join(lines)


def main(argv: list[str], project: Path) -> int:
    parser = argparse.ArgumentParser(prog="sage ide", description="IDE files for DB Sage")
    parser.add_argument("action", choices=["sync", "check"])
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--hook", action="store_true",
                        help="sync: also install a git pre-commit hook that re-syncs the IDE files when the agent "
                             "file changes and adds them to the commit (an existing hook is kept and runs first)")
    parser.add_argument("--pre-commit", action="store_true", help=argparse.SUPPRESS)  # what the hook runs
    parser.add_argument("--env", default=None, help="accepted like every subcommand; IDE files need no database")
    parser.add_argument("--db-url", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.action == "sync" and args.pre_commit:
        code, message = pre_commit(project)
        if message:
            print(message, file=sys.stderr)
        return code
    if args.action != "sync" and (args.hook or args.pre_commit):
        parser.error("--hook goes with sync: sage ide sync --hook")
    if args.action == "sync":
        report = sync(project)
        if args.hook:
            try:
                report["hook"] = install_hook(project)  # type: ignore[assignment]
            except HookError as exc:
                print(f"error: {exc}", file=sys.stderr)
                return 1
        if args.json:
            print(json.dumps(report))
            return 0
        for status in ("written", "updated", "merged", "unchanged"):
            if report[status]:
                print(f"{status:9} {len(report[status])} file(s)" + (
                    ": " + ", ".join(report[status]) if status != "unchanged" and len(report[status]) <= 8 else ""))
        for rel in report["kept"]:
            print(f"kept      {rel}: you edited it since DB Sage wrote it; not overwritten. Differences:")
            print(report["diffs"][rel])
        if args.hook:
            print(report["hook"])
        return 0
    ok, rows = check(project)
    failed = [r for r in rows if r.required and not r.ok]
    missing = [r for r in rows if not r.required and not r.ok]
    if args.json:
        print(json.dumps({"ok": ok, "checks": [{"check": r.label, "ok": r.ok, "required": r.required,
                                                "detail": r.detail, "next_step": None if r.ok else r.next_step}
                                               for r in rows]}))
        return 0 if ok else 1
    print("Validating DB Sage installation")
    for title, required in (("Required", True), ("Optional", False)):
        print(f"{title}:")
        for r in (r for r in rows if r.required == required):
            mark = "OK  " if r.ok else ("FAIL" if required else "--  ")
            print(f"  {mark} {r.label}: {r.detail}" + ("" if r.ok else f"\n         next: {r.next_step}"))
    if ok:
        extra = f" ({len(missing)} optional piece(s) missing: {', '.join(r.label for r in missing)})" if missing else ""
        print(f"DB Sage installation OK{extra}")
    else:
        steps = list(dict.fromkeys(r.next_step for r in failed))
        print(f"DB Sage installation incomplete: {len(failed)} required check(s) failed; next: " + "; then ".join(steps))
    return 0 if ok else 1

"""`sage ide sync` / `sage ide check`: the seed's multi-IDE layout, written from the shipped catalog.

sync writes .aios-core/agents/db-sage.md (+ its tasks, templates, checklists and data under .aios-core/),
.claude/commands/db-sage.md, .cursor/rules/db-sage.mdc, and the MCP client configuration (.mcp.json,
.cursor/mcp.json) that starts `sage mcp`. Idempotent. A file the user edited since DB Sage wrote it (hash
in .aios-core/.db-sage-manifest.json) is never overwritten: sync says so and shows the diff. Existing
MCP configurations are merged (only the `db-sage` server entry is DB Sage's).
check is validate-db-sage.sh as a command with an exit code.
"""

from __future__ import annotations

import difflib
import hashlib
import json
import shutil
import sys
from pathlib import Path
from typing import Any

MANIFEST = ".aios-core/.db-sage-manifest.json"
AGENT = ".aios-core/agents/db-sage.md"
CLAUDE = ".claude/commands/db-sage.md"
CURSOR = ".cursor/rules/db-sage.mdc"
MCP_FILES = (".mcp.json", ".cursor/mcp.json")
VALIDATE = ".aios-core/scripts/validate-db-sage.sh"
SERVER = "db-sage"


def _sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def mcp_entry() -> dict[str, Any]:
    if shutil.which("sage"):
        return {"command": "sage", "args": ["mcp"]}
    return {"command": sys.executable, "args": ["-m", "sage_agent", "mcp"]}


def _catalog_files() -> dict[str, list[Path]]:
    from sage_agent.catalog.paths import knowledge_dir, tasks_dir

    k = knowledge_dir()
    return {"tasks": sorted(tasks_dir().glob("*.md")), "templates": sorted((k / "templates").glob("*")),
            "checklists": sorted((k / "checklists").glob("*.md")), "data": sorted((k / "data").glob("*.md"))}


def agent_document() -> str:
    from sage_agent.catalog.paths import personas_dir
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


def desired_files() -> dict[str, str]:
    agent = agent_document()
    files = {AGENT: agent, CLAUDE: agent,
             CURSOR: "---\ndescription: DB Sage - PostgreSQL/Supabase DBA and database architect (migrations, RLS, "
                     "tuning). Activate with @db-sage.\nglobs:\nalwaysApply: false\n---\n\n" + agent}
    entry = mcp_entry()
    runner = "sage" if entry["command"] == "sage" else f"{entry['command']} -m sage_agent"
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


def check(project: Path) -> tuple[bool, list[tuple[str, bool, str]]]:
    from sage_agent.db.supabase_cli import find_cli

    files = _catalog_files()
    rows: list[tuple[str, bool, str]] = []
    for rel, label in ((AGENT, "Agent file"), (CLAUDE, "Claude Code command"), (CURSOR, "Cursor rule")):
        rows.append((label, (project / rel).is_file(), rel))
    for kind in ("tasks", "templates", "checklists", "data"):
        have = len([p for p in (project / ".aios-core" / kind).glob("*") if p.is_file()]) \
            if (project / ".aios-core" / kind).is_dir() else 0
        want = len(files[kind])
        rows.append((f"{kind.capitalize()} found", have >= want, f"{have}/{want}"))
    cli = find_cli(project)
    rows.append(("Supabase CLI", cli is not None, f"installed: {cli.version}" if cli else
                 "not installed (npm install supabase, or set SUPABASE_CLI)"))
    configured = []
    for rel in MCP_FILES:
        try:
            servers = json.loads((project / rel).read_text()).get("mcpServers", {})
        except (OSError, json.JSONDecodeError, AttributeError):
            continue
        if any(SERVER in name or "supabase" in name or "postgres" in name for name in servers):
            configured.append(rel)
    rows.append(("MCP configured", bool(configured), ", ".join(configured) or "no db-sage/supabase server in "
                                                                              ".mcp.json or .cursor/mcp.json"))
    return all(ok for _, ok, _ in rows), rows


def main(argv: list[str], project: Path) -> int:
    import argparse

    parser = argparse.ArgumentParser(prog="sage ide", description="IDE files for DB Sage")
    parser.add_argument("action", choices=["sync", "check"])
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--env", default=None, help="accepted like every subcommand; IDE files need no database")
    parser.add_argument("--db-url", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.action == "sync":
        report = sync(project)
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
        return 0
    ok, rows = check(project)
    if args.json:
        print(json.dumps({"ok": ok, "checks": [{"check": c, "ok": k, "detail": d} for c, k, d in rows]}))
    else:
        print("Validating DB Sage installation")
        for label, good, detail in rows:
            print(f"  {'OK  ' if good else 'FAIL'} {label}: {detail}")
        print("DB Sage installation OK" if ok else "DB Sage installation incomplete: run `sage ide sync`")
    return 0 if ok else 1

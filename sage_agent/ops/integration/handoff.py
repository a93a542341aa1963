"""*handoff {to}: an outgoing handoff for @qa, @devops, @dev or @architect naming the files DB Sage produced.

The work for each recipient runs through the generic Session (`*smoke-test`, `*execute-checklist`,
`*snapshot`, through the shared StepRunner); a failed step becomes a named blocker."""

from __future__ import annotations

import time
import tomllib
from pathlib import Path

from pydantic import BaseModel

from sage_agent.ops.integration.handoff_files import (
    KNOWN_AGENTS,
    Handoff,
    HandoffError,
    StepRunner,
    StoryContext,
    agent_id,
    check_folder,
    outside_problem,
    session_work,
    write_handoff,
)
from sage_agent.ops.registry import operation
from sage_agent.ops.result import OpError, OpResult, Table
from sage_agent.session.answers import MissingInput
from sage_agent.session.machine import Session


class HandoffInput(BaseModel):
    to: str
    version: str = "handoff"
    note: str | None = None
    artifacts: str | None = None
    story_id: str | None = None


class _CtxAnswers:
    """Answers for a nested session: confirmations go to the outer session's person or flags."""

    interactive = False

    def __init__(self, ctx) -> None:
        self.ctx = ctx

    def ask(self, spec):
        raise MissingInput(spec)

    def confirm(self, request) -> bool:
        return self.ctx.confirm_fn(request)


def _sub_session(ctx):
    return Session(project=ctx.project, target=ctx.target, answers=_CtxAnswers(ctx), settings=ctx.settings,
                   message_sink=ctx.message_sink, progress_sink=ctx.progress_sink)


def seed_locations(project: Path) -> list[str]:
    found: list[str] = []
    config = project / "supabase" / "config.toml"
    if config.is_file():
        try:
            paths = tomllib.loads(config.read_text(encoding="utf-8")).get("db", {}).get("seed", {}).get("sql_paths", [])
        except tomllib.TOMLDecodeError:
            paths = []
        for p in paths:
            for match in sorted((project / "supabase").glob(p.removeprefix("./"))):
                found.append(str(match.relative_to(project)))
    if not found and (project / "supabase" / "seed.sql").is_file():
        found.append("supabase/seed.sql")
    return found


def _has_sql(path: Path) -> bool:
    """A seed file with at least one statement (not only comments and blank lines)."""
    # lazy: pglast (the SQL parser) loads only when SQL is parsed
    from sage_agent.sqlkit.split import split_sql

    try:
        return bool(split_sql(path.read_text(encoding="utf-8"), str(path)))
    except Exception:  # noqa: BLE001 - unreadable or unparsable: the recipient should see it
        return True


def _migrations(project: Path) -> list[str]:
    return [str(p.relative_to(project)) for p in sorted((project / "supabase" / "migrations").glob("*.sql"))]


def _rollback_plan(project: Path, snapshots: list[str], migrations: list[str]) -> str:
    lines = ["# Rollback plan", "", f"Prepared by DB Sage {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}.", "",
             "## Restore point"]
    lines += [f"- snapshot `{s}` (restore with `*rollback {Path(s).stem.split('_', 1)[-1]}`)" for s in snapshots] or [
        "- NO snapshot found: take one with `*snapshot before-deploy` before deploying"]
    lines += ["", "## Migrations in this deployment (newest last)", *([f"- `{m}`" for m in migrations[-10:]] or ["- none"]),
              "", "## Steps", "1. Stop the deploy; announce the rollback in the deploy channel",
              "2. `*rollback before-deploy` (typed confirmation ROLLBACK; a safety snapshot is taken first)",
              "3. `*smoke-test post-rollback` and compare with the pre-deploy results",
              "4. `*repair VERSION reverted` for each rolled-back migration so the ledger matches",
              "5. Follow knowledge/checklists/dba-rollback-checklist.md to close out", ""]
    return "\n".join(lines)


@operation("handoff", risk="write")
def handoff(inputs: HandoffInput, ctx) -> OpResult:
    # lazy: not needed to start `sage --version`, `*help` or `sage mcp`
    from sage_agent.ops.design.generate import render_template_file

    to = agent_id(inputs.to)
    if to not in KNOWN_AGENTS or to == "db-sage":
        raise OpError(f"unknown recipient @{to}", "one of @qa, @devops, @dev, @architect", exit_code=2)
    project: Path = ctx.project
    runner = StepRunner(_sub_session(ctx), ctx.say)
    artifacts, blockers = runner.artifacts, runner.blockers
    decisions: list[str] = []
    extra = [a.strip() for a in (inputs.artifacts or "").split(",") if a.strip()]
    try:
        check_folder(project)  # before any step runs
    except HandoffError as exc:
        raise OpError(str(exc), exc.next_step, exit_code=2) from None
    outside = [f"{a} ({problem})" for a in extra if (problem := outside_problem(project, a))]
    if outside:
        raise OpError(f"artifact file(s) outside the project: {', '.join(outside)}",
                      "copy them into the project and name them by their relative path", exit_code=2)
    missing = [a for a in extra if not (project / a).exists()]
    if missing:
        raise OpError(f"artifact file(s) not found: {', '.join(missing)}", "fix the paths", exit_code=2)
    request = inputs.note or ""
    produced = session_work(project, to)  # read before the steps below add their own lines to the trail
    if produced:
        decisions.append(f"{len(produced)} file(s) produced since the last handoff to @{to} (from .sage/audit.jsonl): "
                         + ", ".join(sorted({p['command'] for p in produced})))
    if to == "qa":
        runner.run(f"*smoke-test {inputs.version}")
        if not any("smoke-test" in a for a in artifacts):
            old = sorted((project / "supabase" / "tests").glob("smoke-test-*.md"), key=lambda p: p.stat().st_mtime)
            if old:
                artifacts.append(str(old[-1].relative_to(project)))
                decisions.append(f"latest smoke-test report reused: {artifacts[-1]}")
        seeds = seed_locations(project)
        filled = [s for s in seeds if _has_sql(project / s)]
        artifacts += [s for s in filled if s not in artifacts]
        empty = [s for s in seeds if s not in filled]
        decisions.append("seed data: " + (", ".join(filled) if filled else "none") + (
            f" ({', '.join(empty)} holds no statements: not attached)" if empty else
            "" if seeds else " (no supabase/seed.sql)"))
        request = request or f"verify the database after {inputs.version}: smoke-test results and seed data attached"
        next_action = "run the QA suite against the seeded database"
    elif to == "devops":
        runner.run("*snapshot before-deploy")  # first, so the checklist's "recent snapshot" item sees it
        checked = runner.run("*execute-checklist dba-predeploy", {"ask": False, "fail_on": "never"})
        items = checked.result.data.get("items", {}) if checked.result else {}
        failing = [i for i, item in items.items() if item.get("status") == "fail"]
        if failing:
            runner.blockers.append(f"pre-deploy checklist: {len(failing)} item(s) failed ({', '.join(failing)}): "
                                   "see the checklist report")
        files: dict[str, str] = {}
        migrations = _migrations(project)
        runbook = render_template_file("db-runbook-tmpl.yaml", {
            "operation": "production-deploy", "environment": "production",
            "migration": Path(migrations[-1]).name if migrations else ""})
        # lazy: not needed to start `sage --version`, `*help` or `sage mcp`
        import yaml

        yaml.safe_load(runbook)  # the rendered runbook must be valid YAML
        files["docs/deploy/runbook-production-deploy.yaml"] = runbook
        if not any("checklist" in a for a in artifacts):
            # lazy: not needed to start `sage --version`, `*help` or `sage mcp`
            from sage_agent.catalog.paths import knowledge_dir

            checklist = (knowledge_dir() / "checklists" / "dba-predeploy-checklist.md").read_text(encoding="utf-8")
            files["docs/deploy/dba-predeploy-checklist.md"] = (
                "<!-- NOT EXECUTED: *execute-checklist is not available; complete by hand -->\n" + checklist)
        snapshots = [a for a in artifacts if "snapshots/" in a] or [
            str(p.relative_to(project)) for p in sorted((project / "supabase" / "snapshots").glob("*.sql"))[-1:]]
        files["docs/deploy/rollback-plan.md"] = _rollback_plan(project, snapshots, migrations)
        ctx.confirm(f"Write {len(files)} deployment file(s) for @devops?", plan="\n".join(f"write {f}" for f in files))
        for rel, text in files.items():
            (project / rel).parent.mkdir(parents=True, exist_ok=True)
            (project / rel).write_text(text, encoding="utf-8")
            artifacts.append(rel)
        request = request or "deploy the pending migrations with the runbook; the rollback plan is attached"
        next_action = "schedule the change window and follow the runbook"
    else:
        migrations = _migrations(project)
        plans = [str(p.relative_to(project)) for p in sorted((project / "docs" / "architecture").glob("*-plan.md"))]
        artifacts += migrations[-3:] + plans[-1:]
        request = request or ("the schema changes are ready: migrations and plan attached" if to == "dev"
                              else "the design is implemented: migrations and plan attached")
        next_action = "review the attached files"
    artifacts += [a for a in extra if a not in artifacts]
    made_by = {p["path"]: p["command"] for p in produced}
    artifacts = [p["path"] for p in produced] + [a for a in artifacts if a not in made_by]
    doc = Handoff(**{"from": "@db-sage", "to": f"@{to}"}, story=StoryContext(id=inputs.story_id) if inputs.story_id else None,
                  request=request, artifacts=artifacts, decisions=decisions, blockers=blockers, next_action=next_action)
    try:
        path = write_handoff(project, doc)
    except HandoffError as exc:
        raise OpError(str(exc), exc.next_step) from None
    rel = str(path.relative_to(project))
    files = Table(title="Artifacts", columns=["file", "from", "sha256"],
                  rows=[[a, made_by.get(a, "this handoff"), (doc.checksums.get(a) or "-").removeprefix("sha256:")[:16]]
                        for a in artifacts])
    return OpResult(operation="handoff", status="warning" if blockers else "ok",
                    summary=f"Handoff for @{to} written: {rel} ({len(artifacts)} artifact(s))",
                    facts={"to": f"@{to}", "file": rel, "artifacts": len(artifacts), "blockers": len(blockers)},
                    tables=[Table(title="Steps", columns=["step", "status", "detail"],
                                  rows=[[s["step"], s["status"], s["detail"]] for s in runner.steps])] * bool(runner.steps)
                    + [files] * bool(artifacts),
                    notes=[f"blocker: {b}" for b in blockers],
                    artifacts=[rel, *artifacts], data={"handoff": rel, "artifacts": artifacts, "blockers": blockers,
                                                       "checksums": doc.checksums})

"""Documents and checklists: *execute-checklist, *create-doc, *kb."""
from __future__ import annotations

import re
from datetime import datetime, timezone
from typing import Literal

from pydantic import BaseModel

from sage_agent.catalog.paths import knowledge_dir
from sage_agent.catalog.tasks import cmd
from sage_agent.ops.registry import operation
from sage_agent.ops.result import OpError, OpResult, Table
from sage_agent.session.answers import MissingInput

_SEVERITY = {"ERROR": "error", "WARN": "warning", "INFO": "info"}


# --- *execute-checklist -----------------------------------------------------------------------------------------
class ChecklistInput(BaseModel):
    name: str
    answers: str | None = None
    ask: bool = True
    fail_on: Literal["fail", "partial", "unanswered", "never"] = "fail"


_STATUSES = ("pass", "fail", "partial", "n/a")
# fail_on -> the item statuses that fail the run (exit 1), so CI can gate on a checklist
_FAILING = {"fail": ("fail",), "partial": ("fail", "partial"), "unanswered": ("fail", "partial", "not answered"),
            "never": ()}


@operation("execute-checklist", risk="read")
def execute_checklist(inputs: ChecklistInput, ctx) -> OpResult:
    # lazy: not needed to start `sage --version`, `*help` or `sage mcp`
    from sage_agent.catalog.checklists import list_checklists, parse_checklist
    from sage_agent.ops.docs.checks import CheckEnv, run_check

    available = list_checklists()
    key = inputs.name.removesuffix(".md").removesuffix("-checklist")
    if key not in available:
        raise OpError(f"unknown checklist {inputs.name!r}", f"available: {', '.join(sorted(available))}", exit_code=2)
    checklist = parse_checklist(available[key])
    ids = {i.id for i in checklist.items}
    given: dict[str, str] = {}
    for part in re.split(r"[,;\n]", inputs.answers or ""):
        if not part.strip():
            continue
        item, _, status = part.partition("=")
        item, status = item.strip(), status.strip().lower()
        if item not in ids:
            raise OpError(f"answers: no item {item!r} in {key} (ids look like 1.1, 2.3)", exit_code=2)
        if status not in _STATUSES:
            raise OpError(f"answers: {item}={status!r}: use one of {', '.join(_STATUSES)}", exit_code=2)
        given[item] = status
    results: dict[str, tuple[str, str, str]] = {}  # id -> (status, how, evidence)
    auto = [i for i in checklist.items if i.check]
    with ctx.connect(autocommit=True) as conn:
        env = CheckEnv(conn, ctx.project, ctx.server.major)
        progress = ctx.progress(f"checklist {key}: automatic checks", len(auto))
        for item in auto:
            status, evidence = run_check(item.check, env)
            results[item.id] = (status, f"auto: {item.check}", evidence)
            progress.advance(1, item.check)
    interactive = inputs.ask and ctx.interactive and ctx.ask_fn is not None
    for item in checklist.items:
        if item.id in results:
            continue
        if item.id in given:
            results[item.id] = (given[item.id], "answer", "")
            continue
        if interactive:
            try:
                raw = ctx.ask(f"[{item.id}] {item.text} (pass/fail/partial/n/a, empty = skip)", default="",
                              key=f"item_{item.id.replace('.', '_')}").strip().lower()
            except MissingInput:
                raw = ""
            if raw in ("p", "y", "yes"):
                raw = "pass"
            if raw in ("f", "no"):
                raw = "fail"
            if raw in _STATUSES:
                results[item.id] = (raw, "answer", "")
                continue
        results[item.id] = ("not answered", "manual", "")
    rows, section_rows, lines = [], [], []
    total_score = total_n = 0.0
    stamp = datetime.now(timezone.utc)
    lines += [f"# {checklist.title}", "", f"Checklist `{key}` run by DB Sage on {stamp:%Y-%m-%d %H:%M} UTC "
              f"against {ctx.target.display_url}.", ""]
    for section in checklist.sections:
        score = n = 0.0
        lines += [f"## {section.title}", ""]
        for item in section.items:
            status, how, evidence = results[item.id]
            rows.append([item.id, section.title, item.text, status, how, evidence])
            if status in ("pass", "fail", "partial"):
                n += 1
                score += {"pass": 1, "partial": 0.5, "fail": 0}[status]
            mark = {"pass": "x", "partial": "~", "fail": " "}.get(status, " ")
            lines.append(f"- [{mark}] {item.id} {item.text} — **{status}**" + (f" ({how}: {evidence})" if evidence else
                                                                                  f" ({how})" if how != "manual" else ""))
        rate = f"{100 * score / n:.0f}%" if n else "-"
        section_rows.append([section.title, len(section.items), int(n), rate])
        lines += ["", f"Pass rate: {rate} of {int(n)} decided items", ""]
        total_score += score
        total_n += n
    overall = f"{100 * total_score / total_n:.0f}%" if total_n else "-"
    counts = {s: sum(1 for r in results.values() if r[0] == s) for s in (*_STATUSES, "not answered")}
    lines += ["## Summary", "", f"Overall pass rate: {overall} of {int(total_n)} decided items; "
              + ", ".join(f"{v} {k}" for k, v in counts.items() if v), ""]
    report = "\n".join(lines)
    out_dir = ctx.project / "supabase" / "tests"
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / f"checklist-{key}-{stamp:%Y%m%d%H%M%S}.md"
    path.write_text(report)
    failing = [item_id for item_id, r in results.items() if r[0] in _FAILING[inputs.fail_on]]
    status = "failed" if failing else ("warning" if counts["fail"] or counts["partial"] else "ok")
    notes = []
    if failing:
        shown = ", ".join(f"{i} ({results[i][0]})" for i in failing[:12]) + (" ..." if len(failing) > 12 else "")
        notes.append(f"failed (--fail-on {inputs.fail_on}): {len(failing)} item(s): {shown}; fix them and run the "
                     "checklist again, or --fail-on never to report without failing")
    if counts["not answered"]:
        notes.append(f"{counts['not answered']} manual items not answered; answer them interactively or with "
                     "--answers \"2.1=pass,2.2=n/a\"")
    rel = path.relative_to(ctx.project)
    verdict = f"FAILED: {len(failing)} item(s) at --fail-on {inputs.fail_on} or worse; " if failing else ""
    return OpResult(operation="execute-checklist", status=status,
                    summary=f"{checklist.title}: {verdict}overall pass rate {overall} ({counts['fail']} failed, "
                            f"{counts['not answered']} not answered); report {rel}",
                    next_steps=[cmd("execute-checklist", key), cmd("execute-checklist", f"{key} --fail-on never")]
                    if failing else [],
                    facts={"overall": overall, **counts},
                    tables=[Table(title="Pass rate per section", columns=["section", "items", "decided", "pass rate"],
                                  rows=section_rows),
                            Table(title="Items", columns=["id", "section", "item", "status", "how", "evidence"], rows=rows)],
                    notes=notes, artifacts=[str(rel)], markdown=report,
                    data={"checklist": key, "overall": overall, "sections": section_rows, "failing": failing,
                          "items": {r[0]: {"status": r[3], "how": r[4], "evidence": r[5]} for r in rows}})


# --- *create-doc ------------------------------------------------------------------------------------------------
class CreateDocInput(BaseModel):
    template: str
    vars: str | None = None
    output: str | None = None


def parse_vars(text: str | None) -> dict[str, str]:
    """`key=value;key=value` (or one per line); values may contain commas."""
    out: dict[str, str] = {}
    for part in re.split(r"[;\n]", text or ""):
        if not part.strip():
            continue
        key, eq, value = part.partition("=")
        if not eq or not key.strip():
            raise OpError(f"vars: {part.strip()!r} is not key=value", "e.g. --vars \"table=todos;owner_column=user_id\"",
                          exit_code=2)
        out[key.strip()] = value.strip()
    return out


@operation("create-doc", risk="write")
def create_doc(inputs: CreateDocInput, ctx) -> OpResult:
    # lazy: not needed to start `sage --version`, `*help` or `sage mcp`
    from sage_agent.catalog.templates import TemplateError, load_template, render_spec
    from sage_agent.ops.docs.docmodels import validate_document

    try:
        spec = load_template(inputs.template)
    except TemplateError as exc:
        raise OpError(str(exc), exit_code=2) from None
    values = parse_vars(inputs.vars)
    unknown = sorted(set(values) - {v.name for v in spec.variables})
    if unknown:
        raise OpError(f"template {spec.name} has no variable(s) {', '.join(unknown)}; nothing was written",
                      "variables: " + ", ".join(f"{v.name}{'*' if v.required else ''}" for v in spec.variables),
                      exit_code=2)
    for var in spec.variables:
        if var.required and not values.get(var.name):
            values[var.name] = ctx.ask(f"{var.description} ({var.name})", key=var.name)
    try:
        text = render_spec(spec, values)
    except TemplateError as exc:
        raise OpError(f"{exc}; nothing was written", exit_code=2) from None
    if spec.kind == "sql":
        # lazy: pglast (the SQL parser) loads only when SQL is parsed
        from sage_agent.sqlkit.split import SqlSyntaxError, split_sql

        try:
            statements = split_sql(text, f"{spec.name}.sql")
        except SqlSyntaxError as exc:
            raise OpError(f"the rendered SQL does not parse: {exc}; nothing was written") from None
        check = f"SQL parses: {len(statements)} statements"
    else:
        try:
            validate_document(spec.name, text)
        except ValueError as exc:
            raise OpError(f"{exc}; nothing was written") from None
        check = f"YAML valid against the {spec.name} model"
    name = inputs.output or spec.name
    if "/" in name or name.startswith("."):
        raise OpError(f"output {name!r}: give a file name, not a path", exit_code=2)
    path = ctx.project / "docs" / "db" / f"{name}.{spec.kind}"
    if path.exists():
        if path.read_text() == text:
            return OpResult(operation="create-doc", summary=f"{path.relative_to(ctx.project)} is already up to date",
                            artifacts=[str(path.relative_to(ctx.project))], data={"path": str(path)})
        ctx.confirm(f"Replace the existing {path.relative_to(ctx.project)}?", plan=text)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return OpResult(operation="create-doc", summary=f"wrote {path.relative_to(ctx.project)} from {spec.name} ({check})",
                    facts={"template": spec.name, "file": str(path.relative_to(ctx.project)), "validated": check},
                    artifacts=[str(path.relative_to(ctx.project))], markdown=f"```{spec.kind}\n{text}\n```",
                    data={"path": str(path), "variables": values},
                    next_steps=["*migration-new", "*dry-run"] if spec.kind == "sql" else [])


# --- *kb --------------------------------------------------------------------------------------------------------
class KbInput(BaseModel):
    topic: str | None = None


def _kb_sections() -> list[tuple[str, str, str]]:
    out = []
    for path in sorted((knowledge_dir() / "data").glob("*.md")):
        heading, buf = None, []
        for line in path.read_text().splitlines():
            if line.startswith("## "):
                if heading:
                    out.append((path.stem, heading, "\n".join(buf).strip()))
                heading, buf = line[3:].strip(), []
            elif heading:
                buf.append(line)
        if heading:
            out.append((path.stem, heading, "\n".join(buf).strip()))
    return out


@operation("kb", risk="read")
def kb(inputs: KbInput, ctx) -> OpResult:
    sections = _kb_sections()
    guides = sorted({g for g, _, _ in sections})
    if not inputs.topic:
        rows = [[g, h] for g, h, _ in sections]
        return OpResult(operation="kb", summary=f"{len(sections)} topics in {len(guides)} guides",
                        tables=[Table(title="Knowledge base", columns=["guide", "topic"], rows=rows)],
                        data={"topics": rows}, next_steps=["*kb TOPIC"])
    words = [w.lower() for w in re.findall(r"[\w.-]+", inputs.topic)]
    topic = inputs.topic.lower().strip()
    exact = [s for s in sections if topic in s[1].lower() or topic == s[0]]
    if not exact:
        scored = []
        for s in sections:
            hay = f"{s[1]}\n{s[2]}".lower()
            if all(w in hay for w in words):
                scored.append((sum(hay.count(w) for w in words) + 10 * sum(w in s[1].lower() for w in words), s))
        exact = [s for _, s in sorted(scored, key=lambda x: -x[0])]
    if not exact:
        return OpResult(operation="kb", status="warning", summary=f"nothing in the knowledge base matches {inputs.topic!r}",
                        notes=[f"guides: {', '.join(guides)}"], next_steps=["*kb"])
    shown = exact[:5]
    md = "\n\n".join(f"## {h}\n_{g}_\n\n{body}" for g, h, body in shown)
    rows = [[g, h] for g, h, _ in exact]
    return OpResult(operation="kb", summary=f"{len(exact)} sections match {inputs.topic!r}" +
                    (f" (showing {len(shown)})" if len(exact) > len(shown) else ""),
                    tables=[Table(title="Matches", columns=["guide", "topic"], rows=rows)], markdown=md,
                    notes=[f"{g} / {h}:\n{body}" for g, h, body in shown], data={"matches": rows})

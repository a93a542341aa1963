"""*supabase-setup: supabase init (real CLI when present), config.toml seed paths, .env.example, the local
embedded database, and - with SUPABASE_ACCESS_TOKEN - projects and API keys from the Management API."""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from sage_agent.db.env import merged_environ
from sage_agent.db.redact import redact, register_secret
from sage_agent.ops.registry import operation
from sage_agent.ops.result import Finding, OpError, OpResult, Table

API_BASE = "https://api.supabase.com/v1"

ENV_EXAMPLE = """# DB Sage / Supabase environment (copy to .env and fill in; .env is git-ignored, never commit it)

# Primary connection (pooler - recommended for production)
SUPABASE_DB_URL="postgresql://postgres.{ref}:password@aws-0-region.pooler.supabase.com:6543/postgres"

# Direct connection (for migrations)
SUPABASE_DB_URL_DIRECT="postgresql://postgres.{ref}:password@db.{ref}.supabase.co:5432/postgres"

# Service role (dangerous - bypasses RLS; server side only)
SUPABASE_SERVICE_ROLE_KEY=""

# Anon key (for client-side)
SUPABASE_ANON_KEY=""

# Project reference
SUPABASE_PROJECT_REF="{ref}"

# Local development (sage db url prints the embedded server's URL)
SUPABASE_LOCAL_DB_URL="postgresql://postgres:postgres@localhost:54322/postgres"

# Management API token (read projects and API settings); https://supabase.com/dashboard/account/tokens
SUPABASE_ACCESS_TOKEN=""
"""

MINIMAL_CONFIG = """# Supabase project configuration (written by DB Sage; `supabase init` writes the full file)
project_id = "{name}"

[db]
port = 54322
major_version = 17

[db.seed]
enabled = true
sql_paths = ["./seed.sql"]
"""


class SupabaseSetupInput(BaseModel):
    use_cli: bool = True
    project_ref: str | None = None
    start_local: bool = True


def _seed_config(text: str) -> tuple[str, str | None]:
    """Make sure [db.seed] has enabled = true and sql_paths; returns (new text, what changed or None)."""
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise OpError(f"supabase/config.toml is not valid TOML: {exc}", "fix it, then run *supabase-setup again") from None
    seed = doc.get("db", {}).get("seed")
    if seed is not None and seed.get("sql_paths"):
        return text, None
    lines = text.splitlines()
    if seed is None:
        return text.rstrip("\n") + '\n\n[db.seed]\nenabled = true\nsql_paths = ["./seed.sql"]\n', "added [db.seed]"
    idx = next(i for i, line in enumerate(lines) if line.strip() == "[db.seed]")
    lines.insert(idx + 1, 'sql_paths = ["./seed.sql"]')
    return "\n".join(lines) + "\n", "added [db.seed] sql_paths"


def management_api(token: str, ref: str | None) -> dict[str, Any]:
    """Projects and (for one project) API key names from the Management API. Keys are never returned in clear."""
    # lazy: the HTTP client loads only when it is used
    import httpx

    register_secret(token)
    headers = {"Authorization": f"Bearer {token}", "Accept": "application/json"}
    with httpx.Client(base_url=API_BASE, headers=headers, timeout=20) as client:
        resp = client.get("/projects")
        if resp.status_code == 401:
            raise OpError("the Management API rejected SUPABASE_ACCESS_TOKEN (401)",
                          "create a new token at https://supabase.com/dashboard/account/tokens")
        resp.raise_for_status()
        projects = resp.json()
        chosen = ref or (projects[0].get("ref") or projects[0].get("id") if len(projects) == 1 else None)
        keys: list[dict[str, Any]] = []
        if chosen:
            kresp = client.get(f"/projects/{chosen}/api-keys")
            if kresp.status_code == 404:
                raise OpError(f"project {chosen} not found for this token", "check SUPABASE_PROJECT_REF / project_ref")
            kresp.raise_for_status()
            for key in kresp.json():
                value = key.get("api_key") or ""
                register_secret(value)
                keys.append({"name": key.get("name"), "type": key.get("type") or "legacy", "present": bool(value)})
    return {"projects": projects, "ref": chosen, "keys": keys}


@operation("supabase-setup", risk="write")
def supabase_setup(inputs: SupabaseSetupInput, ctx) -> OpResult:
    # lazy: the HTTP client loads only when it is used
    import httpx

    from sage_agent.db.supabase_cli import find_cli

    project: Path = ctx.project
    env = merged_environ(project)
    supabase = project / "supabase"
    config = supabase / "config.toml"
    cli = find_cli(project) if inputs.use_cli else None
    planned: list[str] = []
    if not config.exists():
        planned.append("run `supabase init`" if cli else "write supabase/config.toml (no Supabase CLI found)")
    planned.append("ensure [db.seed] enabled with sql_paths in supabase/config.toml")
    for rel in ("supabase/seed.sql", "supabase/migrations/", ".env.example"):
        if not (project / rel).exists():
            planned.append(f"create {rel}")
    ctx.confirm("Set up the Supabase project files?", plan="\n".join(planned))
    rows: list[list[str]] = []
    notes: list[str] = []
    findings: list[Finding] = []
    facts: dict[str, Any] = {}
    if not config.exists():
        if cli:
            cli.run(["init"], cwd=project)
            rows.append(["supabase/config.toml", f"created by supabase init (CLI {cli.version})"])
        else:
            supabase.mkdir(parents=True, exist_ok=True)
            name = "".join(ch for ch in project.name if ch.isalnum() or ch in "-_") or "project"
            config.write_text(MINIMAL_CONFIG.format(name=name), encoding="utf-8")
            rows.append(["supabase/config.toml", "created (minimal; npm install supabase for the full file)"])
    else:
        rows.append(["supabase/config.toml", "kept"])
    text, change = _seed_config(config.read_text(encoding="utf-8"))
    if change:
        config.write_text(text, encoding="utf-8")
        rows.append(["supabase/config.toml", change])
    facts["seed_paths"] = ", ".join(tomllib.loads(config.read_text())["db"]["seed"]["sql_paths"])
    for rel, content in (("supabase/seed.sql", "-- Seed data (loaded by *seed and `supabase db reset`).\n"),):
        path = project / rel
        if path.exists():
            rows.append([rel, "kept"])
        else:
            path.write_text(content, encoding="utf-8")
            rows.append([rel, "created"])
    (supabase / "migrations").mkdir(parents=True, exist_ok=True)
    ref = inputs.project_ref or env.get("SUPABASE_PROJECT_REF") or None
    example = project / ".env.example"
    if example.exists():
        rows.append([".env.example", "kept"])
    else:
        example.write_text(ENV_EXAMPLE.format(ref=ref or "project-ref"), encoding="utf-8")
        rows.append([".env.example", "created"])
    if (project / ".env").exists():
        rows.append([".env", "kept (never overwritten)"])
    else:
        notes.append("copy .env.example to .env and fill in the values (.env is never written by DB Sage)")
    token = env.get("SUPABASE_ACCESS_TOKEN", "").strip()
    api_rows: list[list[Any]] = []
    key_rows: list[list[Any]] = []
    if token:
        try:
            api = management_api(token, ref)
        except httpx.HTTPError as exc:
            findings.append(Finding(rule="supabase.management_api", severity="warning",
                                    message=redact(f"Management API unavailable: {exc}"),
                                    fix="check the network and SUPABASE_ACCESS_TOKEN"))
        else:
            for p in api["projects"]:
                api_rows.append([p.get("ref") or p.get("id"), p.get("name"), p.get("region"), p.get("status")])
            key_rows = [[k["name"], k["type"], "present (redacted)" if k["present"] else "missing"] for k in api["keys"]]
            facts.update({"projects": len(api["projects"]), "project_ref": api["ref"] or "-"})
            if api["ref"]:
                facts["api_url"] = f"https://{api['ref']}.supabase.co"
            elif len(api["projects"]) > 1:
                notes.append("several projects: pass project_ref=REF to read its API settings")
    else:
        notes.append("set SUPABASE_ACCESS_TOKEN to read your hosted projects and API settings")
    if inputs.start_local and ctx.target.embedded:
        url = ctx.url
        facts["local_database"] = redact(url)
        rows.append(["embedded PostgreSQL", "running"])
    else:
        facts["database"] = ctx.target.display_url
    tables = [Table(title="Project files", columns=["path", "action"], rows=rows)]
    if api_rows:
        tables.append(Table(title="Supabase projects (Management API)", columns=["ref", "name", "region", "status"],
                            rows=api_rows))
    if key_rows:
        tables.append(Table(title=f"API keys of {facts.get('project_ref')}", columns=["name", "type", "value"],
                            rows=key_rows))
    facts["supabase_cli"] = cli.version if cli else "not found"
    return OpResult(operation="supabase-setup", status="warning" if findings else "ok",
                    summary="Supabase project set up" + (f" (project {facts.get('project_ref')})"
                                                         if facts.get("project_ref") not in (None, "-") else ""),
                    facts=facts, tables=tables, findings=findings, notes=notes,
                    artifacts=[r[0] for r in rows if r[1].startswith(("created", "added"))],
                    next_steps=["*env-check", "*snapshot baseline"])

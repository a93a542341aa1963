"""`sage run --json` prints one shape for successes and failures, the one docs/result.schema.json describes."""

from __future__ import annotations

import json
from pathlib import Path

from sage_agent.ops.result import OpResult

SCHEMA = json.loads((Path(__file__).parent.parent / "docs" / "result.schema.json").read_text())
TYPES = {"object": dict, "array": list, "string": str, "integer": int, "boolean": bool, "null": type(None)}


def problems(doc, schema: dict = SCHEMA, where: str = "$") -> list[str]:
    """A validator for the subset of JSON Schema the file uses: type, enum, required, properties,
    additionalProperties false, items, $ref into $defs."""
    if "$ref" in schema:
        schema = SCHEMA["$defs"][schema["$ref"].rsplit("/", 1)[1]]
    found: list[str] = []
    kinds = schema.get("type")
    if kinds is not None:
        kinds = [kinds] if isinstance(kinds, str) else kinds
        ok = any(isinstance(doc, TYPES[k]) and not (k == "integer" and isinstance(doc, bool)) for k in kinds)
        if not ok:
            return [f"{where}: expected {'/'.join(kinds)}, got {type(doc).__name__}"]
    if "enum" in schema and doc not in schema["enum"]:
        found.append(f"{where}: {doc!r} not one of {schema['enum']}")
    if isinstance(doc, dict):
        found += [f"{where}: missing {k}" for k in schema.get("required", []) if k not in doc]
        props = schema.get("properties", {})
        if schema.get("additionalProperties") is False:
            found += [f"{where}: unexpected {k}" for k in doc if k not in props]
        for key, sub in props.items():
            if key in doc:
                found += problems(doc[key], sub, f"{where}.{key}")
    if isinstance(doc, list) and "items" in schema:
        for i, item in enumerate(doc):
            found += problems(item, schema["items"], f"{where}[{i}]")
    return found


def test_the_validator_rejects_what_the_schema_forbids():
    good = {**OpResult(operation="x", summary="s").model_dump(mode="json"), "error": None, "exit_code": 0}
    assert problems(good) == []
    assert problems({**good, "status": "fine"}) == ["$.status: 'fine' not one of ['ok', 'warning', 'failed', 'cancelled']"]
    assert problems({k: v for k, v in good.items() if k != "next_steps"}) == ["$: missing next_steps"]
    assert problems({**good, "hint": "x"}) == ["$: unexpected hint"]
    assert problems({**good, "exit_code": True}) == ["$.exit_code: expected integer, got bool"]
    assert problems({**good, "tables": [{"columns": "a"}]})[0] == "$.tables[0]: missing title"


def test_schema_lists_every_result_field():
    """A field added to OpResult must be added to the schema (and so to the failure shape)."""
    assert set(SCHEMA["properties"]) == set(OpResult.model_fields) | {"error"}
    assert set(SCHEMA["required"]) == set(SCHEMA["properties"])


def run_json(run_sage, project, *args: str) -> tuple[int, dict]:
    proc = run_sage("run", *args, "--json", cwd=project)
    assert proc.stdout.strip(), proc.stderr
    return proc.returncode, json.loads(proc.stdout)


def test_successes_and_failures_share_the_schema(run_sage, project, db_url):
    code, ok = run_json(run_sage, project, "*run-sql 'select 1 as one'", "--db-url", db_url)
    assert code == 0 and ok["status"] == "ok" and ok["error"] is None and problems(ok) == []

    code, bad_sql = run_json(run_sage, project, "*run-sql 'select * from no_such_table'", "--db-url", db_url)
    assert code == 1 and bad_sql["status"] == "failed" and problems(bad_sql) == []
    assert "no_such_table" in bad_sql["error"] and "no_such_table" in bad_sql["summary"]

    code, unknown = run_json(run_sage, project, "*no-such-command", "--db-url", db_url)
    assert code == 2 and unknown["status"] == "failed" and problems(unknown) == []
    assert "unknown command *no-such-command" in unknown["error"]

    code, bad_url = run_json(run_sage, project, "*run-sql 'select 1'", "--db-url",
                             "postgresql://sage:hunter2@127.0.0.1:1/nope")
    assert code == 1 and problems(bad_url) == [] and "hunter2" not in json.dumps(bad_url)

    # *env-check reports a failed connection in its result (not as an exception): `error` still says why
    code, check = run_json(run_sage, project, "*env-check", "--db-url", "postgresql://sage:hunter2@127.0.0.1:1/nope")
    assert code == 1 and check["status"] == "failed" and problems(check) == []
    assert check["error"] and "refused" in check["error"] and "hunter2" not in json.dumps(check)


def test_a_failure_hint_is_a_next_step_not_part_of_the_error(run_sage, project, db_url):
    (project / "supabase").mkdir(exist_ok=True)
    (project / "supabase" / "empty.sql").write_text("-- nothing here\n")
    code, doc = run_json(run_sage, project, "*seed supabase/empty.sql", "--yes", "--db-url", db_url)
    assert code == 2 and doc["status"] == "failed" and problems(doc) == [], doc
    assert doc["error"].startswith("nothing to load: supabase/empty.sql has no SQL statements")
    assert "next:" not in doc["error"]
    assert doc["next_steps"] == ["add INSERT or COPY statements to the seed file"]

"""The catalog: persona and task files parse into typed models, and `sage validate` proves they agree."""


import pytest

from sage_agent.catalog.errors import CatalogError
from sage_agent.catalog.persona import load_persona, parse_persona
from sage_agent.catalog.tasks import command_index, load_tasks, parse_task
from sage_agent.catalog.validate import validate_catalog


def test_every_shipped_task_file_parses():
    tasks = load_tasks()
    assert {"help", "exit", "db-env-check", "db-bootstrap"} <= set(tasks)
    for task in tasks.values():
        assert task.purpose and task.command
        for spec in task.inputs:
            assert spec.line > 0


def test_persona_is_strict_yaml_with_the_seed_shape():
    persona = load_persona()
    assert persona.agent.name == "DB Sage" and persona.agent.id == "db-sage"
    assert len(persona.activation_instructions) >= 6
    assert persona.activation_instructions[0].startswith("STEP 1")
    assert "help" in {c.name for c in persona.commands}


def test_validate_passes_on_the_shipped_catalog():
    report = validate_catalog()
    assert report.ok, "\n".join(report.problems)
    assert report.counts["tasks"] == report.counts["operations"]


def test_elicitation_lines_become_typed_inputs(tmp_path):
    path = tmp_path / "demo.md"
    path.write_text("""# Task: Demo

## Purpose
Demo.

## Activation
`*demo {name} [mode]` or `*dm`

## Elicitation
- [ ] Snapshot name (`name`): _____ (required)
- [ ] Include data (`mode`): (schema-only/with-data - default schema-only)
- [ ] Create snapshot first (`snapshot`): (yes/no - default yes)
- [ ] Environment (`env`): (local/dev/staging/prod)
- [ ] DESTRUCTIVE - Type "ROLLBACK" to confirm (`confirm`): _____
- [ ] Limit (`limit`): _____ (default: 100)

## Execution
x

## Error Handling
x

## Output
x
""")
    task = parse_task(path)
    assert task.command == "demo" and task.aliases == ["dm"]
    assert task.positional_keys == ["name", "mode"]
    by = {i.key: i for i in task.inputs}
    assert by["name"].required and by["name"].kind == "text"
    assert by["mode"].kind == "choice" and by["mode"].choices == ["schema-only", "with-data"]
    assert by["mode"].default == "schema-only"
    assert by["snapshot"].kind == "bool" and by["snapshot"].default == "yes"
    assert by["env"].kind == "env"
    assert by["confirm"].kind == "confirm" and task.confirm_word == "ROLLBACK"
    assert by["limit"].default == "100"
    assert [i.key for i in task.user_inputs()] == ["name", "mode", "snapshot", "limit"]


@pytest.mark.parametrize("body, line, needle", [
    ("## Purpose\nx\n## Activation\nnothing\n## Elicitation\n## Execution\n## Error Handling\n## Output\n", 5,
     "names no `*command`"),
    ("## Purpose\nx\n## Activation\n`*x`\n## Elicitation\n- [ ] Broken line\n## Execution\n## Error Handling\n## Output\n",
     8, "bad elicitation line"),
    ("## Purpose\nx\n## Activation\n`*x`\n## Elicitation\n- [ ] A (`a`): (b/c - default d)\n## Execution\n"
     "## Error Handling\n## Output\n", 8, "not one of"),
    ("## Purpose\nx\n## Activation\n`*x {a}`\n## Elicitation\n## Execution\n## Error Handling\n## Output\n", 5,
     "has no elicitation line"),
])
def test_task_errors_point_at_file_and_line(tmp_path, body, line, needle):
    path = tmp_path / "bad.md"
    path.write_text("# Task: Bad\n\n" + body)
    with pytest.raises(CatalogError) as info:
        parse_task(path)
    assert info.value.line == line
    assert needle in str(info.value)
    assert str(info.value).startswith(f"{path}:{line}:")


def test_missing_section_is_named(tmp_path):
    path = tmp_path / "bad.md"
    path.write_text("# Task: Bad\n\n## Purpose\nx\n")
    with pytest.raises(CatalogError, match="missing section '## Activation'"):
        parse_task(path)


def test_persona_yaml_error_points_at_the_line(tmp_path):
    path = tmp_path / "p.md"
    path.write_text("# p\n\ntext\n\n```yaml\nagent:\n  name: x\ncommands:\n  - *help: oops\n```\n")
    with pytest.raises(CatalogError) as info:
        parse_persona(path)
    assert info.value.line == 9
    assert "invalid YAML" in info.value.message


def test_validate_reports_a_persona_command_without_a_task(tmp_path, monkeypatch):
    import shutil

    from sage_agent.catalog import paths

    root = tmp_path / "cat"
    for sub in ("personas", "tasks", "knowledge"):
        shutil.copytree(paths.catalog_root() / sub, root / sub)
    text = (root / "personas" / "db-sage.md").read_text()
    (root / "personas" / "db-sage.md").write_text(
        text.replace('    - "exit: Leave DB Sage"', '    - "exit: Leave DB Sage"\n    - "ghost: does not exist"'))
    (root / "tasks" / "db-bootstrap.md").unlink()
    monkeypatch.setattr(paths, "catalog_root", lambda: root)
    report = validate_catalog()
    joined = "\n".join(report.problems)
    assert "persona command *ghost has no task file" in joined
    assert "persona command *bootstrap has no task file" in joined
    assert "operation db-bootstrap has no task file" in joined
    assert not report.ok


def test_command_index_covers_aliases():
    index = command_index(load_tasks())
    assert index["env-check"] == index["check-env"] == "db-env-check"


def test_readme_lists_every_command():
    from sage_agent.catalog.paths import catalog_root

    readme = (catalog_root() / "README.md")
    if not readme.exists():
        pytest.skip("README.md is not shipped in an installed copy")
    text = readme.read_text()
    missing = [c.usage for c in load_persona().commands if f"*{c.name}" not in text]
    assert not missing, f"README.md does not mention: {missing}"


def test_readme_command_tables_are_what_help_shows():
    """README's command tables and *help (the persona) list the same commands, in the same order, with the same
    descriptions: *help still said *rollback "restores a snapshot atomically" after it became a proven reverse
    change that keeps the rows, while the README described the new one."""
    import re

    from sage_agent.catalog.paths import catalog_root

    readme = catalog_root() / "README.md"
    if not readme.exists():
        pytest.skip("README.md is not shipped in an installed copy")
    text = readme.read_text()
    section = text[text.index("## Commands"):text.index("## Using it")]
    rows = [(m.group(1), m.group(2).replace("\\|", "|"))
            for m in re.finditer(r"^\| (\*[^|]+?) \| (.+) \|$", section, re.M)]
    shown = [(c.usage, c.description) for c in load_persona().commands]
    assert rows == shown


def test_cmd_names_a_command_from_its_task_file():
    from sage_agent.catalog.tasks import cmd

    assert cmd("db-check-locks") == "*locks"
    assert cmd("db-rollback", "v1") == "*rollback v1"


def test_validate_finds_command_names_that_do_not_exist(tmp_path):
    from sage_agent.catalog.tasks import command_index, load_tasks
    from sage_agent.catalog.validate import command_references

    code = tmp_path / "mod.py"
    code.write_text('def f(*args, **kw):\n    """Run *locks first."""\n    return "retry (*check-locks shows who); '
                    'count(*) of *.sql, run *command"\n')
    doc = tmp_path / "guide.md"
    doc.write_text("RLS decides *which rows*; then `*snapshot v1` and `*snapshott v2`.\n")
    found = command_references(set(command_index(load_tasks())), code=[code], docs=[doc])
    assert [(line, name) for _, line, name in found] == [(3, "check-locks"), (1, "snapshott")]

"""Document and SQL templates in knowledge/templates/: a header of `# var:` (YAML) or `-- var:` (SQL) lines
declaring the variables, then a Jinja2 body. Identifiers are rendered with the `ident` filter (safe quoting)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from sage_agent.catalog.errors import CatalogError
from sage_agent.catalog.paths import knowledge_dir

_VAR = re.compile(r"^(?:#|--)\s*var:\s*(?P<body>.*)$")
_NAME = re.compile(r"^[a-z_][a-z0-9_]*$")


class TemplateVar(BaseModel):
    name: str
    description: str
    required: bool
    default: str | None = None
    line: int


class TemplateSpec(BaseModel):
    name: str  # file stem without -tmpl, e.g. rls-kiss-policy
    path: str
    kind: str  # "yaml" or "sql"
    variables: list[TemplateVar]
    body: str

    @property
    def extension(self) -> str:
        return self.kind

    def var(self, name: str) -> TemplateVar | None:
        return next((v for v in self.variables if v.name == name), None)


class TemplateError(ValueError):
    """Rendering failed: a missing or bad variable, or a template bug; the message names it."""


def template_name(path: Path) -> str:
    stem = path.name
    for suffix in (".yaml", ".yml", ".sql"):
        if stem.endswith(suffix):
            stem = stem[: -len(suffix)]
    return stem[: -len("-tmpl")] if stem.endswith("-tmpl") else stem


def parse_template(path: Path) -> TemplateSpec:
    path = Path(path)
    if path.suffix == ".sql":
        kind, marker = "sql", "--"
    elif path.suffix in (".yaml", ".yml"):
        kind, marker = "yaml", "#"
    else:
        raise CatalogError(path, None, "a template must be a .yaml or .sql file")
    text = path.read_text(encoding="utf-8")
    variables: list[TemplateVar] = []
    seen: set[str] = set()
    for lineno, line in enumerate(text.splitlines(), 1):
        if not line.startswith(marker):
            break
        m = _VAR.match(line)
        if not m:
            if re.match(r"^(?:#|--)\s*var\b", line):
                raise CatalogError(path, lineno, "malformed variable line (expected `var: name | description | required`)")
            continue
        parts = [p.strip() for p in m.group("body").split("|")]
        if len(parts) != 3:
            raise CatalogError(path, lineno, "a var line needs three parts: name | description | required or default: X")
        name, description, rule = parts
        if not _NAME.match(name):
            raise CatalogError(path, lineno, f"bad variable name {name!r} (lower_snake_case)")
        if name in seen:
            raise CatalogError(path, lineno, f"variable {name} declared twice")
        seen.add(name)
        if rule == "required":
            variables.append(TemplateVar(name=name, description=description, required=True, line=lineno))
        elif rule.startswith("default:"):
            variables.append(TemplateVar(name=name, description=description, required=False,
                                         default=rule[len("default:"):].strip(), line=lineno))
        else:
            raise CatalogError(path, lineno, f"variable {name}: third part must be `required` or `default: X`")
    if not variables:
        raise CatalogError(path, 1, f"no `{marker} var:` header lines")
    env = _environment()
    try:
        env.parse(text)
    except Exception as exc:  # jinja2.TemplateSyntaxError
        raise CatalogError(path, getattr(exc, "lineno", None), f"template syntax: {exc}") from None
    return TemplateSpec(name=template_name(path), path=str(path), kind=kind, variables=variables, body=text)


def ident(value: Any) -> str:
    """Quote an SQL identifier exactly as PostgreSQL wants it (psycopg's quoting rules)."""
    # lazy: psycopg loads on the first database call
    from psycopg import sql

    text = str(value)
    if not text:
        raise TemplateError("an empty identifier cannot be rendered")
    return sql.Identifier(text).as_string(None)


def _environment():
    # lazy: jinja2 loads only when a template renders
    import jinja2

    env = jinja2.Environment(undefined=jinja2.StrictUndefined, keep_trailing_newline=True, autoescape=False)
    env.filters["ident"] = ident
    return env


def list_templates(directory: Path | None = None) -> dict[str, Path]:
    folder = directory or knowledge_dir() / "templates"
    found = {}
    for path in sorted(folder.glob("*-tmpl.*")):
        if path.suffix in (".yaml", ".yml", ".sql"):
            found[template_name(path)] = path
    return found


def load_template(name: str) -> TemplateSpec:
    templates = list_templates()
    key = template_name(Path(name)) if name.endswith((".yaml", ".sql")) else name.removesuffix("-tmpl")
    if key not in templates:
        raise TemplateError(f"unknown template {name!r}; available: {', '.join(sorted(templates))}")
    return parse_template(templates[key])


def render_spec(spec: TemplateSpec, variables: dict[str, Any]) -> str:
    # lazy: jinja2 loads only when a template renders
    import jinja2

    missing = [v.name for v in spec.variables if v.required and (variables.get(v.name) in (None, ""))]
    if missing:
        raise TemplateError(f"template {spec.name}: missing required variable(s): {', '.join(missing)}")
    unknown = sorted(set(variables) - {v.name for v in spec.variables})
    if unknown:
        raise TemplateError(f"template {spec.name}: unknown variable(s): {', '.join(unknown)} "
                            f"(declared: {', '.join(v.name for v in spec.variables)})")
    values = {v.name: v.default for v in spec.variables if not v.required}
    values.update({k: v for k, v in variables.items() if v is not None})
    try:
        return _environment().from_string(spec.body).render(**values)
    except jinja2.UndefinedError as exc:
        raise TemplateError(f"template {spec.name}: {exc}") from None
    except TemplateError as exc:
        raise TemplateError(f"template {spec.name}: {exc}") from None


def render_template(name: str, variables: dict[str, Any]) -> str:
    """Render knowledge/templates/<name>-tmpl.* with the variables (required ones must be given)."""
    return render_spec(load_template(name), variables)

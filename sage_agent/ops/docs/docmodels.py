"""Pydantic models for the YAML documents the templates produce; *create-doc validates against them."""

from __future__ import annotations

from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError, model_validator


class _Open(BaseModel):
    model_config = ConfigDict(extra="allow")


class TemplateRef(_Open):
    id: str
    version: int | str


class DocumentHeader(_Open):
    title: str
    status: str | None = None


class BaseDocument(_Open):
    template: TemplateRef
    document: DocumentHeader


class SchemaDesign(BaseDocument):
    """The header is checked here; the body is the design *create-migration-from-design reads, checked by that one
    model (sage_agent.ops.design.generate). A template's output must also give every table a primary key."""

    @model_validator(mode="after")
    def _design(self) -> "SchemaDesign":
        # lazy: not needed to start `sage --version`, `*help` or `sage mcp`
        from sage_agent.ops.design.generate import DesignError, parse_design

        body = {**(self.model_extra or {}), "template": self.template.model_dump(),
                "document": self.document.model_dump()}
        try:
            design = parse_design(body, "schema-design")
        except DesignError as exc:
            raise ValueError(exc.message.removeprefix("schema-design: ")) from None
        for table in design.tables:
            if not any(c.primary_key for c in table.columns):
                raise ValueError(f"table {table.name}: no primary key column")
        return self


class Policy(_Open):
    name: str
    command: Literal["select", "insert", "update", "delete", "all"]
    roles: list[str]


class RlsPolicies(BaseDocument):
    policies: list[Policy]


class SmokeTest(_Open):
    id: str
    sql: str
    expect: dict[str, Any]


class SmokeTestSuite(BaseDocument):
    tests: list[SmokeTest]


class MigrationPlan(BaseDocument):
    migration: dict[str, Any]
    steps: list[Any]
    rollback: dict[str, Any]


class Runbook(BaseDocument):
    steps: list[Any]
    rollback: dict[str, Any]


class IndexStrategy(BaseDocument):
    target: dict[str, Any]
    candidates: list[Any]


MODELS: dict[str, type[BaseDocument]] = {
    "schema-design": SchemaDesign,
    "rls-policies": RlsPolicies,
    "smoke-test-suite": SmokeTestSuite,
    "migration-plan": MigrationPlan,
    "db-runbook": Runbook,
    "index-strategy": IndexStrategy,
}


def validate_document(template: str, text: str) -> BaseDocument:
    """Load YAML and validate it against the model for its template (ValueError with the reason)."""
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ValueError(f"the rendered YAML does not load: {exc}") from None
    if not isinstance(data, dict):
        raise ValueError("the rendered YAML is not a mapping")
    model = MODELS.get(template, BaseDocument)
    try:
        doc = model.model_validate(data)
    except ValidationError as exc:
        err = exc.errors()[0]
        where = ".".join(str(p) for p in err["loc"])
        raise ValueError(f"{template} document invalid at {where or '(top)'}: {err['msg']}") from None
    if doc.template.id != template:
        raise ValueError(f"document template.id is {doc.template.id!r}, expected {template!r}")
    return doc

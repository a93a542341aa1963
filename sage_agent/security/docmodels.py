"""Pydantic models for the YAML documents the templates produce; *create-doc validates against them."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, field_validator, model_validator


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


class Reference(BaseModel):
    model_config = ConfigDict(extra="forbid")
    table: str
    column: str
    on_delete: str | None = None


class Column(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str
    type: str
    nullable: bool = True
    default: str | int | float | bool | None = None
    primary_key: bool = False
    references: Reference | None = None


class Index(_Open):
    name: str
    columns: list[str]
    unique: bool = False


class TableRls(_Open):
    enabled: bool
    owner_column: str | None = None


class Table(_Open):
    name: str
    description: str | None = None
    columns: list[Column]
    indexes: list[Index] = []
    rls: TableRls

    @model_validator(mode="after")
    def _check(self) -> "Table":
        names = [c.name for c in self.columns]
        if len(set(names)) != len(names):
            raise ValueError(f"table {self.name}: duplicate column names")
        if not any(c.primary_key for c in self.columns):
            raise ValueError(f"table {self.name}: no primary key column")
        for idx in self.indexes:
            for col in idx.columns:
                if col.split()[0] not in names:
                    raise ValueError(f"table {self.name}: index {idx.name} uses unknown column {col}")
        if self.rls.owner_column and self.rls.owner_column not in names:
            raise ValueError(f"table {self.name}: rls.owner_column {self.rls.owner_column} is not a column")
        return self


class Relationship(_Open):
    from_: str
    to: str
    type: str

    model_config = ConfigDict(extra="allow", populate_by_name=True)

    @model_validator(mode="before")
    @classmethod
    def _from(cls, data: Any) -> Any:
        if isinstance(data, dict) and "from" in data:
            data = {**data, "from_": data["from"]}
            data.pop("from")
        return data


class SchemaDesign(BaseDocument):
    schema_: str
    tables: list[Table]
    relationships: list[Relationship] = []

    model_config = ConfigDict(extra="allow")

    @model_validator(mode="before")
    @classmethod
    def _schema(cls, data: Any) -> Any:
        if isinstance(data, dict) and "schema" in data:
            data = {**data, "schema_": data["schema"]}
            data.pop("schema")
        return data

    @field_validator("tables")
    @classmethod
    def _unique(cls, tables: list[Table]) -> list[Table]:
        names = [t.name for t in tables]
        if len(set(names)) != len(names):
            raise ValueError("duplicate table names")
        return tables


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
    import yaml
    from pydantic import ValidationError

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

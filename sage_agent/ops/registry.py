"""The operation registry: one operation per task, registered under the task id."""

from __future__ import annotations

import importlib
import inspect
import re
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator, Literal, get_type_hints

from pydantic import BaseModel

from sage_agent.ops.result import OpResult

Risk = Literal["read", "write", "destructive"]
RISK_ORDER: tuple[Risk, ...] = ("read", "write", "destructive")


@dataclass(frozen=True)
class Operation:
    """One registered operation. `risk` is what it does with default inputs; `raised_by` names the inputs
    that, when given, make one call riskier (`*run-sql --write` writes, `*locks --terminate` is destructive).
    The session, the agent's tool list, MCP annotations and `--read-only` all read the risk from here."""

    task_id: str
    func: Callable[..., OpResult]
    input_model: type[BaseModel]
    risk: Risk
    builtin: bool = False  # a session command with no task file (help, exit)
    raised_by: tuple[tuple[str, Risk], ...] = ()

    def run(self, inputs: BaseModel, ctx) -> OpResult:
        return self.func(inputs, ctx)

    def risk_for(self, inputs: BaseModel | dict[str, Any]) -> Risk:
        """The risk of this call: the highest risk among the base and the raising inputs that are given."""
        values = inputs if isinstance(inputs, dict) else inputs.model_dump()
        raised = [risk for key, risk in self.raised_by if values.get(key) not in (None, False, "")]
        return max([self.risk, *raised], key=RISK_ORDER.index)

    @property
    def max_risk(self) -> Risk:
        """The highest risk any call can have (MCP annotations, what a read-only server lists)."""
        return max([self.risk, *(risk for _, risk in self.raised_by)], key=RISK_ORDER.index)


_REGISTRY: dict[str, Operation] = {}


def operation(task_id: str, *, risk: Risk, builtin: bool = False, raised_by: dict[str, Risk] | None = None) -> Callable:
    """Register `func(inputs: Model, ctx: OpContext) -> OpResult` for a task id.

    `raised_by={"write": "write"}`: the input `write`, when given, raises one call's risk to `write`."""

    def decorate(func: Callable[..., OpResult]) -> Callable[..., OpResult]:
        params = list(inspect.signature(func).parameters)
        hints = get_type_hints(func)
        model = hints.get(params[0]) if params else None
        if not (isinstance(model, type) and issubclass(model, BaseModel)):
            raise TypeError(f"operation {task_id}: first parameter must be annotated with a pydantic model")
        unknown = sorted(set(raised_by or {}) - set(model.model_fields))
        if unknown:
            raise TypeError(f"operation {task_id}: raised_by names no input of {model.__name__}: {unknown}")
        if task_id in _REGISTRY and _REGISTRY[task_id].func is not func:
            raise ValueError(f"operation {task_id} registered twice")
        _REGISTRY[task_id] = Operation(task_id, func, model, risk, builtin, tuple((raised_by or {}).items()))
        return func

    return decorate


# The modules that hold @operation functions, one or two per area. A test fails when an @operation lives
# in a module that is not listed here (it would silently never register).
OPERATION_MODULES = (
    "core.commands",
    "migrations.commands",
    "migrations.dry_run",
    "lint.commands",
    "snapshots.commands",
    "data.commands",
    "observe.commands",
    "watch.commands",
    "security.commands",
    "docs.commands",
    "schema.commands",
    "testsuite.commands",
    "design.commands",
    "integration.handoff",
    "integration.supabase_setup",
    "agent.commands",
)

_loaded = False


def load_operations() -> dict[str, Operation]:
    """Import each area's command modules (each registers its operations) and return the registry."""
    global _loaded
    if not _loaded:
        for name in OPERATION_MODULES:
            importlib.import_module(f"sage_agent.ops.{name}")
        _loaded = True
    return dict(_REGISTRY)


def operation_for(task_id: str) -> Operation | None:
    """One task's operation, importing only the command module that declares it (found by its source text,
    `@operation("task-id"`): one headless command does not import every other area (0.2 s of CPU at start-up).
    Everything is loaded when no module's source names the task."""
    if not _loaded and task_id not in _REGISTRY:
        module = _declaring_module(task_id)
        if module:
            importlib.import_module(f"sage_agent.ops.{module}")
    return _REGISTRY.get(task_id) or load_operations().get(task_id)


def _declaring_module(task_id: str) -> str | None:
    root = Path(__file__).parent
    needle = f'@operation("{task_id}"'
    for name in OPERATION_MODULES:
        try:
            if needle in (root / (name.replace(".", "/") + ".py")).read_text(encoding="utf-8"):
                return name
        except OSError:  # no source next to the bytecode: load everything instead
            return None
    return None


@contextmanager
def registered(*ops: Operation) -> Iterator[None]:
    """Register extra operations for the length of a block (test doubles), then put the registry back."""
    load_operations()
    saved = {op.task_id: _REGISTRY.get(op.task_id) for op in ops}
    _REGISTRY.update({op.task_id: op for op in ops})
    try:
        yield
    finally:
        for task_id, previous in saved.items():
            if previous is None:
                _REGISTRY.pop(task_id, None)
            else:
                _REGISTRY[task_id] = previous


def _compact_schema(node: Any) -> Any:
    """Drop titles, collapse Optional[X] to X: the model needs the shape, not pydantic's bookkeeping."""
    if isinstance(node, dict):
        out = {}
        for key, value in node.items():
            if key in ("title", "additionalProperties"):
                continue
            out[key] = _compact_schema(value)
        any_of = out.get("anyOf")
        if isinstance(any_of, list):
            non_null = [s for s in any_of if s != {"type": "null"}]
            if len(non_null) == 1:
                out.pop("anyOf")
                out.update(non_null[0])
        if out.get("default") is None and "default" in out:
            out.pop("default")
        return out
    if isinstance(node, list):
        return [_compact_schema(v) for v in node]
    return node


def input_schema(task, model, *, closed: bool = False) -> dict[str, Any]:
    """The JSON schema tool callers see (the agent's tools, MCP): the model's types, the task's choices and
    labels. `closed`: unknown arguments are invalid and required inputs are listed (MCP refuses both)."""
    raw = _compact_schema(model.model_json_schema())
    props: dict[str, Any] = {}
    for spec in task.user_inputs():
        prop = dict(raw.get("properties", {}).get(spec.key, {"type": "string"}))
        if spec.choices:
            prop["enum"] = list(spec.choices)
        label = re.sub(r"\s+", " ", spec.label).strip()
        if label.lower().replace(" ", "_") != spec.key:
            prop["description"] = label[:70]
        props[spec.key] = prop
    schema: dict[str, Any] = {"type": "object", "properties": props}
    if closed:
        required = [s.key for s in task.user_inputs() if s.required]
        schema.update({"additionalProperties": False, **({"required": required} if required else {})})
    return schema

"""The operation registry: one operation per task, registered under the task id."""

from __future__ import annotations

import importlib
import inspect
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Callable, Iterator, Literal, get_type_hints

from pydantic import BaseModel

from sage_agent.ops.result import OpResult

Risk = Literal["read", "write", "destructive"]


@dataclass(frozen=True)
class Operation:
    task_id: str
    func: Callable[..., OpResult]
    input_model: type[BaseModel]
    risk: Risk
    builtin: bool = False  # a session command with no task file (help, exit)

    def run(self, inputs: BaseModel, ctx) -> OpResult:
        return self.func(inputs, ctx)


_REGISTRY: dict[str, Operation] = {}


def operation(task_id: str, *, risk: Risk, builtin: bool = False) -> Callable:
    """Register `func(inputs: Model, ctx: OpContext) -> OpResult` for a task id."""

    def decorate(func: Callable[..., OpResult]) -> Callable[..., OpResult]:
        params = list(inspect.signature(func).parameters)
        hints = get_type_hints(func)
        model = hints.get(params[0]) if params else None
        if not (isinstance(model, type) and issubclass(model, BaseModel)):
            raise TypeError(f"operation {task_id}: first parameter must be annotated with a pydantic model")
        if task_id in _REGISTRY and _REGISTRY[task_id].func is not func:
            raise ValueError(f"operation {task_id} registered twice")
        _REGISTRY[task_id] = Operation(task_id, func, model, risk, builtin)
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

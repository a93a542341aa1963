"""The operation registry: one operation per task, registered under the task id."""

from __future__ import annotations

import importlib
import inspect
import pkgutil
from dataclasses import dataclass
from typing import Callable, Literal, get_type_hints

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


_loaded = False


def load_operations() -> dict[str, Operation]:
    """Import every module in sage_agent.ops (each registers its operations) and return the registry."""
    global _loaded
    if not _loaded:
        import sage_agent.ops as package

        for info in pkgutil.iter_modules(package.__path__):
            if info.name not in ("registry", "result", "context"):
                importlib.import_module(f"sage_agent.ops.{info.name}")
        _loaded = True
    return dict(_REGISTRY)

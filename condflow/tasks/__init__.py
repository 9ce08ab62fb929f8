"""Task registry: each task is a configuration of the same encoder → flow → space model."""

from __future__ import annotations

from condflow.tasks.base import Task

_TASKS: dict[str, str] = {
    "lifting": "condflow.tasks.lifting:LiftingTask",
    "mesh": "condflow.tasks.mesh:MeshTask",
}


def get_task(name: str) -> type[Task]:
    """The :class:`Task` class registered under ``name``."""
    if name not in _TASKS:
        raise ValueError(f"task: unknown task {name!r}; expected one of {sorted(_TASKS)}")
    import importlib

    module, cls = _TASKS[name].split(":")
    return getattr(importlib.import_module(module), cls)


__all__ = ["Task", "get_task"]

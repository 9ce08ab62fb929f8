"""Tasks: each a configuration of the same encoder → flow → space model, registered by name
(:func:`register_task` also takes a user's own :class:`Task` subclass)."""

from __future__ import annotations

from condflow.tasks.base import Task, get_task, load_config, register_task
from condflow.tasks.lifting import LiftingTask
from condflow.tasks.mesh import MeshTask

register_task(LiftingTask)
register_task(MeshTask)

__all__ = ["LiftingTask", "MeshTask", "Task", "get_task", "load_config", "register_task"]

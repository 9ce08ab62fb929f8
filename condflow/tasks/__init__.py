"""Tasks: a configuration's parts (data source, encoder, output space) wired into one model,
objective and evaluation by the family of its output space (:mod:`condflow.tasks.base`)."""

from __future__ import annotations

from condflow.tasks.base import (
    EvalConfig,
    ModelConfig,
    Task,
    describe,
    get_task,
    load_config,
    register_task,
    task_for,
)
from condflow.tasks.joints import JointsTask
from condflow.tasks.smpl import SMPLTask

register_task(JointsTask)
register_task(SMPLTask)

__all__ = [
    "EvalConfig",
    "JointsTask",
    "ModelConfig",
    "SMPLTask",
    "Task",
    "describe",
    "get_task",
    "load_config",
    "register_task",
    "task_for",
]

"""Every task name the Celery app routes or schedules is a task the worker registers (no dead routes)."""

from __future__ import annotations

import worker.tasks  # noqa: F401 - registers the vneid.* tasks on the app
from worker.celery_app import app


def _registered() -> set[str]:
    return {name for name in app.tasks if name.startswith("vneid.")}


def test_every_routed_task_is_registered() -> None:
    routed = set(app.conf.task_routes)
    assert routed, "the app routes its tasks to queues"
    assert routed <= _registered(), f"routes name tasks that do not exist: {sorted(routed - _registered())}"


def test_every_scheduled_task_is_registered() -> None:
    scheduled = {entry["task"] for entry in app.conf.beat_schedule.values()}
    assert scheduled <= _registered(), f"beat schedules missing tasks: {sorted(scheduled - _registered())}"

"""The nightly evidence purge is scheduled exactly when a retention period is configured."""

from __future__ import annotations

from celery.schedules import crontab

from worker.celery_app import celery_config
from worker.config import load_settings


def test_the_purge_runs_nightly_only_with_a_retention_period() -> None:
    assert "evidence-purge" not in celery_config(load_settings())["beat_schedule"]
    config = celery_config(load_settings(delivery={"evidence_retention_days": 3650}))
    entry = config["beat_schedule"]["evidence-purge"]
    assert entry["task"] == "vneid.purge_evidence"
    assert entry["schedule"] == crontab(hour=4, minute=0)
    assert config["task_routes"]["vneid.purge_evidence"] == {"queue": "discovery"}
    assert config["timezone"] == "Asia/Ho_Chi_Minh", "04:00 hospital time"


def test_the_purge_task_is_registered_under_its_scheduled_name() -> None:
    from worker.tasks import app

    assert "vneid.purge_evidence" in app.tasks

"""Celery adapters for participations (periodic maintenance)."""

from __future__ import annotations

from celery import shared_task

from studyapp.participants.timeouts import participations_time_out


@shared_task(
    name="participants.time_out_abandoned", acks_late=True, soft_time_limit=50, time_limit=60
)
def participations_time_out_task() -> int:
    return len(participations_time_out())

"""Celery adapters for participations (periodic maintenance)."""

from __future__ import annotations

import logging

from celery import shared_task
from django.db import InterfaceError, OperationalError

from studyapp.participants.timeouts import participations_time_out

log = logging.getLogger(__name__)


@shared_task(
    name="participants.time_out_abandoned", acks_late=True, soft_time_limit=50, time_limit=60
)
def participations_time_out_task() -> int:
    try:
        return len(participations_time_out())
    except (OperationalError, InterfaceError) as exc:
        # The database is away (a restart, a failover): an expected condition, and the beat
        # runs this again within a minute. One line, not a failed task with its traceback.
        log.warning("timing out abandoned participations skipped: database unavailable (%s)", exc)
        return 0

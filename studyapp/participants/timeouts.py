"""Server-enforced time limits: abandoned participations are marked timed out.

A participation that is not finished is timed out when its last sign of life (heartbeat or
request; its arrival if none) is older than the study file's ``limits.idle_minutes``, or when it
arrived more than ``limits.session_minutes`` ago, whichever comes first. It gets the
``timed_out`` outcome and completion code.

Balance: the assignment code counts completers plus recently active starters, so a timed-out
participation counts for neither; with ``limits.free_slot_on_timeout`` its permuted-block slot
is also handed to the next arrival (``assignment_release``).
"""

from __future__ import annotations

from datetime import datetime, timedelta

from django.db import transaction
from django.db.models import Q
from django.db.models.functions import Coalesce
from django.utils import timezone

from studyapp.participants.assignment import assignment_release
from studyapp.participants.models import Outcome, Participation, Status
from studyapp.participants.selectors import IN_PROGRESS_STATUSES
from studyapp.studies.models import StudyVersion


def _overdue(spec: dict, now: datetime) -> Q | None:
    limits = spec.get("limits") or {}
    overdue = Q()
    if limits.get("idle_minutes"):
        overdue |= Q(activity_at__lt=now - timedelta(minutes=limits["idle_minutes"]))
    if limits.get("session_minutes"):
        overdue |= Q(entered_at__lt=now - timedelta(minutes=limits["session_minutes"]))
    return overdue or None


def participations_time_out(*, now: datetime | None = None) -> list[int]:
    """Time out every overdue participation; returns their primary keys.

    Rows another transaction holds (a participant submitting right now) are skipped until the
    next run, so a last-second submission is never overwritten.
    """
    now = now or timezone.now()
    in_progress = Participation.objects.filter(status__in=IN_PROGRESS_STATUSES)
    versions = StudyVersion.objects.filter(pk__in=in_progress.values("version_id"))
    timed_out: list[int] = []
    for version in versions.order_by("pk"):
        overdue = _overdue(version.spec, now)
        if overdue is None:
            continue
        code = (version.spec.get("completion_codes") or {}).get("timed_out", "")
        with transaction.atomic():
            locked = list(
                in_progress.filter(version=version)
                .alias(activity_at=Coalesce("last_seen_at", "entered_at"))
                .filter(overdue)
                .select_for_update(skip_locked=True)
                .select_related("version")
            )
            for participation in locked:
                participation.status = Status.TIMED_OUT
                participation.outcome = Outcome.TIMED_OUT
                participation.timed_out_at = now
                participation.completion_code = code
            Participation.objects.bulk_update(
                locked, ["status", "outcome", "timed_out_at", "completion_code"]
            )
            for participation in locked:
                assignment_release(participation=participation)
        timed_out += [p.pk for p in locked]
    return timed_out

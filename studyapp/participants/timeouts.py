"""Server-enforced time limits: abandoned participations are marked timed out.

A participation that is not finished is timed out when its participant's last action (consent,
pre-writing, Finish; on the writing page: opening it, any input the heartbeat reports, "I'm
still here"; failing those, the last heartbeat, else the arrival) is older than the study
file's ``limits.idle_minutes``, or when it arrived more than ``limits.session_minutes`` ago,
whichever comes first. It gets the ``timed_out`` outcome and completion code. A periodic job
times out every overdue one; the writing page asks for its own participation
(``participation_time_out_if_overdue``) when its clock runs out.

Balance: the assignment code counts completers plus recently active starters, so a timed-out
participation counts for neither; with ``limits.free_slot_on_timeout`` its permuted-block slot
is also handed to the next arrival (``assignment_release``).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from django.db import transaction
from django.db.models import Q, QuerySet
from django.db.models.functions import Coalesce
from django.utils import timezone

from studyapp.participants.assignment import assignment_release
from studyapp.participants.models import Outcome, Participation, Status
from studyapp.participants.selectors import IN_PROGRESS_STATUSES
from studyapp.studies.models import StudyVersion

# What the idle limit counts from (see the module docstring).
IDLE_SINCE = Coalesce("acted_at", "last_seen_at", "entered_at")


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
        timed_out += _time_out(in_progress.filter(version=version), version.spec, now)
    return timed_out


def participation_time_out_if_overdue(
    *, participation_id: int, now: datetime | None = None
) -> bool:
    """Time out one participation now if it is overdue (the periodic job would, a few minutes
    later); returns whether it is timed out now."""
    now = now or timezone.now()
    participation = Participation.objects.select_related("version").get(pk=participation_id)
    if participation.status == Status.TIMED_OUT:
        return True
    in_progress = Participation.objects.filter(pk=participation_id, status__in=IN_PROGRESS_STATUSES)
    return bool(_time_out(in_progress, participation.version.spec, now))


def _time_out(candidates: QuerySet[Participation], spec: dict, now: datetime) -> list[int]:
    overdue = _overdue(spec, now)
    if overdue is None:
        return []
    code = (spec.get("completion_codes") or {}).get("timed_out", "")
    with transaction.atomic():
        locked = list(
            candidates.alias(activity_at=IDLE_SINCE)
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
    return [p.pk for p in locked]


@dataclass(frozen=True)
class TimeLeft:
    """Seconds until each limit times the participation out (None: the study sets none)."""

    session_s: float | None
    idle_s: float | None

    def public(self) -> dict[str, float | None]:
        rounded = (self.session_s, self.idle_s)
        session, idle = (None if s is None else round(max(s, 0.0), 1) for s in rounded)
        return {"session_s": session, "idle_s": idle}


def time_left(*, participation: Participation, now: datetime | None = None) -> TimeLeft:
    now = now or timezone.now()
    limits = participation.version.spec.get("limits") or {}
    idle_since = participation.acted_at or participation.last_seen_at or participation.entered_at
    session_s = idle_s = None
    if limits.get("session_minutes"):
        ends = participation.entered_at + timedelta(minutes=limits["session_minutes"])
        session_s = (ends - now).total_seconds()
    if limits.get("idle_minutes"):
        ends = idle_since + timedelta(minutes=limits["idle_minutes"])
        idle_s = (ends - now).total_seconds()
    return TimeLeft(session_s=session_s, idle_s=idle_s)


def timeout_reason(*, participation: Participation) -> str:
    """Which limit timed the participation out: "session" or "idle" ("" when not timed out)."""
    if participation.timed_out_at is None:
        return ""
    limits = participation.version.spec.get("limits") or {}
    minutes = limits.get("session_minutes")
    if minutes and participation.timed_out_at >= participation.entered_at + timedelta(
        minutes=minutes
    ):
        return "session"
    return "idle"

"""Reads about participations: who counts towards balance and quota."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from django.db.models import Q, QuerySet
from django.db.models.functions import Coalesce
from django.utils import timezone

from studyapp.participants.models import Participation, Status
from studyapp.studies.models import Study
from studyapp.studies.spec import document_type

IN_PROGRESS_STATUSES = (Status.ENTERED, Status.CONSENTED, Status.WRITING, Status.FINISHED)


def active_window_start(*, spec: dict[str, Any], now: datetime | None = None) -> datetime:
    minutes = spec["assignment"]["active_window_minutes"]
    return (now or timezone.now()) - timedelta(minutes=minutes)


def consent_hold_start(*, spec: dict[str, Any], now: datetime | None = None) -> datetime:
    minutes = spec["limits"].get("consent_hold_minutes") or 0
    return (now or timezone.now()) - timedelta(minutes=minutes)


def consent_present_start(
    *, spec: dict[str, Any], now: datetime | None = None
) -> datetime | None:
    seconds = spec["limits"].get("consent_presence_seconds") or 0
    return (now or timezone.now()) - timedelta(seconds=seconds) if seconds else None


def participations_counting(
    *,
    study: Study,
    since: datetime,
    held_since: datetime | None = None,
    present_since: datetime | None = None,
    simulated: bool = False,
) -> QuerySet[Participation]:
    """Non-test participations that hold a place: completers, and starters active since ``since``.

    A place is held from consent on: an entry link alone holds nothing, since anyone can open
    it with a made-up id. A consented participant who has not begun writing holds it only if
    they consented after ``held_since`` (default ``since``), so click-through places lapse soon,
    and, given ``present_since``, only while their page showed a sign of life (consent, a
    request, a presence report) since then: a burst of consents that are left at once frees its
    places within that time. Starters who went quiet longer ago than ``since`` are presumed gone
    (their place is given to the next arrival, as in oTree/psiTurk); pilots and researcher test
    runs never count.
    ``simulated``: the same count among simulated participants instead, who balance only
    among themselves.
    """
    writing = (Status.WRITING, Status.FINISHED)
    population = Q(is_simulated=True) if simulated else Q(is_test=False)
    consented = Q(status=Status.CONSENTED, consented_at__gte=held_since or since)
    if present_since is not None:
        consented &= Q(consented_at__gte=present_since) | Q(last_seen_at__gte=present_since)
    return (
        Participation.objects.filter(population, study=study)
        .alias(activity_at=Coalesce("last_seen_at", "entered_at"))
        .filter(
            Q(status=Status.COMPLETED) | Q(status__in=writing, activity_at__gte=since) | consented
        )
    )


def _holding_places(*, study: Study, spec: dict[str, Any]) -> QuerySet[Participation]:
    now = timezone.now()
    return participations_counting(
        study=study,
        since=active_window_start(spec=spec, now=now),
        held_since=consent_hold_start(spec=spec, now=now),
        present_since=consent_present_start(spec=spec, now=now),
    )


def participation_holds_place(*, participation: Participation) -> bool:
    """Whether the participation still counts toward the quota (see ``participations_counting``)."""
    spec = participation.version.spec
    return (
        _holding_places(study=participation.study, spec=spec).filter(pk=participation.pk).exists()
    )


def study_is_full(*, study: Study, spec: dict[str, Any]) -> bool:
    quota = spec["limits"].get("quota")
    if not quota:
        return False
    return _holding_places(study=study, spec=spec).count() >= quota


def participation_find(*, study: Study, platform: str, external_id: str) -> Participation | None:
    return (
        Participation.objects.select_related("study", "version", "condition")
        .filter(study=study, platform=platform, external_id=external_id)
        .first()
    )


def prewriting_min_answers(*, spec: dict[str, Any], doc_key: str) -> int:
    """How many questions must be answered (never more than the document type has)."""
    doc = document_type(spec, doc_key) or {"questions": []}
    return min(spec["prewriting"]["min_answers"], len(doc["questions"]))


def prewriting_answer_rule(*, needed: int, total: int) -> str:
    """Which questions to answer, to follow "Answer" or "Please answer" in instructions and
    errors: "all 6 questions", "at least 3 of the 6 questions"."""
    if needed >= total:
        return "the question" if total == 1 else f"all {total} questions"
    if needed <= 0:
        return f"as many of the {total} questions as you like"
    return f"at least {needed} of the {total} questions"

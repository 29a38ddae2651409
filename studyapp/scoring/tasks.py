"""Celery adapters for automatic scoring."""

from __future__ import annotations

from celery import shared_task

from studyapp.participants.models import Participation
from studyapp.scoring.services import (
    JudgeUnavailable,
    document_scores_due,
    documents_score_enqueue,
    participations_unscored,
)

MAX_RETRIES = 4


@shared_task(
    bind=True, name="scoring.score_document", acks_late=True, max_retries=MAX_RETRIES,
    soft_time_limit=5 * 60, time_limit=6 * 60,
)
def document_score_task(self, participation_id: int) -> list[float | None]:
    """Score the document with every judge still owing a score; a judge that cannot be
    reached is retried later (the judges already done are not asked again)."""
    participation = (
        Participation.objects.select_related("version").filter(pk=participation_id).first()
    )
    if participation is None:
        return []
    last_try = self.request.retries >= MAX_RETRIES
    try:
        scores = document_scores_due(participation=participation, record_transient=last_try)
    except JudgeUnavailable as exc:
        raise self.retry(exc=exc, countdown=60 * 2**self.request.retries) from exc
    return [s.score for s in scores]


@shared_task(name="scoring.score_pending", acks_late=True, soft_time_limit=60, time_limit=90)
def documents_score_pending_task() -> int:
    """Periodic: queue every completed document a judge has not scored, or scored with an
    error and attempts left (a bounded batch per run)."""
    return documents_score_enqueue(participation_ids=participations_unscored())

"""Celery adapters for bonuses."""

from __future__ import annotations

from celery import shared_task

from studyapp.participants.models import Participation
from studyapp.payments.services import COMPLETION_REASON, bonus_grant


@shared_task(name="payments.grant_completion", acks_late=True, soft_time_limit=30, time_limit=60)
def bonus_completion_grant_task(participation_id: int) -> str | None:
    """Grant the study's per-completion bonus (if any); safe to run twice."""
    participation = (
        Participation.objects.select_related("version").filter(pk=participation_id).first()
    )
    if participation is None or participation.outcome != "completed" or participation.is_test:
        return None
    amount = (participation.version.spec.get("bonus") or {}).get("per_completion")
    if not amount or float(amount) <= 0:
        return None
    return str(bonus_grant(participation=participation, amount=str(amount),
                           reason=COMPLETION_REASON).amount)

"""Celery adapters for bonuses."""

from __future__ import annotations

import logging

from celery import shared_task
from django.conf import settings

from studyapp.participants.models import Participation
from studyapp.payments.models import ProlificStudy
from studyapp.payments.prolific import ProlificError, prolific_client
from studyapp.payments.prolific_sync import prolific_submissions_import
from studyapp.payments.runs import prolific_run_execute
from studyapp.payments.services import COMPLETION_REASON, bonus_grant

logger = logging.getLogger(__name__)


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


@shared_task(name="payments.prolific_import", acks_late=True, soft_time_limit=120, time_limit=180)
def prolific_import_task() -> dict[str, int]:
    """Periodic: import the submissions of every open study linked to Prolific (no token:
    nothing). Reviewing and paying stay a researcher's decision, from the dashboard."""
    if not settings.PROLIFIC_API_TOKEN:
        return {}
    imported: dict[str, int] = {}
    with prolific_client() as client:
        for link in ProlificStudy.objects.select_related("study").filter(study__is_open=True):
            try:
                report = prolific_submissions_import(study=link.study, client=client)
            except ProlificError as exc:
                logger.warning("Prolific import of %s failed: %s", link.study.slug, exc)
                continue
            imported[link.study.slug] = report.matched
    return imported


# Paying must not be retried blindly: the run's own claim and the ledger decide what is sent.
@shared_task(name="payments.prolific_run", acks_late=True, soft_time_limit=300, time_limit=360)
def prolific_run_task(run_id: int) -> str | None:
    """A dashboard's Prolific request (import, review or pay); a redelivered one that finished
    does nothing."""
    run = prolific_run_execute(run_id=run_id)
    return None if run is None else run.state

"""Celery adapters for exports: take an id, load, call one service."""

from __future__ import annotations

from celery import shared_task

from studyapp.exports.retention import export_files_expire
from studyapp.exports.services import TRANSIENT_ERRORS, export_job_claim, export_job_run


@shared_task(
    name="exports.run_job",
    acks_late=True,
    autoretry_for=TRANSIENT_ERRORS,
    retry_backoff=True,
    max_retries=3,
    soft_time_limit=55 * 60,
    time_limit=60 * 60,
)
def export_job_run_task(job_id: int) -> str:
    # A redelivered message for a finished job (or one another worker runs) does nothing.
    job = export_job_claim(job_id=job_id)
    if job is None:
        return "skipped"
    return export_job_run(job=job).status


@shared_task(name="exports.expire_files", acks_late=True, soft_time_limit=300, time_limit=360)
def export_files_expire_task() -> int:
    return export_files_expire()

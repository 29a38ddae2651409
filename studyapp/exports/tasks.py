"""Celery adapters for exports: take an id, load, call one service."""

from __future__ import annotations

from celery import shared_task

from studyapp.exports.models import ExportJob
from studyapp.exports.services import TRANSIENT_ERRORS, export_job_run


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
    job = ExportJob.objects.select_related("study").filter(pk=job_id).first()
    if job is None:  # deleted while queued
        return "missing"
    return export_job_run(job=job).status

"""Reads for the export panel."""

from __future__ import annotations

from typing import Any

from django.urls import reverse

from studyapp.exports.models import ExportJob, JobStatus
from studyapp.studies.models import Study

RECENT_JOBS = 10


def export_jobs_recent(*, study: Study, limit: int = RECENT_JOBS) -> list[dict[str, Any]]:
    """The study's latest export jobs as JSON-ready dicts (newest first)."""
    jobs = ExportJob.objects.filter(study=study).select_related("study", "requested_by")[:limit]
    return [export_job_json(job) for job in jobs]


def export_job_json(job: ExportJob) -> dict[str, Any]:
    done = job.status == JobStatus.SUCCEEDED
    return {
        "id": job.pk,
        "kind": job.kind,
        "kind_label": job.get_kind_display(),
        "format": job.format,
        "population": job.params.get("filter", {}),
        "status": job.status,
        "progress": round(job.progress, 3),
        "message": job.message,
        "error": job.error,
        "requested_by": job.requested_by.get_username() if job.requested_by else "",
        "created_at": job.created_at.isoformat(),
        "finished_at": job.finished_at.isoformat() if job.finished_at else None,
        "download_url": (
            reverse("exports:download", args=[job.study.slug, job.pk]) if done else None
        ),
        # Offered for every job that may be stuck: the server refuses a run still alive.
        "retry_url": (
            reverse("exports:retry", args=[job.study.slug, job.pk])
            if job.status in (JobStatus.QUEUED, JobStatus.RUNNING, JobStatus.FAILED,
                              JobStatus.CANCELLED) else None
        ),
        "cancel_url": (
            reverse("exports:cancel", args=[job.study.slug, job.pk])
            if job.status in (JobStatus.QUEUED, JobStatus.RUNNING) else None
        ),
    }

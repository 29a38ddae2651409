"""Retention of export files: archives hold participant data and are not kept forever.

``EXPORT_RETENTION_DAYS`` after a job finished, its archive is deleted and the job says so;
anything else left in ``EXPORT_DIR`` that old (the folder of a run that died) goes too.
"""

from __future__ import annotations

import shutil
from datetime import datetime, timedelta
from pathlib import Path

from django.conf import settings
from django.utils import timezone

from studyapp.exports.models import ExportJob, JobStatus
from studyapp.exports.services import export_job_remove


def export_files_expire(*, now: datetime | None = None) -> int:
    """Delete the export files older than the retention period; returns how many went."""
    days = settings.EXPORT_RETENTION_DAYS
    if not days:
        return 0
    cutoff = (now or timezone.now()) - timedelta(days=days)
    expired = ExportJob.objects.filter(status=JobStatus.SUCCEEDED, finished_at__lt=cutoff)
    removed = 0
    for job in expired.select_related("study"):
        export_job_remove(job=job, why=f"older than {days} days")
        removed += 1
    return removed + _stray_files_expire(cutoff)


def _stray_files_expire(cutoff: datetime) -> int:
    root = Path(settings.EXPORT_DIR)
    if not root.is_dir():
        return 0
    kept = {
        Path(p).resolve()
        for p in ExportJob.objects.filter(status=JobStatus.SUCCEEDED).values_list("path", flat=True)
    }
    removed = 0
    for study_dir in (d for d in root.iterdir() if d.is_dir()):
        for entry in study_dir.iterdir():
            if entry.resolve() in kept or entry.stat().st_mtime >= cutoff.timestamp():
                continue
            if entry.is_dir():
                shutil.rmtree(entry, ignore_errors=True)
            else:
                entry.unlink(missing_ok=True)
            removed += 1
    return removed

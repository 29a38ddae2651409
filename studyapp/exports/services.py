"""Export jobs: created from the dashboard, run by a worker, downloaded when done."""

from __future__ import annotations

import contextlib
import logging
import shutil
import time
import zipfile
from collections.abc import Mapping
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.db import InterfaceError, OperationalError, transaction
from django.db.models import Q, QuerySet
from django.db.models.functions import Coalesce
from django.utils import timezone

from studyapp.dashboards.filters import ParticipationFilter
from studyapp.exports.analysis import study_export
from studyapp.exports.datasets.kinds import KINDS, dataset_options_from
from studyapp.exports.datasets.service import DATASET_FORMATS, dataset_export
from studyapp.exports.models import (
    FINISHED_STATUSES,
    ExportFormat,
    ExportJob,
    ExportKind,
    JobStatus,
)
from studyapp.exports.scope import ExportError
from studyapp.studies.models import Study

logger = logging.getLogger(__name__)

# Database trouble is worth a retry by the task; anything else fails the job for good.
TRANSIENT_ERRORS = (OperationalError, InterfaceError)
PROGRESS_MIN_INTERVAL_S = 1.0


class JobCancelled(Exception):
    """The job was cancelled (or claimed by another run) while this run was writing it."""


def _stale_before() -> datetime:
    # A running job silent for this long has lost its worker (progress is written every second).
    return timezone.now() - timedelta(seconds=settings.EXPORT_JOB_STALE_S)


def export_job_create(
    *,
    study: Study,
    kind: str,
    fmt: str,
    participation_filter: ParticipationFilter,
    options: Mapping[str, Any] | None = None,
    requested_by: AbstractBaseUser | None = None,
) -> ExportJob:
    """Queue an export; the worker starts it once this transaction commits."""
    if kind not in ExportKind.values:
        raise ExportError(f"unknown export kind {kind!r}")
    if fmt not in ExportFormat.values:
        raise ExportError(f"unknown format {fmt!r}")
    if kind != ExportKind.ANALYSIS and fmt not in DATASET_FORMATS:
        raise ExportError(f"datasets are written as {' or '.join(DATASET_FORMATS)}")
    if kind in KINDS:
        dataset_options_from(options or {})  # refuse bad options now, not in the worker
    from studyapp.exports.tasks import export_job_run_task

    job = ExportJob.objects.create(
        study=study,
        kind=kind,
        format=fmt,
        params={"filter": participation_filter.as_params(), "options": dict(options or {})},
        requested_by=requested_by if requested_by and requested_by.is_authenticated else None,
    )
    transaction.on_commit(lambda: export_job_run_task.delay(job.pk))
    return job


def _job_dir(job: ExportJob) -> Path:
    return Path(settings.EXPORT_DIR) / job.study.slug / f"{job.study.slug}-{job.kind}-{job.pk}"


def _zip(directory: Path) -> Path:
    archive = directory.with_suffix(".zip")
    with zipfile.ZipFile(archive, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for path in sorted(directory.rglob("*")):
            if path.is_file():
                zf.write(path, arcname=f"{directory.name}/{path.relative_to(directory)}")
    shutil.rmtree(directory)
    return archive


class _ProgressWriter:
    """Writes progress to the job row at most once a second (exports report every few rows)."""

    def __init__(self, job: ExportJob) -> None:
        self.job = job
        self.last = 0.0

    def __call__(self, done: int, total: int, message: str) -> None:
        now = time.monotonic()
        if now - self.last < PROGRESS_MIN_INTERVAL_S and done < total:
            return
        self.last = now
        fraction = min(done / total, 1.0) if total else 1.0
        # Held below 1 until the archive is written.
        updated = _running(self.job).update(
            progress=min(fraction, 0.99), message=message[:300], heartbeat_at=timezone.now()
        )
        if not updated:
            raise JobCancelled(self.job.pk)


def _running(job: ExportJob) -> QuerySet[ExportJob]:
    """The job's row while this run still owns it (cancelling or re-claiming takes it away)."""
    return ExportJob.objects.filter(pk=job.pk, status=JobStatus.RUNNING, started_at=job.started_at)


def export_job_claim(*, job_id: int) -> ExportJob | None:
    """Take a job for one run: a queued one, or a running one whose worker went silent.

    Returns None for a job that is finished (a redelivered message never runs it again), gone,
    or being run right now by another worker.
    """
    with transaction.atomic():
        job = (
            ExportJob.objects.select_for_update(of=("self",)).select_related("study")
            .filter(pk=job_id).first()
        )
        if job is None or job.status in FINISHED_STATUSES:
            return None
        last_sign = job.heartbeat_at or job.started_at
        if job.status == JobStatus.RUNNING and last_sign and last_sign > _stale_before():
            return None
        now = timezone.now()
        job.status, job.started_at, job.heartbeat_at = JobStatus.RUNNING, now, now
        job.progress, job.error, job.message = 0.0, "", "starting"
        job.save(update_fields=["status", "started_at", "heartbeat_at", "progress", "error",
                                "message"])
    return job


def export_job_run(*, job: ExportJob) -> ExportJob:
    """Run a claimed job (``export_job_claim``) to the end; safe to run again from the start.

    Database errors propagate so the task can retry; a cancellation while it runs leaves no
    file; any other error fails the job with its message.
    """
    directory = _job_dir(job)
    try:
        population = ParticipationFilter.from_params(job.params.get("filter") or {})
        progress = _ProgressWriter(job)
        if directory.exists():
            shutil.rmtree(directory)
        if job.kind == ExportKind.ANALYSIS:
            study_export(study=job.study, out_dir=directory, fmt=job.format,
                         participation_filter=population, progress=progress)
        else:
            dataset_export(
                study=job.study, kind=job.kind, out_dir=directory, fmt=job.format,
                participation_filter=population,
                options=dataset_options_from(job.params.get("options") or {}),
                progress=progress,
            )
        archive = _zip(directory)
    except TRANSIENT_ERRORS:
        # Back to the queue, so the task's retry can claim it again.
        with contextlib.suppress(*TRANSIENT_ERRORS):
            _running(job).update(status=JobStatus.QUEUED, message="database error; retrying")
        raise
    except JobCancelled:
        shutil.rmtree(directory, ignore_errors=True)
        job.refresh_from_db()
        return job
    except Exception as exc:
        logger.exception("export job %s failed", job.pk)
        _running(job).update(
            status=JobStatus.FAILED, error=str(exc) or type(exc).__name__,
            finished_at=timezone.now(), message="failed",
        )
        shutil.rmtree(directory, ignore_errors=True)
        job.refresh_from_db()
        return job
    finished = _running(job).update(
        status=JobStatus.SUCCEEDED, progress=1.0, path=str(archive),
        finished_at=timezone.now(), message=f"ready: {archive.name}",
    )
    if not finished:  # cancelled (or its data erased) while the archive was written
        archive.unlink(missing_ok=True)
    job.refresh_from_db()
    return job


def export_job_cancel(*, job: ExportJob) -> bool:
    """Stop a queued or running job; a run in progress notices and leaves no file."""
    return bool(
        ExportJob.objects.filter(pk=job.pk, status__in=(JobStatus.QUEUED, JobStatus.RUNNING))
        .update(status=JobStatus.CANCELLED, finished_at=timezone.now(), message="cancelled")
    )


def export_job_retry(*, job: ExportJob) -> bool:
    """Queue a stuck job again: one queued (its message may be lost), failed, cancelled, or
    running without a sign of life. A job that succeeded is never run again."""
    stale = _stale_before()
    stuck = (
        Q(status__in=(JobStatus.QUEUED, JobStatus.FAILED, JobStatus.CANCELLED))
        | Q(status=JobStatus.RUNNING, last_sign__lt=stale)
        | Q(status=JobStatus.RUNNING, last_sign__isnull=True)
    )
    from studyapp.exports.tasks import export_job_run_task

    with transaction.atomic():
        jobs = ExportJob.objects.alias(last_sign=Coalesce("heartbeat_at", "started_at"))
        requeued = jobs.filter(stuck, pk=job.pk).update(
            status=JobStatus.QUEUED, progress=0.0, error="", message="queued again",
            started_at=None, heartbeat_at=None, finished_at=None,
        )
        if requeued:
            transaction.on_commit(lambda: export_job_run_task.delay(job.pk))
    return bool(requeued)


def export_job_remove(*, job: ExportJob, why: str) -> None:
    """Delete a finished job's archive and say why (retention, an erased participant)."""
    if job.path:
        path = Path(job.path)
        if path.resolve().is_relative_to(Path(settings.EXPORT_DIR).resolve()):
            path.unlink(missing_ok=True)
    ExportJob.objects.filter(pk=job.pk).update(
        status=JobStatus.REMOVED, path="", message=f"file deleted: {why}"[:300]
    )

"""Export jobs: created from the dashboard, run by a worker, downloaded when done."""

from __future__ import annotations

import logging
import shutil
import time
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.db import InterfaceError, OperationalError, transaction
from django.utils import timezone

from studyapp.dashboards.filters import ParticipationFilter
from studyapp.exports.analysis import study_export
from studyapp.exports.datasets.kinds import KINDS, dataset_options_from
from studyapp.exports.datasets.service import DATASET_FORMATS, dataset_export
from studyapp.exports.models import ExportFormat, ExportJob, ExportKind, JobStatus
from studyapp.exports.scope import ExportError
from studyapp.studies.models import Study

logger = logging.getLogger(__name__)

# Database trouble is worth a retry by the task; anything else fails the job for good.
TRANSIENT_ERRORS = (OperationalError, InterfaceError)
PROGRESS_MIN_INTERVAL_S = 1.0


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
        ExportJob.objects.filter(pk=self.job.pk).update(
            progress=min(fraction, 0.99), message=message[:300]
        )


def export_job_run(*, job: ExportJob) -> ExportJob:
    """Run a queued (or interrupted) job to the end; safe to run again from the start.

    Database errors propagate so the task can retry; any other error fails the job with its
    message.
    """
    ExportJob.objects.filter(pk=job.pk).update(
        status=JobStatus.RUNNING, started_at=timezone.now(), progress=0.0, error="",
        message="starting",
    )
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
        ExportJob.objects.filter(pk=job.pk).update(message="database error; retrying")
        raise
    except Exception as exc:
        logger.exception("export job %s failed", job.pk)
        ExportJob.objects.filter(pk=job.pk).update(
            status=JobStatus.FAILED, error=str(exc) or type(exc).__name__,
            finished_at=timezone.now(), message="failed",
        )
        shutil.rmtree(directory, ignore_errors=True)
        job.refresh_from_db()
        return job
    ExportJob.objects.filter(pk=job.pk).update(
        status=JobStatus.SUCCEEDED, progress=1.0, path=str(archive),
        finished_at=timezone.now(), message=f"ready: {archive.name}",
    )
    job.refresh_from_db()
    return job

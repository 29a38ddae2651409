"""Export jobs run once, can be cancelled or retried when stuck, and their files expire."""

import os
from datetime import timedelta
from pathlib import Path

import pytest
from django.utils import timezone

from studyapp.exports.models import ExportJob, JobStatus
from studyapp.exports.retention import export_files_expire
from studyapp.exports.services import (
    export_job_cancel,
    export_job_claim,
    export_job_retry,
    export_job_run,
)
from studyapp.exports.tasks import export_files_expire_task, export_job_run_task

pytestmark = pytest.mark.django_db


@pytest.fixture
def staff_client(client, db):
    from django.contrib.auth import get_user_model

    client.force_login(
        get_user_model().objects.create_user("researcher", password="pw", is_staff=True)
    )
    return client


def _job(study_data, **fields):
    return ExportJob.objects.create(
        study=study_data["version"].study, kind="analysis", format="csv",
        params={"filter": {}}, **fields,
    )


def test_a_redelivered_message_never_runs_a_finished_job_again(study_data, export_dir):
    job = _job(study_data)
    assert export_job_run_task(job.pk) == JobStatus.SUCCEEDED
    job.refresh_from_db()
    archive, finished_at = Path(job.path), job.finished_at
    archive.unlink()  # a re-run would write it again
    assert export_job_run_task(job.pk) == "skipped"
    job.refresh_from_db()
    assert (job.status, job.finished_at, archive.exists()) == (
        JobStatus.SUCCEEDED, finished_at, False)


def test_a_job_another_worker_is_running_is_left_to_it(study_data, export_dir):
    now = timezone.now()
    job = _job(study_data, status=JobStatus.RUNNING, started_at=now, heartbeat_at=now)
    assert export_job_run_task(job.pk) == "skipped"
    job.refresh_from_db()
    assert job.status == JobStatus.RUNNING


def test_a_running_job_whose_worker_went_silent_is_claimed_again(study_data, export_dir, settings):
    silent = timezone.now() - timedelta(seconds=settings.EXPORT_JOB_STALE_S + 5)
    job = _job(study_data, status=JobStatus.RUNNING, started_at=silent, heartbeat_at=silent)
    assert export_job_run_task(job.pk) == JobStatus.SUCCEEDED


def test_a_job_cancelled_while_it_runs_leaves_no_file(study_data, export_dir):
    job = export_job_claim(job_id=_job(study_data).pk)
    assert export_job_cancel(job=job)
    job = export_job_run(job=job)
    assert job.status == JobStatus.CANCELLED
    assert job.path == ""
    assert [p for p in Path(export_dir).rglob("*") if p.is_file()] == []
    assert export_job_run_task(job.pk) == "skipped"


def test_a_job_queued_forever_is_retried_and_runs(
    study_data, export_dir, django_capture_on_commit_callbacks
):
    lost = _job(study_data)  # its message never reached a worker
    with django_capture_on_commit_callbacks(execute=True):
        assert export_job_retry(job=lost)
    lost.refresh_from_db()
    assert lost.status == JobStatus.SUCCEEDED
    assert Path(lost.path).is_file()


def test_a_succeeded_or_live_job_is_not_retried(study_data, export_dir):
    now = timezone.now()
    done = _job(study_data, status=JobStatus.SUCCEEDED, finished_at=now)
    live = _job(study_data, status=JobStatus.RUNNING, started_at=now, heartbeat_at=now)
    assert not export_job_retry(job=done)
    assert not export_job_retry(job=live)
    assert not export_job_cancel(job=done)


def test_staff_retry_and_cancel_from_the_export_panel(
    study_data, export_dir, staff_client, django_capture_on_commit_callbacks
):
    from django.urls import reverse

    stuck = _job(study_data)
    response = staff_client.post(reverse("exports:cancel", args=["demo", stuck.pk]),
                                 HTTP_ACCEPT="application/json")
    assert response.json()["job"]["status"] == JobStatus.CANCELLED
    with django_capture_on_commit_callbacks(execute=True):
        response = staff_client.post(reverse("exports:retry", args=["demo", stuck.pk]),
                                     HTTP_ACCEPT="application/json")
    assert response.json()["job"]["status"] == JobStatus.QUEUED
    stuck.refresh_from_db()
    assert stuck.status == JobStatus.SUCCEEDED
    refused = staff_client.post(reverse("exports:retry", args=["demo", stuck.pk]),
                                HTTP_ACCEPT="application/json")
    assert refused.status_code == 409


def _age(path: Path, days: float) -> None:
    then = (timezone.now() - timedelta(days=days)).timestamp()
    os.utime(path, (then, then))


def test_export_files_older_than_the_retention_period_are_deleted(
    study_data, export_dir, settings
):
    settings.EXPORT_RETENTION_DAYS = 30
    old, recent = _job(study_data), _job(study_data)
    for job in (old, recent):
        export_job_run_task(job.pk)
    ExportJob.objects.filter(pk=old.pk).update(finished_at=timezone.now() - timedelta(days=31))
    stray = Path(export_dir) / "demo" / "demo-analysis-999"
    stray.mkdir()
    (stray / "half.csv").write_text("from a run that died")
    _age(stray, 40)
    assert export_files_expire_task() == 2
    old.refresh_from_db()
    recent.refresh_from_db()
    assert (old.status, old.path) == (JobStatus.REMOVED, "")
    assert "older than 30 days" in old.message
    assert recent.status == JobStatus.SUCCEEDED
    assert Path(recent.path).is_file()
    assert not stray.exists()
    assert sorted(p.name for p in (Path(export_dir) / "demo").iterdir()) == [
        Path(recent.path).name]


def test_retention_zero_keeps_every_file(study_data, export_dir, settings):
    settings.EXPORT_RETENTION_DAYS = 0
    job = _job(study_data)
    export_job_run_task(job.pk)
    ExportJob.objects.filter(pk=job.pk).update(finished_at=timezone.now() - timedelta(days=999))
    assert export_files_expire() == 0
    assert Path(ExportJob.objects.get(pk=job.pk).path).is_file()


def test_a_running_job_without_signs_of_life_is_retried(
    study_data, export_dir, settings, django_capture_on_commit_callbacks
):
    silent = timezone.now() - timedelta(seconds=settings.EXPORT_JOB_STALE_S + 5)
    # One that reported progress long ago, and one from before heartbeats were written.
    jobs = [_job(study_data, status=JobStatus.RUNNING, started_at=silent, heartbeat_at=silent),
            _job(study_data, status=JobStatus.RUNNING, started_at=silent)]
    for job in jobs:
        with django_capture_on_commit_callbacks(execute=True):
            assert export_job_retry(job=job)
        job.refresh_from_db()
        assert job.status == JobStatus.SUCCEEDED

"""An export run by a real Celery worker process over Redis, reporting progress as it goes.

The worker is `celery -A studyapp worker` on the test database, listening on a queue of its
own so it cannot take anyone else's tasks. Every update of the job row is logged by a database
trigger, so the test sees each progress step however fast the export runs.
"""

import os
import subprocess
import sys
import time
import uuid
import zipfile
from pathlib import Path

import pytest
from django.conf import settings
from django.db import connection

from studyapp.celery import app
from studyapp.dashboards.filters import ParticipationFilter
from studyapp.exports.models import ExportJob, JobStatus
from studyapp.exports.tasks import export_job_run_task
from studyapp.studies.services import study_load
from tests.conftest import REFERENCE_STUDY
from tests.exports.builders import conversation_make

REPO = Path(__file__).resolve().parents[2]
LOG_TABLE = "test_export_progress_log"


@pytest.fixture
def progress_log(transactional_db):
    with connection.cursor() as cursor:
        cursor.execute(f"""
            CREATE TABLE {LOG_TABLE} (id serial primary key, status text, progress float8,
                                      message text);
            CREATE FUNCTION {LOG_TABLE}_fn() RETURNS trigger AS $$
            BEGIN
                INSERT INTO {LOG_TABLE} (status, progress, message)
                VALUES (NEW.status, NEW.progress, NEW.message);
                RETURN NEW;
            END $$ LANGUAGE plpgsql;
            CREATE TRIGGER {LOG_TABLE}_tr AFTER UPDATE ON exports_exportjob
                FOR EACH ROW EXECUTE FUNCTION {LOG_TABLE}_fn();
        """)  # noqa: S608 - fixed names
    yield
    with connection.cursor() as cursor:
        cursor.execute(f"""
            DROP TRIGGER IF EXISTS {LOG_TABLE}_tr ON exports_exportjob;
            DROP FUNCTION IF EXISTS {LOG_TABLE}_fn();
            DROP TABLE IF EXISTS {LOG_TABLE};
        """)


@pytest.fixture
def worker(tmp_path, progress_log):
    queue = f"exports-test-{uuid.uuid4().hex[:8]}"
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "studyapp.settings_test",
        "DATABASE_URL": (
            f"postgres://{connection.settings_dict['USER']}@{connection.settings_dict['HOST']}:"
            f"{connection.settings_dict['PORT']}/{connection.settings_dict['NAME']}"
        ),
        "REDIS_URL": settings.REDIS_URL,
        "EXPORT_DIR": str(tmp_path / "exports"),
    }
    log = (tmp_path / "worker.log").open("w")
    process = subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "studyapp", "worker", "--pool", "solo",
         "-Q", queue, "--without-gossip", "--without-mingle", "--without-heartbeat",
         "--loglevel", "INFO"],
        cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT,
    )
    try:
        yield queue, tmp_path / "exports", tmp_path / "worker.log"
    finally:
        process.terminate()
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            process.kill()
        log.close()


def _wait_for(job, seconds, log_path):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        job.refresh_from_db()
        if job.status in {JobStatus.SUCCEEDED, JobStatus.FAILED}:
            return job
        time.sleep(0.2)
    pytest.fail(f"job still {job.status} after {seconds}s; worker log:\n{log_path.read_text()}")


def test_a_real_worker_runs_an_export_and_reports_progress(worker, settings):
    queue, export_dir, log_path = worker
    settings.EXPORT_DIR = export_dir
    version = study_load(text=REFERENCE_STUDY.read_text(), slug="worker-demo",
                         offline=True).version
    for condition in ("base", "proactive_base", "collabllm"):
        conversation_make(version=version, condition=condition, ratings={3: 8, 6: 6, 9: 9})
    job = ExportJob.objects.create(
        study=version.study, kind="analysis", format="parquet",
        params={"filter": ParticipationFilter().as_params()},
    )
    eager = app.conf.task_always_eager
    app.conf.task_always_eager = False
    try:
        result = export_job_run_task.apply_async(args=[job.pk], queue=queue)
        job = _wait_for(job, 90, log_path)
        outcome = result.get(timeout=10)  # travels back through the Redis result backend
    finally:
        app.conf.task_always_eager = eager

    assert job.status == JobStatus.SUCCEEDED, job.error
    assert outcome == "succeeded"
    assert job.progress == 1.0
    assert job.started_at <= job.finished_at
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT status, progress, message FROM {LOG_TABLE} ORDER BY id")  # noqa: S608
        steps = cursor.fetchall()
    assert steps[0][:2] == ("running", 0.0)
    assert steps[-1][:2] == ("succeeded", 1.0)
    running = [progress for status, progress, _ in steps if status == "running"]
    assert running == sorted(running), "progress never goes backwards"
    assert any(0.0 < p < 1.0 for p in running), steps
    assert any("rows written" in message for _, _, message in steps)
    archive = Path(job.path)
    assert archive.parent.parent == export_dir
    names = zipfile.ZipFile(archive).namelist()
    assert any(name.endswith("messages.parquet") for name in names)
    assert f"Task exports.run_job[{result.id}] succeeded" in log_path.read_text()

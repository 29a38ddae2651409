import io
import zipfile

import pytest
from django.contrib.auth import get_user_model
from django.template.loader import render_to_string
from django.test import RequestFactory
from django.urls import reverse

from studyapp.dashboards.filters import ParticipationFilter
from studyapp.exports.models import ExportJob, JobStatus
from studyapp.exports.services import export_job_claim, export_job_run


@pytest.fixture
def staff_client(client, db):
    user = get_user_model().objects.create_user("researcher", password="pw", is_staff=True)
    client.force_login(user)
    return client


def _start(client, capture, **data):
    with capture(execute=True):
        return client.post(
            reverse("exports:start", args=["demo"]), data, HTTP_ACCEPT="application/json"
        )


def _archive_names(client, url):
    response = client.get(url)
    assert response.status_code == 200
    # Streamed from an asynchronous iterator (iterating the response consumes it here).
    assert response.is_async
    body = b"".join(response)
    assert int(response["Content-Length"]) == len(body)
    assert response["Content-Disposition"].startswith("attachment; filename=")
    return zipfile.ZipFile(io.BytesIO(body)).namelist()


def test_staff_start_an_analysis_export_and_download_the_archive(
    study_data, staff_client, export_dir, django_capture_on_commit_callbacks
):
    response = _start(staff_client, django_capture_on_commit_callbacks,
                      kind="analysis", format="csv", view="completers")
    assert response.status_code == 202
    job = ExportJob.objects.get(pk=response.json()["job"]["id"])
    assert job.status == JobStatus.SUCCEEDED
    assert job.progress == 1.0
    assert job.requested_by.username == "researcher"

    status = staff_client.get(reverse("exports:status", args=["demo"])).json()
    listed = status["jobs"][0]
    assert listed["id"] == job.pk
    assert listed["status"] == "succeeded"
    assert listed["population"] == {"include_test": "0", "include_failed_attention": "0",
                                    "view": "completers", "simulated": "exclude",
                                    "version": ""}
    names = _archive_names(staff_client, listed["download_url"])
    assert f"demo-analysis-{job.pk}/messages.csv" in names
    assert f"demo-analysis-{job.pk}/codebook.md" in names


def test_dataset_export_job_uses_the_posted_population_and_options(
    study_data, staff_client, export_dir, django_capture_on_commit_callbacks
):
    response = _start(staff_client, django_capture_on_commit_callbacks,
                      kind="kto", format="parquet", view="itt", include_test="1",
                      include_failed_attention="1", kto_desirable="9")
    job = ExportJob.objects.get(pk=response.json()["job"]["id"])
    assert job.status == JobStatus.SUCCEEDED, job.error
    assert job.params["options"] == {"kto_desirable": "9"}
    assert ParticipationFilter.from_params(job.params["filter"]).include_test is True
    names = _archive_names(staff_client, response.json()["job"]["download_url"] or
                           reverse("exports:download", args=["demo", job.pk]))
    assert {n.split("/")[-1] for n in names} == {"train.parquet", "README.md"}


def test_bad_requests_are_refused_and_queue_nothing(
    study_data, staff_client, export_dir, django_capture_on_commit_callbacks
):
    for data in ({"kind": "sft", "format": "csv"}, {"kind": "nope", "format": "csv"},
                 {"kind": "kto", "format": "jsonl", "kto_desirable": "high"},
                 {"kind": "analysis", "format": "csv", "view": "everyone"}):
        response = _start(staff_client, django_capture_on_commit_callbacks, **data)
        assert response.status_code == 400, data
        assert response.json()["error"]
    assert not ExportJob.objects.exists()


def test_non_staff_cannot_start_see_or_download(study_data, client, export_dir):
    user = get_user_model().objects.create_user("someone", password="pw")
    client.force_login(user)
    response = client.post(reverse("exports:start", args=["demo"]),
                           {"kind": "analysis", "format": "csv"})
    assert response.status_code == 302
    assert "/admin/login/" in response["Location"]
    assert client.get(reverse("exports:status", args=["demo"])).status_code == 302
    assert not ExportJob.objects.exists()


def test_a_failing_export_records_its_error(study_data, export_dir):
    job = ExportJob.objects.create(
        study=study_data["version"].study, kind="analysis", format="csv",
        params={"filter": {"view": "nobody"}},
    )
    job = export_job_run(job=export_job_claim(job_id=job.pk))
    assert job.status == JobStatus.FAILED
    assert "view must be one of" in job.error
    assert job.finished_at is not None


def test_download_refuses_paths_outside_the_export_directory(
    study_data, staff_client, export_dir, tmp_path
):
    outside = tmp_path / "secret.zip"
    outside.write_bytes(b"PK")
    job = ExportJob.objects.create(
        study=study_data["version"].study, kind="analysis", format="csv",
        status=JobStatus.SUCCEEDED, path=str(outside),
    )
    response = staff_client.get(reverse("exports:download", args=["demo", job.pk]))
    assert response.status_code == 404


def test_panel_snippet_renders_the_form_for_the_study(study_data):
    request = RequestFactory().get("/dashboard/demo/")
    html = render_to_string(
        "exports/panel.html", {"study": study_data["version"].study}, request=request
    )
    assert 'action="/dashboard/demo/exports/"' in html
    assert 'data-status-url="/dashboard/demo/exports/status.json"' in html
    assert "csrfmiddlewaretoken" in html
    assert 'value="completers" checked' in html


def test_an_empty_dataset_job_fails_with_why_and_leaves_no_file(
    study_data, staff_client, export_dir, django_capture_on_commit_callbacks
):
    number = study_data["version"].number + 1  # a version nobody took part in
    response = _start(staff_client, django_capture_on_commit_callbacks,
                      kind="sft", format="jsonl", version=str(number))
    job = ExportJob.objects.get(pk=response.json()["job"]["id"])
    assert job.status == JobStatus.FAILED
    assert "the sft dataset would be empty: 0 participants" in job.error
    assert not job.path
    assert not [p for p in export_dir.rglob("*") if p.is_file()]

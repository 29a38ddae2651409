"""Every researcher's access to participant data, and every export, is recorded and listed in
the admin."""

import pytest
from django.contrib.auth import get_user_model
from django.urls import reverse

from studyapp.participants.models import DataAccess

pytestmark = pytest.mark.django_db


@pytest.fixture
def researcher(client, db):
    user = get_user_model().objects.create_superuser("auditee", password="pw")
    client.force_login(user)
    return user


def _log():
    return list(DataAccess.objects.order_by("id").values_list(
        "username", "action", "study_slug", "participation"))


def test_dashboard_views_of_participant_data_are_recorded(
    client, researcher, study_data
):
    p = study_data["counted"][0].participation
    client.get(reverse("dashboards:study", args=["demo"]))
    client.get(reverse("dashboards:conversation", args=["demo", p.public_id]))
    assert _log() == [
        ("auditee", "study_dashboard", "demo", None),
        ("auditee", "conversation", "demo", p.public_id),
    ]
    assert DataAccess.objects.filter(at__isnull=False, user=researcher).count() == 2


def test_exports_and_downloads_are_recorded(
    client, researcher, study_data, export_dir, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        started = client.post(reverse("exports:start", args=["demo"]),
                              {"kind": "analysis", "format": "csv"},
                              HTTP_ACCEPT="application/json")
    job_id = started.json()["job"]["id"]
    response = client.get(reverse("exports:download", args=["demo", job_id]))
    assert response.status_code == 200
    log = DataAccess.objects.order_by("id")
    assert [e.action for e in log] == ["export_started", "export_downloaded"]
    assert f"job {job_id}: analysis csv" in log[0].detail
    assert log[1].detail.startswith(f"job {job_id}: demo-analysis-{job_id}.zip")


def test_the_admin_lists_the_access_log(client, researcher, study_data):
    client.get(reverse("dashboards:study", args=["demo"]))
    page = client.get(reverse("admin:participants_dataaccess_changelist"))
    assert page.status_code == 200
    assert "study_dashboard" in page.content.decode()


def test_admin_views_of_participant_data_are_recorded(client, researcher, study_data):
    p = study_data["counted"][0].participation
    client.get(reverse("admin:writing_message_changelist"))
    client.get(reverse("admin:participants_participation_change", args=[p.pk]))
    client.get(reverse("admin:feedback_surveyresponse_changelist"))
    assert [(e.action, e.detail) for e in DataAccess.objects.order_by("id")] == [
        ("admin_list", "writing.message?"),
        ("admin_record", f"participants.participation {p.pk}"),
        ("admin_list", "feedback.surveyresponse?"),
    ]

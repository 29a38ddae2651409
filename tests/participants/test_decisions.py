"""Researchers exclude participations (for a reason the study file names) or mark them returned,
from the dashboard and the admin; each decision is audited and counted in the flow."""

import pytest
from django.contrib.auth import get_user_model
from django.urls import reverse

from studyapp.dashboards.selectors import study_flow, study_overview
from studyapp.participants.decisions import (
    DecisionRefused,
    participation_exclude,
    participation_mark_returned,
)
from studyapp.participants.models import (
    AllocationSlot,
    DataAccess,
    Outcome,
    Participation,
    Status,
    StatusChange,
)
from tests.exports.builders import conversation_make

pytestmark = pytest.mark.django_db


@pytest.fixture
def staff(db):
    return get_user_model().objects.create_user("researcher", password="pw", is_staff=True)


@pytest.fixture
def staff_client(client, staff):
    client.force_login(staff)
    return client


@pytest.fixture
def completer(demo_version):
    return conversation_make(version=demo_version, condition="base").participation


@pytest.fixture
def writer(demo_version):
    participation = conversation_make(
        version=demo_version, condition="collabllm", status=Status.WRITING
    ).participation
    AllocationSlot.objects.create(version=demo_version, block=1, position=1,
                                  condition=participation.condition, participation=participation)
    return participation


def _flow(participation):
    study = participation.study
    return {a.name: a for a in study_flow(study=study, arms=study_overview(study=study).arms).arms}


def test_exclusion_sets_the_status_and_keeps_who_when_and_why(completer, staff):
    change = participation_exclude(participation=completer, reason="low_effort", note="copy-paste",
                                   by=staff, via="dashboard")
    completer.refresh_from_db()
    assert (completer.status, completer.outcome) == (Status.EXCLUDED, Outcome.EXCLUDED)
    assert completer.excluded_at is not None
    assert (change.from_status, change.to_status, change.reason) == (
        Status.COMPLETED, Status.EXCLUDED, "low_effort")
    assert (change.changed_by, change.via, change.note) == (staff, "dashboard", "copy-paste")
    assert change.changed_at is not None


def test_exclusion_needs_a_reason_the_study_file_names(completer, staff):
    with pytest.raises(DecisionRefused, match="unknown exclusion reason"):
        participation_exclude(participation=completer, reason="did_not_like_them", by=staff,
                              via="dashboard")
    completer.refresh_from_db()
    assert completer.status == Status.COMPLETED
    assert not StatusChange.objects.exists()


def test_a_study_file_names_its_own_exclusion_reasons(completer, staff):
    completer.version.spec["exclusion_reasons"] = [{"key": "bot", "label": "Automated answers"}]
    completer.version.save()
    with pytest.raises(DecisionRefused):
        participation_exclude(participation=completer, reason="low_effort", by=staff, via="admin")
    participation_exclude(participation=completer, reason="bot", by=staff, via="admin")


def test_return_is_for_participations_in_progress_and_frees_their_slot(writer, completer, staff):
    participation_mark_returned(participation=writer, by=staff, via="dashboard")
    writer.refresh_from_db()
    assert (writer.status, writer.outcome) == (Status.RETURNED, Outcome.RETURNED)
    assert writer.returned_at is not None
    assert AllocationSlot.objects.get().participation is None
    with pytest.raises(DecisionRefused, match="in progress"):
        participation_mark_returned(participation=completer, by=staff, via="dashboard")


def test_the_flow_counts_excluded_and_returned(writer, completer, staff):
    assert (_flow(completer)["base"].excluded, _flow(writer)["collabllm"].returned) == (0, 0)
    participation_exclude(participation=completer, reason="duplicate", by=staff, via="admin")
    participation_mark_returned(participation=writer, by=staff, via="admin")
    flow = _flow(completer)
    assert (flow["base"].excluded, flow["base"].completed) == (1, 0)
    assert flow["collabllm"].returned == 1


def test_staff_exclude_and_return_from_the_participation_page(staff_client, writer, completer):
    page = reverse("dashboards:conversation", args=["demo", completer.public_id])
    assert 'value="duplicate"' in staff_client.get(page).content.decode()
    response = staff_client.post(
        reverse("dashboards:decide", args=["demo", completer.public_id]),
        {"decision": "exclude", "reason": "duplicate", "note": "second account"},
    )
    assert response.status_code == 302
    assert response["Location"] == page
    completer.refresh_from_db()
    assert completer.status == Status.EXCLUDED
    staff_client.post(reverse("dashboards:decide", args=["demo", writer.public_id]),
                      {"decision": "return"})
    writer.refresh_from_db()
    assert writer.status == Status.RETURNED
    assert list(StatusChange.objects.values_list("via", flat=True)) == ["dashboard"] * 2
    html = staff_client.get(page).content.decode()
    assert "second account" in html
    assert "researcher" in html
    assert set(DataAccess.objects.values_list("action", flat=True)) >= {
        "excluded", "marked_returned", "conversation"}


def test_a_refused_decision_changes_nothing_and_says_why(staff_client, completer):
    url = reverse("dashboards:decide", args=["demo", completer.public_id])
    response = staff_client.post(url, {"decision": "return"}, follow=True)
    assert "only a participation in progress" in response.content.decode()
    completer.refresh_from_db()
    assert completer.status == Status.COMPLETED


def test_non_staff_cannot_decide(client, completer):
    client.force_login(get_user_model().objects.create_user("someone", password="pw"))
    client.post(reverse("dashboards:decide", args=["demo", completer.public_id]),
                {"decision": "exclude", "reason": "duplicate"})
    completer.refresh_from_db()
    assert completer.status == Status.COMPLETED


def test_admin_excludes_with_a_reason_and_marks_returned(client, writer, completer):
    admin = get_user_model().objects.create_superuser("boss", password="pw")
    client.force_login(admin)
    url = reverse("admin:participants_participation_changelist")
    asked = client.post(url, {"action": "exclude_selected", "_selected_action": [completer.pk]})
    assert asked.status_code == 200
    assert 'value="technical_problem"' in asked.content.decode()
    client.post(url, {"action": "exclude_selected", "_selected_action": [completer.pk],
                      "reason": "technical_problem", "note": "editor froze"})
    client.post(url, {"action": "mark_returned_selected", "_selected_action": [writer.pk]})
    statuses = dict(Participation.objects.values_list("pk", "status"))
    assert statuses == {completer.pk: Status.EXCLUDED, writer.pk: Status.RETURNED}
    change = StatusChange.objects.get(to_status=Status.EXCLUDED)
    assert (change.reason, change.note, change.changed_by, change.via) == (
        "technical_problem", "editor froze", admin, "admin")
    detail = client.get(reverse("admin:participants_participation_change", args=[completer.pk]))
    assert "editor froze" in detail.content.decode()
    # Deleting stays refused; the record points to erasure, the supported route.
    conversation = reverse("dashboards:conversation", args=["demo", completer.public_id])
    assert f'href="{conversation}#manage-h"' in detail.content.decode()
    delete = reverse("admin:participants_participation_delete", args=[completer.pk])
    assert client.get(delete).status_code == 403

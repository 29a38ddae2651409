from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

import pytest
from django.db import connection
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from studyapp.participants.models import Participation, Platform, Status
from studyapp.studies.models import Study
from tests.participants.journey import (
    enter,
    held_participation,
    load_reference,
    mturk_params,
    prolific_params,
    prolific_pid,
    start_writing,
)


def test_prolific_entry_creates_participation_and_sends_to_consent(client, version):
    response = enter(client, "demo", prolific_params("PID1"))
    assert response.status_code == 302
    assert response["Location"] == reverse("participants:consent", args=["demo"])
    participation = Participation.objects.get()
    assert participation.platform == Platform.PROLIFIC
    assert participation.external_id == prolific_pid("PID1")
    assert participation.platform_data == {"STUDY_ID": "study123", "SESSION_ID": "sess-PID1"}
    assert participation.version == version
    assert participation.status == Status.ENTERED
    assert participation.condition is None
    assert not participation.is_test
    assert held_participation(client, "demo") == participation


def test_same_pid_from_a_second_browser_resumes_the_same_participation(version):
    first, second = Client(), Client()
    enter(first, "demo", prolific_params("PID1"))
    response = enter(second, "demo", prolific_params("PID1"))
    assert response.status_code == 302
    assert Participation.objects.count() == 1
    assert held_participation(first, "demo") == held_participation(second, "demo")


def test_a_different_pid_never_sees_the_first_participation(version):
    first, second = Client(), Client()
    enter(first, "demo", prolific_params("PID1"))
    enter(second, "demo", prolific_params("PID2"))
    assert held_participation(first, "demo") != held_participation(second, "demo")
    assert Participation.objects.count() == 2
    # A browser that never entered holds nothing: every step is a 404 pointing to the platform.
    stranger = Client()
    response = stranger.get(reverse("participants:consent", args=["demo"]))
    assert response.status_code == 404
    assert b"link on your recruitment" in response.content


def test_returning_with_a_new_pid_in_the_same_browser_switches_to_that_participation(
    client, version
):
    enter(client, "demo", prolific_params("PID1"))
    enter(client, "demo", prolific_params("PID2"))
    assert held_participation(client, "demo").external_id == prolific_pid("PID2")


def test_missing_parameters_give_a_clear_400_page(client, version):
    response = enter(client, "demo", {"PROLIFIC_PID": prolific_pid("PID1")})
    assert response.status_code == 400
    assert "STUDY_ID" in response.content.decode()
    assert Participation.objects.count() == 0
    response = enter(client, "demo", {})
    assert response.status_code == 400
    assert Participation.objects.count() == 0


def test_unknown_study_is_a_404(client, version):
    response = enter(client, "nope", prolific_params("PID1"))
    assert response.status_code == 404


def test_mturk_preview_stores_nothing_but_the_count(client, version):
    response = enter(client, "demo", {"assignmentId": "ASSIGNMENT_ID_NOT_AVAILABLE",
                                      "hitId": "H1", "turkSubmitTo": "https://www.mturk.com"})
    assert response.status_code == 200
    assert b"preview" in response.content
    assert Participation.objects.count() == 0
    assert Study.objects.get(slug="demo").preview_count == 1
    assert "sessionid" not in response.cookies
    enter(client, "demo", {"assignmentId": "ASSIGNMENT_ID_NOT_AVAILABLE"})
    assert Study.objects.get(slug="demo").preview_count == 2


def test_mturk_accept_creates_participation_with_assignment(client, version):
    response = enter(client, "demo", mturk_params("W1"))
    assert response.status_code == 302
    participation = Participation.objects.get()
    assert participation.platform == Platform.MTURK
    assert participation.external_id == "W1"
    assert participation.platform_data["assignmentId"] == "A-W1"
    assert participation.platform_data["turkSubmitTo"] == "https://workersandbox.mturk.com"


def test_mturk_with_foreign_submit_host_is_refused(client, version):
    response = enter(client, "demo", mturk_params("W1", host="https://attacker.example"))
    assert response.status_code == 400
    assert Participation.objects.count() == 0


def test_pilot_link_makes_a_test_participation(client, db):
    load_reference(allow_pilot=True)
    key = Study.objects.get(slug="demo").pilot_key
    response = enter(client, "demo", {"participant_label": "pilot-1", "pilot_key": key})
    assert response.status_code == 302
    participation = Participation.objects.get()
    assert participation.platform == Platform.PILOT
    assert participation.is_test


def test_pilot_link_is_refused_when_the_study_disallows_it(client, db):
    load_reference(slug="nopilot", allow_pilot=False)
    response = enter(client, "nopilot", {"participant_label": "pilot-1"})
    assert response.status_code == 403
    assert b"test links" in response.content
    assert Participation.objects.count() == 0


def test_closed_study_refuses_newcomers_but_lets_participants_resume(client, version):
    enter(client, "demo", prolific_params("PID1"))
    Study.objects.filter(slug="demo").update(is_open=False)
    response = enter(Client(), "demo", prolific_params("PID2"))
    assert response.status_code == 403
    assert b"closed" in response.content
    assert Participation.objects.count() == 1
    response = enter(Client(), "demo", prolific_params("PID1"))
    assert response.status_code == 302


def test_full_study_refuses_newcomers(db):
    load_reference(slug="small", limits={"quota": 2}, allow_pilot=True)
    study = Study.objects.get(slug="small")
    start_writing(Client(), "small", prolific_params("PID1"))
    start_writing(Client(), "small", prolific_params("PID2"))
    pilot = {"participant_label": "pilot-a", "pilot_key": study.pilot_key}
    start_writing(Client(), "small", pilot)  # test runs never count
    response = enter(Client(), "small", prolific_params("PID3"))
    assert response.status_code == 403
    assert b"full" in response.content
    assert study.participations.filter(is_test=False).count() == 2
    # A starter who went quiet longer than the active window no longer holds a place.
    stale = timezone.now() - timedelta(hours=3)
    pid1 = Participation.objects.filter(external_id=prolific_pid("PID1"))
    pid1.update(entered_at=stale, last_seen_at=stale)
    assert enter(Client(), "small", prolific_params("PID3")).status_code == 302
    # Completers always count.
    pid1.update(status=Status.COMPLETED)
    assert enter(Client(), "small", prolific_params("PID4")).status_code == 403


def test_no_ip_or_user_agent_is_stored(client, version):
    enter(client, "demo", prolific_params("PID1"), )
    participation = Participation.objects.get()
    stored = str(participation.platform_data) + participation.external_id
    assert "127.0.0.1" not in stored
    assert not any(f.name in {"ip", "ip_address", "user_agent"}
                   for f in Participation._meta.fields)


@pytest.mark.django_db(transaction=True)
def test_simultaneous_entries_with_one_pid_make_one_participation():
    load_reference()

    def arrive(_):
        try:
            client = Client()
            response = enter(client, "demo", prolific_params("SAMEPID"))
            assert response.status_code == 302
            return client.session["participation:demo"]
        finally:
            connection.close()

    with ThreadPoolExecutor(max_workers=8) as pool:
        ids = set(pool.map(arrive, range(16)))
    assert len(ids) == 1
    assert Participation.objects.count() == 1

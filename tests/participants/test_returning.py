"""Re-opening a participation: only from the browser that holds it, or with the same session.

The attack: a Prolific id (or an MTurk worker id) alone, from another browser, with made-up
STUDY_ID/SESSION_ID (or assignmentId), must open nothing: not the chat, not the code.
"""

from __future__ import annotations

from django.test import Client
from django.urls import reverse

from studyapp.participants.models import EventKind, ParticipationEvent
from tests.participants.journey import (
    enter,
    held_participation,
    mturk_params,
    prolific_params,
    start_writing,
)

WRITE = reverse("writing:page", args=["demo"])
DONE = reverse("feedback:done", args=["demo"])


def _assert_refused(response) -> None:
    assert response.status_code == 403
    assert b"started elsewhere" in response.content


def test_a_prolific_id_alone_from_another_browser_opens_nothing(version):
    owner = start_writing(Client(), "demo", prolific_params("VICTIM"))
    attacker = Client()
    forged = {**prolific_params("VICTIM"), "SESSION_ID": "0123456789abcdef01234567"}

    _assert_refused(enter(attacker, "demo", forged))
    assert "participation:demo" not in attacker.session
    assert attacker.get(WRITE).status_code == 404
    assert attacker.get(DONE).status_code == 404
    event = ParticipationEvent.objects.get(participation=owner)
    assert event.kind == EventKind.REFUSED_RETURN


def test_the_same_session_id_with_another_study_id_is_refused(version):
    start_writing(Client(), "demo", prolific_params("VICTIM"))
    forged = {**prolific_params("VICTIM"), "STUDY_ID": "another-study"}
    _assert_refused(enter(Client(), "demo", forged))


def test_the_same_browser_comes_back_whatever_the_link_carries(version):
    client = Client()
    owner = start_writing(client, "demo", prolific_params("OWNER"))
    again = {**prolific_params("OWNER"), "SESSION_ID": "a-new-session"}
    response = enter(client, "demo", again)
    assert response.status_code == 302
    assert response["Location"] == WRITE
    assert held_participation(client, "demo") == owner


def test_another_browser_with_the_same_session_ids_resumes(version):
    owner = start_writing(Client(), "demo", prolific_params("OWNER"))
    phone = Client()
    response = enter(phone, "demo", prolific_params("OWNER"))
    assert response.status_code == 302
    assert held_participation(phone, "demo") == owner
    assert phone.get(WRITE).status_code == 200


def test_an_mturk_worker_id_with_another_assignment_from_another_browser_is_refused(version):
    owner = start_writing(Client(), "demo", mturk_params("W1"))
    _assert_refused(enter(Client(), "demo", {**mturk_params("W1"), "assignmentId": "A-forged"}))
    owner.refresh_from_db()
    assert owner.platform_data["assignmentId"] == "A-W1"


def test_an_mturk_worker_with_the_same_assignment_resumes_from_another_browser(version):
    owner = start_writing(Client(), "demo", mturk_params("W1"))
    other = Client()
    assert enter(other, "demo", mturk_params("W1")).status_code == 302
    assert held_participation(other, "demo") == owner

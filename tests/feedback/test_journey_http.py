"""The whole journey over HTTP, as a participant's browser drives it (chat turns recorded
directly: the co-writing page has its own tests)."""

from django.urls import reverse

from studyapp.feedback.models import FINAL_TURN, Rating
from studyapp.participants.models import Outcome, Status
from tests.participants.journey import (
    consent_data,
    enter,
    final_data,
    held_participation,
    prewriting_data,
    prolific_params,
    record_turns,
)


def test_prolific_participant_walks_from_entry_to_the_completion_redirect(client, version):
    response = enter(client, "demo", prolific_params("PIDJOURNEY"))
    response = client.get(response["Location"])
    assert response.status_code == 200
    participation = held_participation(client, "demo")
    response = client.post(response.request["PATH_INFO"], consent_data(version))
    response = client.get(response["Location"])
    assert response.status_code == 200
    participation.refresh_from_db()
    response = client.post(response.request["PATH_INFO"], prewriting_data(participation))
    assert response["Location"] == reverse("writing:page", args=["demo"])
    record_turns(participation, 8, draft=True)
    response = client.post(reverse("feedback:finish", args=["demo"]))
    response = client.get(response["Location"])
    assert response.status_code == 200
    response = client.post(response.request["PATH_INFO"], final_data())
    response = client.get(response["Location"])
    assert response["Location"].endswith("?cc=C1A2B3CD")
    participation.refresh_from_db()
    assert participation.status == Status.COMPLETED
    assert participation.outcome == Outcome.COMPLETED
    assert participation.completed_at > participation.finished_at > participation.writing_at
    assert participation.writing_at > participation.consented_at > participation.entered_at
    assert Rating.objects.filter(participation=participation).count() == 4
    assert Rating.objects.filter(participation=participation, turn=FINAL_TURN).count() == 2

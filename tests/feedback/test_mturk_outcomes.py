"""MTurk workers who decline or time out are asked to return the HIT: nothing is submitted."""

from __future__ import annotations

from django.urls import reverse

from studyapp.participants.models import Outcome, Participation, Status
from tests.participants.journey import consent_data, enter, mturk_params

CONSENT = reverse("participants:consent", args=["demo"])
DONE = reverse("feedback:done", args=["demo"])


def _assert_asked_to_return(page: str) -> None:
    assert "return this HIT" in page
    assert "externalSubmit" not in page
    assert "<form" not in page
    assert "NOCONSENT" not in page
    assert "TIMEDOUT" not in page


def test_declining_consent_asks_the_worker_to_return_the_hit(client, version):
    enter(client, "demo", mturk_params("W1"))
    response = client.post(CONSENT, {**consent_data(version), "decision": "decline"}, follow=True)
    assert response.status_code == 200
    assert Participation.objects.get().outcome == Outcome.DECLINED
    _assert_asked_to_return(response.content.decode())


def test_a_timed_out_worker_is_asked_to_return_the_hit(client, version):
    enter(client, "demo", mturk_params("W1"))
    Participation.objects.update(status=Status.TIMED_OUT, outcome=Outcome.TIMED_OUT)
    response = client.get(DONE)
    assert response.status_code == 200
    _assert_asked_to_return(response.content.decode())
    assert "expired" in response.content.decode()

"""An id opened first from another browser binds nothing until someone consents.

The attack: someone who knows a person's Prolific id opens the study link first with made-up
STUDY_ID/SESSION_ID. The real person's own link (other session ids, another browser) must still
get them in, and the first browser must lose its hold; once consent is given, the id is bound.
"""

from __future__ import annotations

import pytest
from django.test import Client
from django.urls import reverse

from studyapp.participants.models import EventKind, Participation, ParticipationEvent, Status
from studyapp.participants.services import ParticipationTakenOver, participation_consent
from studyapp.participants.timeouts import participations_time_out
from tests.participants.journey import consent_data, enter, held_participation, prolific_params

CONSENT = reverse("participants:consent", args=["demo"])
FORGED = {**prolific_params("VICTIM"), "STUDY_ID": "made-up", "SESSION_ID": "made-up-too"}


def _events(participation: Participation) -> list[str]:
    return list(participation.events.order_by("at").values_list("kind", flat=True))


def test_the_real_person_takes_over_an_id_opened_first_elsewhere(version):
    squatter, real = Client(), Client()
    assert enter(squatter, "demo", FORGED).status_code == 302
    first = held_participation(squatter, "demo")

    response = enter(real, "demo", prolific_params("VICTIM"))
    assert response.status_code == 302
    assert response["Location"] == CONSENT
    mine = held_participation(real, "demo")
    assert mine.pk == first.pk
    assert mine.platform_data["SESSION_ID"] == "sess-VICTIM"
    assert _events(mine) == [EventKind.TAKEN_OVER]
    # The first browser's hold is gone: it can neither see nor consent.
    assert squatter.get(CONSENT).status_code == 404
    assert squatter.post(CONSENT, consent_data(version)).status_code == 404
    assert real.post(CONSENT, consent_data(version)).status_code == 302


def test_once_consented_the_id_is_bound_to_that_browser(version):
    squatter = Client()
    enter(squatter, "demo", FORGED)
    assert squatter.post(CONSENT, consent_data(version)).status_code == 302

    response = enter(Client(), "demo", prolific_params("VICTIM"))
    assert response.status_code == 403
    assert b"started elsewhere" in response.content
    bound = held_participation(squatter, "demo")
    assert bound.status == Status.CONSENTED
    assert _events(bound) == [EventKind.REFUSED_RETURN]


def test_a_consent_loaded_before_the_take_over_is_refused(version):
    squatter = Client()
    enter(squatter, "demo", FORGED)
    stale = held_participation(squatter, "demo")  # what the squatter's consent POST loaded
    enter(Client(), "demo", prolific_params("VICTIM"))

    with pytest.raises(ParticipationTakenOver):
        participation_consent(participation=stale, agreed=range(10))
    assert Participation.objects.get(pk=stale.pk).status == Status.ENTERED


def test_a_decline_by_the_first_browser_does_not_lock_the_real_person_out(version):
    squatter = Client()
    enter(squatter, "demo", FORGED)
    squatter.post(CONSENT, {"decision": "decline"})
    assert held_participation(squatter, "demo").status == Status.DECLINED

    real = Client()
    assert enter(real, "demo", prolific_params("VICTIM"))["Location"] == CONSENT
    reopened = held_participation(real, "demo")
    assert (reopened.status, reopened.outcome, reopened.completion_code) == ("entered", "", "")
    assert real.post(CONSENT, consent_data(version)).status_code == 302


def test_an_abandoned_entry_that_timed_out_is_taken_over(version):
    squatter = Client()
    enter(squatter, "demo", FORGED)
    Participation.objects.update(entered_at="2020-01-01T00:00:00Z")
    assert participations_time_out()

    real = Client()
    assert enter(real, "demo", prolific_params("VICTIM"))["Location"] == CONSENT
    assert held_participation(real, "demo").status == Status.ENTERED
    assert ParticipationEvent.objects.filter(kind=EventKind.TAKEN_OVER).count() == 1

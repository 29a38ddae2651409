"""Quota places are held from consent on, and lapse soon for those who never begin writing.

Each test plays the cheapest way to fill a study without taking part: entry links with
made-up (but Prolific-shaped) ids, and consents that never go on to the writing step.
"""

from __future__ import annotations

import secrets
from datetime import timedelta

from django.test import Client
from django.urls import reverse
from django.utils import timezone

from studyapp.participants.models import Participation, Status
from tests.participants.journey import (
    consent_data,
    enter,
    held_participation,
    load_reference,
    prewriting_data,
    prolific_params,
)

CONSENT = reverse("participants:consent", args=["small"])
PREWRITING = reverse("participants:prewriting", args=["small"])


def _made_up() -> dict[str, str]:
    return {
        "PROLIFIC_PID": secrets.token_hex(12),
        "STUDY_ID": secrets.token_hex(12),
        "SESSION_ID": secrets.token_hex(12),
    }


def _consent(client: Client, params: dict[str, str]):
    enter(client, "small", params)
    return client.post(CONSENT, consent_data(held_participation(client, "small").version))


def _write(client: Client) -> None:
    response = client.post(PREWRITING, prewriting_data(held_participation(client, "small")))
    assert response.status_code == 302
    assert response["Location"] == reverse("writing:page", args=["small"])


def test_entry_links_with_made_up_ids_hold_no_place(db):
    load_reference(slug="small", limits={"quota": 2})
    for _ in range(2):
        assert enter(Client(), "small", _made_up()).status_code == 302

    real = Client()
    assert _consent(real, prolific_params("REAL")).status_code == 302
    _write(real)
    assert held_participation(real, "small").status == Status.WRITING


def test_consents_that_never_begin_writing_release_their_place_soon(db):
    version = load_reference(slug="small", limits={"quota": 2})
    for _ in range(2):
        assert _consent(Client(), _made_up()).status_code == 302
    assert enter(Client(), "small", prolific_params("REAL")).status_code == 403

    hold = version.spec["limits"]["consent_hold_minutes"]
    lapsed = timezone.now() - timedelta(minutes=hold + 1)
    Participation.objects.filter(status=Status.CONSENTED).update(consented_at=lapsed)
    real = Client()
    assert _consent(real, prolific_params("REAL")).status_code == 302
    _write(real)


def test_consent_takes_the_place_so_the_last_one_goes_to_one_participant(db):
    load_reference(slug="small", limits={"quota": 1})
    first, second = Client(), Client()
    assert enter(first, "small", prolific_params("A")).status_code == 302
    assert enter(second, "small", prolific_params("B")).status_code == 302

    assert _consent(first, prolific_params("A")).status_code == 302
    response = _consent(second, prolific_params("B"))
    assert response.status_code == 403
    assert b"This study is full" in response.content
    late = held_participation(second, "small")
    assert late.status == Status.ENTERED
    assert late.condition is None


def test_a_consented_participant_holds_the_place_against_newcomers(db):
    load_reference(slug="small", limits={"quota": 1})
    honest = Client()
    _consent(honest, prolific_params("HONEST"))
    assert enter(Client(), "small", prolific_params("LATE")).status_code == 403
    _write(honest)  # still within the hold: the place is still theirs
    assert enter(Client(), "small", prolific_params("LATE")).status_code == 403


def test_a_lapsed_place_is_taken_again_at_pre_writing_only_if_there_is_room(db):
    version = load_reference(slug="small", limits={"quota": 1})
    slow, other = Client(), Client()
    _consent(slow, prolific_params("SLOW"))
    hold = version.spec["limits"]["consent_hold_minutes"]
    lapsed = timezone.now() - timedelta(minutes=hold + 1)
    Participation.objects.filter(status=Status.CONSENTED).update(consented_at=lapsed)
    _consent(other, prolific_params("OTHER"))
    _write(other)

    response = slow.post(PREWRITING, prewriting_data(held_participation(slow, "small")))
    assert response.status_code == 403
    assert b"This study is full" in response.content
    assert held_participation(slow, "small").status == Status.CONSENTED


def test_a_lapsed_place_is_taken_again_when_there_is_room(db):
    version = load_reference(slug="small", limits={"quota": 2})
    slow = Client()
    _consent(slow, prolific_params("SLOW"))
    hold = version.spec["limits"]["consent_hold_minutes"]
    lapsed = timezone.now() - timedelta(minutes=hold + 1)
    Participation.objects.filter(status=Status.CONSENTED).update(consented_at=lapsed)
    _write(slow)


def _quiet(version) -> None:
    """Every consent so far, and its page's last sign of life, just past the presence limit."""
    then = timezone.now() - timedelta(
        seconds=version.spec["limits"]["consent_presence_seconds"] + 1
    )
    Participation.objects.filter(status=Status.CONSENTED).update(
        consented_at=then, last_seen_at=then
    )


def test_a_consent_whose_page_went_quiet_frees_its_place(db):
    version = load_reference(slug="small", limits={"quota": 1})
    assert _consent(Client(), _made_up()).status_code == 302
    _quiet(version)
    real = Client()
    assert _consent(real, prolific_params("REAL")).status_code == 302
    _write(real)


def test_a_consent_whose_page_reports_keeps_its_place(db):
    version = load_reference(slug="small", limits={"quota": 1})
    honest = Client()
    _consent(honest, prolific_params("HONEST"))
    _quiet(version)
    assert honest.post(reverse("participants:presence", args=["small"])).status_code == 204
    assert enter(Client(), "small", prolific_params("LATE")).status_code == 403
    _write(honest)


def test_opening_the_pre_writing_page_is_a_sign_of_life(db):
    version = load_reference(slug="small", limits={"quota": 1})
    honest = Client()
    _consent(honest, prolific_params("HONEST"))
    _quiet(version)
    assert honest.get(PREWRITING).status_code == 200
    assert enter(Client(), "small", prolific_params("LATE")).status_code == 403


def test_a_study_file_can_hold_consent_places_without_presence(db):
    version = load_reference(slug="small", limits={"quota": 1, "consent_presence_seconds": 0})
    _consent(Client(), _made_up())
    then = timezone.now() - timedelta(minutes=5)
    Participation.objects.filter(status=Status.CONSENTED).update(consented_at=then)
    assert version.spec["limits"]["consent_hold_minutes"] > 5
    assert enter(Client(), "small", prolific_params("LATE")).status_code == 403


def test_a_presence_report_without_a_participation_is_not_found(db):
    load_reference(slug="small")
    assert Client().post(reverse("participants:presence", args=["small"])).status_code == 404

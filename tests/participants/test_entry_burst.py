"""A burst of fake entries cannot lock real participants out of a small study.

300 entry links with made-up, Prolific-shaped ids come from 60 addresses (the per-address
limits on, at their defaults); every tenth also consents and then leaves. A consent holds a
quota place only while its page shows signs of life (``limits.consent_presence_seconds``), so
once the fakes have gone quiet that long, the next real participant gets in, while an honest
participant who consented before the burst and keeps the page open keeps their place.
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
PRESENCE = reverse("participants:presence", args=["small"])
PREWRITING = reverse("participants:prewriting", args=["small"])
FAKES, ADDRESSES = 300, 60


def _made_up() -> dict[str, str]:
    return {
        "PROLIFIC_PID": secrets.token_hex(12),
        "STUDY_ID": secrets.token_hex(12),
        "SESSION_ID": secrets.token_hex(12),
    }


def _burst(version) -> None:
    prefix = f"10.{secrets.randbelow(256)}.{secrets.randbelow(256)}"
    for n in range(FAKES):
        fake = Client(REMOTE_ADDR=f"{prefix}.{n % ADDRESSES + 1}")
        entered = enter(fake, "small", _made_up()).status_code
        assert entered in (302, 403)  # 403: full, while the fakes' consents hold every place
        if entered == 302 and n % 10 == 0:
            assert fake.post(CONSENT, consent_data(version)).status_code in (302, 403)


def _go_quiet(seconds: int) -> None:
    """Every consent so far, and its last sign of life, ``seconds`` ago."""
    then = timezone.now() - timedelta(seconds=seconds)
    Participation.objects.filter(status=Status.CONSENTED).update(
        consented_at=then, last_seen_at=then
    )


def test_a_real_participant_gets_in_after_a_burst_of_fake_entries(db, settings):
    settings.RATELIMIT_ENABLE = True
    version = load_reference(slug="small", limits={"quota": 3})
    honest = Client(REMOTE_ADDR="192.0.2.10")
    enter(honest, "small", prolific_params("HONEST"))
    assert honest.post(CONSENT, consent_data(version)).status_code == 302

    _burst(version)
    assert Participation.objects.filter(status=Status.CONSENTED).count() == 3
    # While the fakes' pages could still be open, their consents hold the places.
    assert enter(Client(REMOTE_ADDR="192.0.2.30"), "small", _made_up()).status_code == 403

    quiet = version.spec["limits"]["consent_presence_seconds"] + 1
    _go_quiet(quiet)
    assert honest.post(PRESENCE).status_code == 204  # the honest page still reports

    real = Client(REMOTE_ADDR="192.0.2.20")
    assert enter(real, "small", prolific_params("REAL")).status_code == 302
    assert real.post(CONSENT, consent_data(version)).status_code == 302
    response = real.post(PREWRITING, prewriting_data(held_participation(real, "small")))
    assert response["Location"] == reverse("writing:page", args=["small"])
    response = honest.post(PREWRITING, prewriting_data(held_participation(honest, "small")))
    assert response["Location"] == reverse("writing:page", args=["small"])

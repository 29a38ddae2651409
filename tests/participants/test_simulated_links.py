"""Simulated participants' links: only the study's simulation key marks a participation as
simulated; simulated participations take no quota place and balance only among themselves."""

from __future__ import annotations

from collections import Counter

from django.contrib.auth import get_user_model
from django.test import Client

from studyapp.participants.models import AllocationSlot, Participation
from studyapp.studies.models import Study
from tests.participants.journey import (
    consent_data,
    enter,
    held_participation,
    load_reference,
    prolific_params,
)


def _sim_params(label: str) -> dict[str, str]:
    key = Study.objects.get(slug="demo").simulation_key
    return {"simulated_label": label, "simulation_key": key}


def _consent(client: Client, version) -> Participation:
    client.post("/study/demo/consent/", consent_data(version))
    return held_participation(client, "demo")


def test_a_simulated_link_without_the_key_is_refused_even_for_staff(client, db):
    load_reference()
    staff = get_user_model().objects.create_user("lab", password="x", is_staff=True)
    client.force_login(staff)
    for params in ({"simulated_label": "s1"}, {"simulated_label": "s1", "simulation_key": "x"}):
        response = enter(client, "demo", params)
        assert response.status_code == 403
        assert b"simulation key" in response.content
    assert not Participation.objects.exists()


def test_the_pilot_key_does_not_open_a_simulated_link(client, db):
    load_reference(allow_pilot=True)
    pilot_key = Study.objects.get(slug="demo").pilot_key
    response = enter(client, "demo", {"simulated_label": "s1", "simulation_key": pilot_key})
    assert response.status_code == 403


def test_a_simulated_link_with_the_key_enters_a_simulated_test_run(client, db):
    load_reference()  # pilot links off: simulation still works on the real study
    assert enter(client, "demo", _sim_params("s1")).status_code == 302
    participation = held_participation(client, "demo")
    assert participation.is_simulated
    assert participation.is_test
    assert participation.platform == "simulated"


def test_simulated_participants_take_no_quota_place(db):
    version = load_reference(limits={"quota": 1})
    for i in range(3):
        client = Client()
        enter(client, "demo", _sim_params(f"s{i}"))
        assert _consent(client, version).condition is not None
    real = Client()
    enter(real, "demo", prolific_params("real-1"))
    assert _consent(real, version).condition is not None  # the one place is still free


def test_simulated_participants_are_balanced_among_themselves_apart_from_real_ones(db):
    version = load_reference()
    real = Client()
    enter(real, "demo", prolific_params("real-1"))
    first_real = _consent(real, version)
    arms = Counter()
    for i in range(6):
        client = Client()
        enter(client, "demo", _sim_params(f"s{i}"))
        arms[_consent(client, version).condition.name] += 1
    assert sorted(arms.values()) == [2, 2, 2]
    # The real participant's block is untouched: the next real arrival takes its next slot.
    real_slots = AllocationSlot.objects.filter(version=version, simulated=False)
    assert real_slots.filter(participation__isnull=False).get().participation == first_real
    assert AllocationSlot.objects.filter(simulated=True, participation__isnull=False).count() == 6

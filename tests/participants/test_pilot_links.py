"""Pilot links: off in the reference study; when a study allows them, they need its pilot key
(or a staff login)."""

from __future__ import annotations

import yaml
from django.contrib.auth import get_user_model
from django.test import Client

from studyapp.participants.models import Participation
from studyapp.studies.models import Study
from studyapp.studies.spec import parse_study_file
from tests.conftest import REFERENCE_STUDY
from tests.participants.journey import enter, load_reference


def _key() -> str:
    return Study.objects.get(slug="demo").pilot_key


def test_the_reference_study_allows_no_pilot_links():
    assert parse_study_file(REFERENCE_STUDY.read_text())["allow_pilot"] is False
    assert yaml.safe_load(REFERENCE_STUDY.read_text())["allow_pilot"] is False


def test_the_reference_study_refuses_a_pilot_link_even_with_the_key(client, version):
    response = enter(client, "demo", {"participant_label": "pilot-1", "pilot_key": _key()})
    assert response.status_code == 403
    assert b"test links" in response.content
    assert not Participation.objects.exists()


def test_a_pilot_link_without_the_key_is_refused(client, db):
    load_reference(allow_pilot=True)
    for params in (
        {"participant_label": "pilot-1"},
        {"participant_label": "pilot-1", "pilot_key": "guess"},
    ):
        response = enter(client, "demo", params)
        assert response.status_code == 403
        assert b"pilot key" in response.content
    assert not Participation.objects.exists()


def test_a_resumed_pilot_link_still_needs_the_key(db):
    load_reference(allow_pilot=True)
    enter(Client(), "demo", {"participant_label": "pilot-1", "pilot_key": _key()})
    assert enter(Client(), "demo", {"participant_label": "pilot-1"}).status_code == 403


def test_a_staff_login_opens_a_pilot_link_without_the_key(client, db):
    load_reference(allow_pilot=True)
    staff = get_user_model().objects.create_user("lab", password="x", is_staff=True)
    client.force_login(staff)
    assert enter(client, "demo", {"participant_label": "pilot-1"}).status_code == 302
    assert Participation.objects.get().is_test


def test_each_study_has_its_own_pilot_key(db):
    load_reference(slug="one")
    load_reference(slug="two")
    keys = set(Study.objects.values_list("pilot_key", flat=True))
    assert len(keys) == 2
    assert all(len(k) >= 20 for k in keys)


def test_the_offline_demo_keeps_pilot_links(client, demo_version):
    assert demo_version.spec["allow_pilot"] is True
    response = enter(client, "demo", {"participant_label": "demo-1", "pilot_key": _key()})
    assert response.status_code == 302

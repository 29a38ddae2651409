"""Entry links opened and consent forms sent are limited per client address.

Past the limit an address gets a 429 page that says to wait (with ``Retry-After``); other
addresses are not affected. The counters hold no address: only a hash keyed by SECRET_KEY,
for one window of the rate.
"""

from __future__ import annotations

import logging
import secrets

import pytest
import redis
from django.test import Client, override_settings
from django.urls import reverse

from studyapp.clientlimits import address_key
from studyapp.participants.models import Participation
from tests.participants.journey import consent_data, enter, prolific_pid

CONSENT = reverse("participants:consent", args=["demo"])


def _address() -> str:
    return f"10.{secrets.randbelow(256)}.{secrets.randbelow(256)}.{secrets.randbelow(254) + 1}"


def _link() -> dict[str, str]:
    return {
        "PROLIFIC_PID": prolific_pid(secrets.token_hex(4)),
        "STUDY_ID": "study123",
        "SESSION_ID": secrets.token_hex(12),
    }


@pytest.fixture
def limited(settings):
    settings.RATELIMIT_ENABLE = True
    settings.ENTRY_RATE_LIMIT = "3/m"
    settings.CONSENT_RATE_LIMIT = "2/m"


def test_entries_past_the_limit_from_one_address_get_a_page_that_says_to_wait(limited, version):
    address = _address()
    for _ in range(3):
        assert enter(Client(REMOTE_ADDR=address), "demo", _link()).status_code == 302

    response = enter(Client(REMOTE_ADDR=address), "demo", _link())
    assert response.status_code == 429
    assert 1 <= int(response["Retry-After"]) <= 60
    assert b"Too many attempts from your network" in response.content
    assert Participation.objects.count() == 3
    assert enter(Client(REMOTE_ADDR=_address()), "demo", _link()).status_code == 302


def test_consents_past_the_limit_from_one_address_are_refused(limited, version):
    address = _address()
    browsers = [Client(REMOTE_ADDR=address) for _ in range(3)]
    for browser in browsers:
        assert enter(browser, "demo", _link()).status_code == 302
    for browser in browsers[:2]:
        assert browser.post(CONSENT, consent_data(version)).status_code == 302

    response = browsers[2].post(CONSENT, consent_data(version))
    assert response.status_code == 429
    assert b"Too many attempts from your network" in response.content
    assert browsers[2].get(CONSENT).status_code == 200  # reading the page is not counted
    assert Participation.objects.filter(consented_at__isnull=False).count() == 2


def test_a_counter_names_no_address_and_ends_with_its_window(limited, version, caplog, settings):
    settings.RATELIMIT_CACHE_PREFIX = prefix = f"rl-{secrets.token_hex(4)}:"  # this test's keys
    address = _address()
    client = Client(REMOTE_ADDR=address)
    with caplog.at_level(logging.DEBUG):
        for _ in range(4):
            enter(client, "demo", _link())
    store = redis.Redis.from_url(settings.REDIS_URL)
    keys = [k.decode() for k in store.scan_iter(f"collabstudy:*{prefix}*")]
    assert len(keys) == 1
    assert not any(address in k for k in keys)
    assert all(0 < store.ttl(k) <= 60 + 5 for k in keys)
    assert address not in caplog.text


def test_the_counter_key_is_keyed_by_the_secret_key():
    key = address_key("203.0.113.7")
    assert "203.0.113.7" not in key
    with override_settings(SECRET_KEY="another-deployment-" + "x" * 40):
        assert address_key("203.0.113.7") != key
    assert address_key("203.0.113.8") != key

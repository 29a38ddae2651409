"""Fixtures of the Prolific tests: the loopback Prolific API and a logged-in researcher."""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model

from tests.payments.prolific_fake import TOKEN, FakeProlific


@pytest.fixture
def fake(settings):
    with FakeProlific().running() as server:
        settings.PROLIFIC_API_TOKEN = TOKEN
        settings.PROLIFIC_API_URL = server.url
        yield server


@pytest.fixture
def staff(client):
    user = get_user_model().objects.create_user("researcher", password="pw", is_staff=True)
    client.force_login(user)
    return client

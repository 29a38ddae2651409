"""The researchers' login is throttled: wrong passwords lock the account out from that address."""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.test import Client

pytestmark = pytest.mark.django_db

PASSWORD = "right-password-123"


@pytest.fixture
def researcher() -> str:
    get_user_model().objects.create_superuser("researcher", "r@example.org", PASSWORD)
    return "researcher"


def _login(client: Client, username: str, password: str) -> int:
    response = client.post(
        "/admin/login/?next=/admin/", {"username": username, "password": password}
    )
    return response.status_code


def test_wrong_passwords_lock_the_login_out_even_for_the_right_one(researcher: str) -> None:
    client = Client()
    statuses = [_login(client, researcher, f"guess-{n}") for n in range(30)]
    assert statuses[0] == 200  # the form again, with its error
    assert statuses[-1] == 429
    assert _login(client, researcher, PASSWORD) == 429
    assert "_auth_user_id" not in client.session


def test_a_reset_lets_the_right_password_in_again(researcher: str) -> None:
    client = Client()
    for n in range(30):
        _login(client, researcher, f"guess-{n}")
    call_command("axes_reset", verbosity=0)
    assert _login(client, researcher, PASSWORD) == 302
    assert client.session["_auth_user_id"]


def test_the_right_password_logs_in_before_any_lockout(researcher: str) -> None:
    client = Client()
    assert _login(client, researcher, "one-wrong-guess") == 200
    assert _login(client, researcher, PASSWORD) == 302

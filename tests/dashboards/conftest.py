import pytest
from django.contrib.auth import get_user_model

from tests.dashboards.builders import build_known_study


@pytest.fixture
def staff_client(client, db):
    user = get_user_model().objects.create_user("researcher", password="pw", is_staff=True)
    client.force_login(user)
    return client


@pytest.fixture
def known(db):
    return build_known_study()

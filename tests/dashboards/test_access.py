"""Only staff see dashboards; everyone else is sent to the admin login."""

import uuid

import pytest
from django.contrib.auth import get_user_model
from django.urls import reverse

from tests.factories import StudyVersionFactory


@pytest.fixture
def urls(db):
    study = StudyVersionFactory().study
    return [
        reverse("dashboards:index"),
        reverse("dashboards:study", args=[study.slug]),
        reverse("dashboards:monitor", args=[study.slug]),
        reverse("dashboards:conversation", args=[study.slug, uuid.uuid4()]),
        reverse("dashboards:plotly_js"),
    ]


def test_anonymous_visitors_are_sent_to_the_admin_login(client, urls):
    for url in urls:
        response = client.get(url)
        assert response.status_code == 302, url
        assert response["Location"].startswith("/admin/login/?next="), url


def test_logged_in_non_staff_users_are_sent_to_the_admin_login(client, urls):
    user = get_user_model().objects.create_user("worker", password="pw")
    client.force_login(user)
    for url in urls:
        response = client.get(url)
        assert response.status_code == 302, url
        assert response["Location"].startswith("/admin/login/"), url


def test_staff_see_the_pages(staff_client, urls):
    index, study, monitor, conversation, _plotly_js = urls
    assert staff_client.get(index).status_code == 200
    assert staff_client.get(study).status_code == 200
    assert staff_client.get(monitor)["Content-Type"] == "application/json"
    assert staff_client.get(conversation).status_code == 404  # unknown participation
    assert staff_client.get(reverse("dashboards:study", args=["no-such-study"])).status_code == 404


def test_plotly_is_served_from_the_installed_package(staff_client, urls):
    from pathlib import Path

    import plotly

    response = staff_client.get(urls[-1])
    shipped = (Path(plotly.__file__).parent / "package_data" / "plotly.min.js").read_bytes()
    assert response.status_code == 200
    assert response.content == shipped
    again = staff_client.get(urls[-1], HTTP_IF_NONE_MATCH=response["ETag"])
    assert again.status_code == 304


def test_study_page_loads_plotly_locally_not_from_a_cdn(staff_client, urls):
    html = staff_client.get(urls[1]).content.decode()
    assert f'src="{urls[-1]}"' in html
    assert "cdn" not in html.lower()


def test_a_bad_filter_parameter_is_a_400(staff_client, urls):
    assert staff_client.get(urls[1], {"view": "everyone"}).status_code == 400


def test_plotly_is_served_gzipped_to_browsers_that_accept_it(staff_client, urls):
    import gzip
    from pathlib import Path

    import plotly

    shipped = (Path(plotly.__file__).parent / "package_data" / "plotly.min.js").read_bytes()
    response = staff_client.get(urls[-1], HTTP_ACCEPT_ENCODING="gzip, deflate, br")
    assert response["Content-Encoding"] == "gzip"
    assert "Accept-Encoding" in response["Vary"]
    assert len(response.content) < len(shipped) / 3
    assert gzip.decompress(response.content) == shipped
    again = staff_client.get(urls[-1], HTTP_ACCEPT_ENCODING="gzip",
                             HTTP_IF_NONE_MATCH=response["ETag"])
    assert again.status_code == 304
    plain = staff_client.get(urls[-1], HTTP_IF_NONE_MATCH=response["ETag"])
    assert plain.status_code == 200
    assert not plain.has_header("Content-Encoding")

"""Every page names an icon that exists, so browsers do not log a 404 for /favicon.ico."""

from pathlib import Path

from django.contrib.staticfiles import finders
from django.urls import reverse

ICON_LINK = '<link rel="icon" href="/static/favicon.svg" type="image/svg+xml">'


def test_the_icon_is_a_static_svg():
    path = finders.find("favicon.svg")
    assert path is not None
    svg = Path(path).read_text()
    assert svg.startswith('<svg xmlns="http://www.w3.org/2000/svg"')
    assert svg.rstrip().endswith("</svg>")


def test_participant_and_dashboard_pages_link_the_icon(client, admin_client, db):
    assert ICON_LINK in client.get("/no-such-page/").content.decode()
    assert ICON_LINK in admin_client.get(reverse("dashboards:index")).content.decode()


def test_favicon_ico_redirects_to_the_icon(client, db):
    response = client.get("/favicon.ico")
    assert response.status_code == 302
    assert response["Location"] == "/static/favicon.svg"

"""MTurk's iframe: named sites may frame the study, with cookies a framed page gets back."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from django.test import override_settings

pytestmark = pytest.mark.django_db

MTURK = ["https://worker.mturk.com", "https://workersandbox.mturk.com"]


def test_by_default_no_other_site_may_frame_the_study(client):
    response = client.get("/")
    assert response["X-Frame-Options"] == "DENY"
    assert "frame-ancestors" not in response["Content-Security-Policy"]


@override_settings(FRAME_ANCESTORS=MTURK)
def test_named_sites_may_frame_the_study_and_no_others(client):
    response = client.get("/study/demo/?workerId=W1&assignmentId=ASSIGNMENT_ID_NOT_AVAILABLE")
    assert "X-Frame-Options" not in response
    assert (
        "frame-ancestors 'self' https://worker.mturk.com https://workersandbox.mturk.com"
    ) in response["Content-Security-Policy"]


@override_settings(FRAME_ANCESTORS=MTURK)
def test_researchers_pages_stay_unframeable(client):
    for path in ("/dashboard/", "/admin/login/"):
        response = client.get(path)
        assert response["X-Frame-Options"] == "DENY", path
        assert "frame-ancestors" not in response["Content-Security-Policy"], path


def _cookie_settings(env: dict[str, str]) -> dict[str, object]:
    code = (
        "import json; from django.conf import settings as s; names = ('SESSION_COOKIE_SAMESITE',"
        " 'CSRF_COOKIE_SAMESITE', 'SESSION_COOKIE_SECURE', 'CSRF_COOKIE_SECURE',"
        " 'FRAME_ANCESTORS');"
        " print(json.dumps({k: getattr(s, k) for k in names}))"
    )
    base = {k: v for k, v in os.environ.items() if k != "FRAME_ANCESTORS"}
    out = subprocess.run(
        [sys.executable, "-c", code],
        env={**base, "DJANGO_SETTINGS_MODULE": "studyapp.settings", **env},
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(out.stdout)


def test_framing_makes_the_cookies_samesite_none_and_secure():
    framed = _cookie_settings({"FRAME_ANCESTORS": ",".join(MTURK)})
    assert framed == {
        "SESSION_COOKIE_SAMESITE": "None",
        "CSRF_COOKIE_SAMESITE": "None",
        "SESSION_COOKIE_SECURE": True,
        "CSRF_COOKIE_SECURE": True,
        "FRAME_ANCESTORS": MTURK,
    }
    plain = _cookie_settings({})
    assert plain["SESSION_COOKIE_SAMESITE"] == "Lax"
    assert plain["SESSION_COOKIE_SECURE"] is False

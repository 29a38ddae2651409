import io

import pytest
from django.contrib.auth import authenticate, get_user_model
from django.core.management import CommandError, call_command
from django.test import RequestFactory


def _login_request():
    """The request a login comes with: the login throttle needs one."""
    return RequestFactory().post("/admin/login/")


def _run(**options) -> str:
    out = io.StringIO()
    call_command("demo_setup", stdout=out, **options)
    return out.getvalue()


def test_creates_the_researcher_and_prints_the_links(demo_version, monkeypatch):
    monkeypatch.delenv("DEMO_PASSWORD", raising=False)
    output = _run(host="127.0.0.1", port=8123)
    user = get_user_model().objects.get(username="researcher")
    assert user.is_staff
    assert user.is_superuser
    assert authenticate(_login_request(), username="researcher", password="collabstudy") == user
    assert "researcher / collabstudy" in output
    assert "http://127.0.0.1:8123/study/demo/?participant_label=demo-" in output
    assert "http://127.0.0.1:8123/study/demo/?PROLIFIC_PID=" in output
    assert "http://127.0.0.1:8123/dashboard/" in output
    assert "http://127.0.0.1:8123/admin/" in output


def test_running_again_keeps_one_login_and_honours_demo_password(version, monkeypatch):
    _run()
    monkeypatch.setenv("DEMO_PASSWORD", "another-secret")
    output = _run()
    assert get_user_model().objects.filter(username="researcher").count() == 1
    request = _login_request()
    assert authenticate(request, username="researcher", password="another-secret") is not None
    assert "another-secret" in output


def test_the_printed_links_work(demo_version, client):
    output = _run()
    pilot = next(w for w in output.split() if "participant_label=" in w)
    prolific = next(w for w in output.split() if "PROLIFIC_PID=" in w)
    for link in (pilot, prolific):
        path = link.removeprefix("http://127.0.0.1:8000")
        response = client.get(path)
        assert response.status_code == 302, link
        assert response["Location"] == "/study/demo/consent/"


def test_without_the_demo_study_it_says_what_to_do(db):
    with pytest.raises(CommandError, match="load_study"):
        _run()


def test_without_pilot_links_none_is_printed(version):
    output = _run()
    assert "participant_label=" not in output
    assert "does not allow pilot links" in output

"""The consent says no IP address is stored: a real server's logs carry no client address, no
platform id and no socket token.

uvicorn serves ``studyapp.asgi:application`` as the README runs it (access log on, INFO), and a
client on a loopback address of its own (127.0.0.2) opens entry links and a socket; then the
server's whole output is read.
"""

from __future__ import annotations

import contextlib
import logging
import secrets
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from django.conf import settings
from websockets.exceptions import InvalidStatus
from websockets.sync.client import connect

from studyapp.logprivacy import PrivacyFilter
from studyapp.participants.models import Participation
from studyapp.participants.tokens import participation_token
from studyapp.simulation.server import app_served, database_url

CLIENT_IP = "127.0.0.2"


@pytest.fixture
def server(demo_version, tmp_path: Path) -> Iterator[tuple[str, Path]]:
    log = tmp_path / "server.log"
    env = {
        "DJANGO_SETTINGS_MODULE": "tests.writing.server_settings",
        "DATABASE_URL": database_url(),
        "REDIS_URL": settings.REDIS_URL,
        "SECRET_KEY": settings.SECRET_KEY,
        "LOG_LEVEL": "INFO",
    }
    options = ["--ws-per-message-deflate", "false"]  # the access log stays on, at INFO
    with app_served(
        env=env, options=options, log=log, start_timeout_s=40, stop_timeout_s=15
    ) as base:
        yield base, log


def _log_settled(log: Path, needle: str) -> str:
    deadline = time.monotonic() + 10
    while needle not in (text := log.read_text()) and time.monotonic() < deadline:
        time.sleep(0.1)
    return text


@pytest.mark.django_db(transaction=True)
def test_a_real_servers_log_has_no_client_address_platform_id_or_token(server):
    base, log = server
    pid, study, session = (secrets.token_hex(12) for _ in range(3))
    worker, assignment = f"W{secrets.token_hex(6)}", f"A{secrets.token_hex(6)}"
    with httpx.Client(base_url=base, transport=httpx.HTTPTransport(local_address=CLIENT_IP)) as c:
        entry = c.get(
            "/study/demo/", params={"PROLIFIC_PID": pid, "STUDY_ID": study, "SESSION_ID": session}
        )
        assert entry.status_code == 302
        mturk = {
            "workerId": worker,
            "assignmentId": assignment,
            "hitId": "H1",
            "turkSubmitTo": "https://www.mturk.com",
        }
        assert c.get("/study/demo/", params=mturk).status_code == 302
    token = participation_token(public_id=str(Participation.objects.get(external_id=pid).public_id))
    ws_url = base.replace("http", "ws") + f"/ws/study/demo/?token={token}"
    with (
        contextlib.suppress(InvalidStatus),
        connect(ws_url, origin=base, source_address=(CLIENT_IP, 0), open_timeout=10) as ws,
    ):
        ws.close()

    text = _log_settled(log, "WebSocket /ws/study/demo/")
    assert "GET /study/demo/?PROLIFIC_PID=[redacted]&STUDY_ID=[redacted]" in text, text
    assert "WebSocket /ws/study/demo/?token=[redacted]" in text, text
    for secret in (CLIENT_IP, pid, study, session, worker, assignment, token):
        assert secret not in text, (secret, text)


def _record(msg: str, *args: object) -> logging.LogRecord:
    return logging.LogRecord("django.server", logging.INFO, __file__, 1, msg, args, None)


def test_the_filter_redacts_django_request_lines_and_keeps_harmless_parameters():
    record = _record(
        '"%s" %s %s', "GET /study/x/?participant_label=p1&pilot_key=k&page=2 HTTP/1.1", 302, 0
    )
    assert PrivacyFilter().filter(record)
    line = record.getMessage()
    assert "p1" not in line
    assert "=k" not in line
    assert "page=2" in line


def test_the_filter_replaces_peer_addresses_of_either_family():
    for peer in ("203.0.113.7:51234", ("203.0.113.7", 51234), "2001:db8::1:443"):
        record = _record("%s - connected", peer)
        PrivacyFilter().filter(record)
        assert record.getMessage() == "- - connected"

"""The stored kind of a failed reply's error (studyapp/writing/errorkinds.py)."""

import pytest

from studyapp.writing.errorkinds import error_kind


@pytest.mark.parametrize(
    ("error", "kind"),
    [
        ("", ""),
        ("ServerStopping: the server stopped before the reply ended", "server_lost"),
        ("the server process streaming the reply stopped before the reply ended", "server_lost"),
        ("TimeoutError: no end after 120 s", "server_lost"),
        ("ReadTimeout: timed out", "timeout"),
        ("ConnectError: [Errno 111] Connection refused", "connect"),
        ("HTTP 429 from the model server", "http_4xx"),
        ("HTTP 503 from the model server", "http_5xx"),
        ("no response field in the JSON reply", "blinding"),
        ("model error", "other"),
    ],
)
def test_each_error_text_gets_its_kind(error, kind):
    assert error_kind(error) == kind

"""Every documented way to serve the app bounds its graceful shutdown: a connection whose
handler never ends must not keep a stopping process alive until it is killed."""

from __future__ import annotations

import re

import pytest

from tests.conftest import REPO

SERVE = re.compile(r"uvicorn studyapp\.asgi:application(?:[^\n]*\\\n)*[^\n]*")


@pytest.mark.parametrize("name", ["README.md", "Makefile"])
def test_the_documented_uvicorn_command_bounds_graceful_shutdown(name: str) -> None:
    commands = SERVE.findall((REPO / name).read_text())
    assert commands
    for command in commands:
        assert re.search(r"--timeout-graceful-shutdown \d+", command), command

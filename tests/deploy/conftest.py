"""The writing tests' live servers, for the restore drill."""

from tests.writing.conftest import live_server_processes, live_servers  # noqa: F401

"""Fixtures for the writing page: participations on the demo study, sockets, live servers."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from channels.db import database_sync_to_async
from channels.testing.websocket import WebsocketCommunicator
from django.conf import settings
from django.db import connection

from studyapp.participants.tokens import participation_token
from studyapp.realtime import framebus, generations
from studyapp.simulation.server import app_start, app_stop, free_port, port_wait
from studyapp.simulation.server import database_url as _database_url
from tests.factories import ParticipationFactory

ORIGIN = b"http://127.0.0.1"
# Every name a participant must never see: condition names, backends, model names.
CONDITION_NAMES = ("base", "proactive_base", "collabllm")
REMOTE_MODEL = "meta-llama/Llama-3.1-8B-Instruct"


def make_participation(version, condition_name: str = "base", **fields: Any):
    condition = version.conditions.get(name=condition_name)
    return ParticipationFactory(
        version=version,
        condition=condition,
        document_type="blog_post",
        topic="Travelling on a tight budget",
        **fields,
    )


def participation_on(version, condition):
    """A participation on the writing step, assigned to ``condition``."""
    participation = make_participation(version)
    participation.condition = condition
    participation.save(update_fields=["condition"])
    return participation


def remote_condition(version, endpoint: str, *, name: str = "remote"):
    """A condition served by an OpenAI-compatible server at ``endpoint`` (no retries)."""
    from studyapp.studies.models import Condition

    config = {
        "name": name,
        "backend": "openai",
        "endpoints": [endpoint],
        "model": REMOTE_MODEL,
        "response_format": "text",
        "sampling": {"temperature": 0.8, "top_p": 1.0, "max_tokens": 256},
        "timeouts": {"connect": 2, "first_token": 5, "between_tokens": 5, "total": 30},
        "retries": 0,
    }
    return Condition.objects.create(version=version, name=name, backend="openai", config=config)


@pytest.fixture
async def clean_transport() -> AsyncIterator[None]:
    """Model servers start healthy and no HTTP client outlives the test."""
    from collab_models.openai_backend import reset_health
    from collab_models.transport import aclose_client

    reset_health()
    yield
    await aclose_client()
    reset_health()


def token_for(participation) -> str:
    return participation_token(public_id=str(participation.public_id))


class Client:
    """A WebsocketCommunicator that keeps every frame it received (for leak scans)."""

    def __init__(self, communicator: WebsocketCommunicator) -> None:
        self.comm = communicator
        self.frames: list[dict[str, Any]] = []
        self.raw: list[str] = []

    async def send(self, frame: dict[str, Any] | str) -> None:
        text = frame if isinstance(frame, str) else json.dumps(frame)
        await self.comm.send_to(text_data=text)

    async def recv(self, wait_s: float = 10) -> dict[str, Any]:
        text = await self.comm.receive_from(timeout=wait_s)
        self.raw.append(text)
        frame = json.loads(text)
        self.frames.append(frame)
        return frame

    async def until(
        self, predicate: Callable[[dict[str, Any]], bool], wait_s: float = 15
    ) -> list[dict[str, Any]]:
        """Frames received up to and including the first that satisfies ``predicate``."""
        got: list[dict[str, Any]] = []
        deadline = time.monotonic() + wait_s
        while True:
            frame = await self.recv(wait_s=max(0.1, deadline - time.monotonic()))
            got.append(frame)
            if predicate(frame):
                return got

    async def until_type(self, kind: str, wait_s: float = 15) -> list[dict[str, Any]]:
        return await self.until(lambda f: f["type"] == kind, wait_s)

    async def hello(self, last_seq: int | None = None) -> dict[str, Any]:
        await self.send({"type": "hello", "last_seq": last_seq, "focused": True})
        state = await self.recv()
        assert state["type"] == "state", state
        return state

    async def error(self, frame: dict[str, Any] | str) -> dict[str, Any]:
        await self.send(frame)
        return (await self.until_type("error"))[-1]

    async def turn(self, text: str, msg_id: str | None = None) -> list[dict[str, Any]]:
        """Send a message and return the frames up to its turn_end/turn_error."""
        frame = {"type": "send", "text": text}
        if msg_id:
            frame["client_msg_id"] = msg_id
        await self.send(frame)
        return await self.until(lambda f: f["type"] in ("turn_end", "turn_error"))

    async def close(self) -> None:
        await self.comm.disconnect()


async def open_client(slug: str, token: str, *, hello: bool = True) -> tuple[Client, Any]:
    from studyapp.asgi import application

    path = f"/ws/study/{slug}/?token={token}"
    communicator = WebsocketCommunicator(application, path, headers=[(b"origin", ORIGIN)])
    connected, _ = await communicator.connect(timeout=10)
    assert connected
    client = Client(communicator)
    state = await client.hello() if hello else None
    return client, state


@pytest.fixture
async def drain_generations() -> AsyncIterator[None]:
    """Leave no generation of this test running into the next one."""
    yield
    assert await generations.generations_wait(20), "a generation did not end"
    # The bus's subscription belongs to this test's event loop, which closes now.
    await framebus.close()


@pytest.fixture
def writer(demo_version):
    """A participation on the writing step of the demo study (offline arm "base")."""
    return make_participation(demo_version)


async def db(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    return await database_sync_to_async(fn)(*args, **kwargs)


# -- live ASGI servers ------------------------------------------------------------------------
def database_address() -> tuple[str, int]:
    cfg = connection.settings_dict
    return cfg["HOST"] or "127.0.0.1", int(cfg["PORT"] or 5432)


# As the documented command: long enough to finish sending replies, bounded if one never ends.
GRACEFUL_S = 30


class LiveServer:
    """``uvicorn studyapp.asgi:application`` in a subprocess on the test database and Redis;
    ``overrides`` sets more of its environment (settings such as ``SHUTDOWN_DRAIN_S``)."""

    def __init__(
        self,
        tokens_per_second: int,
        *,
        log: Path | None = None,
        log_level: str = "WARNING",
        database_url: str | None = None,
        **overrides: str,
    ) -> None:
        """``log``: a file for the server's output (else this process's own);
        ``database_url``: the test database by another way (a proxy)."""
        self.port = free_port()
        self.log = log
        self.url = f"http://127.0.0.1:{self.port}"
        self.ws_url = f"ws://127.0.0.1:{self.port}"
        env = {
            "DJANGO_SETTINGS_MODULE": "tests.writing.server_settings",
            "DATABASE_URL": database_url or _database_url(),
            "REDIS_URL": settings.REDIS_URL,
            "SECRET_KEY": settings.SECRET_KEY,
            "OFFLINE_TOKENS_PER_SECOND": str(tokens_per_second),
            "LOG_LEVEL": log_level,
            **overrides,
        }
        options = [
            "--no-access-log", "--log-level", "warning",
            "--timeout-graceful-shutdown", str(GRACEFUL_S),
        ]  # fmt: skip
        self.proc = app_start(port=self.port, env=env, options=options, log=log)

    def wait_ready(self, timeout: float = 40) -> None:
        port_wait(self.proc, self.port, timeout)

    def stop(self) -> None:
        """SIGTERM, as a deploy sends it: the server must end its graceful shutdown itself
        (a socket whose consumer never ends would hold it up)."""
        if not app_stop(self.proc, timeout_s=15):
            raise AssertionError("uvicorn did not shut down within 15 s of SIGTERM")


@pytest.fixture(scope="session")
def live_server_processes(django_db_setup, django_db_blocker) -> Iterator[list[LiveServer]]:
    """Two ASGI processes sharing the test database and Redis, streaming slowly (25 tokens/s)
    so that a test can act in the middle of a reply."""
    servers = [LiveServer(tokens_per_second=25) for _ in range(2)]
    try:
        for server in servers:
            server.wait_ready()
        yield servers
    finally:
        for server in servers:
            server.stop()


@pytest.fixture
def live_servers(transactional_db, live_server_processes) -> Iterator[list[LiveServer]]:
    """The live servers for one test, which ends only once they hold no transaction open.

    They outlive the test, and a socket the test closed still writes as it disconnects; a
    flush (TRUNCATE of every table) racing those writes can deadlock and fail the test."""
    yield live_server_processes
    wait_database_quiet()


def wait_database_quiet(wait_s: float = 15, settled_s: float = 0.3) -> None:
    """Until no other session on the test database has been in a transaction for
    ``settled_s`` (or ``wait_s`` has passed: the flush then takes its chances)."""
    if connection.vendor != "postgresql":
        return
    deadline = time.monotonic() + wait_s
    quiet_since = time.monotonic()
    while time.monotonic() < deadline:
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
                " AND pid <> pg_backend_pid() AND xact_start IS NOT NULL"
            )
            (busy,) = cursor.fetchone()
        if busy:
            quiet_since = time.monotonic()
        elif time.monotonic() - quiet_since >= settled_s:
            return
        time.sleep(0.05)


def ws_origin(server: LiveServer) -> str:
    return server.url


async def wait_for(predicate: Callable[[], Any], wait_s: float = 10) -> Any:
    deadline = time.monotonic() + wait_s
    while time.monotonic() < deadline:
        value = await predicate() if asyncio.iscoroutinefunction(predicate) else predicate()
        if value:
            return value
        await asyncio.sleep(0.05)
    raise AssertionError("condition not met in time")


# -- alternative replies (side-by-side pairs, regenerations) ----------------------------------
def study_version(extra: str = "", slug: str = "pairs"):
    """The reference study on the offline backend with ``extra`` YAML appended, as ``slug``."""
    from studyapp.studies.services import study_load
    from tests.conftest import REFERENCE_STUDY

    text = REFERENCE_STUDY.read_text() + "\n" + extra
    return study_load(text=text, slug=slug, offline=True).version


def remote_participation(version, endpoint: str):
    """A participation whose arm is an OpenAI-compatible server at ``endpoint`` (a FakeVLLM)."""
    return participation_on(version, remote_condition(version, endpoint))


@pytest.fixture
async def fake_vllm(clean_transport) -> AsyncIterator[Any]:
    """A FakeVLLM in this test's event loop (replies as fast as they can be read)."""
    from tests.collab_models.vllm_fake import FakeVLLM

    async with FakeVLLM(tps=0) as fake:
        yield fake
        await generations.generations_wait(20)  # nothing may still be reading from it


@pytest.fixture
def private_redis(tmp_path, monkeypatch):
    """A Redis server of the test's own, which it may stop and restart, as the frame store."""
    from studyapp.realtime import framestore
    from studyapp.realtime.framestore import RedisFrameStore
    from tests.writing.private_redis import PrivateRedis

    server = PrivateRedis(tmp_path)
    server.start()
    monkeypatch.setattr(framestore, "_store", RedisFrameStore(server.url))
    yield server
    server.stop()

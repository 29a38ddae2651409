"""The signed token is the only credential, and it reaches exactly one participation."""

from __future__ import annotations

import json

import pytest
from channels.testing.websocket import WebsocketCommunicator

from studyapp.asgi import application
from studyapp.participants.models import Status
from studyapp.writing.protocol import CLOSE_NOT_WRITING, CLOSE_UNAUTHORIZED
from tests.factories import StudyVersionFactory
from tests.writing.conftest import ORIGIN, db, make_participation, open_client, token_for

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.usefixtures("drain_generations"),
]


async def _refused(path: str) -> tuple[dict, int]:
    """Connect, expect one error frame and a close; return both."""
    communicator = WebsocketCommunicator(application, path, headers=[(b"origin", ORIGIN)])
    connected, _ = await communicator.connect(timeout=10)
    assert connected  # accepted so that the page can read why it is turned away
    frame = json.loads(await communicator.receive_from(timeout=5))
    closed = await communicator.receive_output(timeout=5)
    assert closed["type"] == "websocket.close"
    await communicator.wait()
    return frame, closed["code"]


async def test_forged_token_is_refused(writer):
    frame, code = await _refused("/ws/study/demo/?token=not-a-real-token")
    assert frame["type"] == "error"
    assert frame["code"] == "unauthorized"
    assert code == CLOSE_UNAUTHORIZED


async def test_altered_token_is_refused(writer):
    token = token_for(writer)
    _, stamp, signature = token.split(":")
    other = await db(lambda: str(make_participation(writer.version).public_id))
    frame, code = await _refused(f"/ws/study/demo/?token={other}:{stamp}:{signature}")
    assert frame["code"] == "unauthorized"
    assert code == CLOSE_UNAUTHORIZED


async def test_missing_token_is_refused(writer):
    frame, code = await _refused("/ws/study/demo/")
    assert frame["code"] == "unauthorized"
    assert code == CLOSE_UNAUTHORIZED


async def test_expired_token_is_refused(writer, settings):
    token = token_for(writer)
    settings.PARTICIPANT_TOKEN_MAX_AGE = -1  # any age is past it
    frame, code = await _refused(f"/ws/study/demo/?token={token}")
    assert frame["code"] == "unauthorized"
    assert code == CLOSE_UNAUTHORIZED


async def test_token_used_on_another_studys_url_is_refused(writer):
    def other_study():
        version = StudyVersionFactory(spec=writer.version.spec)
        return version.study.slug

    slug = await db(other_study)
    frame, code = await _refused(f"/ws/study/{slug}/?token={token_for(writer)}")
    assert frame["code"] == "unauthorized"
    assert code == CLOSE_UNAUTHORIZED


@pytest.mark.parametrize("status", [Status.CONSENTED, Status.FINISHED, Status.COMPLETED])
async def test_participation_not_on_the_writing_step_is_refused(demo_version, status):
    participation = await db(make_participation, demo_version, status=status)
    frame, code = await _refused(f"/ws/study/demo/?token={token_for(participation)}")
    assert frame["code"] == "not_writing"
    assert code == CLOSE_NOT_WRITING
    assert frame["next_url"].startswith("/study/demo/")


async def test_a_foreign_origin_is_refused_at_the_handshake(writer):
    path = f"/ws/study/demo/?token={token_for(writer)}"
    communicator = WebsocketCommunicator(
        application, path, headers=[(b"origin", b"https://evil.example")]
    )
    connected, _ = await communicator.connect(timeout=10)
    assert not connected
    await communicator.disconnect()


async def test_a_socket_sees_only_its_own_participation(demo_version):
    alice = await db(make_participation, demo_version)
    bob = await db(make_participation, demo_version)
    alice_socket, _ = await open_client("demo", token_for(alice))
    bob_socket, _ = await open_client("demo", token_for(bob))
    await bob_socket.turn("Bob's private draft about his neighbourhood")
    # Alice's socket got nothing of Bob's turn, and her state holds none of his messages.
    assert await alice_socket.comm.receive_nothing(timeout=0.5)
    await alice_socket.close()
    alice_socket, state = await open_client("demo", token_for(alice))
    assert state["messages"] == []
    assert "neighbourhood" not in json.dumps(state)
    await alice_socket.close()
    await bob_socket.close()


async def test_a_participation_that_finishes_elsewhere_gets_not_writing(writer):
    client, _ = await open_client("demo", token_for(writer))

    def finish():
        writer.status = Status.FINISHED
        writer.save(update_fields=["status"])

    await db(finish)
    reply = await client.error({"type": "send", "text": "Am I still here?"})
    assert reply["code"] == "not_writing"
    assert reply["next_url"] == "/study/demo/final/"
    await client.close()

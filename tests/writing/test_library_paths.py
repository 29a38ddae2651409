"""Each hand-written piece of the real-time path switched off (studyapp/settings.py;
bench/README.md, Hand-written pieces): with the library in its place, a uvicorn process still
relays a reply from a model server over HTTP, through a socket dropped mid-reply and a
reconnect, every frame once.
"""

from __future__ import annotations

import asyncio

import pytest

from studyapp.writing.models import Message, Role
from tests.collab_models.vllm_fake import FakeVLLM
from tests.writing.conftest import LiveServer, db, remote_participation
from tests.writing.test_live_relay import LiveClient, _assert_numbered_once

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.usefixtures("clean_transport"),
]

# The switch, and what the server says it runs with it (studyapp/realtime/lifespan.py).
OFF = {
    "http1": ({"COLLAB_MODELS_FAST_HTTP": "0"}, "model HTTP httpx"),
    "fastsql": ({"WRITING_FAST_SQL": "0"}, "send SQL orm"),
    "scriptpipe": ({"RELAY_SCRIPT_CLIENT": "redis-py"}, "Redis scripts redis-py"),
    "eagerstart": ({"RELAY_EAGER_START": "0"}, "frames out create_task"),
    "worker pipe": ({"WRITING_DB_PIPE": "0"}, "database calls ProcessPoolExecutor"),
}


def _replies(participation) -> list[str]:
    rows = Message.objects.filter(participation=participation, role=Role.ASSISTANT)
    return list(rows.values_list("text", flat=True))


@pytest.mark.parametrize("piece", OFF)
async def test_a_reply_cut_mid_stream_arrives_once_with_the_piece_off(
    piece, demo_version, tmp_path
):
    overrides, path = OFF[piece]
    log = tmp_path / "server.log"
    server = LiveServer(tokens_per_second=25, log=log, log_level="INFO", **overrides)
    try:
        async with FakeVLLM(tps=40, tokens=60) as fake:
            await asyncio.to_thread(server.wait_ready)
            participation = await db(remote_participation, demo_version, fake.url)
            first = await LiveClient.open(server, participation)
            state = await first.hello(None)
            text = "Write a blog post about budget travel in Lisbon"
            await first.send({"type": "send", "text": text, "client_msg_id": "m1"})
            frames = await first.until({"delta"})
            while sum(f["type"] == "delta" for f in frames) < 3:
                frames.append(await first.recv())
            await first.close()  # the reply goes on without a socket
            seen = "".join(f["text"] for f in frames if f["type"] == "delta")

            again = await LiveClient.open(server, participation)
            resumed = await again.hello(frames[-1]["seq"])
            rest = await again.until({"turn_end", "turn_error"})
            await again.close()
    finally:
        server.stop()

    _assert_numbered_once(frames, state["last_seq"])
    _assert_numbered_once(rest, resumed["last_seq"])
    assert resumed["generation"] is not None, "the reply should still be streaming"
    assert resumed["last_seq"] == frames[-1]["seq"]
    assert rest[-1]["type"] == "turn_end", rest[-1]
    assert seen + "".join(f["text"] for f in rest if f["type"] == "delta") == rest[-1]["text"]
    assert await db(_replies, participation) == [rest[-1]["text"]]
    assert fake.disconnects == 0  # the model call outlived the socket
    assert "real-time path: " in log.read_text()
    assert path in log.read_text(), log.read_text()[-2000:]

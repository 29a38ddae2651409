"""A refused handshake does not hold up the server's shutdown.

A WebSocket from a foreign Origin is refused by a consumer of its own; on the Redis channel
layer that consumer's receive never finished, and uvicorn waited for it at shutdown forever.
"""

from __future__ import annotations

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from tests.writing.conftest import LiveServer, db, make_participation, token_for

pytestmark = pytest.mark.django_db(transaction=True)

# Most refused handshakes got stuck, not all: a few make a stuck one all but certain.
REFUSALS = 5


async def test_a_refused_foreign_origin_lets_the_server_stop(demo_version, settings):
    assert "RedisChannelLayer" in settings.CHANNEL_LAYERS["default"]["BACKEND"]
    participation = await db(make_participation, demo_version)
    server = LiveServer(tokens_per_second=25)
    try:
        server.wait_ready()
        url = f"{server.ws_url}/ws/study/demo/?token={token_for(participation)}"
        for _ in range(REFUSALS):
            with pytest.raises(InvalidStatus) as refused:
                await connect(url, origin="http://evil.example", open_timeout=10)
            assert refused.value.response.status_code == 403
    finally:
        server.stop()  # fails unless the process exits well within its graceful timeout

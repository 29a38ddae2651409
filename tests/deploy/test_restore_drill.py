"""The restore drill (deploy/restore-drill.sh): a dump taken while participants chat restores
into an empty database with every turn stored before the dump began."""

from __future__ import annotations

import asyncio
import hashlib
import secrets
import subprocess
from pathlib import Path

import pytest

from studyapp.writing.models import Message
from tests.writing.conftest import _database_url, db, make_participation
from tests.writing.test_live_relay import LiveClient

pytestmark = pytest.mark.django_db(transaction=True)

REPO = Path(__file__).resolve().parents[2]


def _stored() -> dict[int, str]:
    """Each stored message's id and the md5 of its text (as PostgreSQL's md5() gives it)."""
    return {
        pk: hashlib.md5(text.encode()).hexdigest()  # noqa: S324 (a checksum, not a secret)
        for pk, text in Message.objects.values_list("id", "text")
    }


def _psql(url: str, sql: str) -> str:
    return subprocess.run(
        ["psql", url, "--no-align", "--tuples-only", "--command", sql],
        check=True, capture_output=True, text=True,
    ).stdout  # fmt: skip


async def test_a_dump_taken_mid_chat_restores_every_stored_turn(
    demo_version, live_servers, tmp_path
):
    participations = [await db(make_participation, demo_version) for _ in range(6)]
    clients = [await LiveClient.open(live_servers[i % 2], p) for i, p in enumerate(participations)]
    for client in clients:
        await client.hello(None)
    for n, text in enumerate(["Write a blog post on Lisbon", "Make it shorter please"]):
        await asyncio.gather(*(c.send({"type": "send", "text": text}) for c in clients))
        if n == 0:
            await asyncio.gather(*(c.until({"turn_end"}) for c in clients))
    await asyncio.gather(*(c.until({"delta"}) for c in clients))  # replies streaming now

    before = await db(_stored)
    dump = tmp_path / "mid-chat.dump"
    source = _database_url()
    await asyncio.to_thread(
        subprocess.run,
        ["pg_dump", "--format=custom", f"--file={dump}", source],
        check=True,
    )
    await asyncio.gather(*(c.until({"turn_end"}) for c in clients))
    for client in clients:
        await client.ws.close()

    name = f"restore_drill_{secrets.token_hex(4)}"
    admin = _database_url().rsplit("/", 1)[0] + "/postgres"
    _psql(admin, f"CREATE DATABASE {name}")
    try:
        target = _database_url().rsplit("/", 1)[0] + f"/{name}"
        drill = await asyncio.to_thread(
            subprocess.run,
            [str(REPO / "deploy" / "restore-drill.sh"), str(dump), target],
            check=True, capture_output=True, text=True,
        )  # fmt: skip
        counts = dict(line.split(" ") for line in drill.stdout.splitlines())
        assert int(counts["participations"]) >= len(participations)
        restored = dict(
            row.split("|", 1)
            for row in _psql(target, "SELECT id, md5(text) FROM writing_message").splitlines()
        )
        # Every turn stored before the dump began is back, word for word.
        assert {int(k): v for k, v in restored.items() if int(k) in before} == before
        assert len(before) > 2 * len(participations)  # turn 1 both ways, and more
    finally:
        _psql(admin, f"DROP DATABASE {name} WITH (FORCE)")

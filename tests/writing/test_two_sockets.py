"""Two sockets of one participant (two tabs): a rating and a document save reach both."""

from __future__ import annotations

import pytest

from tests.writing.conftest import open_client, token_for

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.usefixtures("drain_generations"),
]


async def test_a_rating_given_on_one_socket_is_announced_on_the_other(writer):
    one, _ = await open_client("demo", token_for(writer))
    two, _ = await open_client("demo", token_for(writer))
    for turn in range(1, 4):
        await one.turn(f"Please write part {turn} of the post", f"m-{turn}")
    await one.until_type("rating_due")
    await two.until_type("rating_due")
    await one.send({"type": "rate", "turn": 3, "value": 6})
    given = (await two.until_type("rating_given"))[-1]
    assert given["turn"] == 3
    assert isinstance(given["seq"], int)
    # The other tab may send at once.
    frames = await two.turn("Now the conclusion, please", "m-4")
    assert frames[-1]["type"] == "turn_end"
    await one.close()
    await two.close()


async def test_a_document_save_is_announced_to_every_socket_with_its_version(writer):
    one, _ = await open_client("demo", token_for(writer))
    two, _ = await open_client("demo", token_for(writer))
    await one.send({"type": "doc", "text": "A first line.", "version_base": 0})
    saved = (await one.until_type("doc_saved"))[-1]
    announced = (await two.until_type("doc_version"))[-1]
    assert announced["version"] == saved["version"] == 1
    # An unchanged save is no new version: nothing is announced for it.
    await one.send({"type": "doc", "text": "A first line.", "version_base": 1})
    await one.until_type("doc_saved")
    await two.send({"type": "doc", "text": "Tab two's line.", "version_base": 0})
    conflict = (await two.until_type("doc_saved"))[-1]
    assert conflict["conflict"] is True
    assert conflict["replaced"] == {"version": 1, "text": "A first line."}
    await one.until(lambda f: f["type"] == "doc_version" and f["version"] == 2)
    assert [f["version"] for f in one.frames if f["type"] == "doc_version"] == [1, 2]
    await one.close()
    await two.close()


async def test_a_save_during_a_reply_is_announced_at_once_numbered_with_it(writer, settings):
    settings.OFFLINE_TOKENS_PER_SECOND = 20  # the reply streams for a few seconds
    one, _ = await open_client("demo", token_for(writer))
    two, _ = await open_client("demo", token_for(writer))
    await one.send({"type": "send", "text": "Please write a long opening", "client_msg_id": "m"})
    await one.until_type("turn_start")
    await two.send({"type": "doc", "text": "Typed while it streams.", "version_base": 0})
    await two.until(lambda f: f["type"] == "doc_saved")
    await one.until(lambda f: f["type"] == "doc_version")
    frames = await one.until_type("turn_end", wait_s=15)
    kinds = [f["type"] for f in one.frames]
    # One counter numbers the reply and the announcement: it need not wait for the reply.
    assert kinds.index("doc_version") < kinds.index("turn_end")
    assert frames[-1]["type"] == "turn_end"
    seqs = [f["seq"] for f in one.frames if "seq" in f]
    assert seqs == list(range(seqs[0], seqs[0] + len(seqs)))
    await one.close()
    await two.close()

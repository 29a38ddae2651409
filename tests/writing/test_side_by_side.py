"""Side-by-side turns over the socket: two candidates stream, the participant picks, both stay."""

from __future__ import annotations

import json
import re

import pytest

from studyapp.feedback.models import Rating
from studyapp.participants.models import EventKind, ParticipationEvent
from studyapp.writing.models import Message, Role
from tests.collab_models.vllm_fake import Script
from tests.writing.conftest import (
    CONDITION_NAMES,
    db,
    make_participation,
    open_client,
    remote_participation,
    study_version,
    token_for,
)

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.usefixtures("drain_generations"),
]

PAIR_ENDS = ("pair_end", "turn_end", "turn_error")


def _replies(participation, turn: int) -> list[Message]:
    return list(
        Message.objects.filter(participation=participation, turn=turn, role=Role.ASSISTANT)
        .order_by("id")
    )


def _streamed(frames) -> dict[int, str]:
    texts = {0: "", 1: ""}
    for f in frames:
        if f["type"] == "delta":
            texts[f["candidate"]] += f["text"]
    return texts


async def _pair(client, text: str):
    await client.send({"type": "send", "text": text})
    return await client.until(lambda f: f["type"] in PAIR_ENDS)


async def test_two_candidates_stream_the_pick_is_stored_and_continues_the_chat(fake_vllm):
    fake_vllm.script(
        Script(text="A first reply about Lisbon"),
        Script(text="Candidate about trams and hills"),
        Script(text="Candidate about pastries and the sea"),
        Script(text="A third reply"),
    )
    version = await db(study_version, "side_by_side: {turns: [2]}")
    participation = await db(remote_participation, version, fake_vllm.url)
    client, _ = await open_client("pairs", token_for(participation))
    first = await client.turn("Help me write about a weekend in Lisbon")
    assert first[-1]["type"] == "turn_end"

    frames = await _pair(client, "Give me two directions for the opening")
    kinds = [f["type"] for f in frames]
    assert kinds[0] == "ack"
    start = frames[1]
    assert start["type"] == "pair_start"
    assert start["turn"] == 2
    assert [c["candidate"] for c in start["candidates"]] == [0, 1]
    ids = [c["generation_id"] for c in start["candidates"]]
    assert len({*ids, start["generation_id"]}) == 3
    assert all(f["candidate"] in (0, 1) for f in frames if f["type"] == "delta")
    assert kinds.count("candidate_end") == 2
    end = frames[-1]
    assert end["type"] == "pair_end"
    seqs = [f["seq"] for f in frames if "seq" in f]
    assert seqs == list(range(seqs[0], seqs[0] + len(seqs)))
    texts = {c["candidate"]: c["text"] for c in end["candidates"]}
    assert texts == _streamed(frames)
    assert set(texts.values()) == {
        "Candidate about trams and hills",
        "Candidate about pastries and the sea",
    }
    # Both candidates were asked for the same context with different seeds.
    asked = fake_vllm.chat_requests()[1:3]
    assert asked[0].body["messages"] == asked[1].body["messages"]
    assert asked[0].body["seed"] != asked[1].body["seed"]

    stored = await db(_replies, participation, 2)
    assert [str(m.generation_id) for m in stored] == ids  # in the order shown
    assert {m.alternative_group for m in stored} == {stored[0].alternative_group}
    assert str(stored[0].alternative_group) == end["group"]
    assert [(m.is_active, m.chosen) for m in stored] == [(False, None), (False, None)]
    assert {m.seed for m in stored} == {r.body["seed"] for r in asked}

    # Nothing goes on until the participant picks.
    for frame in ({"type": "send", "text": "Next"}, {"type": "retry"},
                  {"type": "regenerate", "turn": 2}):  # fmt: skip
        assert (await client.error(frame))["code"] == "choice_required"

    pick = next(c for c in end["candidates"] if c["text"].startswith("Candidate about pastries"))
    await client.send(
        {"type": "choose", "group": end["group"], "generation_id": pick["generation_id"]}
    )
    got = await client.until(lambda f: f["type"] == "ack")
    assert got[-1] == {"type": "ack", "of": "choose", "turn": 2,
                       "generation_id": pick["generation_id"], "duplicate": False}  # fmt: skip
    if not any(f["type"] == "pair_chosen" for f in got):
        got += await client.until_type("pair_chosen")
    chosen = next(f for f in got if f["type"] == "pair_chosen")
    assert chosen["generation_id"] == pick["generation_id"]
    assert chosen["text"] == pick["text"]
    stored = {str(m.generation_id): m for m in await db(_replies, participation, 2)}
    assert (stored[pick["generation_id"]].is_active, stored[pick["generation_id"]].chosen) == (
        True, True,
    )  # fmt: skip
    other = next(m for g, m in stored.items() if g != pick["generation_id"])
    assert (other.is_active, other.chosen) == (False, False)
    event = await db(
        lambda: ParticipationEvent.objects.get(participation=participation, kind=EventKind.CHOOSE)
    )
    assert event.data["generation_id"] == pick["generation_id"]

    # A second click is harmless; the other one can no longer be picked; the pick is final.
    await client.send(
        {"type": "choose", "group": end["group"], "generation_id": pick["generation_id"]}
    )
    assert (await client.until_type("ack"))[-1]["duplicate"] is True
    late = await client.error(
        {"type": "choose", "group": end["group"], "generation_id": str(other.generation_id)}
    )
    assert late["code"] == "nothing_to_choose"
    # A picked reply is the pair's, not a regeneration's.
    refused = await client.error({"type": "regenerate", "turn": 2})
    assert refused["code"] == "not_regenerable"

    third = await client.turn("Now make it shorter")
    assert third[-1]["type"] == "turn_end"
    # One request per reply: no early call was wasted on the pair's turn or on a stale history.
    assert len(fake_vllm.chat_requests()) == 4
    history = fake_vllm.chat_requests()[-1].body["messages"]
    assert [m["content"] for m in history if m["role"] == "assistant"] == [
        "A first reply about Lisbon",
        "Candidate about pastries and the sea",
    ]
    await client.close()
    client, state = await open_client("pairs", token_for(participation))
    assert state["pair"] is None
    assert state["turns_completed"] == 3
    assert state["messages"][3]["text"] == "Candidate about pastries and the sea"
    await client.close()


async def test_reconnects_mid_stream_and_while_a_pick_is_pending_restore_the_pair(settings):
    settings.OFFLINE_TOKENS_PER_SECOND = 60
    version = await db(study_version, "side_by_side: {turns: [1]}")
    participation = await db(make_participation, version, "collabllm")
    client, _ = await open_client("pairs", token_for(participation))
    await client.send({"type": "send", "text": "Help me write a story about a lighthouse"})
    seen = await client.until(lambda f: f["type"] == "delta")

    # A fresh page in the middle of the stream gets both candidates from the pair's start.
    fresh, state = await open_client("pairs", token_for(participation))
    assert state["generation"]["kind"] == "pair"
    assert state["generation"]["turn"] == 1
    assert [c["candidate"] for c in state["generation"]["candidates"]] == [0, 1]
    replayed = await fresh.until(lambda f: f["type"] in PAIR_ENDS)
    assert replayed[0]["type"] == "pair_start"
    assert replayed[0]["seq"] == state["last_seq"] + 1
    rest = await client.until(lambda f: f["type"] in PAIR_ENDS)
    end = replayed[-1]
    assert end["type"] == "pair_end"
    assert _streamed(replayed) == _streamed(seen + rest)
    assert {c["candidate"]: c["text"] for c in end["candidates"]} == _streamed(replayed)
    await fresh.close()

    # After the pair ended, a reload shows both candidates and waits for the pick.
    await client.close()
    client, state = await open_client("pairs", token_for(participation))
    assert state["generation"] is None
    assert state["retry_turn"] is None
    assert state["turns_completed"] == 0
    assert [m["role"] for m in state["messages"]] == ["user"]
    pair = state["pair"]
    assert pair["turn"] == 1
    assert pair["group"] == end["group"]
    assert [(c["candidate"], c["generation_id"], c["text"]) for c in pair["candidates"]] == [
        (c["candidate"], c["generation_id"], c["text"]) for c in end["candidates"]
    ]
    other, _ = await open_client("pairs", token_for(participation))
    pick = pair["candidates"][0]
    await client.send({"type": "choose", "group": pair["group"],
                       "generation_id": pick["generation_id"]})  # fmt: skip
    await client.until_type("ack")
    # Every tab hears about the pick.
    assert (await other.until_type("pair_chosen"))[-1]["generation_id"] == pick["generation_id"]
    await other.close()
    await client.close()


async def test_a_page_holding_part_of_the_pair_resumes_after_it(settings):
    settings.OFFLINE_TOKENS_PER_SECOND = 60
    version = await db(study_version, "side_by_side: {turns: [1]}")
    participation = await db(make_participation, version)
    client, _ = await open_client("pairs", token_for(participation))
    await client.send({"type": "send", "text": "Help me write about budget travel"})
    seen = await client.until(lambda f: f["type"] == "delta")
    await client.close()
    last = seen[-1]["seq"]
    resumed, _ = await open_client("pairs", token_for(participation), hello=False)
    state = await resumed.hello(last_seq=last)
    assert state["last_seq"] == last
    assert state["generation"]["kind"] == "pair"
    rest = await resumed.until(lambda f: f["type"] in PAIR_ENDS)
    assert rest[0]["seq"] == last + 1
    assert rest[-1]["type"] == "pair_end"
    assert _streamed(seen + rest) == {c["candidate"]: c["text"] for c in rest[-1]["candidates"]}
    await resumed.close()


async def test_one_failed_candidate_leaves_the_other_as_the_reply(fake_vllm):
    fake_vllm.script(Script(status=503), Script(text="The only reply that made it"))
    version = await db(study_version, "side_by_side: {turns: [1]}")
    participation = await db(remote_participation, version, fake_vllm.url)
    client, _ = await open_client("pairs", token_for(participation))
    frames = await _pair(client, "Help me start a blog post")
    ends = {f["candidate"]: f for f in frames if f["type"] == "candidate_end"}
    assert sorted(f["finish_reason"] for f in ends.values()) == ["error", "stop"]
    end = frames[-1]
    assert end["type"] == "turn_end"
    assert end["text"] == "The only reply that made it"
    assert ends[end["candidate"]]["generation_id"] == end["generation_id"]
    failed, ok = sorted(await db(_replies, participation, 1), key=lambda m: bool(m.error) is False)
    assert (failed.is_active, bool(failed.error), ok.is_active) == (False, True, True)
    assert str(ok.generation_id) == end["generation_id"]
    event = await db(
        lambda: ParticipationEvent.objects.get(
            participation=participation, kind=EventKind.MODEL_ERROR
        )
    )
    assert event.data["generation_id"] == str(failed.generation_id)
    # No pick is due: the chat goes on, and that reply may be regenerated like any other.
    assert (await client.turn("Thanks, go on"))[-1]["type"] == "turn_end"
    await client.close()


async def test_both_candidates_failing_offers_retry_which_runs_the_pair_again(fake_vllm):
    fake_vllm.script(Script(status=503), Script(status=503))
    version = await db(study_version, "side_by_side: {turns: [1]}")
    participation = await db(remote_participation, version, fake_vllm.url)
    client, _ = await open_client("pairs", token_for(participation))
    frames = await _pair(client, "Help me start a blog post")
    assert frames[-1]["type"] == "turn_error"
    assert frames[-1]["retry"] is True
    assert (await client.error({"type": "send", "text": "Hello?"}))["code"] == "retry_required"
    await client.send({"type": "retry"})
    frames = await client.until(lambda f: f["type"] in PAIR_ENDS)
    assert frames[1]["type"] == "pair_start"
    assert frames[-1]["type"] == "pair_end"
    await client.close()


async def test_stop_ends_both_candidates_and_the_shown_parts_are_the_pair(settings):
    settings.OFFLINE_TOKENS_PER_SECOND = 30
    version = await db(study_version, "side_by_side: {turns: [1]}")
    participation = await db(make_participation, version)
    client, _ = await open_client("pairs", token_for(participation))
    await client.send({"type": "send", "text": "Write a long draft about gardening"})
    seen = await client.until(lambda f: f["type"] == "delta" and f["candidate"] == 1)
    seen += await client.until(lambda f: f["type"] == "delta" and f["candidate"] == 0)
    await client.send({"type": "stop"})
    frames = seen + await client.until(lambda f: f["type"] in PAIR_ENDS)
    end = frames[-1]
    assert end["type"] == "pair_end"
    assert [c["finish_reason"] for c in end["candidates"]] == ["cancelled", "cancelled"]
    assert {c["candidate"]: c["text"] for c in end["candidates"]} == _streamed(frames)
    await client.close()


async def test_a_pick_at_a_checkpoint_makes_the_rating_due(fake_vllm):
    version = await db(study_version, "side_by_side: {turns: [3]}")
    participation = await db(remote_participation, version, fake_vllm.url)
    client, _ = await open_client("pairs", token_for(participation))
    await client.turn("One")
    await client.turn("Two")
    end = (await _pair(client, "Three"))[-1]
    assert end["type"] == "pair_end"
    # The turn has no reply until the pick, so no rating yet, and Finish waits too.
    assert not await db(lambda: Rating.objects.filter(participation=participation).exists())
    pick = end["candidates"][1]
    await client.send({"type": "choose", "group": end["group"],
                       "generation_id": pick["generation_id"]})  # fmt: skip
    due = await client.until_type("rating_due")
    assert due[-1]["turn"] == 3
    assert (await client.error({"type": "send", "text": "Four"}))["code"] == "rating_required"
    await client.close()


async def test_bad_picks_are_refused_and_change_nothing(fake_vllm):
    fake_vllm.script(Script(text="Left", tps=5), Script(text="Right", tps=5))
    version = await db(study_version, "side_by_side: {turns: [1]}")
    participation = await db(remote_participation, version, fake_vllm.url)
    client, _ = await open_client("pairs", token_for(participation))
    nothing = await client.error({"type": "choose", "group": "a" * 32, "generation_id": "b" * 32})
    assert nothing["code"] == "nothing_to_choose"
    await client.send({"type": "send", "text": "Two options please"})
    start = (await client.until_type("pair_start"))[-1]
    early = await client.error(
        {"type": "choose", "group": "x", "generation_id": start["candidates"][0]["generation_id"]}
    )
    assert early["code"] == "busy"
    end = (await client.until(lambda f: f["type"] in PAIR_ENDS))[-1]
    assert end["type"] == "pair_end"
    ours = end["candidates"][0]["generation_id"]
    bad = {
        "missing group": ({"type": "choose", "generation_id": ours}, "bad_field"),
        "group not an id": ({"type": "choose", "group": "<x>", "generation_id": ours}, "bad_field"),
        "another group": (
            {"type": "choose", "group": "c" * 32, "generation_id": ours}, "bad_choice",
        ),
        "another reply": (
            {"type": "choose", "group": end["group"], "generation_id": "d" * 32}, "bad_choice",
        ),
    }  # fmt: skip
    before = await db(lambda: [(m.is_active, m.chosen) for m in _replies(participation, 1)])
    for name, (frame, code) in bad.items():
        assert (await client.error(frame))["code"] == code, name
    assert await db(lambda: [(m.is_active, m.chosen) for m in _replies(participation, 1)]) == before
    await client.close()


async def test_arms_mode_frames_never_name_either_arm(demo_version):
    version = await db(
        study_version, "side_by_side: {turns: [1], mode: arms, arms: [base, collabllm]}"
    )
    participation = await db(make_participation, version, "proactive_base")
    client, _ = await open_client("pairs", token_for(participation))
    end = (await _pair(client, "Help me write a blog post about cooking"))[-1]
    await client.send({"type": "choose", "group": end["group"],
                       "generation_id": end["candidates"][0]["generation_id"]})  # fmt: skip
    await client.until_type("ack")
    await client.close()
    again, _ = await open_client("pairs", token_for(participation))
    await again.close()
    styles = {m.model for m in await db(_replies, participation, 1)}
    assert styles == {"offline/base", "offline/collabllm"}
    forbidden = {*CONDITION_NAMES, "offline", "proactive", "llama"}
    for text in client.raw + again.raw:
        for word in forbidden:
            assert not re.search(rf"(?<![\w-]){re.escape(word)}(?![\w-])", text, re.I), word
        assert not {"backend", "model", "seed", "condition"} & set(json.loads(text))

"""The conversation kept within the model's window: the oldest turns after the first go."""

from __future__ import annotations

import pytest

from collab_models.arms import build_arm
from collab_models.base import ChatMessage, ModelError
from collab_models.context import CONTEXT_LENGTH, drop_oldest, fit_window
from tests.collab_models.conftest import MODEL
from tests.collab_models.vllm_fake import FakeVLLM, Script


def long_chat(turns: int, words: int = 60) -> list[ChatMessage]:
    chat: list[ChatMessage] = []
    for t in range(1, turns + 1):
        chat.append({"role": "user", "content": f"user{t} " + "draft " * words})
        chat.append({"role": "assistant", "content": f"reply{t} " + "words " * words})
    chat.append({"role": "user", "content": "latest question"})
    return chat


def arm_for(url: str, **extra: object):
    return build_arm(
        {
            "name": "base",
            "endpoints": [url],
            "model": MODEL,
            "sampling": {"max_tokens": 50},
            **extra,
        }
    )


def test_drop_oldest_keeps_system_first_exchange_and_latest_message() -> None:
    chat: list[ChatMessage] = [{"role": "system", "content": "be kind"}, *long_chat(5)]
    trimmed = drop_oldest(chat, chars=1000)  # an exchange is some 750 characters
    contents = [m["content"].split()[0] for m in trimmed.messages]
    assert contents[:3] == ["be", "user1", "reply1"]
    assert contents[-1] == "latest"
    assert trimmed.dropped == 2  # two whole exchanges (user and reply) after the first
    assert "user2" not in contents
    assert "reply3" not in contents
    assert "user4" in contents


def test_fit_window_leaves_room_for_the_reply() -> None:
    chat = long_chat(10)
    assert fit_window(chat, context_tokens=100_000, max_tokens=50).dropped == 0
    trimmed = fit_window(chat, context_tokens=800, max_tokens=300)
    assert sum(len(m["content"]) for m in trimmed.messages) <= (800 - 300) * 3
    assert trimmed.dropped > 0


async def test_context_length_error_drops_old_turns_and_the_reply_arrives() -> None:
    async with FakeVLLM(tps=0, max_model_len=700) as fake:
        fake.script(Script(text="Short answer"), Script(text="Short answer"))
        stream = arm_for(fake.url).reply(long_chat(12))
        shown = [d async for d in stream]

        assert "".join(shown) == "Short answer"
        first, *retried = fake.chat_requests()
        assert len(first.body["messages"]) == 25
        kept = retried[-1].body["messages"]
        assert kept[0]["content"].startswith("user1 ")
        assert kept[1]["content"].startswith("reply1 ")
        assert kept[-1]["content"] == "latest question"
        assert stream.record is not None
        assert stream.record.dropped_turns == (25 - len(kept)) // 2 > 0


async def test_a_latest_message_too_long_for_the_window_is_a_permanent_error() -> None:
    async with FakeVLLM(tps=0, max_model_len=100) as fake:
        chat: list[ChatMessage] = [{"role": "user", "content": "word " * 500}]
        with pytest.raises(ModelError) as failure:
            async for _ in arm_for(fake.url).reply(chat):
                pass
        assert failure.value.permanent
        assert failure.value.kind == CONTEXT_LENGTH
        assert "too long" in str(failure.value)


async def test_an_arm_with_context_tokens_trims_before_sending() -> None:
    async with FakeVLLM(tps=0) as fake:
        stream = arm_for(fake.url, context_tokens=1000).reply(long_chat(12))
        _ = [d async for d in stream]
        (request,) = fake.chat_requests()  # no 400 was needed
        assert len(request.body["messages"]) < 25
        assert stream.record is not None
        assert stream.record.dropped_turns > 0

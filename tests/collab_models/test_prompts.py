"""Versioned prompts and the messages built from them."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from collab_models.base import ChatMessage
from collab_models.prompts import (
    NO_PROMPT,
    build_messages,
    file_prompt,
    inline_prompt,
    named_prompt,
    render_transcript,
    resolve_prompt,
)

HISTORY: list[ChatMessage] = [
    {"role": "user", "content": "Write a story about a lighthouse."},
    {"role": "assistant", "content": "Which mood?"},
    {"role": "user", "content": "Melancholic."},
]


def test_proactive_prompt_carries_the_papers_behaviours_and_asks_for_json() -> None:
    prompt = named_prompt("proactive")
    assert prompt.version == "proactive.v1"
    assert prompt.pastes_conversation
    text = prompt.text or ""
    for needle in (
        "clarifying question",
        "follow-up question",
        "options",
        "next few turns",
        "concise",
        "tone",
        "unsure",
        '"current_problem"',
        '"thought"',
        '"response"',
    ):
        assert needle in text


def test_collabllm_prompt_is_a_short_system_prompt() -> None:
    prompt = named_prompt("collabllm")
    text = prompt.text or ""
    assert prompt.version == "collabllm.v1"
    assert not prompt.pastes_conversation
    assert all(w in text for w in ("helpful", "proactive", "highly interactive"))
    assert len(text) < 400
    assert named_prompt("collabllm.v1") == prompt


def test_base_sends_the_history_unchanged() -> None:
    assert resolve_prompt() is NO_PROMPT
    assert resolve_prompt(system_prompt=None) is NO_PROMPT
    assert build_messages(NO_PROMPT, HISTORY) == HISTORY


def test_system_prompt_goes_first() -> None:
    messages = build_messages(named_prompt("collabllm"), HISTORY)
    assert messages[0]["role"] == "system"
    assert messages[1:] == HISTORY


def test_pasted_prompt_sends_one_user_message_with_the_transcript() -> None:
    messages = build_messages(named_prompt("proactive"), HISTORY)
    assert len(messages) == 1
    assert messages[0]["role"] == "user"
    assert render_transcript(HISTORY) in messages[0]["content"]
    assert render_transcript(HISTORY).splitlines()[0] == "User: Write a story about a lighthouse."


def test_inline_and_file_prompts_are_versioned_by_content(tmp_path: Path) -> None:
    inline = inline_prompt("  Be brief.  ")
    digest = hashlib.sha256(b"Be brief.").hexdigest()[:12]
    assert (inline.text, inline.version) == ("Be brief.", f"inline@{digest}")

    (tmp_path / "mine.txt").write_text("Be brief.\n")
    from_file = resolve_prompt(prompt_file="mine.txt", base_dir=tmp_path)
    assert from_file.version == f"file:mine.txt@{digest}"
    assert file_prompt(tmp_path / "mine.txt").text == "Be brief."


def test_missing_prompt_file_and_unknown_names_are_clear_errors(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="cannot read prompt_file"):
        resolve_prompt(prompt_file="absent.txt", base_dir=tmp_path)
    with pytest.raises(ValueError, match=r"known: .*collabllm"):
        named_prompt("../secrets")

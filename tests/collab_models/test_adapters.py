"""Response adapters: pulling ``response`` out of a streamed JSON reply."""

from __future__ import annotations

import json

import pytest

from collab_models.adapters import JsonResponseAdapter, TextAdapter, make_adapter

REPLY = {
    "current_problem": "The user wants a blog post but has not said for whom.",
    "thought": 'Ask about the audience; offer options. A "quoted" {brace} [bracket]',
    "response": 'Who is it for?\n1. Friends\n2. Colleagues\tor "others" \\ café 😀 ✓',
}


def run(chunks: list[str]) -> tuple[list[str], str, str]:
    """Feed ``chunks``; return (non-empty shown deltas, all shown text, warning)."""
    adapter = JsonResponseAdapter()
    shown = [adapter.feed(c) for c in chunks]
    tail, warning = adapter.finish()
    shown.append(tail)
    return [s for s in shown if s], "".join(shown), warning


def split_every(text: str, size: int) -> list[str]:
    return [text[i : i + size] for i in range(0, len(text), size)]


@pytest.mark.parametrize("size", [1, 2, 3, 5, 7, 1000])
@pytest.mark.parametrize("ascii_only", [True, False])
def test_response_is_decoded_whatever_the_split(size: int, ascii_only: bool) -> None:
    raw = json.dumps(REPLY, ensure_ascii=ascii_only)  # \uXXXX escapes and surrogate pairs

    _, text, warning = run(split_every(raw, size))

    assert text == REPLY["response"]
    assert warning == ""


def test_response_streams_as_several_deltas_without_json_syntax() -> None:
    raw = json.dumps(REPLY)
    deltas, _, _ = run(split_every(raw, 4))
    assert len(deltas) > 5
    assert not any('"response"' in d or d.startswith("{") for d in deltas)


def test_fields_in_any_order_and_nested_values_are_skipped() -> None:
    raw = '{"response": "First!", "thought": {"steps": ["a", {"b": "}"}]}, "n": 3, "ok": true}'
    _, text, warning = run(split_every(raw, 3))
    assert text == "First!"
    assert warning == ""


def test_leading_fence_and_prose_are_skipped() -> None:
    raw = 'Sure, here it is:\n```json\n{"thought": "x", "response": "Hi there"}\n```\n'
    _, text, warning = run(split_every(raw, 2))
    assert text == "Hi there"
    assert warning == ""


def test_stray_brace_in_prose_before_the_object_is_tolerated() -> None:
    raw = 'I use {braces} sometimes. {"response": "Done"}'
    _, text, _ = run(split_every(raw, 3))
    assert text == "Done"


def test_missing_comma_between_fields_is_tolerated() -> None:
    _, text, warning = run(['{"thought": "x" "response": "Still fine"}'])
    assert text == "Still fine"
    assert warning == ""


def test_plain_prose_is_shown_whole_and_flagged() -> None:
    raw = "Sure! Tell me more about your audience."
    deltas, text, warning = run(split_every(raw, 5))
    assert text == raw
    assert deltas == [raw]  # short prose: shown once the reply ends
    assert warning == "malformed_json: no JSON object"


def test_long_prose_streams_through_once_it_is_clearly_not_json() -> None:
    raw = "word " * 200
    adapter = JsonResponseAdapter(prose_limit=100)
    shown = [adapter.feed(c) for c in split_every(raw, 10)]
    tail, warning = adapter.finish()
    assert "".join(shown) + tail == raw
    assert sum(1 for s in shown if s) > 50  # streamed, not buffered
    assert warning == "malformed_json: reply is not JSON"


def test_object_without_response_falls_back_to_public_fields() -> None:
    _, text, warning = run(['{"current_problem": "p", "thought": "t", "answer": "The answer"}'])
    assert text == "The answer"
    assert warning == "malformed_json: no response field"

    _, text, _ = run(['{"current_problem": "p", "thought": "t", "note": "Visible"}'])
    assert text == "Visible"


def test_truncated_response_keeps_what_was_shown_and_flags_it() -> None:
    _, text, warning = run(['{"thought": "t", "response": "Half a sent'])
    assert text == "Half a sent"
    assert warning == "malformed_json: unterminated response string"


def test_truncated_before_response_shows_the_raw_text() -> None:
    raw = '{"current_problem": "p", "thought": "still thinking'
    _, text, warning = run([raw])
    assert text == raw
    assert warning.startswith("malformed_json:")


def test_lone_surrogates_become_replacement_characters() -> None:
    _, text, _ = run(['{"response": "a\\ud83d b\\ude00"}'])
    assert text == "a\ufffd b\ufffd"


def test_text_adapter_is_identity() -> None:
    adapter = TextAdapter()
    assert adapter.feed('{"x"') == '{"x"'
    assert adapter.finish() == ("", "")
    assert isinstance(make_adapter("text"), TextAdapter)
    with pytest.raises(ValueError, match="unknown response_format"):
        make_adapter("xml")

"""Response adapters: pulling ``response`` out of a streamed JSON reply."""

from __future__ import annotations

import json

import pytest

from collab_models.adapters import JsonResponseAdapter, NoResponse, TextAdapter, make_adapter

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


def fails(chunks: list[str]) -> tuple[str, str]:
    """Feed ``chunks`` to a reply that must fail; return (all shown text, the failure)."""
    adapter = JsonResponseAdapter()
    shown = "".join(adapter.feed(c) for c in chunks)
    with pytest.raises(NoResponse) as failure:
        adapter.finish()
    assert failure.value.permanent is False  # the participant may retry the turn
    return shown, str(failure.value)


@pytest.mark.parametrize(
    ("raw", "why"),
    [
        # Cut off (finish reason "length") inside the hidden fields, before "response".
        ('{"current_problem": "p", "thought": "the audience is still unclear', "no response"),
        ('{"current_problem": "p", "thought": "t", "respo', "no response"),
        # A complete object without the field, or with a response-like field of another name.
        ('{"current_problem": "p", "thought": "t"}', "no response field"),
        ('{"current_problem": "p", "thought": "t", "answer": "the audience"}', "no response"),
        # An empty or blank response.
        ('{"thought": "t", "response": "  "}', "empty response"),
        # Prose instead of JSON, short or long.
        ("Sure! Tell me more about your audience.", "no JSON object"),
        ("Thought: the audience is unclear. " * 40, "no JSON object"),
    ],
)
@pytest.mark.parametrize("size", [1, 7, 10_000])
def test_a_reply_without_response_text_shows_nothing_and_fails(
    raw: str, why: str, size: int
) -> None:
    shown, failure = fails(split_every(raw, size))
    assert shown.strip() == ""  # at most the blanks of an empty response
    assert failure.startswith("malformed_json: ")
    assert why in failure


def test_truncated_response_keeps_what_was_shown_and_flags_it() -> None:
    _, text, warning = run(['{"thought": "t", "response": "Half a sent'])
    assert text == "Half a sent"
    assert warning == "malformed_json: unterminated response string"


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

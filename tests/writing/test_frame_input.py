"""Frame input the database cannot take (NUL characters, unpaired surrogates, deep nesting, odd
numbers, arbitrary edit objects) is refused at the protocol edge with its documented code: the
socket stays open, nothing is stored and nothing is logged as an error."""

from __future__ import annotations

import json
import logging

import pytest

from studyapp.writing.models import EditBatch
from tests.writing.conftest import db, open_client, token_for
from tests.writing.test_protocol_errors import _still_works, _stored

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.usefixtures("drain_generations"),
]

NUL = "\\u0000"  # JSON escapes, as a client would send them
HIGH = "\\ud800"  # an unpaired high surrogate
LOW = "\\udc00"  # an unpaired low surrogate


def _deep(depth: int) -> str:
    return "[" * depth + "]" * depth


def _doc(edits: str) -> str:
    return '{"type": "doc", "text": "x", "version_base": 0, "edits": ' + edits + "}"


BAD_FRAMES = {
    "send_text_with_nul": (f'{{"type": "send", "text": "hi{NUL}there"}}', "bad_field", "text"),
    "send_text_with_high_surrogate": (
        f'{{"type": "send", "text": "hi {HIGH} there"}}',
        "bad_field",
        "text",
    ),
    "send_text_with_low_surrogate": (f'{{"type": "send", "text": "{LOW}"}}', "bad_field", "text"),
    "send_text_with_a_raw_surrogate": (
        '{"type": "send", "text": "hi \ud800"}',
        "bad_field",
        "text",
    ),
    "send_with_nul_in_a_key": (
        f'{{"type": "send", "text": "hi", "a{NUL}b": 1}}',
        "bad_field",
        "a\ufffdb",
    ),
    "send_with_nul_in_type": (f'{{"type": "send{NUL}", "text": "hi"}}', "bad_field", "type"),
    "send_1000_deep": (
        '{"type": "send", "text": "hi", "x": ' + _deep(1000) + "}",
        "bad_json",
        None,
    ),
    "send_100000_deep": (
        '{"type": "send", "text": "hi", "x": ' + _deep(100_000) + "}",
        "bad_json",
        None,
    ),
    "send_text_1000_deep": ('{"type": "send", "text": ' + _deep(1000) + "}", "bad_json", None),
    "doc_text_with_nul": (
        f'{{"type": "doc", "text": "a{NUL}", "version_base": 0}}',
        "bad_field",
        "text",
    ),
    "doc_text_with_surrogate": (
        f'{{"type": "doc", "text": "a{HIGH}b", "version_base": 0}}',
        "bad_field",
        "text",
    ),
    "doc_1000_deep": (
        '{"type": "doc", "text": "x", "version_base": 0, "x": ' + _deep(1000) + "}",
        "bad_json",
        None,
    ),
    "edits_with_nul": (_doc(f'[{{"t": 1, "data": "a{NUL}"}}]'), "bad_field", "edits"),
    "edits_with_nul_in_a_name": (_doc(f'[{{"t{NUL}": 1}}]'), "bad_field", "edits"),
    "edits_with_surrogate": (_doc(f'[{{"t": 1, "data": "{HIGH}"}}]'), "bad_field", "edits"),
    "edits_1000_deep": (_doc('[{"t": 1, "data": ' + _deep(1000) + "}]"), "bad_json", None),
    "edits_700_deep": (_doc('[{"t": 1, "data": ' + _deep(700) + "}]"), "bad_json", None),
    "edits_nan": (_doc('[{"t": NaN}]'), "bad_json", None),
    "edits_infinity": (_doc('[{"t": -Infinity}]'), "bad_json", None),
    "edits_number_too_large_for_a_float": (_doc('[{"t": 1e400}]'), "bad_json", None),
    "edits_nested_object": (_doc('[{"t": 1, "data": {"a": 1}}]'), "bad_field", "edits"),
    "edits_nested_list": (_doc('[{"t": 1, "data": [1, 2]}]'), "bad_field", "edits"),
    "edits_too_many_fields": (
        _doc(json.dumps([{f"k{i}": i for i in range(17)}])),
        "bad_field",
        "edits",
    ),
    "edits_name_too_long": (_doc(json.dumps([{"k" * 65: 1}])), "bad_field", "edits"),
    "edits_too_many": (_doc(json.dumps([{"t": i} for i in range(2001)])), "bad_field", "edits"),
    "heartbeat_with_nul": (f'{{"type": "heartbeat", "note": "{NUL}"}}', "bad_field", "note"),
    "rate_turn_too_large": (
        '{"type": "rate", "turn": 1' + "0" * 30 + ', "value": 5}',
        "bad_field",
        "turn",
    ),
    "rate_value_too_large": (
        '{"type": "rate", "turn": 3, "value": 1' + "0" * 30 + "}",
        "bad_field",
        "value",
    ),
    "regenerate_turn_too_large": (
        '{"type": "regenerate", "turn": 1' + "0" * 30 + "}",
        "bad_field",
        "turn",
    ),
    "client_msg_id_with_a_newline": (
        '{"type": "send", "text": "hi", "client_msg_id": "abc\\n"}',
        "bad_field",
        "client_msg_id",
    ),
}


@pytest.mark.parametrize("name", list(BAD_FRAMES))
async def test_unstorable_frame_input_gets_its_error_code_and_logs_no_error(writer, caplog, name):
    text, code, field = BAD_FRAMES[name]
    client, _ = await open_client("demo", token_for(writer))
    before = await db(_stored, writer)
    with caplog.at_level(logging.WARNING):
        reply = await client.error(text)
    assert (reply["code"], reply.get("field")) == (code, field), reply
    assert reply["message"]
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR] == []
    assert await db(_stored, writer) == before
    await _still_works(client)
    await client.close()


async def test_the_nesting_limit_is_a_setting(writer, settings):
    settings.MAX_FRAME_DEPTH = 3  # a doc frame with edits needs three levels
    client, _ = await open_client("demo", token_for(writer))
    reply = await client.error('{"type": "heartbeat", "x": [[[1]]]}')  # four levels
    assert reply["code"] == "bad_json"
    assert "3 levels" in reply["message"]
    edits = [{"t": 1, "type": "insertText", "at": 0, "delta": 1, "len": 1, "data": "x"}]
    await client.send({"type": "doc", "text": "x", "version_base": 0, "edits": edits})
    (saved,) = await client.until_type("doc_saved")
    assert saved["version"] == 1
    await client.close()


async def test_text_that_merely_looks_like_an_escape_is_kept(writer):
    client, _ = await open_client("demo", token_for(writer))
    text = "Write \\u0000 and \\ud800 literally, with { and [ as well 😀"
    edits = [{"t": 1, "type": "insertText", "at": 0, "delta": 1, "len": 1, "data": text}]
    await client.send({"type": "doc", "text": text, "version_base": 0, "edits": edits})
    (saved,) = await client.until_type("doc_saved")
    assert saved["version"] == 1
    stored = await db(lambda: list(EditBatch.objects.filter(participation=writer)))
    assert [batch.events for batch in stored] == [edits]
    frames = await client.turn(text)
    assert frames[-1]["type"] == "turn_end"
    await client.close()

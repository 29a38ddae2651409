"""A flood of document saves over the socket stores a bounded history and keeps the last text."""

from __future__ import annotations

import time

import pytest

from studyapp.writing.models import DocumentVersion
from tests.writing.conftest import db, open_client, token_for

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.usefixtures("drain_generations"),
]

SAVES = 300


def _versions(participation) -> list[tuple[int, str]]:
    rows = DocumentVersion.objects.filter(participation=participation).order_by("number")
    return list(rows.values_list("number", "text"))


async def _flood(participation, text_of) -> tuple[list[dict], float]:
    """Send SAVES saves without waiting, each based on the version the last answer named."""
    client, state = await open_client("demo", token_for(participation))
    started = time.monotonic()
    answers = []
    base = state["document"]["version"]
    for i in range(SAVES):
        await client.send({"type": "doc", "text": text_of(i), "version_base": base})
        if i % 10 == 9:  # read answers as they come, as a scripted client would
            answers += [f for f in await client.until_type("doc_saved") if f["type"] == "doc_saved"]
            base = answers[-1]["version"]
    while len(answers) < SAVES:
        answers += [f for f in await client.until_type("doc_saved") if f["type"] == "doc_saved"]
    elapsed = time.monotonic() - started
    await client.close()
    return answers, elapsed


async def test_300_rapid_saves_store_a_bounded_history_and_the_last_text(writer, settings):
    settings.DOC_VERSIONS_PER_MINUTE = 5
    answers, elapsed = await _flood(writer, lambda i: f"Draft number {i}")

    assert len(answers) == SAVES  # every save is answered
    versions = await db(_versions, writer)
    # The budget is per minute: a slow run may use one more minute's worth per minute taken.
    assert len(versions) <= 5 * (1 + int(elapsed // 60))
    assert versions[-1][1] == f"Draft number {SAVES - 1}"
    assert answers[-1]["version"] == versions[-1][0]
    client, state = await open_client("demo", token_for(writer))
    await client.close()
    assert state["document"] == {"text": f"Draft number {SAVES - 1}", "version": versions[-1][0]}


async def test_stored_document_text_is_bounded_per_participation(writer, settings):
    settings.MAX_STORED_DOCUMENT_CHARS = 10_000
    answers, _ = await _flood(writer, lambda i: f"{i:04d}" + "x" * 996)

    assert len(answers) == SAVES
    versions = await db(_versions, writer)
    assert 1 <= len(versions) <= 10
    assert sum(len(text) for _, text in versions) <= 10_000
    assert versions[-1][1].startswith(f"{SAVES - 1:04d}")
    numbers = [number for number, _ in versions]
    assert numbers == sorted(numbers)

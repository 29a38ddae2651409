"""A conversation built over the socket, with a regeneration and a side-by-side pick, exports
as dpo pairs from both sources (docs/datasets.md)."""

from __future__ import annotations

import json

import pytest
from django.core.management import call_command

from tests.collab_models.vllm_fake import Script
from tests.writing.conftest import db, open_client, remote_participation, study_version, token_for

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.usefixtures("drain_generations"),
]


def _export(out) -> list[dict]:
    call_command("export_dataset", "pairs", "--kind", "dpo", "--view", "itt", "--out", str(out))
    return [json.loads(line) for line in (out / "train.jsonl").read_text().splitlines()]


async def test_dpo_export_has_a_regeneration_pair_and_a_side_by_side_pair(fake_vllm, tmp_path):
    fake_vllm.script(
        Script(text="Discarded first draft"),
        Script(text="Regenerated first draft"),
        Script(text="Candidate one"),
        Script(text="Candidate two"),
    )
    version = await db(study_version, "side_by_side: {turns: [2]}")
    participation = await db(remote_participation, version, fake_vllm.url)
    client, _ = await open_client("pairs", token_for(participation))
    await client.turn("Help me write about a weekend in Lisbon")
    await client.send({"type": "regenerate", "turn": 1})
    assert (await client.until_type("turn_end"))[-1]["text"] == "Regenerated first draft"
    await client.send({"type": "send", "text": "Two openings please"})
    end = (await client.until_type("pair_end"))[-1]
    picked = next(c for c in end["candidates"] if c["text"] == "Candidate two")
    await client.send(
        {"type": "choose", "group": end["group"], "generation_id": picked["generation_id"]}
    )
    await client.until_type("pair_chosen")
    await client.close()

    rows = await db(_export, tmp_path / "dpo")
    by_source = {r["source"]: r for r in rows}
    assert sorted(by_source) == ["regeneration", "side_by_side"]
    regeneration = by_source["regeneration"]
    assert regeneration["turn"] == 1
    assert regeneration["prompt"] == [
        {"role": "user", "content": "Help me write about a weekend in Lisbon"}
    ]
    assert regeneration["chosen"][0]["content"] == "Regenerated first draft"
    assert regeneration["rejected"][0]["content"] == "Discarded first draft"
    pair = by_source["side_by_side"]
    assert pair["turn"] == 2
    assert [m["content"] for m in pair["prompt"]] == [
        "Help me write about a weekend in Lisbon",
        "Regenerated first draft",
        "Two openings please",
    ]
    assert pair["chosen"][0]["content"] == "Candidate two"
    assert pair["rejected"][0]["content"] == "Candidate one"

"""The collabllm export read the way CollabLLM's ``MultiturnDataset`` reads it.

``multiturn_dpo_pairs`` restates the published behaviour of collabllm 0.0.8
(``collabllm/datasets/multiturn.py``): flat rows need prompt, completion, conv_id, score and the
single_turn_* keys; turn_id defaults to len(prompt); ``to_dpo_dataset`` groups rows by
(conv_id, turn_id), skips groups of one, sorts by score (highest first) and pairs the first with
the last when their gap is at least ``minimum_gap``.
"""

import json

import pytest
from django.core.management import CommandError, call_command

from studyapp.participants.models import Participation
from tests.exports.builders import conversation_make

REQUIRED = {"prompt", "completion", "conv_id", "score", "single_turn_prompt",
            "single_turn_completion", "single_turn_metadata"}


def multiturn_dpo_pairs(rows, *, minimum_gap=0.0):
    if not rows:
        raise ValueError("Loaded dataset is empty.")
    assert set(rows[0]) >= REQUIRED
    grouped = {}
    for row in rows:
        assert isinstance(row["prompt"], list)
        row.setdefault("turn_id", len(row["prompt"]))
        grouped.setdefault((row["conv_id"], row["turn_id"]), []).append(row)
    pairs = []
    for items in grouped.values():
        if len(items) < 2:
            continue
        items = sorted(items, key=lambda r: r["score"], reverse=True)
        if items[0]["score"] - items[-1]["score"] < minimum_gap:
            continue
        pairs.append({"prompt": items[0]["prompt"], "chosen": items[0]["completion"],
                      "rejected": items[-1]["completion"]})
    return pairs


def _rows(out):
    return [json.loads(line) for line in (out / "train.jsonl").read_text().splitlines()]


def _export(tmp_path, *extra):
    out = tmp_path / "collabllm"
    call_command("export_dataset", "demo", "--kind", "collabllm", "--out", str(out), *extra)
    return out


def test_regenerations_and_picks_become_multiturn_dpo_pairs(study_data, tmp_path):
    out = _export(tmp_path)
    rows = _rows(out)
    pairs = multiturn_dpo_pairs(rows)
    assert sorted((p["chosen"], p["rejected"]) for p in pairs) == [
        ("Assistant reply 2", "Discarded reply 2"),
        ("Assistant reply 4", "Candidate A 4"),
    ]
    regen = next(p for p in pairs if p["chosen"] == "Assistant reply 2")
    assert [m["content"] for m in regen["prompt"]][1:] == ["Assistant reply 1", "User message 2"]
    # An explicit pick is stronger evidence than a regeneration: a gap between the two
    # defaults keeps only the pick.
    strict = multiturn_dpo_pairs(_rows(out), minimum_gap=0.75)
    assert [p["chosen"] for p in strict] == ["Assistant reply 4"]
    discarded = {r["completion"]: r for r in rows if not r["kept"]}
    assert discarded["Discarded reply 2"]["alternative_source"] == "regeneration"
    assert discarded["Candidate A 4"]["alternative_source"] == "side_by_side"
    assert not any(r["score_observed"] for r in discarded.values())
    card = (out / "README.md").read_text()
    assert "weaker" in card
    assert "minimum_gap=0.75" in card


def test_conversations_are_whole_after_the_last_rating(study_data, tmp_path):
    rows = [r for r in _rows(_export(tmp_path)) if r["kept"]]
    # Four completers with 9, 9, 8 and 8 turns: every kept reply is a row.
    assert len(rows) == 34
    collab = [r for r in rows if r["single_turn_metadata"]["condition"] == "collabllm"]
    assert max(r["turn_id"] for r in collab) == 15  # turn 8: 7 exchanges and a user message
    last = max(collab, key=lambda r: r["turn_id"])
    assert last["score"] is None
    assert last["score_observed"] is False


def test_prewriting_notes_keep_the_study_files_order(demo_version, tmp_path):
    doc = demo_version.spec["document_types"][0]
    questions = doc["questions"]
    assert len(questions) >= 2
    built = conversation_make(version=demo_version, ratings={3: 8})
    response = built.participation.survey_responses.get(kind="prewriting")
    # Stored in reverse; jsonb reorders keys by length anyway.
    response.answers = {"topic": built.participation.topic,
                        "answers": {q: f"answer {i}" for i, q in reversed(list(
                            enumerate(questions)))}}
    response.save()
    Participation.objects.filter(pk=built.participation.pk).update(document_type=doc["key"])
    (row, *_) = _rows(_export(tmp_path))
    notes = row["single_turn_prompt"].split("The writer's notes:\n")[1].splitlines()
    assert notes == [f"- {q} answer {i}" for i, q in enumerate(questions)]


def test_an_empty_dataset_is_an_error_and_writes_nothing(demo_version, tmp_path):
    conversation_make(version=demo_version, turns=2, ratings={})  # no pairs to make
    out = tmp_path / "dpo"
    with pytest.raises(CommandError, match="the dpo dataset would be empty"):
        call_command("export_dataset", "demo", "--kind", "dpo", "--out", str(out))
    assert not list(out.glob("*"))


def test_a_regeneration_gap_above_the_pick_gap_is_refused(study_data, tmp_path):
    with pytest.raises(CommandError, match="weaker evidence"):
        _export(tmp_path, "--gap-regeneration", "2")

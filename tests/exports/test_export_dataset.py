import json
import re

import pandas as pd
import pytest
from django.core.management import CommandError, call_command

from studyapp.exports.datasets.service import split_of
from studyapp.exports.pseudonyms import REDACTED, participant_pseudonym
from studyapp.feedback.models import DocumentScore
from studyapp.participants.models import Status
from studyapp.writing.models import Message, Role
from tests.exports.privacy import leaks


def _rows(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


def _export(tmp_path, kind, *extra):
    out = tmp_path / kind
    call_command("export_dataset", "demo", "--kind", kind, "--out", str(out), *extra)
    return out


def _pseudonym(built):
    p = built.participation
    return participant_pseudonym(
        secret=p.study.pseudonym_secret, platform=p.platform, external_id=p.external_id
    )


def test_sft_rows_are_whole_active_conversations_with_ids_redacted(study_data, tmp_path):
    out = _export(tmp_path, "sft")
    rows = _rows(out / "train.jsonl")
    assert len(rows) == 4
    by_id = {r["conversation_id"]: r for r in rows}
    first = by_id[_pseudonym(study_data["counted"][0])]
    messages = first["messages"]
    assert len(messages) == 18
    assert [m["role"] for m in messages[:4]] == ["user", "assistant", "user", "assistant"]
    assert REDACTED in messages[0]["content"]
    # The regenerated reply is not part of the conversation; the kept one is.
    assert messages[3]["content"] == "Assistant reply 2"
    assert all(m["content"] != "Discarded reply 2" for m in messages)
    card = (out / "README.md").read_text()
    assert "path: train.jsonl" in card
    assert "Participants who completed the study" in card
    assert "This is a research study" in card  # the consent text
    assert "| prolific | 3 |" in card
    assert "| mturk | 1 |" in card


def test_kto_labels_follow_the_covering_checkpoint_rating(study_data, tmp_path):
    out = _export(tmp_path, "kto")
    rows = _rows(out / "train.jsonl")
    labels = {(r["conversation_id"], r["turn"]): (r["label"], r["rating_turn"]) for r in rows}
    base = _pseudonym(study_data["counted"][0])  # ratings 3: 8, 6: 4, 9: 9
    assert [labels[(base, t)] for t in (1, 3, 4, 6, 7, 9)] == [
        (True, 3), (True, 3), (False, 6), (False, 6), (True, 9), (True, 9)
    ]
    collab = _pseudonym(study_data["counted"][2])  # 8 turns, no rating at 9
    assert (collab, 7) not in labels
    assert (collab, 6) in labels
    assert len(rows) == 30
    assert sum(r["label"] for r in rows) == 18
    prompt = next(r for r in rows if r["conversation_id"] == base and r["turn"] == 2)["prompt"]
    assert [m["content"] for m in prompt[1:]] == ["Assistant reply 1", "User message 2"]
    assert "turns without a covering rating: 4" in (out / "README.md").read_text()


def test_kto_thresholds_are_configurable(study_data, tmp_path):
    out = _export(tmp_path, "kto", "--kto-desirable", "9", "--kto-undesirable", "4")
    rows = _rows(out / "train.jsonl")
    assert {r["rating"] for r in rows if r["label"]} == {9, 10}
    assert {r["rating"] for r in rows if not r["label"]} == {4}
    assert "true when the covering rating is >= 9 and false when it is <= 4" in (
        out / "README.md"
    ).read_text()


def test_dpo_pairs_come_only_from_regenerations_and_side_by_side_picks(study_data, tmp_path):
    out = _export(tmp_path, "dpo")
    rows = sorted(_rows(out / "train.jsonl"), key=lambda r: r["source"])
    assert [(r["source"], r["turn"]) for r in rows] == [("regeneration", 2), ("side_by_side", 4)]
    regen, side = rows
    assert regen["chosen"] == [{"role": "assistant", "content": "Assistant reply 2"}]
    assert regen["rejected"] == [{"role": "assistant", "content": "Discarded reply 2"}]
    assert [m["role"] for m in regen["prompt"]] == ["user", "assistant", "user"]
    assert side["rejected"][0]["content"] == "Candidate A 4"
    assert regen["score_chosen"] == pytest.approx(7 / 9 + 7 / 9 - 0.015)
    assert regen["score_rejected"] is None


def test_reward_follows_the_documented_formula(study_data, tmp_path):
    out = _export(tmp_path, "reward")
    rows = {(r["conversation_id"], r["turn"]): r for r in _rows(out / "train.jsonl")}
    base = _pseudonym(study_data["counted"][0])  # ratings 3: 8, 6: 4, 9: 9; quality 8
    quality = 7 / 9
    assert rows[(base, 1)]["reward"] == pytest.approx(7 / 9 + quality - 150e-4)
    assert rows[(base, 4)]["reward"] == pytest.approx(3 / 9 + quality - 150e-4)
    assert rows[(base, 8)]["reward"] == pytest.approx(8 / 9 + quality - 100e-4)
    assert rows[(base, 8)]["reward_components"]["rating_turns"] == [9]
    assert len(rows) == 30
    weighted = _export(tmp_path / "w", "reward", "--w-document", "0", "--window", "0",
                       "--token-lambda", "0.001")
    rows = {(r["conversation_id"], r["turn"]): r for r in _rows(weighted / "train.jsonl")}
    assert set(t for c, t in rows if c == base) == {3, 6, 9}
    assert rows[(base, 6)]["reward"] == pytest.approx(3 / 9 - 0.05)


def test_collabllm_rows_carry_the_task_and_the_final_document(study_data, tmp_path):
    out = _export(tmp_path, "collabllm")
    rows = _rows(out / "train.jsonl")
    # 34 kept replies (whole conversations) and 2 discarded alternatives.
    assert len(rows) == 36
    row = next(r for r in rows if r["conv_id"] == _pseudonym(study_data["counted"][0]))
    assert set(row) == {
        "prompt", "completion", "conv_id", "turn_id", "score", "single_turn_prompt",
        "single_turn_completion", "single_turn_metadata", "alternative_source", "kept",
        "score_observed",
    }
    assert row["turn_id"] == len(row["prompt"])
    assert isinstance(row["completion"], str)
    assert row["single_turn_prompt"].startswith(
        "Write a blog post on the topic: Travelling on a tight budget"
    )
    assert "Who are your readers? Students." in row["single_turn_prompt"]
    assert row["single_turn_completion"].startswith("The final document about budget travel.")
    assert row["single_turn_metadata"]["condition"] == "base"


@pytest.mark.parametrize("kind", ["sft", "kto", "dpo", "reward", "collabllm"])
def test_parquet_holds_the_same_rows_as_jsonl(study_data, tmp_path, kind):
    jsonl = _rows(_export(tmp_path / "j", kind) / "train.jsonl")
    parquet = pd.read_parquet(_export(tmp_path / "p", kind, "--format", "parquet")
                              / "train.parquet")
    assert len(parquet) == len(jsonl)
    assert list(parquet.columns) == list(jsonl[0])


def test_test_split_is_by_participant(study_data, tmp_path):
    out = _export(tmp_path, "kto", "--test-fraction", "0.5")
    train, test = _rows(out / "train.jsonl"), _rows(out / "test.jsonl")
    assert len(train) + len(test) == 30
    assert not {r["conversation_id"] for r in train} & {r["conversation_id"] for r in test}
    for row in test:
        assert split_of(row["conversation_id"], 0.5) == "test"
    assert "path: test.jsonl" in (out / "README.md").read_text()


@pytest.mark.parametrize("kind", ["sft", "kto", "dpo", "reward", "collabllm"])
@pytest.mark.parametrize("fmt", ["jsonl", "parquet"])
def test_no_platform_id_leaves_in_datasets_or_cards(study_data, tmp_path, kind, fmt):
    out = _export(tmp_path, kind, "--format", fmt, "--view", "itt", "--include-test",
                  "--include-failed-attention")
    ids = [i for b in study_data["all"] for i in b.ids]
    assert leaks(out, ids) == []


def test_bad_options_fail_clearly(study_data, tmp_path):
    with pytest.raises(CommandError, match="kto_undesirable must be below"):
        _export(tmp_path, "kto", "--kto-desirable", "5", "--kto-undesirable", "6")
    with pytest.raises(CommandError, match="no study with slug"):
        call_command("export_dataset", "nope", "--kind", "sft", "--out", str(tmp_path / "n"))


def test_reward_can_take_the_final_quality_from_the_judge(study_data, tmp_path):
    # The fixture's judge scored the first participant's document 7 (of 1-10); the
    # participant rated it 8.
    out = _export(tmp_path, "reward", "--document-source", "judge")
    rows = {(r["conversation_id"], r["turn"]): r for r in _rows(out / "train.jsonl")}
    base = _pseudonym(study_data["counted"][0])
    assert rows[(base, 1)]["reward_components"]["document"] == pytest.approx(6 / 9)
    assert rows[(base, 1)]["reward"] == pytest.approx(7 / 9 + 6 / 9 - 150e-4)
    unjudged = _pseudonym(study_data["counted"][1])
    assert rows[(unjudged, 1)]["reward_components"]["document"] is None
    assert "document_source: judge" in (out / "README.md").read_text()


def test_judge_scores_in_a_dataset_come_from_one_judge(study_data, tmp_path):
    # A second judge scored two documents: it is the one used, for both, never mixed with
    # the first judge's score of a document it did not score.
    counted = study_data["counted"]
    for built, score in ((counted[1], 3.0), (counted[2], 4.0)):
        DocumentScore.objects.create(participation=built.participation, judge="added",
                                     rubric_version="v1", score=score)
    out = _export(tmp_path, "reward", "--document-source", "judge")
    rows = {(r["conversation_id"], r["turn"]): r for r in _rows(out / "train.jsonl")}
    documents = [rows[(_pseudonym(b), 1)]["reward_components"]["document"] for b in counted[:3]]
    assert documents[0] is None
    assert documents[1] == pytest.approx(2 / 9)
    assert documents[2] == pytest.approx(3 / 9)


def test_the_card_names_the_models_and_warns_about_offline_replies(study_data, tmp_path):
    card = (_export(tmp_path / "offline", "sft") / "README.md").read_text()
    (count,) = re.findall(r"\| offline \| offline/base \| (\d+) \|", card)
    # The population's replies only (completers, no test runs or failed attention checks).
    population = Message.objects.filter(
        role=Role.ASSISTANT,
        participation__status=Status.COMPLETED,
        participation__is_test=False,
    ).exclude(participation__attention_passed=False)
    assert int(count) == population.count() > 0
    assert Message.objects.filter(role=Role.ASSISTANT).count() > population.count()
    assert f"Warning: {count} replies came from CollabStudy's offline backend" in card

    Message.objects.filter(role=Role.ASSISTANT).update(
        backend="openai", model="meta-llama/Llama-3.1-8B-Instruct"
    )
    card = (_export(tmp_path / "vllm", "sft") / "README.md").read_text()
    assert f"| openai | meta-llama/Llama-3.1-8B-Instruct | {count} |" in card
    assert "offline backend" not in card


def test_study_version_option_keeps_one_version(study_data, tmp_path):
    number = study_data["version"].number
    out = _export(tmp_path / "one", "sft", "--study-version", str(number))
    assert len(_rows(out / "train.jsonl")) == 4
    assert f"study version {number} only" in (out / "README.md").read_text()
    with pytest.raises(CommandError, match="0 participants"):
        _export(tmp_path / "none", "sft", "--study-version", str(number + 1))

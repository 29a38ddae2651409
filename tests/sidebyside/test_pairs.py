import json
import uuid

import pytest
from django.core.management import call_command

from studyapp.participants.models import Status
from studyapp.sidebyside.selectors import (
    pair_pending,
    side_by_side_candidates,
    side_by_side_due,
)
from studyapp.sidebyside.services import PairRefused, pair_choose, pair_record
from studyapp.studies.services import study_load
from studyapp.studies.spec import StudySpecError
from studyapp.writing.models import Message, Role
from tests.conftest import REFERENCE_STUDY
from tests.exports.builders import conversation_make


def _record(text, finish="stop", error=""):
    return {"text": text, "raw_output": text, "backend": "offline", "model": "offline/base",
            "sampling": {"temperature": 0.8}, "completion_tokens": 12, "finish_reason": finish,
            "error": error}


def _version(side_by_side: str):
    text = REFERENCE_STUDY.read_text() + "\n" + side_by_side
    return study_load(text=text, slug="sbs", offline=True).version


@pytest.fixture
def writing(db):
    """A participation in the chat, waiting for the reply to its third message."""
    version = _version("side_by_side: {turns: [3], mode: samples}")
    built = conversation_make(version=version, condition="collabllm", turns=2,
                              status=Status.WRITING, document_quality=None)
    Message.objects.create(participation=built.participation, turn=3, role=Role.USER,
                           text="Make it shorter")
    return built.participation


def _gen():
    return str(uuid.uuid4())


def test_due_only_at_the_listed_turns(writing):
    spec = writing.version.spec
    assert [t for t in range(1, 8) if side_by_side_due(spec=spec, turn=t)] == [3]


def test_samples_mode_gives_two_samples_of_the_own_arm_with_different_seeds(writing):
    candidates = side_by_side_candidates(participation=writing)
    assert [c.condition_name for c in candidates] == ["collabllm", "collabllm"]
    assert candidates[0].seed != candidates[1].seed
    assert candidates[0].config["backend"] == "offline"


def test_arms_mode_gives_one_reply_from_each_named_arm(db):
    version = _version("side_by_side: {turns: [2], mode: arms, arms: [base, collabllm]}")
    built = conversation_make(version=version, condition="base", turns=1, status=Status.WRITING)
    names = {c.condition_name for c in side_by_side_candidates(participation=built.participation)}
    assert names == {"base", "collabllm"}
    # A typo in the arms is caught when the study file is loaded, not at the participant's turn.
    with pytest.raises(StudySpecError, match="unknown conditions"):
        _version("side_by_side: {turns: [2], mode: arms, arms: [base, nope]}")


def test_pair_waits_for_a_pick_and_the_pick_becomes_the_reply(writing):
    first, second = _gen(), _gen()
    recorded = pair_record(
        participation_id=writing.pk, turn=3,
        candidates=[(first, _record("Short version A"), 11), (second, _record("Short B"), 12)],
    )
    assert recorded.awaiting_choice
    assert pair_pending(participation_id=writing.pk) == recorded.group
    assert not Message.objects.filter(participation=writing, turn=3, role=Role.ASSISTANT,
                                      is_active=True).exists()

    picked = pair_choose(participation_id=writing.pk, group=recorded.group, generation_id=second)
    assert picked.text == "Short B"
    replies = {str(m.generation_id): m for m in Message.objects.filter(
        participation=writing, turn=3, role=Role.ASSISTANT)}
    assert (replies[second].is_active, replies[second].chosen) == (True, True)
    assert (replies[first].is_active, replies[first].chosen) == (False, False)
    assert replies[first].seed == 11
    assert pair_pending(participation_id=writing.pk) is None
    # A double click is harmless; changing one's mind afterwards is not allowed.
    assert pair_choose(participation_id=writing.pk, group=recorded.group,
                       generation_id=second).pk == picked.pk
    with pytest.raises(PairRefused) as refused:
        pair_choose(participation_id=writing.pk, group=recorded.group, generation_id=first)
    assert refused.value.code == "already_chosen"


def test_a_pick_outside_the_pair_is_refused(writing):
    recorded = pair_record(participation_id=writing.pk, turn=3, candidates=[
        (_gen(), _record("A"), 1), (_gen(), _record("B"), 2)])
    with pytest.raises(PairRefused) as refused:
        pair_choose(participation_id=writing.pk, group=recorded.group, generation_id=_gen())
    assert refused.value.code == "bad_choice"


def test_one_failed_candidate_leaves_the_other_as_the_reply(writing):
    ok = _gen()
    recorded = pair_record(participation_id=writing.pk, turn=3, candidates=[
        (_gen(), _record("", finish="error", error="upstream 503"), 1), (ok, _record("B"), 2)])
    assert not recorded.awaiting_choice
    active = Message.objects.get(participation=writing, turn=3, role=Role.ASSISTANT,
                                 is_active=True)
    assert str(active.generation_id) == ok
    assert pair_pending(participation_id=writing.pk) is None


def test_a_recorded_turn_cannot_get_a_pair(writing):
    Message.objects.create(participation=writing, turn=3, role=Role.ASSISTANT, text="Done")
    with pytest.raises(PairRefused) as refused:
        pair_record(participation_id=writing.pk, turn=3, candidates=[
            (_gen(), _record("A"), 1), (_gen(), _record("B"), 2)])
    assert refused.value.code == "turn_answered"


def test_picks_become_dpo_pairs(writing, tmp_path):
    first, second = _gen(), _gen()
    recorded = pair_record(participation_id=writing.pk, turn=3, candidates=[
        (first, _record("Short version A"), 1), (second, _record("Short B"), 2)])
    pair_choose(participation_id=writing.pk, group=recorded.group, generation_id=first)
    out = tmp_path / "dpo"
    call_command("export_dataset", "sbs", "--kind", "dpo", "--view", "itt", "--out", str(out))
    rows = [json.loads(line) for line in (out / "train.jsonl").read_text().splitlines()]
    assert len(rows) == 1
    row = rows[0]
    assert row["source"] == "side_by_side"
    assert row["chosen"][0]["content"] == "Short version A"
    assert row["rejected"][0]["content"] == "Short B"
    assert row["prompt"][-1] == {"role": "user", "content": "Make it shorter"}

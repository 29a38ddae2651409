import pytest

from studyapp.feedback.models import DocumentScore
from studyapp.participants.models import Platform, Status
from tests.exports.builders import conversation_make


@pytest.fixture
def export_dir(tmp_path, settings):
    settings.EXPORT_DIR = tmp_path / "exports"
    return settings.EXPORT_DIR


@pytest.fixture
def study_data(demo_version):
    """The demo study with a mix of participations.

    Counted by default (completers, no tests, attention passed): the three Prolific completers
    and the MTurk completer. Not counted by default: a pilot test run, a completer who failed
    the attention check, and a participant still writing.
    """
    v = demo_version
    counted = [
        conversation_make(version=v, condition="base", ratings={3: 8, 6: 4, 9: 9},
                          regenerate_turns=(2,)),
        conversation_make(version=v, condition="proactive_base", ratings={3: 6, 6: 7, 9: 10},
                          side_by_side_turns=(4,)),
        conversation_make(version=v, condition="collabllm", ratings={3: 9, 6: 9},
                          turns=8),
        conversation_make(version=v, condition="base", platform=Platform.MTURK,
                          ratings={3: 5, 6: 6}, turns=8, document_quality=6),
    ]
    others = [
        conversation_make(version=v, condition="base", platform=Platform.PILOT, is_test=True,
                          ratings={3: 7}),
        conversation_make(version=v, condition="collabllm", attention_passed=False,
                          ratings={3: 2}),
        conversation_make(version=v, condition="proactive_base", status=Status.WRITING,
                          turns=4, ratings={3: 8}, document_quality=None),
    ]
    DocumentScore.objects.create(
        participation=counted[0].participation, judge="offline:test", rubric_version="v1",
        score=7.0, rationale="Clear and concise.", raw_output='{"score": 7}',
    )
    return {"version": v, "counted": counted, "others": others, "all": counted + others}

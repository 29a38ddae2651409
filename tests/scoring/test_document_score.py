"""Scoring final documents through a real loopback server speaking vLLM's stream format."""

import pytest
from django.core.management import call_command

from studyapp.feedback.models import DocumentScore
from studyapp.participants.models import Status
from studyapp.scoring.judge import judge_for
from studyapp.scoring.services import JudgeUnavailable, document_score, participations_unscored
from studyapp.scoring.tasks import documents_score_pending_task
from studyapp.studies.services import study_load
from tests.collab_models.vllm_fake import FakeVLLM, Script
from tests.conftest import REFERENCE_STUDY
from tests.exports.builders import conversation_make

MODEL = "meta-llama/Llama-3.1-8B-Instruct"


@pytest.fixture
def fake():
    with FakeVLLM().running_in_thread() as server:
        yield server


def _version(judge_block: str, slug="judged"):
    text = REFERENCE_STUDY.read_text() + "\n" + judge_block
    return study_load(text=text, slug=slug, offline=True).version


def _endpoint_judge(url):
    return _version(
        f"judge: {{backend: openai, endpoints: ['{url}'], model: {MODEL}, "
        "timeouts: {connect: 2, first_token: 5, between_tokens: 5, total: 20}, retries: 0}"
    )


def test_judge_scores_the_final_document_with_the_versioned_rubric(db, fake):
    version = _endpoint_judge(fake.url)
    built = conversation_make(version=version, condition="base")
    fake.script(Script(text='{"rationale": "Clear, warm and well organised.", "score": 8}'))

    score = document_score(participation=built.participation)

    assert score.score == 8.0
    assert score.rationale == "Clear, warm and well organised."
    assert score.judge == f"openai/{MODEL}"
    assert score.rubric_version == "document_quality_v1"
    assert score.error == ""
    request = fake.chat_requests()[-1].body
    assert request["temperature"] == 0.0
    assert request["model"] == MODEL
    assert [m["role"] for m in request["messages"]] == ["user"]
    prompt = request["messages"][0]["content"]
    assert "The final document about budget travel." in prompt
    assert 'a blog post on the topic: "Travelling on a tight budget"' in prompt


def test_scoring_again_replaces_the_row(db, fake):
    version = _endpoint_judge(fake.url)
    built = conversation_make(version=version, condition="base")
    fake.script(Script(text="I would give it a 6/10 overall."), Script(text="Score: 9"))
    assert document_score(participation=built.participation).score == 6.0
    assert document_score(participation=built.participation).score == 9.0
    assert DocumentScore.objects.filter(participation=built.participation).count() == 1


def test_unreachable_judge_is_retried_then_recorded(db, fake):
    version = _endpoint_judge(fake.url)
    built = conversation_make(version=version, condition="base")
    fake.script(Script(status=503), Script(status=503))
    with pytest.raises(JudgeUnavailable):
        document_score(participation=built.participation, record_transient=False)
    assert not DocumentScore.objects.exists()
    score = document_score(participation=built.participation, record_transient=True)
    assert score.score is None
    assert score.error.startswith("judge failed")


def test_a_reply_without_a_score_is_kept_with_an_error(db, fake):
    version = _endpoint_judge(fake.url)
    built = conversation_make(version=version, condition="base")
    fake.script(Script(text="What a lovely piece of writing!"))
    score = document_score(participation=built.participation)
    assert score.score is None
    assert score.error == "no score found in the judge's reply"
    assert score.raw_output == "What a lovely piece of writing!"


def test_condition_judge_uses_the_arm_without_its_prompt(db):
    version = _version("judge: {condition: collabllm}")
    judge = judge_for(version)
    assert judge.label == "condition:collabllm/collabllm-writing"
    assert "prompt" not in judge.arm_config
    assert judge.arm_config["sampling"]["temperature"] == 0.0
    built = conversation_make(version=version, condition="base")
    # The offline backend writes prose, not scores: the failure is stored, not raised.
    score = document_score(participation=built.participation)
    assert score.judge == judge.label
    assert (score.score is None) == bool(score.error)


def test_periodic_job_queues_completed_unscored_documents(
    db, fake, django_capture_on_commit_callbacks
):
    version = _endpoint_judge(fake.url)
    done = conversation_make(version=version, condition="base")
    writing = conversation_make(version=version, condition="base", status=Status.WRITING)
    no_judge = conversation_make(version=_version("", slug="plain"), condition="base")
    assert participations_unscored() == [done.participation.pk]
    fake.script(Script(text='{"score": 7, "rationale": "Good."}'))

    with django_capture_on_commit_callbacks(execute=True):
        queued = documents_score_pending_task()

    assert queued == 1
    assert DocumentScore.objects.get(participation=done.participation).score == 7.0
    assert participations_unscored() == []
    assert not DocumentScore.objects.filter(
        participation__in=[writing.participation, no_judge.participation]
    ).exists()


def test_command_scores_a_study(db, fake, capsys):
    version = _endpoint_judge(fake.url)
    for _ in range(2):
        conversation_make(version=version, condition="base")
    fake.script(Script(text='{"score": 5}'), Script(text='{"score": 10}'))
    call_command("score_documents", "judged")
    assert sorted(DocumentScore.objects.values_list("score", flat=True)) == [5.0, 10.0]
    assert "scored 2, failed 0" in capsys.readouterr().out

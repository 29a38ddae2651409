"""Judges defined apart from the study file: added after collection, several per document,
re-scores that fail keep the good scores, errored scores retried by the periodic job."""

import pytest
from django.core.management import CommandError, call_command

from studyapp.feedback.models import DocumentScore
from studyapp.participants.models import Status
from studyapp.scoring.judge import JudgeConfigError
from studyapp.scoring.services import MAX_ATTEMPTS, participations_unscored, study_judge_add
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


def _block(url):
    return {"backend": "openai", "endpoints": [url], "model": MODEL, "retries": 0,
            "timeouts": {"connect": 2, "first_token": 5, "between_tokens": 5, "total": 20}}


@pytest.fixture
def collected(db):
    """A study without any judge whose data is already in: three completed documents."""
    version = study_load(text=REFERENCE_STUDY.read_text(), slug="late", offline=True).version
    done = [conversation_make(version=version, condition=c).participation
            for c in ("base", "collabllm", "base")]
    conversation_make(version=version, condition="base", status=Status.WRITING)
    return version, done


def _scores(judge):
    return dict(DocumentScore.objects.filter(judge=judge).values_list("participation_id", "score"))


def test_a_judge_added_after_collection_scores_every_document(
    collected, fake, django_capture_on_commit_callbacks
):
    version, done = collected
    with pytest.raises(CommandError, match="has no judge: add one"):
        call_command("score_documents", "late")
    fake.script(*[Script(text=f'{{"score": {s}, "rationale": "ok"}}') for s in (7, 4, 9)])

    with django_capture_on_commit_callbacks(execute=True):
        study_judge_add(study=version.study, name="llama", config=_block(fake.url))

    assert sorted(_scores("llama").values()) == [4.0, 7.0, 9.0]
    assert set(_scores("llama")) == {p.pk for p in done}
    assert participations_unscored() == []


def test_a_second_judge_scores_the_same_documents(collected, fake, capsys):
    version, done = collected
    study_judge_add(study=version.study, name="first", config=_block(fake.url))
    study_judge_add(study=version.study, name="second", config=_block(fake.url))
    fake.script(*[Script(text=f"Score: {s}") for s in (8, 3, 6, 5, 2, 7)])
    call_command("score_documents", "late")
    assert "scored 6, failed 0" in capsys.readouterr().out
    assert set(_scores("first")) == set(_scores("second")) == {p.pk for p in done}
    call_command("score_documents", "late", "--judge", "second", "--all")
    assert "3 scores to make" in capsys.readouterr().out


def test_an_outage_during_a_rescore_keeps_the_good_scores(collected, capsys):
    version, _ = collected
    with FakeVLLM().running_in_thread() as server:
        study_judge_add(study=version.study, name="llama", config=_block(server.url))
        server.script(*[Script(text='{"score": 6}') for _ in range(3)])
        call_command("score_documents", "late")
    good = _scores("llama")
    assert sorted(good.values()) == [6.0, 6.0, 6.0]

    call_command("score_documents", "late", "--all")  # the judge server is down now

    assert "scored 0, failed 0, kept 3" in capsys.readouterr().out
    assert _scores("llama") == good
    for row in DocumentScore.objects.all():
        assert row.error == ""
        assert row.rescore_error.startswith("judge failed")
    assert participations_unscored() == []


def test_errored_scores_are_retried_by_the_periodic_job(
    collected, fake, django_capture_on_commit_callbacks
):
    version, _ = collected
    fake.script(Script(text="Lovely!"), Script(text='{"score": 5}'), Script(text='{"score": 6}'))
    with django_capture_on_commit_callbacks(execute=True):
        study_judge_add(study=version.study, name="llama", config=_block(fake.url))
    errored = DocumentScore.objects.get(score__isnull=True)
    assert errored.error == "no score found in the judge's reply"
    assert participations_unscored() == [errored.participation_id]

    fake.script(Script(text='{"score": 8}'))
    with django_capture_on_commit_callbacks(execute=True):
        assert documents_score_pending_task() == 1
    errored.refresh_from_db()
    assert (errored.score, errored.error, errored.attempts) == (8.0, "", 2)


def test_a_score_that_keeps_failing_is_retried_a_bounded_number_of_times(
    collected, fake, django_capture_on_commit_callbacks
):
    version, _ = collected
    fake.script(*[Script(text="No idea.") for _ in range(3 * MAX_ATTEMPTS)])
    with django_capture_on_commit_callbacks(execute=True):
        study_judge_add(study=version.study, name="llama", config=_block(fake.url))
        for _ in range(MAX_ATTEMPTS + 1):
            documents_score_pending_task()
    assert participations_unscored() == []
    assert set(DocumentScore.objects.values_list("attempts", flat=True)) == {MAX_ATTEMPTS}


def test_a_judge_block_that_cannot_work_is_refused_when_added(collected):
    version, _ = collected
    with pytest.raises(JudgeConfigError, match="no condition named 'nope'"):
        study_judge_add(study=version.study, name="arm", config={"condition": "nope"})
    with pytest.raises(ValueError, match="unknown rubric"):
        study_judge_add(study=version.study, name="arm", config={"condition": "base",
                                                               "rubric": "missing_v1"})
    with pytest.raises(JudgeConfigError, match="short slug"):
        study_judge_add(study=version.study, name="Bad Name", config={"condition": "base"})

"""The study page's score button and its progress endpoint, through the test client: two
judges score every final document in Celery (eager here), good and failed scores counted."""

import pytest
from django.contrib.auth import get_user_model
from django.urls import reverse

from studyapp.feedback.models import DocumentScore
from studyapp.scoring.models import StudyJudge
from studyapp.studies.models import Study
from tests.collab_models.vllm_fake import FakeVLLM, Script
from tests.scoring.rater_builders import collected_make

pytestmark = pytest.mark.django_db

MODEL = "meta-llama/Llama-3.1-8B-Instruct"


@pytest.fixture
def fake():
    with FakeVLLM().running_in_thread() as server:
        yield server


def _judge(study, name, url):
    StudyJudge.objects.create(study=study, name=name, config={
        "backend": "openai", "endpoints": [url], "model": MODEL, "retries": 0,
        "timeouts": {"connect": 2, "first_token": 5, "between_tokens": 5, "total": 20}})


@pytest.fixture
def judged(fake):
    collected = collected_make()
    study = Study.objects.get(slug=collected.slug)
    _judge(study, "first", fake.url)
    _judge(study, "second", fake.url)
    return study


def _progress(client, study):
    response = client.get(reverse("dashboards:scoring_progress", args=[study.slug]))
    assert response.status_code == 200
    assert response["Cache-Control"].startswith("max-age=0")
    return response.json()


def test_the_button_scores_every_document_with_every_judge_and_reports_progress(
    staff_client, judged, fake, django_capture_on_commit_callbacks
):
    study = judged
    # A staff rater's score is not a judge's and is not counted.
    DocumentScore.objects.create(participation=study.participations.first(),
                                 judge="staff:someone", rubric_version="document_quality_v1",
                                 score=5)
    assert _progress(staff_client, study) == {
        "judges": 2, "total": 6, "scored": 0, "errors": 0, "pending": 6}
    page = staff_client.get(reverse("dashboards:study", args=[study.slug])).content.decode()
    assert "data-score-button" in page
    assert reverse("dashboards:scoring_progress", args=[study.slug]) in page

    # Per document, "first" then "second" is asked: the second judge's replies have no score.
    fake.script(*[Script(text=t) for _ in range(3) for t in ('{"score": 7}', "I cannot say.")])
    with django_capture_on_commit_callbacks(execute=True) as queued:
        response = staff_client.post(reverse("dashboards:score", args=[study.slug]))
    assert response.status_code == 302
    assert len(queued) == 3

    assert _progress(staff_client, study) == {
        "judges": 2, "total": 6, "scored": 3, "errors": 3, "pending": 0}
    assert sorted(DocumentScore.objects.filter(judge="first").values_list("score", flat=True)) \
        == [7.0, 7.0, 7.0]

    # Pressed again: good scores stay as they are, the errored ones are asked again.
    fake.script(*[Script(text='{"score": 4}') for _ in range(3)])
    with django_capture_on_commit_callbacks(execute=True):
        staff_client.post(reverse("dashboards:score", args=[study.slug]))
    assert _progress(staff_client, study) == {
        "judges": 2, "total": 6, "scored": 6, "errors": 0, "pending": 0}
    assert set(DocumentScore.objects.filter(judge="first").values_list("score", flat=True)) \
        == {7.0}


def test_a_study_without_judges_says_so_and_queues_nothing(
    staff_client, django_capture_on_commit_callbacks
):
    collected = collected_make()
    with django_capture_on_commit_callbacks() as queued:
        response = staff_client.post(reverse("dashboards:score", args=[collected.slug]),
                                     follow=True)
    assert queued == []
    assert "has no judge" in response.content.decode()
    assert _progress(staff_client, Study.objects.get(slug=collected.slug))["total"] == 0


def test_the_button_and_progress_are_for_staff_only(client, judged):
    client.force_login(get_user_model().objects.create_user("someone"))
    for response in (client.post(reverse("dashboards:score", args=[judged.slug])),
                     client.get(reverse("dashboards:scoring_progress", args=[judged.slug]))):
        assert response.status_code == 302
        assert "/admin/login/" in response["Location"]
    assert not DocumentScore.objects.exists()

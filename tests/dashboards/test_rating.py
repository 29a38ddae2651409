"""The rating page through the test client: staff only, scores checked against the rubric,
one editable score per rater and document, each rater with their own keys."""

import pytest
from django.contrib.auth import get_user_model
from django.urls import reverse

from studyapp.feedback.models import DocumentScore
from studyapp.participants.models import DataAccess, Status
from studyapp.scoring.raters import RatingRefused, rater_documents, rater_score_submit
from studyapp.studies.models import Study
from tests.exports.builders import conversation_make
from tests.scoring.rater_builders import collected_make

pytestmark = pytest.mark.django_db


@pytest.fixture
def collected(db):
    return collected_make(per_arm=2)


def test_the_rating_page_is_for_staff_only(client, collected):
    url = reverse("dashboards:rate", args=[collected.slug])
    client.force_login(get_user_model().objects.create_user("someone"))
    response = client.get(url)
    assert response.status_code == 302
    assert "/admin/login/" in response["Location"]
    assert client.post(url, {"doc": "x", "score": "5"}).status_code == 302
    assert not DocumentScore.objects.exists()


def test_each_rater_sees_every_document_once_under_keys_of_their_own(collected):
    study = Study.objects.get(slug=collected.slug)
    version = study.versions.get()
    conversation_make(version=version, is_test=True)  # a pilot: not for raters
    conversation_make(version=version, status=Status.WRITING)  # not final yet
    alice, bob = (get_user_model().objects.create_user(n, is_staff=True) for n in ("al", "bo"))
    for_alice, for_bob = rater_documents(study=study, user=alice), rater_documents(
        study=study, user=bob)
    assert {p.pk for _, p in for_alice} == {p.pk for p in collected.documents.values()}
    assert len(for_alice) == 6
    assert not {k for k, _ in for_alice} & {k for k, _ in for_bob}
    assert rater_documents(study=study, user=alice) == for_alice


def test_a_score_is_one_per_rater_and_document_and_can_be_changed(staff_client, collected):
    study = Study.objects.get(slug=collected.slug)
    user = get_user_model().objects.get(username="researcher")
    url = reverse("dashboards:rate", args=[collected.slug])
    key, participation = rater_documents(study=study, user=user)[0]
    assert staff_client.post(url, {"doc": key, "score": "3"}).status_code == 302
    assert staff_client.post(url, {"doc": key, "score": "9"}).status_code == 302
    stored = DocumentScore.objects.get(judge="staff:researcher")
    assert (stored.participation_id, stored.score) == (participation.pk, 9.0)
    page = staff_client.get(url, {"doc": key})
    assert b'value="9" required checked' in page.content
    # The access is logged under the participation, though the page never names it.
    logged = DataAccess.objects.filter(action="rating").values_list("participation", flat=True)
    assert list(logged) == [participation.public_id]
    assert str(participation.public_id).encode() not in page.content


@pytest.mark.parametrize("score", [0, 11])
def test_a_score_off_the_rubric_scale_is_refused(collected, score):
    study = Study.objects.get(slug=collected.slug)
    user = get_user_model().objects.create_user("al", is_staff=True)
    key = rater_documents(study=study, user=user)[0][0]
    with pytest.raises(RatingRefused, match="from 1 to 10"):
        rater_score_submit(study=study, user=user, key=key, score=score)
    assert not DocumentScore.objects.exists()


def test_an_unknown_document_key_is_not_found(staff_client, collected):
    url = reverse("dashboards:rate", args=[collected.slug])
    assert staff_client.get(url, {"doc": "0" * 20}).status_code == 404
    assert staff_client.post(url, {"doc": "0" * 20, "score": "5"}).status_code == 302
    assert not DocumentScore.objects.exists()

"""Exports never name the staff: a rater is a keyed pseudonym, stable within the study."""

import pandas as pd
import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command

from studyapp.exports.pseudonyms import rater_pseudonym, scorer_public_label
from studyapp.participants.decisions import participation_exclude, participation_mark_returned
from studyapp.participants.models import Status
from studyapp.scoring.raters import rater_documents, rater_label, rater_score_submit
from studyapp.studies.spec import exclusion_reasons
from tests.exports.privacy import leaks

USERNAME = "dr.alice.rater"
EMAIL = "alice.rater@lab.example"
FORMATS = ("csv", "jsonl", "parquet")


@pytest.fixture
def rated(study_data):
    study = study_data["version"].study
    user = get_user_model().objects.create_user(USERNAME, email=EMAIL, is_staff=True)
    for key, _ in rater_documents(study=study, user=user)[:2]:
        rater_score_submit(study=study, user=user, key=key, score=6)
    # The same person also makes decisions that record who made them.
    completer = study_data["counted"][3].participation
    reason = exclusion_reasons(completer.version.spec)[0]["key"]
    participation_exclude(participation=completer, reason=reason, by=user, via="dashboard")
    writing = next(b for b in study_data["all"] if b.participation.status == Status.WRITING)
    participation_mark_returned(participation=writing.participation, by=user, via="dashboard")
    return {"study": study, "user": user}


@pytest.mark.parametrize("fmt", FORMATS)
def test_no_staff_username_or_email_leaves_in_any_table(rated, tmp_path, fmt):
    out = tmp_path / fmt
    call_command(
        "export_study", "demo", "--out", str(out), "--format", fmt, "--view", "itt",
        "--include-test", "--include-failed-attention",
    )
    assert leaks(out, [USERNAME, EMAIL, rater_label(rated["user"])]) == []
    scores = pd.read_parquet(out / "document_scores.parquet") if fmt == "parquet" else None
    if scores is not None:
        expected = rater_pseudonym(study_id=rated["study"].pk, user_key=f"id:{rated['user'].pk}")
        assert (scores["judge"] == expected).sum() == 2
        assert set(scores["judge"]) == {expected, "offline:test"}


def test_a_rater_pseudonym_is_stable_within_a_study_and_differs_between_studies(db):
    first = scorer_public_label(label="staff:bob", study_id=1, rater_ids={"bob": 7})
    assert first == scorer_public_label(label="staff:bob", study_id=1, rater_ids={"bob": 7})
    assert first.startswith("rater-")
    assert "bob" not in first
    assert first != scorer_public_label(label="staff:bob", study_id=2, rater_ids={"bob": 7})
    assert first != scorer_public_label(label="staff:carol", study_id=1,
                                        rater_ids={"carol": 8})
    # A judge keeps its name.
    assert scorer_public_label(label="offline:test", study_id=1, rater_ids={}) == "offline:test"

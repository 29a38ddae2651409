"""Writes for the end of the journey: leaving the chat, the final questions."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from django.db import transaction
from django.utils import timezone

from studyapp.feedback.models import FINAL_TURN, Rating, Scale, SurveyKind, SurveyResponse
from studyapp.feedback.ratings import interaction_rating_due
from studyapp.feedback.selectors import assistant_turns_completed, document_words
from studyapp.participants.locks import participation_locked
from studyapp.participants.models import Outcome, Participation, Status
from studyapp.sidebyside.selectors import pair_pending


class FinishRefused(Exception):
    """The chat cannot end yet; the message tells the participant what is missing."""


class SurveyInvalid(ValueError):
    """Final answers that break the study file's rules."""


def _locked(participation: Participation) -> Participation:
    return participation_locked(participation.pk, related=("study", "version", "condition"))


def writing_finish(*, participation: Participation) -> Participation:
    """End the co-writing step once the minimum turns are done and every due rating is given.

    A participation that is no longer writing is returned unchanged (double click).
    """
    with transaction.atomic():
        locked = _locked(participation)
        if locked.status != Status.WRITING:
            return locked
        if pair_pending(participation_id=locked.pk) is not None:
            raise FinishRefused("Please pick one of the two replies in the chat before finishing.")
        _check_minimums(locked)
        if interaction_rating_due(participation=locked) is not None:
            raise FinishRefused("Please rate the conversation in the chat before finishing.")
        locked.status = Status.FINISHED
        # Finishing is an action: the final survey's idle time counts from it.
        locked.finished_at = locked.acted_at = timezone.now()
        locked.save(update_fields=["status", "finished_at", "acted_at"])
        return locked


def _check_minimums(participation: Participation) -> None:
    """Refuse to finish below the study's minimum turns or document words (STUDY.md §7)."""
    writing = participation.version.spec["writing"]
    turns = len(assistant_turns_completed(participation=participation))
    if turns < writing["min_turns"]:
        raise FinishRefused(
            f"Please keep going: the study needs at least {writing['min_turns']} completed turns "
            f"with the assistant (you have {turns}). A turn counts when your message has at "
            f"least {writing['min_message_words']} words and the assistant's reply has text."
        )
    needed, written = writing["min_document_words"], document_words(participation=participation)
    if written < needed:
        raise FinishRefused(
            f"Please write your document before finishing: it needs at least {needed} "
            f"word{'s' if needed != 1 else ''} (it has {written})."
        )


def final_survey_submit(
    *, participation: Participation, answers: Mapping[str, Any]
) -> Participation:
    """Store the final answers, the final ratings and the outcome, and complete the participation.

    ``answers`` maps each survey question's key (and the attention check's) to its answer, scale
    answers as ints. A participation no longer on the final step is returned unchanged, so a
    second submission writes nothing.
    """
    survey = participation.version.spec["survey"]
    ratings = _final_ratings(questions=survey["questions"], answers=answers)
    check = survey.get("attention_check")
    passed = None if not check else answers.get(check["key"]) == check["expected"]
    with transaction.atomic():
        locked = _locked(participation)
        if locked.status != Status.FINISHED:
            return locked
        SurveyResponse.objects.create(
            participation=locked, kind=SurveyKind.FINAL, answers=dict(answers)
        )
        Rating.objects.bulk_create(
            Rating(participation=locked, scale=scale, turn=FINAL_TURN, value=value)
            for scale, value in ratings.items()
        )
        outcome = Outcome.FAILED_ATTENTION if passed is False else Outcome.COMPLETED
        locked.attention_passed = passed
        locked.outcome = outcome
        locked.completion_code = locked.version.spec["completion_codes"].get(outcome, "")
        locked.status = Status.COMPLETED
        locked.completed_at = timezone.now()
        locked.save(
            update_fields=[
                "attention_passed", "outcome", "completion_code", "status", "completed_at"
            ]
        )
        return locked


def _final_ratings(
    *, questions: list[dict[str, Any]], answers: Mapping[str, Any]
) -> dict[str, int]:
    """Scale answers that are also rating scales (document quality, overall), range-checked."""
    ratings = {}
    for question in questions:
        if question["kind"] != "scale":
            continue
        value = answers.get(question["key"])
        low, high = question.get("min", 1), question.get("max", 10)
        if not isinstance(value, int) or not low <= value <= high:
            raise SurveyInvalid(f"{question['key']}: a whole number from {low} to {high}")
        if question["key"] in Scale.values:
            ratings[question["key"]] = value
    return ratings

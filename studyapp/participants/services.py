"""Writes for the first steps of the journey: entry, consent (with assignment), pre-writing."""

from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import Literal

from django.db import IntegrityError, transaction
from django.db.models import F
from django.utils import timezone

from studyapp.feedback.models import SurveyKind, SurveyResponse
from studyapp.participants.assignment import assignment_assign
from studyapp.participants.models import Outcome, Participation, Platform, Status
from studyapp.participants.platforms import EntryLink
from studyapp.participants.selectors import (
    IN_PROGRESS_STATUSES,
    participation_find,
    prewriting_answer_rule,
    prewriting_min_answers,
    study_is_full,
)
from studyapp.studies.models import Study
from studyapp.studies.selectors import study_current_version
from studyapp.studies.spec import document_type

RefusalReason = Literal["closed", "full", "pilot_not_allowed"]


class EntryRefused(Exception):
    """The study cannot take a new participant now (``reason`` says why)."""

    def __init__(self, reason: RefusalReason) -> None:
        super().__init__(reason)
        self.reason = reason


class ConsentIncomplete(ValueError):
    """Not every consent checkbox was ticked."""


class PrewritingInvalid(ValueError):
    """The pre-writing answers break the study file's rules; the message says which."""


def _locked(participation: Participation) -> Participation:
    return (
        Participation.objects.select_for_update(of=("self",))
        .select_related("study", "version", "condition")
        .get(pk=participation.pk)
    )


def preview_record(*, study: Study) -> None:
    """Count an MTurk preview. Nothing about the person is stored."""
    Study.objects.filter(pk=study.pk).update(preview_count=F("preview_count") + 1)


def participation_enter(*, study: Study, link: EntryLink) -> Participation:
    """The participation for this platform id: the existing one, or a new one.

    A returning id always gets its own participation back, even when the study has since closed
    or filled up; only new arrivals are refused (``EntryRefused``).
    """
    existing = participation_find(study=study, platform=link.platform, external_id=link.external_id)
    if existing is not None:
        return _resume(existing, link)
    try:
        with transaction.atomic():
            # The lock makes the quota check and the insert one step for concurrent arrivals.
            locked = Study.objects.select_for_update().get(pk=study.pk)
            version = study_current_version(study=locked)
            _check_admission(study=locked, spec=version.spec, link=link)
            return Participation.objects.create(
                study=locked,
                version=version,
                platform=link.platform,
                external_id=link.external_id,
                platform_data=dict(link.platform_data),
                is_test=link.is_test,
            )
    except IntegrityError:
        # The same id arrived twice at once (double click, two tabs): one insert won.
        existing = participation_find(
            study=study, platform=link.platform, external_id=link.external_id
        )
        if existing is None:
            raise
        return existing


def _check_admission(*, study: Study, spec: dict, link: EntryLink) -> None:
    if not study.is_open:
        raise EntryRefused("closed")
    if link.is_test and not spec.get("allow_pilot"):
        raise EntryRefused("pilot_not_allowed")
    if not link.is_test and study_is_full(study=study, spec=spec):
        raise EntryRefused("full")


def _resume(participation: Participation, link: EntryLink) -> Participation:
    # A worker who returned a HIT and accepted it again has a new assignment: completion must
    # be submitted under the current one.
    if (
        participation.platform == Platform.MTURK
        and participation.status in IN_PROGRESS_STATUSES
        and participation.platform_data != link.platform_data
    ):
        participation.platform_data = dict(link.platform_data)
        participation.save(update_fields=["platform_data"])
    return participation


def participation_consent(
    *, participation: Participation, agreed: Collection[int]
) -> Participation:
    """Record consent (every checkbox index in ``agreed``) and assign condition and document.

    A participation past the consent step is returned unchanged (double submission).
    """
    boxes = participation.version.spec["consent"]["checkboxes"]
    if set(range(len(boxes))) - set(agreed):
        raise ConsentIncomplete("Please tick every box to take part.")
    with transaction.atomic():
        locked = _locked(participation)
        if locked.status != Status.ENTERED:
            return locked
        locked.status = Status.CONSENTED
        locked.consented_at = timezone.now()
        locked.save(update_fields=["status", "consented_at"])
        return assignment_assign(participation=locked)


def participation_decline(*, participation: Participation) -> Participation:
    """The participant does not agree: end the participation with the "declined" code."""
    with transaction.atomic():
        locked = _locked(participation)
        if locked.status != Status.ENTERED:
            return locked
        locked.status = Status.DECLINED
        locked.outcome = Outcome.DECLINED
        locked.declined_at = timezone.now()
        locked.completion_code = locked.version.spec["completion_codes"]["declined"]
        locked.save(update_fields=["status", "outcome", "declined_at", "completion_code"])
        return locked


def prewriting_submit(
    *, participation: Participation, topic: str, answers: Mapping[str, str]
) -> Participation:
    """Store the chosen topic and pre-writing answers, and open the co-writing step.

    ``answers`` maps each question of the assigned document type to the participant's answer.
    A participation past this step is returned unchanged (double submission).
    """
    spec = participation.version.spec
    _validate_prewriting(
        spec=spec, doc_key=participation.document_type, topic=topic, answers=answers
    )
    with transaction.atomic():
        locked = _locked(participation)
        if locked.status != Status.CONSENTED:
            return locked
        SurveyResponse.objects.create(
            participation=locked,
            kind=SurveyKind.PREWRITING,
            answers={"topic": topic, "answers": dict(answers)},
        )
        locked.topic = topic
        locked.status = Status.WRITING
        locked.writing_at = timezone.now()
        locked.save(update_fields=["topic", "status", "writing_at"])
        return locked


def _validate_prewriting(
    *, spec: dict, doc_key: str, topic: str, answers: Mapping[str, str]
) -> None:
    doc = document_type(spec, doc_key)
    if doc is None:
        raise PrewritingInvalid("This participation has no document type.")
    if topic not in doc["topics"]:
        raise PrewritingInvalid("Please choose one of the listed topics.")
    if set(answers) - set(doc["questions"]):
        raise PrewritingInvalid("Unknown question.")
    limit = spec["prewriting"]["max_answer_chars"]
    if any(len(a) > limit for a in answers.values()):
        raise PrewritingInvalid(f"Each answer can be at most {limit} characters long.")
    needed = prewriting_min_answers(spec=spec, doc_key=doc_key)
    if sum(1 for a in answers.values() if a.strip()) < needed:
        rule = prewriting_answer_rule(needed=needed, total=len(doc["questions"]))
        raise PrewritingInvalid(f"Please answer {rule}.")

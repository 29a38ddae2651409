"""Writes for the first steps of the journey: entry, consent (with assignment), pre-writing."""

from __future__ import annotations

import hmac
import uuid
from collections.abc import Collection, Mapping
from typing import Literal, NoReturn

from django.db import IntegrityError, transaction
from django.db.models import F
from django.utils import timezone

from studyapp.feedback.models import SurveyKind, SurveyResponse
from studyapp.participants.assignment import assignment_assign, assignment_release
from studyapp.participants.locks import participation_locked
from studyapp.participants.models import (
    EventKind,
    Outcome,
    Participation,
    ParticipationEvent,
    Platform,
    Status,
)
from studyapp.participants.platforms import EntryLink
from studyapp.participants.selectors import (
    IN_PROGRESS_STATUSES,
    participation_find,
    participation_holds_place,
    prewriting_answer_rule,
    prewriting_min_answers,
    study_is_full,
)
from studyapp.studies.models import Study
from studyapp.studies.selectors import study_current_version
from studyapp.studies.services import preregistration_freeze
from studyapp.studies.spec import document_type

RefusalReason = Literal["closed", "full", "pilot_not_allowed", "pilot_key", "simulation_key"]

# What must match for a browser that does not hold a participation to re-open it: the ids the
# platform sends with every link of that person's submission, which a made-up link cannot know.
RETURN_PROOF = {Platform.PROLIFIC: ("STUDY_ID", "SESSION_ID"), Platform.MTURK: ("assignmentId",)}


class EntryRefused(Exception):
    """The study cannot take a new participant now (``reason`` says why)."""

    def __init__(self, reason: RefusalReason) -> None:
        super().__init__(reason)
        self.reason = reason


class ReturnRefused(Exception):
    """An existing participation's id came from a browser that cannot show it is theirs."""


class ParticipationTakenOver(Exception):
    """This browser's hold was taken over by another browser before consent."""


class ConsentIncomplete(ValueError):
    """Not every consent checkbox was ticked."""


class PrewritingInvalid(ValueError):
    """The pre-writing answers break the study file's rules; the message says which."""


def _locked(participation: Participation) -> Participation:
    return participation_locked(participation.pk, related=("study", "version", "condition"))


def preview_record(*, study: Study) -> None:
    """Count an MTurk preview. Nothing about the person is stored."""
    Study.objects.filter(pk=study.pk).update(preview_count=F("preview_count") + 1)


def participation_enter(
    *, study: Study, link: EntryLink, held: bool = False, staff: bool = False
) -> Participation:
    """The participation for this platform id: the existing one, or a new one.

    ``held``: this browser's session already holds the participation for this id; ``staff``: a
    researcher is logged in (pilot links need no key then). A returning id gets its own
    participation back, even when the study has since closed or filled up, but only in the
    browser that holds it or with the same platform ids it began with (``ReturnRefused``).
    Only new arrivals are refused (``EntryRefused``).
    """
    if link.is_simulated:
        _check_simulation_key(study=study, link=link)
    elif link.is_test:
        _check_pilot(study=study, link=link, staff=staff)
    existing = participation_find(study=study, platform=link.platform, external_id=link.external_id)
    if existing is not None:
        return _resume(existing, link, held=held)
    try:
        with transaction.atomic():
            # The lock makes the quota check and the insert one step for concurrent arrivals.
            locked = Study.objects.select_for_update().get(pk=study.pk)
            version = study_current_version(study=locked)
            _check_admission(study=locked, spec=version.spec, link=link)
            if not link.is_test:
                # The study opens with its first real participant: the analysis plan is fixed.
                preregistration_freeze(study=locked, version=version)
            return Participation.objects.create(
                study=locked,
                version=version,
                platform=link.platform,
                external_id=link.external_id,
                platform_data=dict(link.platform_data),
                is_test=link.is_test,
                is_simulated=link.is_simulated,
            )
    except IntegrityError:
        # The same id arrived twice at once (double click, two tabs): one insert won.
        existing = participation_find(
            study=study, platform=link.platform, external_id=link.external_id
        )
        if existing is None:
            raise
        return _resume(existing, link, held=held)


def _check_pilot(*, study: Study, link: EntryLink, staff: bool) -> None:
    spec = study_current_version(study=study).spec
    if not spec.get("allow_pilot"):
        raise EntryRefused("pilot_not_allowed")
    if staff:
        return
    key = study.pilot_key.encode()
    if not key or not hmac.compare_digest(link.pilot_key.encode(), key):
        raise EntryRefused("pilot_key")


def _check_simulation_key(*, study: Study, link: EntryLink) -> None:
    # No staff shortcut: a simulated participation is recognised by this key alone.
    key = study.simulation_key.encode()
    if not key or not hmac.compare_digest(link.simulation_key.encode(), key):
        raise EntryRefused("simulation_key")


def _check_admission(*, study: Study, spec: dict, link: EntryLink) -> None:
    if not study.is_open:
        raise EntryRefused("closed")
    if not link.is_test and study_is_full(study=study, spec=spec):
        raise EntryRefused("full")


def _same_submission(participation: Participation, link: EntryLink) -> bool:
    names = RETURN_PROOF.get(Platform(participation.platform), ())
    stored, sent = participation.platform_data, link.platform_data
    return bool(names) and all(
        hmac.compare_digest(str(stored.get(n, "")).encode(), sent.get(n, "").encode())
        for n in names
    )


def _resume(participation: Participation, link: EntryLink, *, held: bool) -> Participation:
    # Pilots are let in by the study's key (checked before), so a researcher may switch browsers.
    if not (held or link.is_test or _same_submission(participation, link)):
        if participation.consented_at is None:
            return _take_over(participation, link)
        _refuse_return(participation)
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


def _refuse_return(participation: Participation) -> NoReturn:
    ParticipationEvent.objects.create(
        participation=participation,
        kind=EventKind.REFUSED_RETURN,
        data={"reason": "another browser without the platform ids it began with"},
    )
    raise ReturnRefused


# What a participation that never consented is reset to when another browser takes it over.
_UNBOUND_RESET = {
    "status": Status.ENTERED,
    "outcome": "",
    "completion_code": "",
    "declined_at": None,
    "timed_out_at": None,
    "last_seen_at": None,
}


def _take_over(participation: Participation, link: EntryLink) -> Participation:
    """Hand a participation nobody consented to yet to the browser that opened it last.

    Anyone who knows a platform id can open its link first with made-up session ids; until
    consent that binds nothing, so the real person's own link takes it over. A new public id
    ends the earlier browser's hold (its session names the old one).
    """
    with transaction.atomic():
        locked = _locked(participation)
        if locked.consented_at is not None:  # consent won the race: it binds now
            _refuse_return(locked)
        for name, value in _UNBOUND_RESET.items():
            setattr(locked, name, value)
        locked.public_id = uuid.uuid4()
        locked.platform_data = dict(link.platform_data)
        locked.save(update_fields=[*_UNBOUND_RESET, "public_id", "platform_data"])
        ParticipationEvent.objects.create(
            participation=locked,
            kind=EventKind.TAKEN_OVER,
            data={"reason": "opened from another browser before consent"},
        )
        return locked


def participation_consent(
    *, participation: Participation, agreed: Collection[int]
) -> Participation:
    """Record consent (every checkbox index in ``agreed``) and assign condition and document.

    A participation past the consent step is returned unchanged (double submission). Consent
    takes a quota place: ``EntryRefused("full")`` when none is left. ``ParticipationTakenOver``
    when another browser took the participation over since this one loaded it.
    """
    boxes = participation.version.spec["consent"]["checkboxes"]
    if set(range(len(boxes))) - set(agreed):
        raise ConsentIncomplete("Please tick every box to take part.")
    with transaction.atomic():
        locked = _locked(participation)
        if locked.public_id != participation.public_id:
            raise ParticipationTakenOver
        if locked.status != Status.ENTERED:
            return locked
        _check_place(locked)
        locked.status = Status.CONSENTED
        locked.consented_at = locked.acted_at = timezone.now()
        locked.save(update_fields=["status", "consented_at", "acted_at"])
        return assignment_assign(participation=locked)


def _check_place(participation: Participation) -> None:
    """Refuse (``EntryRefused("full")``) when every quota place is held; pilots never count.

    Serialised per study by the study row's lock, so two consents cannot take the last place.
    """
    if participation.is_test:
        return
    study = Study.objects.select_for_update().get(pk=participation.study_id)
    if study_is_full(study=study, spec=participation.version.spec):
        raise EntryRefused("full")


def participation_decline(*, participation: Participation) -> Participation:
    """The participant does not agree: end the participation with the "declined" code.

    ``ParticipationTakenOver`` when another browser took it over since this one loaded it.
    """
    with transaction.atomic():
        locked = _locked(participation)
        if locked.public_id != participation.public_id:
            raise ParticipationTakenOver
        if locked.status != Status.ENTERED:
            return locked
        locked.status = Status.DECLINED
        locked.outcome = Outcome.DECLINED
        locked.declined_at = timezone.now()
        locked.completion_code = locked.version.spec["completion_codes"]["declined"]
        locked.save(update_fields=["status", "outcome", "declined_at", "completion_code"])
        return locked


def participation_end_technical(*, participation_id: int, reason: str) -> Participation:
    """End a writing participation that the model could not serve, with the study file's
    ``technical_problem`` code (so the participant is paid) and an event saying why.

    Precondition: the caller decided that no retry can help. A participation no longer writing
    (finished meanwhile in another tab) is returned unchanged.
    """
    with transaction.atomic():
        locked = (
            Participation.objects.select_for_update(of=("self",))
            .select_related("version", "study")
            .get(pk=participation_id)
        )
        if locked.status != Status.WRITING:
            return locked
        locked.status = Status.TECHNICAL_PROBLEM
        locked.outcome = Outcome.TECHNICAL_PROBLEM
        locked.technical_problem_at = timezone.now()
        locked.completion_code = locked.version.spec["completion_codes"]["technical_problem"]
        locked.save(update_fields=["status", "outcome", "technical_problem_at", "completion_code"])
        ParticipationEvent.objects.create(
            participation=locked, kind=EventKind.TECHNICAL_PROBLEM, data={"reason": reason}
        )
        assignment_release(participation=locked)
        return locked


def prewriting_submit(
    *, participation: Participation, topic: str, answers: Mapping[str, str]
) -> Participation:
    """Store the chosen topic and pre-writing answers, and open the co-writing step.

    ``answers`` maps each question of the assigned document type to the participant's answer.
    A participation past this step is returned unchanged (double submission). A participant
    whose consent-time place has lapsed takes one again (``EntryRefused("full")`` if none).
    """
    spec = participation.version.spec
    _validate_prewriting(
        spec=spec, doc_key=participation.document_type, topic=topic, answers=answers
    )
    with transaction.atomic():
        locked = _locked(participation)
        if locked.status != Status.CONSENTED:
            return locked
        if not participation_holds_place(participation=locked):
            _check_place(locked)  # the place lapsed: take one again if the study has room
        SurveyResponse.objects.create(
            participation=locked,
            kind=SurveyKind.PREWRITING,
            answers={"topic": topic, "answers": dict(answers)},
        )
        locked.topic = topic
        locked.status = Status.WRITING
        locked.writing_at = locked.acted_at = timezone.now()
        locked.save(update_fields=["topic", "status", "writing_at", "acted_at"])
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

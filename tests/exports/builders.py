"""Small studies with finished conversations, for export tests.

Platform ids look like real ones (24 hex for Prolific, MTurk's A-ids) so that a byte scan of the
exported files for them means something; participants also paste their own id into the chat.
"""

from __future__ import annotations

import secrets
import uuid
from dataclasses import dataclass, field

from django.utils import timezone

from studyapp.feedback.models import FINAL_TURN, Rating, Scale, SurveyKind, SurveyResponse
from studyapp.participants.models import (
    EventKind,
    Outcome,
    Participation,
    ParticipationEvent,
    Platform,
    Status,
)
from studyapp.studies.models import StudyVersion
from studyapp.writing.models import DocumentVersion, EditBatch, Message, Role


def prolific_ids() -> dict[str, str]:
    return {
        "PROLIFIC_PID": secrets.token_hex(12),
        "STUDY_ID": secrets.token_hex(12),
        "SESSION_ID": secrets.token_hex(12),
    }


def mturk_ids() -> dict[str, str]:
    return {
        "workerId": "A" + secrets.token_hex(6).upper(),
        "assignmentId": "3" + secrets.token_hex(14).upper(),
        "hitId": "3" + secrets.token_hex(14).upper(),
        "turkSubmitTo": "https://www.mturk.com",
    }


@dataclass
class Built:
    participation: Participation
    ids: list[str]  # every platform id of this participation
    messages: list[Message] = field(default_factory=list)


def participation_make(
    *,
    version: StudyVersion,
    condition: str = "base",
    platform: str = Platform.PROLIFIC,
    status: str = Status.COMPLETED,
    is_test: bool = False,
    attention_passed: bool | None = True,
) -> tuple[Participation, list[str]]:
    if platform == Platform.PROLIFIC:
        ids = prolific_ids()
        external, data = ids["PROLIFIC_PID"], {"STUDY_ID": ids["STUDY_ID"],
                                               "SESSION_ID": ids["SESSION_ID"]}
        all_ids = list(ids.values())
    elif platform == Platform.MTURK:
        ids = mturk_ids()
        external = ids["workerId"]
        data = {k: v for k, v in ids.items() if k != "workerId"}
        all_ids = [v for k, v in ids.items() if k != "turkSubmitTo"]
    else:
        external, data = f"pilot-{secrets.token_hex(4)}", {}
        all_ids = [external]
    now = timezone.now()
    completed = status == Status.COMPLETED
    outcome = ""
    if completed:
        outcome = Outcome.FAILED_ATTENTION if attention_passed is False else Outcome.COMPLETED
    participation = Participation.objects.create(
        study=version.study,
        version=version,
        condition=version.conditions.get(name=condition),
        platform=platform,
        external_id=external,
        platform_data=data,
        is_test=is_test,
        document_type="blog_post",
        topic="Travelling on a tight budget",
        status=status,
        consented_at=now,
        assigned_at=now,
        writing_at=now,
        finished_at=now if completed else None,
        completed_at=now if completed else None,
        last_seen_at=now,
        attention_passed=attention_passed if completed else None,
        outcome=outcome,
        completion_code="C1A2B3CD" if completed else "",
    )
    return participation, all_ids


def conversation_make(
    *,
    version: StudyVersion,
    condition: str = "base",
    turns: int = 9,
    ratings: dict[int, int] | None = None,
    document_quality: int | None = 8,
    platform: str = Platform.PROLIFIC,
    status: str = Status.COMPLETED,
    is_test: bool = False,
    attention_passed: bool | None = True,
    regenerate_turns: tuple[int, ...] = (),
    side_by_side_turns: tuple[int, ...] = (),
    completion_tokens: int | None = 50,
) -> Built:
    """A participation with ``turns`` user/assistant exchanges and everything around them.

    At ``regenerate_turns`` the first reply was regenerated (kept inactive, same group); at
    ``side_by_side_turns`` two candidates were shown and the second was picked.
    """
    participation, ids = participation_make(
        version=version, condition=condition, platform=platform, status=status,
        is_test=is_test, attention_passed=attention_passed,
    )
    built = Built(participation=participation, ids=ids)
    pid = ids[0]
    for turn in range(1, turns + 1):
        text = f"User message {turn}"
        if turn == 1:
            text += f" (my id is {pid}, in case you need it)"
        built.messages.append(
            Message.objects.create(participation=participation, turn=turn, role=Role.USER,
                                   text=text)
        )
        group = uuid.uuid4() if turn in regenerate_turns or turn in side_by_side_turns else None
        if turn in regenerate_turns:
            built.messages.append(
                _reply(participation, turn, f"Discarded reply {turn}", active=False, group=group,
                       tokens=completion_tokens)
            )
        if turn in side_by_side_turns:
            built.messages.append(
                _reply(participation, turn, f"Candidate A {turn}", active=False, group=group,
                       chosen=False, tokens=completion_tokens)
            )
        built.messages.append(
            _reply(participation, turn, f"Assistant reply {turn}", active=True, group=group,
                   chosen=True if turn in side_by_side_turns else None, tokens=completion_tokens)
        )
    for turn, value in (ratings or {}).items():
        Rating.objects.create(participation=participation, scale=Scale.INTERACTION, turn=turn,
                              value=value)
    if document_quality is not None:
        Rating.objects.create(participation=participation, scale=Scale.DOCUMENT_QUALITY,
                              turn=FINAL_TURN, value=document_quality)
        Rating.objects.create(participation=participation, scale=Scale.OVERALL,
                              turn=FINAL_TURN, value=7)
    SurveyResponse.objects.create(
        participation=participation, kind=SurveyKind.PREWRITING,
        answers={"topic": participation.topic,
                 "answers": {"Who are your readers?": f"Students. Ref {pid}"}},
    )
    if status == Status.COMPLETED:
        SurveyResponse.objects.create(
            participation=participation, kind=SurveyKind.FINAL,
            answers={"document_quality": document_quality or 5, "overall": 7,
                     "strengths": "Asked good questions", "weaknesses": "A bit long",
                     "attention": "Somewhat disagree"},
        )
    first = DocumentVersion.objects.create(participation=participation, number=1,
                                           text="A first draft.")
    DocumentVersion.objects.create(participation=participation, number=2,
                                   text=f"The final document about budget travel. {pid}")
    EditBatch.objects.create(participation=participation, document_version=first,
                             events=[{"t": 1, "op": "insert", "text": "A first draft."}])
    ParticipationEvent.objects.create(participation=participation, kind=EventKind.CONNECT,
                                      data={"session": ids[-1]})
    ParticipationEvent.objects.create(participation=participation, kind=EventKind.BLUR, data={})
    return built


def _reply(participation, turn, text, *, active, group, chosen=None, tokens=50) -> Message:
    return Message.objects.create(
        participation=participation, turn=turn, role=Role.ASSISTANT, text=text,
        is_active=active, alternative_group=group, chosen=chosen, raw_output=text,
        backend="offline", model="offline/base", sampling={"temperature": 0.8},
        prompt_tokens=100 * turn, completion_tokens=tokens, ttft_ms=12.0, duration_ms=80.0,
        finish_reason="stop",
    )

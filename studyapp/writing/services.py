"""Writes for the writing page: user messages, finished turns and document saves.

Each write locks the participation row first, so two tabs (or a tab and a reconnect) cannot
both pass the "may I send now?" checks.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, Protocol

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import Sum
from django.db.models.functions import Length
from django.urls import reverse
from django.utils import timezone

from studyapp.feedback.ratings import rating_due
from studyapp.participants.locks import NOT_WRITING, participation_writing_locked
from studyapp.participants.models import EventKind, Participation, ParticipationEvent, Status
from studyapp.participants.pseudonyms import participation_pseudonym
from studyapp.participants.services import participation_end_technical
from studyapp.realtime import fastsql
from studyapp.refusals import Refused
from studyapp.sidebyside.selectors import (
    Candidate,
    pair_pending,
    side_by_side_candidates,
    side_by_side_due,
)
from studyapp.studies.spec import rating_turns
from studyapp.writing import rows
from studyapp.writing.errorkinds import error_kind
from studyapp.writing.models import DocumentVersion, EditBatch, Message, Role
from studyapp.writing.rows import MessageRow, WritingRow
from studyapp.writing.selectors import (
    latest_document,
    model_history,
    pending_turn,
    turn_has_reply,
)

MAX_EDIT_EVENTS = 2000


class WritingRefused(Refused):
    """The request breaks a rule of the chat; ``code`` is the protocol's error code."""


@dataclass(frozen=True)
class TurnPlan:
    """Everything a generation needs, read inside the transaction that allowed it."""

    participation_id: int
    public_id: str
    turn: int
    user_text: str
    history: list[dict[str, str]] = field(default_factory=list)
    condition_config: dict[str, Any] = field(default_factory=dict)
    # An interaction rating is due once this turn's reply has ended.
    rating_checkpoint: bool = False
    # True when the message was already stored (a resend): nothing new to store.
    duplicate: bool = False
    # A resend whose turn has no reply stored: the send that stored it could not start one.
    reply_due: bool = False
    # A side-by-side turn: the two candidates to generate (studyapp/writing/alternatives).
    candidates: tuple[Candidate, ...] = ()

    @property
    def starts_reply(self) -> bool:
        """Whether a reply is to start for this plan: a new turn, or a resend's due reply."""
        return not self.duplicate or self.reply_due


class SendFacts(Protocol):
    """What the rules for a new user message look at: the database's (``message_send``), or
    a socket's view of its chat (studyapp/writing/chatview.py), asked in this order."""

    def pending(self) -> bool:
        """The latest user turn has no reply yet (streaming, failed, or awaiting a pick)."""
        ...

    def choice_pending(self) -> bool:
        """A side-by-side pair awaits the participant's pick."""
        ...

    def rating_due(self) -> int | None: ...

    def next_turn(self) -> int: ...

    def max_turns(self) -> int: ...


def send_refusal(facts: SendFacts) -> WritingRefused | None:
    """Why the chat refuses a new user message now, or None: the chat's turn rules, once.

    A turn still streaming is refused earlier as ``busy`` (a generation in flight); here an
    unanswered turn is one whose reply failed, or a pair to pick from.
    """
    if facts.pending():
        if facts.choice_pending():
            return WritingRefused("choice_required", "Please pick one of the two replies.")
        return WritingRefused(
            "retry_required", "The last reply did not arrive; retry it before sending."
        )
    due = facts.rating_due()
    if due is not None:
        return WritingRefused("rating_required", f"Please rate the conversation (turn {due}).")
    max_turns = facts.max_turns()
    if facts.next_turn() > max_turns:
        return WritingRefused("max_turns", f"This chat allows at most {max_turns} messages.")
    return None


@dataclass(frozen=True)
class _StoredFacts:
    """:class:`SendFacts` read from the database, each only when the rules ask."""

    writing: WritingRow
    messages: Sequence[MessageRow]

    def pending(self) -> bool:
        return pending_turn(self.messages) is not None

    def choice_pending(self) -> bool:
        return pair_pending(participation_id=self.writing.pk) is not None

    def rating_due(self) -> int | None:
        writing = self.writing
        return rating_due(participation_id=writing.pk, spec=writing.spec, active=self.messages)

    def next_turn(self) -> int:
        return max((m.turn for m in self.messages), default=0) + 1

    def max_turns(self) -> int:
        return int(self.writing.spec["writing"]["max_turns"])


def locked_for_writing(participation_id: int) -> Participation:
    """The participation, row-locked, if it is on the writing step (else ``not_writing``)."""
    participation = participation_writing_locked(
        participation_id, refused=WritingRefused, related=("version", "condition")
    )
    if participation.condition is None:
        raise WritingRefused("not_writing", NOT_WRITING)
    return participation


def _writing_locked(participation_id: int) -> WritingRow:
    """:func:`locked_for_writing` for the send path, in plain SQL (studyapp/writing/rows.py)."""
    writing = rows.writing_locked(participation_id)
    if writing.status != Status.WRITING or writing.condition_id is None:
        raise WritingRefused("not_writing", NOT_WRITING)
    return writing


def _plan(
    writing: WritingRow, turn: int, user_text: str, messages: Sequence[MessageRow | Message]
) -> TurnPlan:
    candidates: tuple[Candidate, ...] = ()
    if side_by_side_due(spec=writing.spec, turn=turn):
        participation = Participation.objects.select_related("version", "condition").get(
            pk=writing.pk
        )
        candidates = tuple(side_by_side_candidates(participation=participation))
    return TurnPlan(
        participation_id=writing.pk,
        public_id=writing.public_id.hex,
        turn=turn,
        user_text=user_text,
        history=model_history(participation_id=writing.pk, spec=writing.spec, messages=messages),
        condition_config=writing.condition_config or {},
        rating_checkpoint=rating_turns(writing.spec, turn),
        candidates=candidates,
    )


def message_send(*, participation_id: int, text: str, client_msg_id: str) -> TurnPlan:
    """Store a user message as the next turn, if the chat allows one now.

    Precondition: the caller has checked that no generation is in flight (``busy``); an
    unanswered turn found here is one whose reply failed (``retry_required``), or a resend's
    whose reply never started (``reply_due``, see :func:`_resend_plan`).
    """
    with transaction.atomic():
        writing = _writing_locked(participation_id)
        messages = rows.active_message_rows(participation_id)
        # A resend. User messages are never deactivated, so the active ones hold it (and the
        # unique constraint on client_msg_id stops a copy if that ever changes).
        existing = client_msg_id and next(
            (m for m in messages if m.role == Role.USER and m.client_msg_id == client_msg_id),
            None,
        )
        if existing:
            return _resend_plan(writing, existing, messages)
        facts = _StoredFacts(writing, messages)
        refusal = send_refusal(facts)
        if refusal is not None:
            raise refusal
        turn = facts.next_turn()
        message = Message(
            participation_id=writing.pk,
            turn=turn,
            role=Role.USER,
            text=text,
            client_msg_id=client_msg_id,
        )
        fastsql.insert(message)
        return _plan(writing, turn, text, [*messages, message])


def _resend_plan(
    writing: WritingRow, existing: MessageRow, messages: Sequence[MessageRow]
) -> TurnPlan:
    """The plan of a resend: nothing is stored, and its reply is due only when its turn is
    the latest, with no reply stored at all (not even a failed one, whose turn is the
    participant's to retry). That is a send stored while Redis went away before its reply
    could start: the page sends it again until it is answered."""
    turn = existing.turn
    if pending_turn(messages) == turn and not turn_has_reply(
        participation_id=writing.pk, turn=turn
    ):
        plan = _plan(writing, turn, existing.text, [m for m in messages if m.turn <= turn])
        return dataclasses.replace(plan, duplicate=True, reply_due=True)
    return TurnPlan(
        participation_id=writing.pk,
        public_id=writing.public_id.hex,
        turn=turn,
        user_text=existing.text,
        duplicate=True,
    )


def turn_retry(*, participation_id: int) -> TurnPlan:
    """Plan a new generation for the unanswered turn (after a failure or an interruption)."""
    with transaction.atomic():
        writing = _writing_locked(participation_id)
        messages = rows.active_message_rows(participation_id)
        turn = pending_turn(messages)
        if turn is None:
            raise WritingRefused("nothing_to_retry", "There is no failed reply to retry.")
        if pair_pending(participation_id=writing.pk) is not None:
            raise WritingRefused("choice_required", "Please pick one of the two replies.")
        user = next(m for m in messages if m.role == Role.USER and m.turn == turn)
        return _plan(writing, turn, user.text, [m for m in messages if m.turn <= turn])


_RECORD_FIELDS = (
    "raw_output",
    "backend",
    "model",
    "adapter",
    "prompt_version",
    "prompt_sha256",
    "sampling",
    "prompt_tokens",
    "completion_tokens",
    "ttft_ms",
    "model_ttft_ms",
    "duration_ms",
    "finish_reason",
    "endpoint",
    "dropped_turns",
)


def turn_record(
    *,
    participation_id: int,
    turn: int,
    generation_id: str,
    record: dict[str, Any],
    seed: int | None,
) -> Message:
    """Store a finished generation once: the reply with its full record.

    A failed turn (``finish_reason == "error"``) is kept inactive with its partial text and
    error, and logged as a ``model_error`` event; a stopped one is logged as ``stop``.
    Idempotent: when ``generation_id`` is stored already (a retry whose first answer was lost,
    a lost generation resolved twice) that message is returned and nothing is written.
    """
    failed = record.get("finish_reason") == "error"
    fields = {k: record[k] for k in _RECORD_FIELDS if record.get(k) is not None}
    problem = record.get("error") or ""
    message = Message(
        participation_id=participation_id,
        generation_id=generation_id,
        turn=turn,
        role=Role.ASSISTANT,
        text=record.get("text") or "",
        is_active=not failed,
        seed=seed,
        # A reply that succeeded with a complaint (e.g. repaired JSON) is a warning, not an error.
        error=(problem or "model error") if failed else "",
        # Message.save derives it; fastsql.insert runs no save.
        error_kind=error_kind(problem or "model error") if failed else "",
        warning="" if failed else problem,
        **fields,
    )
    logged = message.finish_reason in _EVENT_KINDS
    if not logged and not transaction.get_connection().in_atomic_block:
        # Most replies: one INSERT in autocommit. A transaction and a savepoint around it were
        # four more of the ten round trips a turn costs the database worker, which stores
        # every turn of its ASGI process (bench/README.md, Relay).
        return _reply_save(message, savepoint=False)
    with transaction.atomic():
        stored = _reply_save(message, savepoint=True)
        if stored is message:
            generation_event_log(participation_id=participation_id, message=message, record=record)
    return stored


def _reply_save(message: Message, *, savepoint: bool) -> Message:
    """Insert the reply, or return the one stored already for its generation id. If its turn
    already has an active reply (should not happen), keep this one aside, inactive, rather
    than lose it. In a transaction, ``savepoint`` keeps a conflict from breaking it; in
    autocommit a failed INSERT leaves the connection usable."""
    try:
        if savepoint:
            with transaction.atomic():
                fastsql.insert(message)
        else:
            fastsql.insert(message)
    except IntegrityError:
        stored = Message.objects.filter(generation_id=message.generation_id).first()
        if stored is not None:
            return stored
        message.pk = None
        message.is_active = False
        message.warning = (message.warning + " superseded: turn already answered").strip()
        fastsql.insert(message)
    return message


@dataclass(frozen=True)
class FailedTurn:
    """What became of a participation after a failed reply."""

    pseudonym: str  # how logs name the participant (never the platform id)
    next_url: str | None  # the end page when no retry can help, else None (Retry)


def failed_turn_settle(*, participation_id: int, turn: int, record: dict[str, Any]) -> FailedTurn:
    """After a failed reply to ``turn`` was stored, decide whether the participant may still
    retry. A permanent model error (unknown model, bad request, a message too long for the
    window), or ``writing.max_failed_replies`` failed replies to the turn, end the
    participation with the technical-problem code; ``next_url`` is then the page to send them
    to, else None (Retry is offered).
    """
    participation = Participation.objects.select_related("study", "version").get(
        pk=participation_id
    )
    pseudonym = participation_pseudonym(participation)
    failures = Message.objects.filter(
        participation_id=participation_id, turn=turn, role=Role.ASSISTANT, finish_reason="error"
    ).count()
    limit = participation.version.spec["writing"]["max_failed_replies"]
    if not record.get("permanent") and failures < limit:
        return FailedTurn(pseudonym, None)
    reason = "permanent model error" if record.get("permanent") else f"{failures} failed replies"
    ended = participation_end_technical(participation_id=participation_id, reason=reason)
    if ended.status != Status.TECHNICAL_PROBLEM:
        return FailedTurn(pseudonym, None)
    return FailedTurn(pseudonym, reverse("feedback:done", args=[participation.study.slug]))


# The endings generation_event_log records, with their event (in the reply's transaction).
_EVENT_KINDS = {"error": EventKind.MODEL_ERROR, "cancelled": EventKind.STOP}


def generation_event_log(
    *, participation_id: int, message: Message, record: dict[str, Any], **extra: Any
) -> None:
    """Log a failed generation (``model_error``) or a stopped one (``stop``) for researchers."""
    kind = _EVENT_KINDS.get(message.finish_reason)
    if kind is None:
        return
    base = {"turn": message.turn, "generation_id": str(message.generation_id), **extra}
    if kind == EventKind.MODEL_ERROR:
        data = {
            **base,
            "error": message.error,
            "backend": message.backend,
            "model": message.model,
            "endpoint": record.get("endpoint") or "",
            "permanent": bool(record.get("permanent")),
        }
    else:
        data = {**base, "chars": len(message.text)}
    ParticipationEvent.objects.create(participation_id=participation_id, kind=kind, data=data)


@dataclass(frozen=True)
class DocumentSaved:
    version: int
    # The page edited an older version than the latest (another tab saved in between).
    conflict: bool
    # The save stored a new version (the other tabs are told).
    changed: bool = False
    # On a conflict, the latest version the save replaced ({"version", "text"}), so the page
    # can offer it back to the participant.
    replaced: dict[str, Any] | None = None


def document_save(
    *, participation_id: int, text: str, version_base: int, edits: list[dict[str, Any]]
) -> DocumentSaved:
    """Save the document as a new version (unless unchanged; past the save budget the latest
    version takes it, see ``_version_store``) with the page's edit events."""
    if len(text) > settings.MAX_DOCUMENT_CHARS:
        raise WritingRefused(
            "doc_too_long", f"The document is limited to {settings.MAX_DOCUMENT_CHARS} characters."
        )
    if len(edits) > MAX_EDIT_EVENTS:
        raise WritingRefused("bad_field", f"At most {MAX_EDIT_EVENTS} edit events per save.")
    with transaction.atomic():
        participation = locked_for_writing(participation_id)
        latest = latest_document(participation_id=participation.pk)
        number = latest.number if latest else 0
        conflict = version_base != number
        version = latest
        latest_text = latest.text if latest else ""  # the row may take the new text below
        changed = text != latest_text
        if changed:
            version = _version_store(participation, latest, text)
        if edits:
            EditBatch.objects.create(
                participation=participation, document_version=version, events=edits
            )
        replaced = {"version": number, "text": latest_text} if conflict and changed else None
        return DocumentSaved(
            version=version.number if version else 0,
            conflict=conflict,
            changed=changed,
            replaced=replaced,
        )


def _version_store(
    participation: Participation, latest: DocumentVersion | None, text: str
) -> DocumentVersion:
    """Store ``text`` as the next version; past the participation's budget of versions a
    minute or of stored characters, the latest version takes the text and the next number, so
    a flood of saves keeps the newest text and the history stays bounded."""
    if latest is None or _version_allowed(participation.pk, len(text)):
        number = latest.number + 1 if latest else 1
        return DocumentVersion.objects.create(participation=participation, number=number, text=text)
    latest.number += 1
    latest.text = text
    latest.created_at = timezone.now()  # when this text was saved
    latest.save(update_fields=["number", "text", "created_at"])
    return latest


def _version_allowed(participation_id: int, chars: int) -> bool:
    versions = DocumentVersion.objects.filter(participation_id=participation_id)
    minute_ago = timezone.now() - timedelta(minutes=1)
    if versions.filter(created_at__gte=minute_ago).count() >= settings.DOC_VERSIONS_PER_MINUTE:
        return False
    stored = versions.aggregate(chars=Sum(Length("text")))["chars"] or 0
    return stored + chars <= settings.MAX_STORED_DOCUMENT_CHARS

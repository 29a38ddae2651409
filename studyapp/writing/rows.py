"""The send path's reads: the participation it writes for, and the active messages, as plain
rows that pickle small on their way back from the database worker."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from studyapp.participants.locks import participation_locked
from studyapp.writing.models import Message


@dataclass(frozen=True)
class WritingRow:
    """The participation fields a turn needs (see ``services.locked_for_writing``)."""

    pk: int
    public_id: uuid.UUID
    status: str
    condition_id: int | None
    spec: dict[str, Any]
    condition_config: dict[str, Any] | None


@dataclass(frozen=True)
class MessageRow:
    """An active message as the send path reads it (the fields ``Message`` has by these names)."""

    pk: int
    turn: int
    role: str
    text: str
    client_msg_id: str
    error: str


def writing_locked(participation_id: int) -> WritingRow:
    """The participation's row, locked until the transaction ends (``DoesNotExist`` if none)."""
    participation = participation_locked(participation_id, related=("version", "condition"))
    condition = participation.condition
    return WritingRow(
        pk=participation.pk,
        public_id=participation.public_id,
        status=participation.status,
        condition_id=participation.condition_id,
        spec=participation.version.spec,
        condition_config=None if condition is None else condition.config,
    )


_MESSAGE_FIELDS = ("id", "turn", "role", "text", "client_msg_id", "error")


def active_message_rows(participation_id: int) -> list[MessageRow]:
    """What ``selectors.active_messages`` returns, as plain rows."""
    active = Message.objects.filter(participation_id=participation_id, is_active=True)
    values = active.order_by("turn", "id").values_list(*_MESSAGE_FIELDS)
    return [MessageRow(*row) for row in values]

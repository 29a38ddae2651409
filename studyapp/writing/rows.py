"""The send path's reads in plain SQL (studyapp/realtime/fastsql.py).

Every message runs :func:`~studyapp.writing.services.message_send` on its ASGI process's
database worker, where the ORM's per-query work was most of that worker's CPU
(bench/README.md, Relay). With ``WRITING_FAST_SQL`` off they run through the ORM.
"""

from __future__ import annotations

import functools
import uuid
from dataclasses import dataclass
from typing import Any

from django.db import connection

from studyapp.participants.locks import participation_locked
from studyapp.participants.models import Participation
from studyapp.realtime.fastsql import column, cursor, enabled, json_value, table
from studyapp.studies.models import Condition, StudyVersion
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


@functools.cache
def _writing_sql() -> str:
    def p(name: str) -> str:
        return "p." + column(Participation, name)

    version, config = column(StudyVersion, "spec"), column(Condition, "config")
    version_id, condition_id = column(StudyVersion, "id"), column(Condition, "id")
    return (
        f"SELECT {p('id')}, {p('public_id')}, {p('status')}, {p('condition')}, "  # noqa: S608 (quoted names from the models, values bound)
        f"v.{version}, c.{config} FROM {table(Participation)} p "
        f"JOIN {table(StudyVersion)} v ON v.{version_id} = {p('version')} "
        f"LEFT JOIN {table(Condition)} c ON c.{condition_id} = {p('condition')} "
        f"WHERE {p('id')} = %s"
        # SQLite (``make run``) has no row locks: its one writer serialises the transactions.
        + (" FOR UPDATE OF p" if connection.features.has_select_for_update_of else "")
    )


def writing_locked(participation_id: int) -> WritingRow:
    """The participation's row, locked until the transaction ends (``DoesNotExist`` if none)."""
    if not enabled():
        return _writing_locked_orm(participation_id)
    with cursor() as hot:
        hot.execute(_writing_sql(), [participation_id])
        row = hot.fetchone()
    if row is None:
        raise Participation.DoesNotExist(f"participation {participation_id}")
    pk, public_id, status, condition_id, spec, config = row
    return WritingRow(
        pk=pk,
        public_id=public_id if isinstance(public_id, uuid.UUID) else uuid.UUID(public_id),
        status=status,
        condition_id=condition_id,
        spec=json_value(StudyVersion, "spec", spec),
        condition_config=None if config is None else json_value(Condition, "config", config),
    )


def _writing_locked_orm(participation_id: int) -> WritingRow:
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


@functools.cache
def _messages_sql() -> str:
    cols = ", ".join(column(Message, f) for f in _MESSAGE_FIELDS)
    participation, active = column(Message, "participation"), column(Message, "is_active")
    turn, pk = column(Message, "turn"), column(Message, "id")
    return (
        f"SELECT {cols} FROM {table(Message)} WHERE {participation} = %s AND {active} "  # noqa: S608 (quoted names from the models, values bound)
        f"ORDER BY {turn}, {pk}"
    )


def active_message_rows(participation_id: int) -> list[MessageRow]:
    """What ``selectors.active_messages`` returns, as plain rows."""
    if not enabled():
        active = Message.objects.filter(participation_id=participation_id, is_active=True)
        values = active.order_by("turn", "id").values_list(*_MESSAGE_FIELDS)
        return [MessageRow(*row) for row in values]
    with cursor() as hot:
        hot.execute(_messages_sql(), [participation_id])
        return [MessageRow(*row) for row in hot.fetchall()]

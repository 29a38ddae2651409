"""The send path's reads and writes in plain SQL.

Every message runs :func:`~studyapp.writing.services.message_send` and, when its reply ends,
:func:`~studyapp.writing.services.turn_record` on its ASGI process's database worker. Through
the ORM each of their queries cost about 1 ms of the worker's CPU to build (SQL compilation,
model instances) against 0.15 ms to run: at 200 messages a second the worker fell a second
behind and the database side took most of the machine's two cores (bench/README.md, Relay).

The statements here are written once per process, with table and column names taken from the
models, and run through Django's connection: transactions, error translation
(``IntegrityError``) and query logging work as for the ORM.
"""

from __future__ import annotations

import functools
import uuid
from dataclasses import dataclass
from typing import Any

from django.db import connection, models

from studyapp.participants.models import Participation
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


def _table(model: type[models.Model]) -> str:
    return connection.ops.quote_name(model._meta.db_table)


def _column(model: type[models.Model], name: str) -> str:
    return connection.ops.quote_name(model._meta.get_field(name).column)


def _json(model: type[models.Model], name: str, value: Any) -> Any:
    return model._meta.get_field(name).from_db_value(value, None, connection)


@functools.cache
def _writing_sql() -> str:
    def p(name: str) -> str:
        return "p." + _column(Participation, name)

    version, config = _column(StudyVersion, "spec"), _column(Condition, "config")
    version_id, condition_id = _column(StudyVersion, "id"), _column(Condition, "id")
    return (
        f"SELECT {p('id')}, {p('public_id')}, {p('status')}, {p('condition')}, "
        f"v.{version}, c.{config} FROM {_table(Participation)} p "
        f"JOIN {_table(StudyVersion)} v ON v.{version_id} = {p('version')} "
        f"LEFT JOIN {_table(Condition)} c ON c.{condition_id} = {p('condition')} "
        f"WHERE {p('id')} = %s FOR UPDATE OF p"
    )


def writing_locked(participation_id: int) -> WritingRow:
    """The participation's row, locked until the transaction ends (``DoesNotExist`` if none)."""
    with connection.cursor() as cursor:
        cursor.execute(_writing_sql(), [participation_id])
        row = cursor.fetchone()
    if row is None:
        raise Participation.DoesNotExist(f"participation {participation_id}")
    pk, public_id, status, condition_id, spec, config = row
    return WritingRow(
        pk=pk,
        public_id=public_id,
        status=status,
        condition_id=condition_id,
        spec=_json(StudyVersion, "spec", spec),
        condition_config=None if config is None else _json(Condition, "config", config),
    )


_MESSAGE_FIELDS = ("id", "turn", "role", "text", "client_msg_id", "error")


@functools.cache
def _messages_sql() -> str:
    cols = ", ".join(_column(Message, f) for f in _MESSAGE_FIELDS)
    participation, active = _column(Message, "participation"), _column(Message, "is_active")
    turn, pk = _column(Message, "turn"), _column(Message, "id")
    return (
        f"SELECT {cols} FROM {_table(Message)} WHERE {participation} = %s AND {active} "
        f"ORDER BY {turn}, {pk}"
    )


def active_message_rows(participation_id: int) -> list[MessageRow]:
    """What ``selectors.active_messages`` returns, as plain rows."""
    with connection.cursor() as cursor:
        cursor.execute(_messages_sql(), [participation_id])
        return [MessageRow(*row) for row in cursor.fetchall()]


@functools.cache
def _insert_plan(model: type[models.Model]) -> tuple[str, tuple[models.Field, ...]]:
    meta = model._meta
    fields = tuple(f for f in meta.concrete_fields if not f.generated and f is not meta.auto_field)
    columns = ", ".join(connection.ops.quote_name(f.column) for f in fields)
    marks = ", ".join(["%s"] * len(fields))
    returning = connection.ops.quote_name(meta.pk.column)
    sql = f"INSERT INTO {_table(model)} ({columns}) VALUES ({marks}) RETURNING {returning}"
    return sql, fields


def insert(obj: models.Model) -> None:
    """INSERT ``obj`` as ``obj.save()`` would for a new row (defaults, ``auto_now_add``, the
    fields' database preparation) and set its pk. No signals are sent."""
    sql, fields = _insert_plan(type(obj))
    values = [f.get_db_prep_save(f.pre_save(obj, True), connection) for f in fields]
    with connection.cursor() as cursor:
        cursor.execute(sql, values)
        obj.pk = cursor.fetchone()[0]
    obj._state.adding = False
    obj._state.db = connection.alias

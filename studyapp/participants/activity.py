"""Presence on the writing page: last seen, active (focused) time and focus losses.

The page reports ``focus``/``blur`` when its tab gains or loses focus and a ``heartbeat`` about
every 15 seconds. Active time accrues only between two reports while the page was focused, and
each gap counts at most ``ACTIVE_GAP_CAP_S``: a laptop that slept with the tab focused does not
earn hours of active time. Heartbeats update the counters without an event row each (they would
be most of the table); focus, blur, connect, reconnect and disconnect each log one row.
A report the participant made (opening the page, input since the last heartbeat, "I'm still
here") also moves ``acted_at``, which the idle time limit counts from; a heartbeat alone does not,
so a page left open and untouched still times out.
"""

from __future__ import annotations

import functools
from typing import Any

from django.db import connection, transaction
from django.db.models import F
from django.utils import timezone

from studyapp.participants.models import EventKind, Participation, ParticipationEvent
from studyapp.realtime import fastsql

HEARTBEAT_INTERVAL_S = 15
ACTIVE_GAP_CAP_S = 2 * HEARTBEAT_INTERVAL_S

# Kinds that log an event row; heartbeats only move the counters.
LOGGED_KINDS = frozenset(
    {
        EventKind.FOCUS,
        EventKind.BLUR,
        EventKind.CONNECT,
        EventKind.RECONNECT,
        EventKind.DISCONNECT,
        EventKind.STAY,
    }
)


def active_increment(
    *, since: float | None, now: float, focused: bool, cap: float = ACTIVE_GAP_CAP_S
) -> float:
    """Seconds of active time between two reports (monotonic clock readings)."""
    if since is None or not focused or now <= since:
        return 0.0
    return min(now - since, cap)


def activity_record(
    *,
    participation_id: int,
    kind: EventKind,
    active_delta: float = 0.0,
    focus_lost: bool = False,
    acted: bool = False,
    data: dict[str, Any] | None = None,
) -> None:
    """Mark the participant seen now (and acting, when ``acted``), add ``active_delta`` seconds
    of active time, count a focus loss when ``focus_lost``, and log an event row for every kind
    but heartbeats.

    On PostgreSQL one statement in autocommit (studyapp/realtime/fastsql.py): every socket's
    connect and disconnect runs it on the chat's database worker. With ``WRITING_FAST_SQL`` off,
    through the ORM.
    """
    if not fastsql.enabled():
        _activity_record_orm(participation_id, kind, active_delta, focus_lost, acted, data)
        return
    now = timezone.now()
    update = _presence_sql(acted)
    params: list[Any] = [now, max(active_delta, 0.0), int(focus_lost)]
    params += [now, participation_id] if acted else [participation_id]
    if kind not in LOGGED_KINDS:
        with fastsql.cursor() as cursor:
            cursor.execute(update, params)
        return
    event = ParticipationEvent(participation_id=participation_id, kind=kind, data=data or {})
    insert, values = fastsql.insert_statement(event)
    if connection.vendor == "postgresql":
        with fastsql.cursor() as cursor:
            cursor.execute(f"WITH seen AS ({update}) {insert}", [*params, *values])
        return
    # SQLite (``make run``) has no UPDATE inside WITH.
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(update, params)
        cursor.execute(insert, values)


def _activity_record_orm(
    participation_id: int,
    kind: EventKind,
    active_delta: float,
    focus_lost: bool,
    acted: bool,
    data: dict[str, Any] | None,
) -> None:
    seen = Participation.objects.filter(pk=participation_id)
    now = timezone.now()
    counters: dict[str, Any] = {
        "last_seen_at": now,
        "active_seconds": F("active_seconds") + max(active_delta, 0.0),
        "focus_losses": F("focus_losses") + int(focus_lost),
    }
    if acted:
        counters["acted_at"] = now
    if kind not in LOGGED_KINDS:  # a heartbeat: one UPDATE in autocommit
        seen.update(**counters)
        return
    with transaction.atomic():
        seen.update(**counters)
        ParticipationEvent.objects.create(
            participation_id=participation_id, kind=kind, data=data or {}
        )


@functools.cache
def _presence_sql(acted: bool) -> str:
    def col(name: str) -> str:
        return fastsql.column(Participation, name)

    seen, active, losses = col("last_seen_at"), col("active_seconds"), col("focus_losses")
    acted_at = f", {col('acted_at')} = %s" if acted else ""
    return (
        f"UPDATE {fastsql.table(Participation)} SET {seen} = %s, {active} = {active} + %s, "  # noqa: S608 (quoted names from the models, values bound)
        f"{losses} = {losses} + %s{acted_at} WHERE {col('id')} = %s"
    )

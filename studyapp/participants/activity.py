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
    connect and disconnect runs it on the chat's database worker.
    """
    update = _presence_sql(acted)
    now = timezone.now()
    params: list[Any] = [now, max(active_delta, 0.0), int(focus_lost), participation_id]
    if acted:
        params.insert(1, now)
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


@functools.cache
def _presence_sql(acted: bool) -> str:
    def col(name: str) -> str:
        return fastsql.column(Participation, name)

    seen, active, losses = col("last_seen_at"), col("active_seconds"), col("focus_losses")
    acting = f"{col('acted_at')} = %s, " if acted else ""
    return (
        f"UPDATE {fastsql.table(Participation)} SET {seen} = %s, {acting}"
        f"{active} = {active} + %s, {losses} = {losses} + %s WHERE {col('id')} = %s"
    )

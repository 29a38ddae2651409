"""The writing page's clock: how long until a time limit ends the session, and "I'm still here".

The server decides (studyapp/participants/timeouts.py); the page only counts down from what
these answer, warns ahead of each limit, and asks again when its own count runs out. A page
whose participation is past a limit is timed out on the spot, not minutes later by the
periodic job, so what it shows and what is stored agree.
"""

from __future__ import annotations

from typing import Any

from studyapp.participants.activity import activity_record
from studyapp.participants.models import EventKind, Participation, Status
from studyapp.participants.timeouts import participation_time_out_if_overdue, time_left
from studyapp.writing.services import WritingRefused

TIMED_OUT_MESSAGE = "Your session has ended: its time limit has passed."


def writing_time_check(*, participation_id: int) -> dict[str, Any]:
    """Seconds left before each limit (``TimeLeft.public``); refused with ``not_writing`` once
    the participation is past a limit (it is timed out now) or has left the writing step."""
    if participation_time_out_if_overdue(participation_id=participation_id):
        raise WritingRefused("not_writing", TIMED_OUT_MESSAGE)
    participation = Participation.objects.select_related("version").get(pk=participation_id)
    if participation.status != Status.WRITING:
        raise WritingRefused("not_writing", "This chat has ended.")
    return time_left(participation=participation).public()


def writing_stay(*, participation_id: int) -> dict[str, Any]:
    """The participant answered a warning: that is an action, so the idle clock starts over
    (unless a limit has already passed)."""
    writing_time_check(participation_id=participation_id)
    activity_record(participation_id=participation_id, kind=EventKind.STAY, acted=True)
    return writing_time_check(participation_id=participation_id)

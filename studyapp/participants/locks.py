"""The participation row lock: every write that checks a participation's rules takes it first.

Two tabs, a tab and a reconnect, or a socket and a background task may act on one
participation at once; whoever holds the lock checks the rules (the step it is on, what is
due) and writes before the other may check. Only the participation's row is locked
(``FOR UPDATE OF`` it), not the rows read with it.
"""

from __future__ import annotations

from collections.abc import Sequence

from studyapp.participants.models import Participation, Status
from studyapp.refusals import Refused

NOT_WRITING = "This chat has ended."


def participation_locked(participation_id: int, *, related: Sequence[str] = ()) -> Participation:
    """The participation, row-locked until the transaction ends, with ``related`` (foreign
    keys) read in the same query. Call inside ``transaction.atomic``."""
    return (
        Participation.objects.select_for_update(of=("self",))
        .select_related(*related)
        .get(pk=participation_id)
    )


def participation_writing_locked(
    participation_id: int, *, refused: type[Refused], related: Sequence[str] = ()
) -> Participation:
    """:func:`participation_locked`, if the participation is on the writing step; else
    ``refused("not_writing")``."""
    participation = participation_locked(participation_id, related=related)
    if participation.status != Status.WRITING:
        raise refused("not_writing", NOT_WRITING)
    return participation

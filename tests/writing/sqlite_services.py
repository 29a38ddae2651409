"""The chat's send path on SQLite, as ``make run`` serves it: run in its own process by
test_sqlite_services.py (the suite's database is PostgreSQL).

Usage: ``python -m tests.writing.sqlite_services`` with DATABASE_URL naming an empty SQLite
file; prints a JSON object of what was stored.
"""

import json
import os
import uuid

import django

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "studyapp.settings")
django.setup()

from django.utils import timezone  # noqa: E402

from studyapp.participants.activity import activity_record  # noqa: E402
from studyapp.participants.models import (  # noqa: E402
    EventKind,
    Participation,
    ParticipationEvent,
    Platform,
    Status,
)
from studyapp.writing.models import Message  # noqa: E402
from studyapp.writing.services import message_send, turn_record  # noqa: E402
from tests.sqlite_demo_db import demo_version  # noqa: E402


def main() -> dict:
    version = demo_version()
    now = timezone.now()
    participation = Participation.objects.create(
        study=version.study, version=version, condition=version.conditions.first(),
        platform=Platform.PILOT, external_id="sqlite-1", document_type="blog_post",
        topic="Travelling on a tight budget", status=Status.WRITING,
        consented_at=now, assigned_at=now, writing_at=now,
    )  # fmt: skip
    activity_record(participation_id=participation.pk, kind=EventKind.CONNECT)
    activity_record(participation_id=participation.pk, kind=EventKind.HEARTBEAT, active_delta=3)
    plan = message_send(participation_id=participation.pk, text="Hello", client_msg_id="m-1")
    turn_record(
        participation_id=participation.pk, turn=plan.turn, generation_id=str(uuid.uuid4()),
        record={"text": "Hi there", "finish_reason": "stop", "backend": "offline"}, seed=1,
    )  # fmt: skip
    participation.refresh_from_db()
    return {
        "plan": [plan.turn, plan.public_id == participation.public_id.hex, plan.history],
        "messages": [
            [m.turn, m.role, m.text, m.client_msg_id]
            for m in Message.objects.filter(participation=participation).order_by("id")
        ],
        "events": list(
            ParticipationEvent.objects.filter(participation=participation).values_list(
                "kind", flat=True
            )
        ),
        "active_seconds": participation.active_seconds,
    }


if __name__ == "__main__":
    print(json.dumps(main()))

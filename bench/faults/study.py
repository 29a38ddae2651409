"""The campaign's study: its database, the reference study with its arms on the model server,
participations for the scripted participants, and their chat messages read back at the end.

The campaign process itself uses Django for these (with no connection pool, and a fresh
connection each time: PostgreSQL is restarted under it).
"""

from __future__ import annotations

import os
from collections import defaultdict

import psycopg

from bench.faults.accounting import Row
from bench.faults.services import REPO

SLUG = "bench-faults"
DATABASE = "collabstudy_faults"
WS_PATH = f"/ws/study/{SLUG}/"


def create_database(admin_url: str) -> None:
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {DATABASE}")


def django_setup(env: dict[str, str]) -> None:
    """Django in this process, on the campaign's database, migrated."""
    os.environ.update(env)
    os.environ["DB_POOL_MAX_SIZE"] = "0"
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)


def load_study(model_url: str) -> None:
    from studyapp.studies.services import study_load

    os.environ["VLLM_URL"] = model_url  # the study file names its arms' endpoints so
    text = (REPO / "deploy" / "studies" / "collabllm-cowriting.yaml").read_text()
    study_load(text=text, slug=SLUG)


def participations(count: int, label: str) -> list[tuple[str, str]]:
    """``count`` participations on the plain-reply arm, on the writing step: (token, id)."""
    from django.db import connections
    from django.utils import timezone

    from studyapp.participants.models import Participation, Platform, Status
    from studyapp.participants.tokens import participation_token
    from studyapp.studies.models import Study

    connections.close_all()
    study = Study.objects.get(slug=SLUG)
    version = study.versions.order_by("-number").first()
    condition = version.conditions.get(name="base")
    now = timezone.now()
    made = Participation.objects.bulk_create(
        Participation(
            study=study, version=version, condition=condition, platform=Platform.PILOT,
            external_id=f"{label}-{i}", is_test=True, document_type="blog_post",
            topic="Travelling on a tight budget", status=Status.WRITING, consented_at=now,
            assigned_at=now, writing_at=now,
        )
        for i in range(count)
    )  # fmt: skip
    return [(participation_token(public_id=str(p.public_id)), str(p.public_id)) for p in made]


def message_rows(ids: list[str]) -> dict[str, list[Row]]:
    """Every chat message of these participations, by participation."""
    from django.db import connections

    from studyapp.writing.models import Message

    connections.close_all()
    rows: dict[str, list[Row]] = defaultdict(list)
    found = Message.objects.filter(participation__public_id__in=ids).values_list(
        "participation__public_id", "turn", "role", "text", "generation_id", "is_active",
        "error", "client_msg_id",
    )  # fmt: skip
    for public_id, turn, role, text, generation_id, active, error, client_msg_id in found:
        row = Row(turn, role, text, str(generation_id), active, bool(error), client_msg_id)
        rows[str(public_id)].append(row)
    connections.close_all()
    return rows

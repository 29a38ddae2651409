"""simulate_participants with the scripted personas: 30 participants walk the demo study through
the real app (its own uvicorn, the test database, Redis), are balanced among themselves, stay
out of the default analysis and exports, and are the "simulated" population."""

from __future__ import annotations

import csv
import re
from collections import Counter
from io import StringIO

import pytest
from django.contrib.auth import get_user_model
from django.core.management import CommandError, call_command
from django.test import Client

from studyapp.dashboards.filters import ParticipationFilter
from studyapp.dashboards.selectors import participant_outcomes
from studyapp.participants.models import (
    AllocationSlot,
    EventKind,
    Participation,
    ParticipationEvent,
    Platform,
)
from studyapp.simulation.scripted import PERSONAS
from studyapp.studies.services import study_load
from tests.conftest import REFERENCE_STUDY

pytestmark = pytest.mark.django_db(transaction=True)


def _rows(path) -> list[dict[str, str]]:
    with path.open(newline="") as f:
        return list(csv.DictReader(f))


def test_thirty_scripted_participants_go_through_the_demo_study(served_app_env, tmp_path):
    version = study_load(text=REFERENCE_STUDY.read_text(), slug="demo", offline=True).version
    out = StringIO()
    call_command(
        "simulate_participants", "demo", "--n", "30", "--simulator", "scripted",
        "--concurrency", "10", "--offline-rate", "400", "--wait", "60",
        stdout=out, stderr=StringIO(),
    )  # fmt: skip
    report = out.getvalue()
    assert "30 simulated participants: 30 went through, 0 failed" in report, report

    people = Participation.objects.filter(study__slug="demo")
    assert people.count() == 30
    assert set(people.values_list("platform", "is_simulated", "is_test").distinct()) == {
        (Platform.SIMULATED, True, True)
    }
    # Every persona, five times each, did what it does.
    assert Counter(people.values_list("outcome", flat=True)) == {
        "completed": 20, "failed_attention": 5, "": 5,
    }  # fmt: skip
    assert people.filter(status="writing").count() == 5  # the dropouts left mid-chat
    assert len(PERSONAS) == 6
    events = Counter(ParticipationEvent.objects.values_list("kind", flat=True))
    # Each stopper clicks Stop as replies start until one is stopped; the socket handles the
    # click once the message is stored, which on a busy machine can be after a short reply.
    clicks = re.search(r"stop clicks (\d+), replies stopped (\d+)", report)
    assert int(clicks.group(1)) >= 5
    assert events[EventKind.STOP] == int(clicks.group(2)) >= 1
    assert events[EventKind.REGENERATE] == 5
    assert events[EventKind.CONNECT] == 35  # one page load each, and a reload by each reloader

    # Balanced among themselves (blocks of three), in blocks of their own.
    arms = Counter(people.values_list("condition__name", flat=True))
    assert arms == {"base": 10, "proactive_base": 10, "collabllm": 10}
    assert not AllocationSlot.objects.filter(version=version, simulated=False).exists()

    # Absent from the default analysis, present as the simulated population.
    study = version.study
    assert participant_outcomes(study=study, pfilter=ParticipationFilter()).rows == []
    only = participant_outcomes(study=study, pfilter=ParticipationFilter(simulated="only"))
    assert len(only.rows) == 20  # completers who passed the attention check
    assert all(r.document_words for r in only.rows)

    staff = get_user_model().objects.create_user("lab", password="x", is_staff=True)
    client = Client()
    client.force_login(staff)
    index = client.get("/dashboard/").content.decode()
    assert '<td class="n" data-count="simulated">30</td>' in index
    assert '<td class="n" data-count="entered">0</td>' in index
    default = client.get("/dashboard/demo/").context["report"]
    assert sum(default.n_by_arm.values()) == 0
    assert default.flow.entered == 0
    simulated = client.get("/dashboard/demo/", {"simulated": "only", "view": "itt"})
    assert sum(simulated.context["report"].n_by_arm.values()) == 25
    assert simulated.context["report"].flow.entered == 30

    # Exports: none by default, all with --include-simulated.
    call_command("export_study", "demo", "--out", str(tmp_path / "a"), stdout=StringIO())
    assert _rows(tmp_path / "a" / "participations.csv") == []
    call_command(
        "export_study", "demo", "--out", str(tmp_path / "b"), "--include-simulated",
        "--view", "itt", "--include-failed-attention", stdout=StringIO(),
    )  # fmt: skip
    rows = _rows(tmp_path / "b" / "participations.csv")
    assert len(rows) == 30
    assert {r["is_simulated"] for r in rows} == {"true"}
    # Without them the dataset is empty, which is refused with nothing written.
    with pytest.raises(CommandError, match="would be empty: 0 participants"):
        call_command("export_dataset", "demo", "--kind", "sft", "--out", str(tmp_path / "c"),
                     stdout=StringIO())  # fmt: skip
    assert _jsonl_lines(tmp_path / "c") == 0
    call_command("export_dataset", "demo", "--kind", "sft", "--out", str(tmp_path / "d"),
                 "--include-simulated", stdout=StringIO())  # fmt: skip
    assert _jsonl_lines(tmp_path / "d") == 20


def _jsonl_lines(folder) -> int:
    return sum(len(p.read_text().splitlines()) for p in folder.rglob("*.jsonl"))

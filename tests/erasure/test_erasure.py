"""Erasing a participant leaves nothing of them in any table, nor in the exports made after."""

import uuid
import zipfile
from decimal import Decimal
from pathlib import Path

import pytest
from django.apps import apps
from django.contrib.auth import get_user_model
from django.core.management import CommandError, call_command
from django.db import connection, models
from django.urls import reverse

from studyapp.erasure.models import ErasureRecord
from studyapp.exports.models import ExportJob, JobStatus
from studyapp.exports.pseudonyms import participant_pseudonym
from studyapp.exports.tasks import export_job_run_task
from studyapp.feedback.models import DocumentScore
from studyapp.participants.decisions import participation_exclude
from studyapp.participants.models import AllocationSlot, Participation, ParticipationEvent
from studyapp.payments.models import BonusLedgerEntry
from studyapp.writing.models import Message, Role
from tests.exports.privacy import leaks

pytestmark = pytest.mark.django_db

TEXT_COLUMNS = (models.CharField, models.TextField, models.JSONField)


def tables_holding(needles: list[str]) -> list[tuple[str, str, str]]:
    """(table, column, needle) for every text or JSON column of every model that holds one."""
    found = []
    with connection.cursor() as cursor:
        for model in apps.get_models(include_auto_created=True):
            table = model._meta.db_table
            for field in model._meta.concrete_fields:
                if not isinstance(field, TEXT_COLUMNS):
                    continue
                column = connection.ops.quote_name(field.column)
                for needle in needles:
                    cursor.execute(
                        f"SELECT count(*) FROM {connection.ops.quote_name(table)} "  # noqa: S608
                        f"WHERE {column}::text ILIKE %s",
                        [f"%{needle}%"],
                    )
                    if cursor.fetchone()[0]:
                        found.append((table, field.column, needle))
    return found


def test_the_scan_covers_every_table_of_the_database(db):
    with connection.cursor() as cursor:
        cursor.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
        tables = {row[0] for row in cursor.fetchall()}
    modelled = {m._meta.db_table for m in apps.get_models(include_auto_created=True)}
    assert tables - modelled <= {"django_migrations"}


@pytest.fixture
def withdrawn(study_data):
    """The first completer, with their own words everywhere a participant's data can be."""
    built = study_data["counted"][0]
    participation = built.participation
    secret = f"secret-words-{uuid.uuid4().hex[:8]}"
    Message.objects.create(participation=participation, turn=99, role=Role.USER,
                           text=f"My name is {secret}")
    participation.document_versions.update(text=f"Document by {secret}")
    survey = participation.survey_responses.get(kind="final")
    survey.answers = {**survey.answers, "strengths": f"I am {secret}"}
    survey.save()
    participation.edit_batches.update(events=[{"op": "insert", "text": secret}])
    ParticipationEvent.objects.create(participation=participation, kind="focus",
                                      data={"note": secret})
    DocumentScore.objects.filter(participation=participation).update(rationale=f"By {secret}")
    BonusLedgerEntry.objects.create(participation=participation, amount=Decimal("1.50"),
                                    reason="completion")
    participation_exclude(participation=participation, reason="low_effort", note=secret,
                          by=None, via="command")
    return built, secret


def exported(export_dir: Path, into: Path) -> Path:
    """Every archive under the export directory, unpacked (the zips are compressed)."""
    into.mkdir()
    for archive in Path(export_dir).rglob("*.zip"):
        with zipfile.ZipFile(archive) as zf:
            zf.extractall(into / archive.stem)
    return into


def _run_exports(study, export_dir, django_capture_on_commit_callbacks):
    jobs = [ExportJob.objects.create(study=study, kind=kind, format=fmt,
                                     params={"filter": {"view": "itt", "include_test": True}})
            for kind, fmt in (("analysis", "csv"), ("sft", "jsonl"), ("collabllm", "jsonl"))]
    for job in jobs:
        export_job_run_task(job.pk)
    return jobs


def test_erasure_leaves_no_text_or_platform_id_in_any_table_or_export(
    withdrawn, export_dir, django_capture_on_commit_callbacks, tmp_path
):
    built, secret = withdrawn
    participation = built.participation
    study = participation.study
    needles = [secret, *built.ids]
    old = _run_exports(study, export_dir, django_capture_on_commit_callbacks)
    # The archives did hold them (the excluded participant is in the ITT population).
    assert leaks(exported(export_dir, tmp_path / "before"), [secret]) != []
    assert {t for t, _, _ in tables_holding(needles)} >= {
        "participants_participation", "writing_message", "writing_documentversion",
        "feedback_surveyresponse", "writing_editbatch", "participants_participationevent",
        "participants_statuschange"}

    with django_capture_on_commit_callbacks(execute=True):
        call_command("erase_participant", "demo", built.ids[0])

    assert tables_holding(needles) == []
    assert not Participation.objects.filter(pk=participation.pk).exists()
    for job in old:
        job.refresh_from_db()
        assert (job.status, job.path) == (JobStatus.REMOVED, "")
    remade = ExportJob.objects.filter(study=study, status=JobStatus.SUCCEEDED)
    assert remade.count() == 3
    assert leaks(exported(export_dir, tmp_path / "after"), needles) == []
    record = ErasureRecord.objects.get()
    assert (record.arm, record.status, record.via, record.export_jobs_removed) == (
        "base", "excluded", "command", 3)
    assert record.deleted["writing.message"] >= 10
    assert record.deleted["payments.bonusledgerentry"] == 1
    # Everyone else is still there.
    assert Participation.objects.filter(study=study).count() == 6


def test_a_participant_is_found_by_pseudonym_or_public_id(study_data):
    first, second = study_data["counted"][:2]
    study = first.participation.study
    pseudonym = participant_pseudonym(secret=study.pseudonym_secret,
                                      platform=first.participation.platform,
                                      external_id=first.participation.external_id)
    call_command("erase_participant", "demo", pseudonym)
    call_command("erase_participant", "demo", str(second.participation.public_id))
    assert ErasureRecord.objects.count() == 2
    assert not Participation.objects.filter(
        pk__in=[first.participation.pk, second.participation.pk]).exists()


def test_an_unknown_identifier_erases_nothing(study_data):
    with pytest.raises(CommandError, match="0 participations"):
        call_command("erase_participant", "demo", "not-anyone")
    assert not ErasureRecord.objects.exists()


def test_erasure_frees_the_participations_block_slot(study_data):
    built = study_data["counted"][0]
    p = built.participation
    slot = AllocationSlot.objects.create(version=p.version, block=1, position=1,
                                         condition=p.condition, participation=p)
    call_command("erase_participant", "demo", built.ids[0])
    slot.refresh_from_db()
    assert slot.participation is None


def test_staff_erase_from_the_dashboard_only_when_confirmed(client, study_data):
    staff = get_user_model().objects.create_user("researcher", password="pw", is_staff=True)
    client.force_login(staff)
    p = study_data["counted"][0].participation
    url = reverse("erasure:erase", args=["demo", p.public_id])
    client.post(url, {"confirm": "yes"})
    assert Participation.objects.filter(pk=p.pk).exists()
    response = client.post(url, {"confirm": "erase"}, follow=True)
    assert "data was erased" in response.content.decode()
    assert not Participation.objects.filter(pk=p.pk).exists()
    record = ErasureRecord.objects.get()
    assert (record.erased_by, record.via) == (staff, "dashboard")


def test_non_staff_cannot_erase(client, study_data):
    client.force_login(get_user_model().objects.create_user("someone", password="pw"))
    p = study_data["counted"][0].participation
    client.post(reverse("erasure:erase", args=["demo", p.public_id]), {"confirm": "erase"})
    assert Participation.objects.filter(pk=p.pk).exists()


def test_the_flow_counts_erased_participants_by_arm(study_data):
    from studyapp.dashboards.selectors import study_flow, study_overview

    base = [b for b in study_data["counted"] if b.participation.condition.name == "base"]
    study = base[0].participation.study
    arms_of = study_overview(study=study).arms
    before = {a.name: a for a in study_flow(study=study, arms=arms_of).arms}
    call_command("erase_participant", "demo", base[0].ids[0])
    flow = study_flow(study=study, arms=study_overview(study=study).arms)
    arms = {a.name: a for a in flow.arms}
    assert (arms["base"].erased, flow.erased) == (1, 1)
    assert arms["base"].entered == before["base"].entered - 1
    assert arms["collabllm"].erased == 0

"""load_study: versions are immutable snapshots, bad files are clear errors."""

import pytest
from django.core.management import CommandError, call_command

from studyapp.studies.models import Study
from studyapp.studies.services import study_load
from studyapp.studies.spec import StudySpecError
from tests.conftest import REFERENCE_STUDY


def test_loading_again_creates_a_new_version_and_keeps_the_old_one(db):
    first = study_load(text=REFERENCE_STUDY.read_text()).version
    second = study_load(text=REFERENCE_STUDY.read_text()).version
    assert (first.number, second.number) == (1, 2)
    assert first.conditions.count() == second.conditions.count() == 3
    assert Study.objects.get(slug="collabllm-cowriting").versions.count() == 2


def test_if_changed_skips_an_identical_file(db):
    study_load(text=REFERENCE_STUDY.read_text(), slug="demo", offline=True)
    result = study_load(
        text=REFERENCE_STUDY.read_text(), slug="demo", offline=True, if_changed=True
    )
    assert result.created is False
    assert result.version.number == 1


def test_offline_demo_keeps_arm_names_and_drops_endpoints(demo_version):
    conditions = list(demo_version.conditions.all())
    assert [c.name for c in conditions] == ["base", "proactive_base", "collabllm"]
    assert all(c.backend == "offline" and "endpoints" not in c.config for c in conditions)
    assert demo_version.spec["offline_demo"] is True


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ("slug: x\nconsent: {text: hi}\n", "at least one condition"),
        ("[1, 2]", "must be a mapping"),
        (
            "slug: x\nconditions: [{name: a, backend: gpu}]\nconsent: {text: hi}\n",
            "unknown backend",
        ),
    ],
)
def test_bad_study_files_are_rejected_with_the_reason(db, change, message):
    with pytest.raises(StudySpecError, match=message):
        study_load(text=change)


def test_a_typo_in_an_arm_is_caught_at_load_time(db):
    text = REFERENCE_STUDY.read_text().replace(
        "temperature: 0.8, top_p", "temprature: 0.8, top_p", 1
    )
    with pytest.raises(StudySpecError, match="unknown sampling keys"):
        study_load(text=text)


def test_command_reports_a_missing_file(db):
    with pytest.raises(CommandError, match="no such study file"):
        call_command("load_study", "does/not/exist.yaml")


CONDITION_AND_TYPE = (
    "conditions: [{name: a, backend: offline}]\n"
    "document_types: [{key: blog, topics: [Travel]}]\n"
)


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ("side_by_side: {turns: [0]}", "side_by_side.turns"),
        ("side_by_side: {turns: 4}", "side_by_side.turns"),
        ("side_by_side: {turns: [4], mode: pairs}", "side_by_side.mode"),
        ("side_by_side: {turns: [4], mode: arms, arms: [base]}", "two different conditions"),
        ("side_by_side: {turns: [4], mode: arms, arms: [base, nope]}", "unknown conditions"),
    ],
)
def test_side_by_side_options_are_checked_at_load_time(db, extra, message):
    with pytest.raises(StudySpecError, match=message):
        study_load(text=REFERENCE_STUDY.read_text() + "\n" + extra)


def test_regenerations_default_to_two_per_reply_and_can_be_turned_off(db):
    spec = study_load(text="slug: x\nconsent: {text: hi}\n" + CONDITION_AND_TYPE).version.spec
    assert spec["writing"]["max_regenerations"] == 2
    text = REFERENCE_STUDY.read_text().replace("max_regenerations: 2", "max_regenerations: 0")
    assert study_load(text=text).version.spec["writing"]["max_regenerations"] == 0
    with pytest.raises(StudySpecError, match="max_regenerations"):
        study_load(text=text.replace("max_regenerations: 0", "max_regenerations: -1"))


def test_the_reference_study_has_no_side_by_side_turns(db):
    # The paper's study had none; the file only shows how to ask for them (commented out).
    spec = study_load(text=REFERENCE_STUDY.read_text()).version.spec
    assert spec["side_by_side"]["turns"] == []
    assert "# side_by_side:" in REFERENCE_STUDY.read_text()


def test_time_limit_warnings_default_and_are_checked(db):
    spec = study_load(text="slug: x\nconsent: {text: hi}\n" + CONDITION_AND_TYPE).version.spec
    assert spec["limits"]["session_warning_minutes"] == 10
    assert spec["limits"]["idle_warning_minutes"] == 5
    text = REFERENCE_STUDY.read_text().replace("idle_warning_minutes: 5", "idle_warning_minutes: 0")
    assert study_load(text=text).version.spec["limits"]["idle_warning_minutes"] == 0
    with pytest.raises(StudySpecError, match="idle_warning_minutes"):
        study_load(text=text.replace("idle_warning_minutes: 0", "idle_warning_minutes: soon"))

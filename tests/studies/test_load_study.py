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

"""What a study version records about its arms' prompts and what the model sees."""

import hashlib
import sysconfig
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command

from studyapp.studies.models import StudyVersion
from studyapp.studies.services import study_load
from studyapp.studies.spec import StudySpecError
from tests.conftest import REFERENCE_STUDY

PROMPTS = Path(sysconfig.get_paths()["purelib"]) / "collabllm" / "prompts"


def sha(name: str) -> str:
    return hashlib.sha256((PROMPTS / f"{name}.txt").read_bytes()).hexdigest()


def test_the_reference_study_records_the_authors_prompts(db):
    version = study_load(text=REFERENCE_STUDY.read_text()).version
    assert version.model_context == "chat"
    assert version.prompts == {
        "base": {"version": "none", "sha256": "", "package_version": "", "fallback_for": ""},
        "proactive_base": {
            "version": "collabllm:proact_instruction@0.0.8",
            "sha256": sha("proact_instruction"),
            "package_version": "0.0.8",
            "fallback_for": "",
        },
        "collabllm": {
            "version": "collabllm:system_prompt@0.0.8",
            "sha256": sha("system_prompt"),
            "package_version": "0.0.8",
            "fallback_for": "",
        },
    }


def test_without_the_package_a_real_study_refuses_to_load_and_the_demo_falls_back(
    db, tmp_path, monkeypatch
):
    monkeypatch.setenv("PUBLISHED_PROMPTS_PATH", str(tmp_path))
    with pytest.raises(StudySpecError, match=r"pip install --no-deps collabllm==0\.0\.8"):
        study_load(text=REFERENCE_STUDY.read_text())
    with pytest.raises(CommandError, match="not installed"):
        call_command("load_study", str(REFERENCE_STUDY))
    # What `make run` does.
    call_command("load_study", str(REFERENCE_STUDY), "--slug", "demo", "--offline")
    prompts = StudyVersion.objects.get(study__slug="demo").prompts
    assert prompts["collabllm"]["version"] == "collabllm.v1"
    assert prompts["collabllm"]["fallback_for"] == "collabllm:system_prompt"
    assert prompts["proactive_base"]["version"] == "proactive.v1"


@pytest.mark.parametrize("value", ["everything", "chat+document", ""])
def test_model_context_must_be_one_of_the_three_levels(db, value):
    text = REFERENCE_STUDY.read_text().replace(
        "model_context: chat\n", f"model_context: '{value}'\n"
    )
    with pytest.raises(StudySpecError, match="model_context must be one of"):
        study_load(text=text)


def test_model_context_defaults_to_the_chat_only(db):
    text = REFERENCE_STUDY.read_text().replace("model_context: chat\n", "")
    assert "model_context" not in text
    assert study_load(text=text).version.model_context == "chat"

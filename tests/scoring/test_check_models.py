"""check_models streams one short reply from every arm and fails loudly when one is down."""

import pytest
from django.core.management import CommandError, call_command

from tests.collab_models.vllm_fake import FakeVLLM
from tests.conftest import REFERENCE_STUDY


@pytest.fixture
def reference_study(db, monkeypatch):
    from studyapp.studies.services import study_load

    def load(url: str):
        monkeypatch.setenv("VLLM_URL", url)
        return study_load(text=REFERENCE_STUDY.read_text()).version

    return load


def test_every_arm_of_the_offline_demo_answers(demo_version, capsys):
    call_command("check_models", "demo")
    out = capsys.readouterr().out
    assert out.count("[ok  ] reply") == 3
    assert "all arms of 'demo' answered" in out


def test_arms_served_by_a_vllm_server_pass_every_check(reference_study, capsys):
    fake = FakeVLLM(tps=0, models=("meta-llama/Llama-3.1-8B-Instruct", "collabllm-writing"))
    with fake.running_in_thread():
        reference_study(fake.url)
        call_command("check_models", "collabllm-cowriting")
    out = capsys.readouterr().out
    for check in ("health", "models", "completion"):
        assert out.count(f"[ok  ] {check}") == 3, out
    assert len(fake.chat_requests()) == 3


def test_an_adapter_the_server_does_not_serve_fails_the_check(reference_study, capsys):
    fake = FakeVLLM(tps=0, models=("meta-llama/Llama-3.1-8B-Instruct",))
    with fake.running_in_thread():
        reference_study(fake.url)
        with pytest.raises(CommandError, match="1 check"):
            call_command("check_models", "collabllm-cowriting")
    assert "'collabllm-writing' not in served models" in capsys.readouterr().out


def test_a_server_that_is_down_fails_every_arm(reference_study):
    reference_study("http://127.0.0.1:9")
    with pytest.raises(CommandError, match="3 check"):
        call_command("check_models", "collabllm-cowriting")


def test_unknown_study_is_a_clear_error(db):
    with pytest.raises(CommandError, match="no study"):
        call_command("check_models", "nope")

"""check_models runs each arm as the study will (its prompt, sampling and response format, a
short multi-turn exchange), checks the judge, and fails loudly on any problem."""

import json

import pytest
from django.core.management import CommandError, call_command

from tests.collab_models.vllm_fake import FakeVLLM, Script
from tests.conftest import REFERENCE_STUDY

PROACTIVE = json.dumps({"current_problem": "p", "thought": "t", "response": "Who is it for?"})
JUDGE_BLOCK = "\njudge:\n  condition: base\n"


@pytest.fixture
def reference_study(db, monkeypatch):
    from studyapp.studies.services import study_load

    def load(url: str, extra: str = ""):
        monkeypatch.setenv("VLLM_URL", url)
        return study_load(text=REFERENCE_STUDY.read_text() + extra).version

    return load


def _arm_scripts(proactive: Script) -> list[Script]:
    # Conditions in the study file's order, two turns each: base, proactive_base, collabllm.
    return [Script(), Script(), proactive, proactive, Script(), Script()]


def test_every_arm_of_the_offline_demo_answers_two_turns(demo_version, capsys):
    call_command("check_models", "demo")
    out = capsys.readouterr().out
    assert out.count("[ok  ] turn 2") == 3
    assert "tokens/s" in out
    assert "all arms of 'demo' answered" in out


def test_arms_served_by_a_vllm_server_pass_as_the_study_uses_them(reference_study, capsys):
    fake = FakeVLLM(tps=0)
    fake.script(*_arm_scripts(Script(tokens=[PROACTIVE[:20], PROACTIVE[20:]])))
    with fake.running_in_thread():
        reference_study(fake.url)
        call_command("check_models", "collabllm-cowriting")
    out = capsys.readouterr().out
    for check in ("health", "models", "turn 1", "turn 2"):
        assert out.count(f"[ok  ] {check}") == 3, out
    assert "first shown" in out
    assert "'Who is it for?'" in out  # the proactive arm's response, not its JSON
    bodies = [r.body for r in fake.chat_requests()]
    assert len(bodies) == 6
    assert [b["model"] for b in bodies[4:]] == ["collabllm-writing"] * 2  # the adapter's name
    assert bodies[0]["temperature"] == 0.8  # the arm's own sampling
    assert bodies[2]["max_tokens"] == 1536
    assert [m["role"] for m in bodies[1]["messages"]] == ["user", "assistant", "user"]


def test_a_proactive_endpoint_answering_plain_text_fails(reference_study, capsys):
    fake = FakeVLLM(tps=0)
    fake.script(*_arm_scripts(Script(text="Sure, here is a plain answer")))
    with fake.running_in_thread():
        reference_study(fake.url)
        with pytest.raises(CommandError, match="1 check"):
            call_command("check_models", "collabllm-cowriting")
    out = capsys.readouterr().out
    assert "[FAIL] turn 1" in out
    assert "not a JSON reply with a response field" in out


def test_the_judge_is_checked_and_fails_without_a_score(reference_study, capsys):
    fake = FakeVLLM(tps=0)
    proactive = Script(tokens=[PROACTIVE])
    fake.script(*_arm_scripts(proactive), Script(tokens=['{"score": 7, "rationale": "ok"}']))
    with fake.running_in_thread():
        reference_study(fake.url, JUDGE_BLOCK)
        call_command("check_models", "collabllm-cowriting")
        assert "[ok  ] judge" in capsys.readouterr().out

        fake.script(*_arm_scripts(proactive), Script(text="A lovely document"))
        with pytest.raises(CommandError, match="1 check"):
            call_command("check_models", "collabllm-cowriting")
    assert "[FAIL] judge" in capsys.readouterr().out


def test_an_adapter_the_server_does_not_serve_fails_the_check(reference_study, capsys):
    fake = FakeVLLM(tps=0, models=("meta-llama/Llama-3.1-8B-Instruct",))
    fake.script(*_arm_scripts(Script(tokens=[PROACTIVE])))
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

"""The reference study's arms send the authors' prompt files, byte for byte, as they send them.

The expected requests are built here from the installed wheel's files, read straight from
site-packages, and a transcript written out by hand: nothing from the code under test.
"""

from __future__ import annotations

import hashlib
import sysconfig
from pathlib import Path

import pytest
import yaml

from collab_models.arms import ConfigError, build_arm, derive_style, override_offline
from collab_models.base import ChatMessage
from collab_models.published_prompts import PATH_VARIABLE
from tests.collab_models.vllm_fake import FakeVLLM, Script

REPO = Path(__file__).resolve().parents[2]
STUDY = REPO / "deploy" / "studies" / "collabllm-cowriting.yaml"
PROMPTS = Path(sysconfig.get_paths()["purelib"]) / "collabllm" / "prompts"
HISTORY: list[ChatMessage] = [
    {"role": "user", "content": "Help me write a blog post about cooking at home. "},
    {"role": "assistant", "content": "Sure! Who is it for?\n\nFriends or strangers?"},
    {"role": "user", "content": "My friends."},
]
# The authors' transcript of HISTORY: "**Role**: text" lines, the texts untouched.
TRANSCRIPT = (
    "**User**: Help me write a blog post about cooking at home. \n"
    "**Assistant**: Sure! Who is it for?\n\nFriends or strangers?\n"
    "**User**: My friends."
)
REPLY = '{"current_problem": "a post", "thought": "ask", "response": "How long should it be?"}'


def installed(name: str) -> str:
    return (PROMPTS / f"{name}.txt").read_bytes().decode("utf-8")


def sha(name: str) -> str:
    return hashlib.sha256((PROMPTS / f"{name}.txt").read_bytes()).hexdigest()


def condition(name: str) -> dict[str, object]:
    conditions = yaml.safe_load(STUDY.read_text())["conditions"]
    return dict(next(c for c in conditions if c["name"] == name))


@pytest.fixture
def study_on_fake(fake: FakeVLLM, monkeypatch: pytest.MonkeyPatch) -> FakeVLLM:
    monkeypatch.setenv("VLLM_URL", fake.url)
    for arm in ("BASE", "PROACTIVE", "COLLABLLM"):
        monkeypatch.delenv(f"VLLM_URLS_{arm}", raising=False)
    return fake


async def test_proactive_base_sends_the_authors_instruction_with_the_chat_pasted_in(
    study_on_fake: FakeVLLM,
) -> None:
    study_on_fake.script(Script(text=REPLY))
    stream = build_arm(condition("proactive_base")).reply(HISTORY, seed=3)
    assert "".join([d async for d in stream]) == "How long should it be?"

    body = study_on_fake.chat_requests()[0].body
    expected = installed("proact_instruction").format(
        chat_history=TRANSCRIPT, additional_info="", max_new_tokens=1536
    )
    assert body["messages"] == [{"role": "user", "content": expected}]
    assert body["max_tokens"] == 1536
    record = stream.record
    assert record is not None
    assert record.prompt_version == "collabllm:proact_instruction@0.0.8"
    assert record.prompt_sha256 == sha("proact_instruction")


async def test_collabllm_sends_the_authors_system_prompt_byte_for_byte(
    study_on_fake: FakeVLLM,
) -> None:
    study_on_fake.script(Script(text="Who will read it?"))
    stream = build_arm(condition("collabllm")).reply(HISTORY)
    [_ async for _ in stream]

    body = study_on_fake.chat_requests()[0].body
    assert body["model"] == "collabllm-writing"
    assert body["messages"] == [{"role": "system", "content": installed("system_prompt")}, *HISTORY]
    assert body["messages"][0]["content"].encode() == (PROMPTS / "system_prompt.txt").read_bytes()
    record = stream.record
    assert record is not None
    assert (record.prompt_version, record.prompt_sha256) == (
        "collabllm:system_prompt@0.0.8",
        sha("system_prompt"),
    )


async def test_study_context_fills_additional_info_or_follows_the_system_prompt(
    study_on_fake: FakeVLLM,
) -> None:
    context: ChatMessage = {"role": "system", "content": "Task: a blog post.\nDocument: Hello."}
    study_on_fake.script(Script(text=REPLY), Script(text="Sure."), Script(text="Sure."))
    for name in ("proactive_base", "collabllm", "base"):
        [_ async for _ in build_arm(condition(name)).reply([context, *HISTORY])]

    proactive, collabllm, base = (r.body["messages"] for r in study_on_fake.chat_requests())
    assert proactive == [
        {
            "role": "user",
            "content": installed("proact_instruction").format(
                chat_history=TRANSCRIPT, additional_info=context["content"], max_new_tokens=1536
            ),
        }
    ]
    assert collabllm == [
        {"role": "system", "content": installed("system_prompt")},
        context,
        *HISTORY,
    ]
    assert base == [context, *HISTORY]


def test_without_the_package_offline_arms_stand_in_the_project_prompts(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(PATH_VARIABLE, str(tmp_path))
    proactive = build_arm(override_offline(condition("proactive_base")))
    collabllm = build_arm(override_offline(condition("collabllm")))

    assert proactive.prompt.version == "proactive.v1"
    assert proactive.prompt.fallback_for == "collabllm:proact_instruction"
    assert collabllm.prompt.version == "collabllm.v1"
    assert (
        collabllm.prompt.sha256
        == hashlib.sha256(
            (REPO / "collab_models" / "prompts" / "collabllm.v1.txt").read_text().strip().encode()
        ).hexdigest()
    )
    assert (proactive.extra["style"], collabllm.extra["style"]) == ("proactive", "collabllm")


def test_without_the_package_a_real_arm_refuses_to_build(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(PATH_VARIABLE, str(tmp_path))
    with pytest.raises(ConfigError, match=r"pip install --no-deps collabllm==0\.0\.8"):
        build_arm(condition("collabllm"))


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"prompt_package_version": "0.0.7"}, "names version 0.0.7, 0.0.8 is installed"),
        ({"prompt_package_version": None}, "needs prompt_package_version"),
        ({"prompt": "collabllm:user_simulator"}, "not an arm prompt"),
    ],
)
def test_a_published_prompt_must_be_named_exactly(changes: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        build_arm({**condition("collabllm"), **changes})


def test_the_offline_styles_follow_the_published_sources() -> None:
    assert derive_style({"prompt": "collabllm:system_prompt"}) == "collabllm"
    assert derive_style({"prompt": "collabllm:proact_instruction"}) == "proactive"

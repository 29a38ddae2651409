"""Arms built from study-file condition blocks, end to end against the fake vLLM server."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import yaml

from collab_models.arms import (
    ConfigError,
    build_arm,
    cached_arm,
    derive_style,
    expand_env,
    override_offline,
)
from collab_models.base import ChatMessage, ModelError
from collab_models.blinding import NEUTRAL_REPLY, RETRY_MARK
from tests.collab_models.conftest import MODEL
from tests.collab_models.vllm_fake import FakeVLLM, Script

REPO = Path(__file__).resolve().parents[2]
STUDY = REPO / "deploy" / "studies" / "collabllm-cowriting.yaml"
HISTORY: list[ChatMessage] = [
    {"role": "user", "content": "Help me write a blog post about cooking at home."},
    {"role": "assistant", "content": "Sure! Who is it for?"},
    {"role": "user", "content": "My friends."},
]
PROACTIVE_REPLY = {
    "current_problem": "A blog post for friends about cooking at home.",
    "thought": "Offer a draft opening and ask about length.",
    "response": 'Here is an opening:\n\n"Cooking at home taught me patience."\n\nShorter?',
}


def study_conditions() -> list[dict[str, object]]:
    return list(yaml.safe_load(STUDY.read_text())["conditions"])


def proactive_config(url: str, **extra: object) -> dict[str, object]:
    return {
        "name": "proactive_base",
        "backend": "openai",
        "endpoints": [url],
        "model": MODEL,
        "prompt": "proactive",
        "response_format": "json_response",
        "sampling": {"temperature": 0.8, "top_p": 1.0, "max_tokens": 1536},
        **extra,
    }


async def test_proactive_arm_streams_plain_text_out_of_the_json_reply(fake: FakeVLLM) -> None:
    raw = json.dumps(PROACTIVE_REPLY)
    fake.script(Script(tokens=[raw[i : i + 6] for i in range(0, len(raw), 6)]))
    arm = build_arm(proactive_config(fake.url))

    stream = arm.reply(HISTORY, seed=11)
    deltas = [d async for d in stream]

    assert "".join(deltas) == PROACTIVE_REPLY["response"]
    assert len(deltas) > 5
    assert not any(s in d for d in deltas for s in ('"response"', '{"', '"}', "\\n"))
    record = stream.record
    assert record is not None
    assert record.text == PROACTIVE_REPLY["response"]
    assert json.loads(record.raw_output) == PROACTIVE_REPLY
    assert (record.prompt_version, record.error, record.finish_reason) == (
        "proactive.v1",
        "",
        "stop",
    )
    assert record.sampling == {"temperature": 0.8, "top_p": 1.0, "max_tokens": 1536, "seed": 11}
    body = fake.chat_requests()[0].body
    assert body["seed"] == 11
    assert body["max_tokens"] == 1536
    # The paper's form: the conversation pasted into one prompt, answered in JSON.
    assert [m["role"] for m in body["messages"]] == ["user"]
    prompt = body["messages"][0]["content"]
    assert "User: My friends." in prompt
    assert "Assistant: Sure! Who is it for?" in prompt
    assert '"current_problem"' in prompt
    assert "{{conversation}}" not in prompt


NO_RESPONSE_SHAPES = [
    # Cut off by the token limit inside the hidden reasoning.
    (['{"current_problem": "Who reads it?", ', '"thought": "Ask about the', " audience"], "length"),
    # An object without the field.
    (['{"current_problem": "p", ', '"thought": "Ask first."}'], "stop"),
    # Prose instead of JSON.
    (["Sure, here is a draft ", "about cooking for your friends."], "stop"),
    # Broken JSON before the response began.
    (['{"current_problem": "p" "thought": ', "[1, 2}"], "stop"),
]


@pytest.mark.parametrize(("tokens", "finish_reason"), NO_RESPONSE_SHAPES)
async def test_proactive_reply_without_response_is_asked_again_and_shows_only_the_answer(
    fake: FakeVLLM, tokens: list[str], finish_reason: str
) -> None:
    good = json.dumps(PROACTIVE_REPLY)
    fake.script(
        Script(tokens=tokens, finish_reason=finish_reason, tps=0),
        Script(tokens=[good[i : i + 7] for i in range(0, len(good), 7)], tps=0),
    )
    config = {**proactive_config(fake.url), "sampling": {"seed": 11}}
    stream = build_arm(config).reply(HISTORY)

    shown = [delta async for delta in stream]

    assert "".join(shown) == PROACTIVE_REPLY["response"]  # nothing of the first attempt
    seeds = [r.body["seed"] for r in fake.chat_requests()]
    assert len(seeds) == 2
    assert seeds[0] != seeds[1]
    record = stream.record
    assert record is not None
    assert record.finish_reason == "stop"
    assert record.text == PROACTIVE_REPLY["response"]
    assert record.error.startswith("malformed_json: ")  # a warning: the turn succeeded
    assert "answered on attempt 2" in record.error
    assert record.raw_output.startswith("".join(tokens))  # both attempts kept for researchers
    assert record.raw_output.endswith(good)


@pytest.mark.parametrize(("tokens", "finish_reason"), NO_RESPONSE_SHAPES)
async def test_proactive_reply_without_response_twice_is_replaced_by_the_neutral_reply(
    fake: FakeVLLM, tokens: list[str], finish_reason: str
) -> None:
    fake.script(*[Script(tokens=tokens, finish_reason=finish_reason, tps=0)] * 2)
    stream = build_arm(proactive_config(fake.url)).reply(HISTORY)
    shown: list[str] = []
    await stream.deliver_to(shown.append)

    assert shown == [NEUTRAL_REPLY]
    assert len(fake.chat_requests()) == 2
    record = stream.record
    assert record is not None
    assert record.text == NEUTRAL_REPLY
    assert record.finish_reason == "stop"
    assert record.error.startswith("malformed_json: ")
    assert "replaced by the neutral reply after 2 attempt(s)" in record.error
    assert record.raw_output == RETRY_MARK.join(["".join(tokens)] * 2)


async def test_proactive_arm_cancel_keeps_the_shown_text(fake: FakeVLLM) -> None:
    raw = json.dumps({"thought": "t", "response": " ".join(["word"] * 200)})
    fake.script(Script(tokens=[raw[i : i + 5] for i in range(0, len(raw), 5)], tps=100))
    stream = build_arm(proactive_config(fake.url)).reply(HISTORY)

    shown = []
    async for delta in stream:
        shown.append(delta)
        if len(shown) == 3:
            break
    await stream.aclose()

    record = stream.record
    assert record is not None
    assert record.finish_reason == "cancelled"
    assert record.text == "".join(shown)
    assert "{" not in record.text
    assert record.raw_output.startswith('{"thought"')
    assert await fake.wait_for(lambda: fake.disconnects == 1)


async def test_model_error_through_an_arm_still_leaves_a_record(fake: FakeVLLM) -> None:
    fake.script(Script(text="a b c", cut_after=1))
    arm = build_arm({"name": "base", "endpoints": [fake.url], "model": MODEL})
    stream = arm.reply(HISTORY)

    with pytest.raises(ModelError):
        async for _ in stream:
            pass

    assert stream.record is not None
    assert stream.record.finish_reason == "error"
    assert stream.record.text == "a"
    assert stream.record.prompt_version == "none"


async def test_reference_study_arms_send_what_the_paper_describes(
    fake: FakeVLLM, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("VLLM_URL", fake.url)
    arms = {c["name"]: build_arm(c, base_dir=STUDY.parent) for c in study_conditions()}

    for arm in arms.values():
        fake.script(Script(text=json.dumps({"response": "ok"})))
        stream = arm.reply(HISTORY)
        assert "".join([d async for d in stream]) in ("ok", json.dumps({"response": "ok"}))

    base, proactive, collab = (r.body for r in fake.chat_requests())
    assert base["messages"] == HISTORY  # Base: no system prompt
    assert proactive["messages"][0]["role"] == "user"
    assert len(proactive["messages"]) == 1
    assert collab["model"] == "collabllm-writing"
    assert collab["messages"][0]["role"] == "system"
    assert "proactive" in collab["messages"][0]["content"]
    assert collab["messages"][1:] == HISTORY
    for body in (base, proactive, collab):
        assert body["temperature"] == 0.8
        assert body["top_p"] == 1.0
    assert arms["collabllm"].describe()["adapter"] == (
        "collabllm/CollabLLM-writing-Llama-3.1-8B-Instruct"
    )


def test_endpoints_expand_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("VLLM_URL", raising=False)
    config = {"name": "a", "endpoints": ["${VLLM_URL:-http://127.0.0.1:8001}"], "model": "m"}
    assert build_arm(config).endpoints == ("http://127.0.0.1:8001",)

    monkeypatch.setenv("VLLM_URL", "http://gpu1:8000/v1/")
    assert build_arm(config).endpoints == ("http://gpu1:8000",)

    monkeypatch.setenv("VLLM_BASE_URLS", "http://gpu1:8000, http://gpu2:8000 http://gpu1:8000")
    many = build_arm({**config, "endpoints": ["${VLLM_BASE_URLS}"]})
    assert many.endpoints == ("http://gpu1:8000", "http://gpu2:8000")

    monkeypatch.delenv("VLLM_BASE_URLS")
    with pytest.raises(ConfigError, match="VLLM_BASE_URLS is not set"):
        build_arm({**config, "endpoints": ["${VLLM_BASE_URLS}"]})


def test_expand_env_forms() -> None:
    env = {"SET": "x", "EMPTY": "", "TRICKY": "${SET}"}
    assert expand_env("${SET:-d}/${EMPTY:-d}/${UNSET:-d}", environ=env) == "x/d/d"
    assert expand_env("${EMPTY-d}/${UNSET-d}/plain $5 {x}", environ=env) == "/d/plain $5 {x}"
    assert expand_env("${UNSET:-${SET:-d}}|${SET:-${NOPE}}", environ=env) == "x|x"
    assert expand_env("${A:-${B:-http://h:1}}/v1", environ=env) == "http://h:1/v1"
    assert expand_env("${TRICKY}", environ=env) == "${SET}"  # values are not expanded again
    with pytest.raises(ConfigError, match="NOPE is not set"):
        expand_env("${UNSET:-${NOPE}}", environ=env)
    with pytest.raises(ConfigError, match="unclosed"):
        expand_env("${UNSET:-oops", environ=env)


def test_reference_study_endpoints_per_arm_or_shared(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("VLLM_URL", "VLLM_URLS_BASE", "VLLM_URLS_PROACTIVE", "VLLM_URLS_COLLABLLM"):
        monkeypatch.delenv(name, raising=False)

    def endpoints() -> dict[str, tuple[str, ...]]:
        return {str(c["name"]): build_arm(c).endpoints for c in study_conditions()}

    assert set(endpoints().values()) == {("http://127.0.0.1:8001",)}
    monkeypatch.setenv("VLLM_URL", "http://gpu1:8001,http://gpu2:8001")
    assert set(endpoints().values()) == {("http://gpu1:8001", "http://gpu2:8001")}
    monkeypatch.setenv("VLLM_URLS_COLLABLLM", "http://gpu3:8003")
    assert endpoints()["collabllm"] == ("http://gpu3:8003",)
    assert endpoints()["base"] == ("http://gpu1:8001", "http://gpu2:8001")


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"name": "x", "backend": "gpt"}, "unknown backend"),
        ({"name": "x", "model": "m"}, "at least one endpoint"),
        ({"name": "x", "endpoints": ["gpu:8000"], "model": "m"}, "must start with http"),
        ({"name": "x", "backend": "offline", "sampling": {"temp": 1}}, "unknown sampling keys"),
        ({"name": "x", "backend": "offline", "sampling": {"top_p": 0}}, "0 < top_p <= 1"),
        ({"name": "x", "backend": "offline", "prompt": "nope"}, "unknown prompt 'nope'"),
        ({"name": "x", "backend": "offline", "promt": "proactive"}, "unknown keys"),
        ({"name": "x", "backend": "offline", "response_format": "xml"}, "response_format"),
        ({"name": "x", "backend": "offline", "style": "chatty"}, "unknown offline style"),
        ({"name": "x", "endpoints": ["http://a"], "model": "m", "timeouts": {"ttft": 1}}, "ttft"),
        (
            {"name": "x", "backend": "offline", "prompt": "proactive", "system_prompt": "Hi"},
            "only one of",
        ),
    ],
)
def test_bad_condition_blocks_are_rejected_clearly(config: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        build_arm(config)


def test_unknown_keys_are_allowed_when_not_strict() -> None:
    arm = build_arm({"name": "x", "backend": "offline", "colour": "blue"}, strict=False)
    assert arm.name == "x"


def test_override_offline_keeps_the_arm_and_derives_its_style() -> None:
    conditions = {c["name"]: c for c in study_conditions()}
    offline = {name: override_offline(c) for name, c in conditions.items()}

    assert {name: c["style"] for name, c in offline.items()} == {
        "base": "base",
        "proactive_base": "proactive",
        "collabllm": "collabllm",
    }
    for name, config in offline.items():
        assert config["backend"] == "offline"
        assert "endpoints" not in config
        assert config["response_format"] == conditions[name]["response_format"]
        assert config["sampling"] == conditions[name]["sampling"]
        json.dumps(config)  # goes into the database as JSON
        arm = build_arm(config)
        assert arm.backend.name == "offline"
    assert conditions["base"]["backend"] == "openai"  # the input is not modified
    assert derive_style({"prompt_file": "x.txt"}) == "proactive"
    assert derive_style({"style": "base", "prompt": "proactive"}) == "base"


async def test_demo_arms_run_offline_with_the_same_adapters() -> None:
    arms = [build_arm(override_offline(c), offline_rate=0) for c in study_conditions()]
    first_turn: list[ChatMessage] = [HISTORY[0]]

    texts = {}
    for arm in arms:
        stream = arm.reply(first_turn, seed=1)
        texts[arm.name] = "".join([d async for d in stream])
        record = stream.record
        assert record is not None
        assert record.backend == "offline"
        assert record.error == ""
        assert record.text == texts[arm.name]

    assert "?" not in texts["base"].split("\n\n")[0]  # drafts at once
    assert "1." in texts["proactive_base"]
    assert "{" not in texts["proactive_base"]
    assert "?" in texts["collabllm"]


def test_describe_is_json_ready_and_has_no_secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VLLM_API_KEY", "sk-secret")
    arm = build_arm(
        {
            "name": "collabllm",
            "endpoints": ["http://gpu:8000"],
            "model": "collabllm-writing",
            "adapter": "collabllm/CollabLLM-writing-Llama-3.1-8B-Instruct",
            "prompt": "collabllm",
            "api_key": "${VLLM_API_KEY}",
        }
    )
    described = json.dumps(arm.describe())
    assert "sk-secret" not in described
    assert arm.describe()["prompt_version"] == "collabllm.v1"
    assert arm.describe()["timeouts"]["first_token"] == 120.0


async def test_api_key_is_sent_as_a_bearer_token(
    fake: FakeVLLM, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("VLLM_API_KEY", "sk-test")
    arm = build_arm(
        {"name": "a", "endpoints": [fake.url], "model": MODEL, "api_key": "${VLLM_API_KEY}"}
    )
    [_ async for _ in arm.reply(HISTORY)]
    assert fake.chat_requests()[0].headers["authorization"] == "Bearer sk-test"


def test_cached_arm_is_reused_until_its_environment_or_prompt_file_changes(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("VLLM_URL", "http://gpu1:8000")
    (tmp_path / "prompt.txt").write_text("Ask before you write.")
    config = {
        "name": "a",
        "endpoints": ["${VLLM_URL:-http://127.0.0.1:8001}"],
        "model": "m",
        "prompt_file": "prompt.txt",
    }
    arm = cached_arm(config, base_dir=tmp_path)
    assert cached_arm(dict(config), base_dir=tmp_path) is arm

    monkeypatch.setenv("VLLM_URL", "http://gpu2:8000")
    moved = cached_arm(config, base_dir=tmp_path)
    assert moved.endpoints == ("http://gpu2:8000",)

    prompt = tmp_path / "prompt.txt"
    prompt.write_text("Ask two questions before you write.")
    os.utime(prompt, ns=(prompt.stat().st_atime_ns, prompt.stat().st_mtime_ns + 10**9))
    edited = cached_arm(config, base_dir=tmp_path)
    assert edited is not moved
    assert edited.prompt.text == "Ask two questions before you write."


async def test_replies_of_one_cached_arm_take_the_replicas_in_turn(
    fake: FakeVLLM, fake2: FakeVLLM
) -> None:
    config = {"name": "base", "endpoints": [fake.url, fake2.url], "model": MODEL}
    used = []
    for _ in range(4):  # one after the other: no replica is busier than the other
        stream = cached_arm(config).reply(HISTORY)
        _ = [delta async for delta in stream]
        assert stream.record is not None
        used.append(stream.record.endpoint)

    assert sorted(used) == sorted([fake.url, fake2.url] * 2)
    assert used[0] != used[1]


async def test_proactive_ttft_is_the_first_shown_character_with_the_model_ttft_beside_it(
    fake: FakeVLLM,
) -> None:
    # Hidden fields stream for 0.6 s (12 chunks at 20 a second) before the response begins.
    hidden = ['{"current_problem": "', *["x"] * 10, '", "thought": "t", ']
    fake.script(Script(tokens=[*hidden, '"response": "Hi', ' there"}'], tps=20))
    stream = build_arm(proactive_config(fake.url)).reply(HISTORY)
    shown = [delta async for delta in stream]

    assert "".join(shown) == "Hi there"
    record = stream.record
    assert record is not None
    assert record.model_ttft_ms is not None
    assert record.ttft_ms is not None
    assert record.model_ttft_ms < 300
    assert record.ttft_ms >= 550  # what the participant waited for

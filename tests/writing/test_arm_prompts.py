"""The reference study through the real app: what each arm sends the model server, what is
recorded, and what a study that shows the model the document sends and tells participants.

The model server is the loopback vLLM-format fake, which logs every request. The expected
prompts are built here from the installed wheel's files, read straight from site-packages.
"""

from __future__ import annotations

import hashlib
import sysconfig
from pathlib import Path

import pytest
from django.core.management import call_command
from django.utils import timezone

from studyapp.feedback.models import SurveyKind, SurveyResponse
from studyapp.participants.models import Outcome, Status
from studyapp.studies.services import study_load
from studyapp.writing.models import Message, Role
from tests.collab_models.vllm_fake import FakeVLLM, Script
from tests.conftest import REFERENCE_STUDY
from tests.writing.conftest import db, make_participation, open_client, token_for

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.usefixtures("drain_generations", "clean_transport"),
]

PROMPTS = Path(sysconfig.get_paths()["purelib"]) / "collabllm" / "prompts"
PROJECT_PROACTIVE = (
    Path(__file__).resolve().parents[2] / "collab_models" / "prompts" / "proactive.v1.txt"
).read_text()
REPLY = '{"current_problem": "a post", "thought": "ask", "response": "Who will read it?"}'
DOCUMENT_STUDY = REFERENCE_STUDY.read_text().replace(
    "model_context: chat\n", "model_context: chat+task+document\n"
)


def installed(name: str) -> str:
    return (PROMPTS / f"{name}.txt").read_bytes().decode("utf-8")


def sha(name: str) -> str:
    return hashlib.sha256((PROMPTS / f"{name}.txt").read_bytes()).hexdigest()


@pytest.fixture
async def fake(monkeypatch: pytest.MonkeyPatch):
    """The model server every arm of the reference study reaches (VLLM_URL)."""
    async with FakeVLLM(tps=0) as server:
        monkeypatch.setenv("VLLM_URL", server.url)
        for arm in ("BASE", "PROACTIVE", "COLLABLLM"):
            monkeypatch.delenv(f"VLLM_URLS_{arm}", raising=False)
        yield server


def _load(text: str, slug: str):
    return study_load(text=text, slug=slug).version


def _complete(participation) -> None:
    """Staging for the export: the participant went on to finish the survey."""
    now = timezone.now()
    participation.status = Status.COMPLETED
    participation.outcome = Outcome.COMPLETED
    participation.finished_at = participation.completed_at = now
    participation.attention_passed = True
    participation.save()


def _replies(participation) -> list[Message]:
    return list(Message.objects.filter(participation=participation, role=Role.ASSISTANT))


async def test_reference_arms_send_the_authors_prompts_and_record_their_sha256(fake, tmp_path):
    version = await db(_load, REFERENCE_STUDY.read_text(), "reference")
    assert version.model_context == "chat"
    assert version.prompts["proactive_base"]["sha256"] == sha("proact_instruction")
    assert version.prompts["collabllm"]["sha256"] == sha("system_prompt")
    assert version.prompts["collabllm"]["package_version"] == "0.0.8"
    assert version.prompts["base"]["version"] == "none"

    fake.script(Script(text=REPLY), Script(text="Who will read it?"))
    message = "Help me write a blog post about budget travel. "
    participations = {}
    for arm in ("proactive_base", "collabllm"):
        participations[arm] = await db(make_participation, version, arm)
        client, _ = await open_client("reference", token_for(participations[arm]))
        frames = await client.turn(message, f"m-{arm}")
        assert frames[-1]["type"] == "turn_end"
        assert frames[-1]["text"] == "Who will read it?"
        await client.close()

    proactive, collabllm = (r.body for r in fake.chat_requests())
    assert proactive["messages"] == [
        {
            "role": "user",
            "content": installed("proact_instruction").format(
                chat_history=f"**User**: {message}", additional_info="", max_new_tokens=1536
            ),
        }
    ]
    assert proactive["model"] == "meta-llama/Llama-3.1-8B-Instruct"
    assert collabllm["messages"] == [
        {"role": "system", "content": installed("system_prompt")},
        {"role": "user", "content": message},
    ]
    assert (
        collabllm["messages"][0]["content"].encode() == (PROMPTS / "system_prompt.txt").read_bytes()
    )

    for arm, name in (("proactive_base", "proact_instruction"), ("collabllm", "system_prompt")):
        (reply,) = await db(_replies, participations[arm])
        assert reply.prompt_sha256 == sha(name)
        assert reply.prompt_version == f"collabllm:{name}@0.0.8"
        await db(_complete, participations[arm])

    out = tmp_path / "sft"
    await db(call_command, "export_dataset", "reference", "--kind", "sft", "--out", str(out))
    card = (out / "README.md").read_text()
    assert "the model saw `chat`" in card
    for name in ("proact_instruction", "system_prompt"):
        assert f"sha256 `{sha(name)}`" in card  # the version's record
        assert f"| collabllm:{name}@0.0.8 | `{sha(name)}` | 1 |" in card  # the replies


async def test_a_study_that_shows_the_document_sends_its_latest_version(fake):
    version = await db(_load, DOCUMENT_STUDY, "with-document")
    assert version.model_context == "chat+task+document"
    participation = await db(make_participation, version, "collabllm")
    await db(
        SurveyResponse.objects.create,
        participation=participation,
        kind=SurveyKind.PREWRITING,
        answers={
            "topic": participation.topic,
            "answers": {"Who are your readers?": "Students saving for a trip."},
        },
    )
    fake.script(Script(text="Nice start."), Script(text="Better."))
    client, _ = await open_client("with-document", token_for(participation))

    sent = []
    for number, (draft, message) in enumerate(
        [("Budget travel: a first draft.", "What do you think?"),
         ("Budget travel on ten euros a day.", "And now?")],
        start=1,
    ):  # fmt: skip
        await client.send({"type": "doc", "text": draft, "version_base": number - 1, "edits": []})
        assert (await client.until_type("doc_saved"))[-1]["version"] == number
        assert (await client.turn(message, f"m{number}"))[-1]["type"] == "turn_end"
        sent.append(fake.chat_requests()[-1].body["messages"])

    for messages, draft in zip(
        sent, ("Budget travel: a first draft.", "Budget travel on ten euros a day."), strict=True
    ):
        assert messages[0] == {"role": "system", "content": installed("system_prompt")}
        assert messages[1]["role"] == "system"
        context = messages[1]["content"]
        assert f"<document>\n{draft}\n</document>" in context
        assert "Travelling on a tight budget" in context  # the topic
        assert "Who are your readers? Students saving for a trip." in context
        assert messages[2:][0] == {"role": "user", "content": "What do you think?"}
    assert "first draft" not in sent[1][1]["content"]  # the latest version, not an older one
    assert [m["role"] for m in sent[1]] == ["system", "system", "user", "assistant", "user"]
    # No reply was begun early on the socket's stale view of the document, then withdrawn.
    assert len(fake.chat_requests()) == 2
    assert not [f for f in client.frames if f["type"] == "turn_withdrawn"]
    await client.close()


def _enter(client, participation) -> None:
    session = client.session
    session[f"participation:{participation.study.slug}"] = str(participation.public_id)
    session.save()


@pytest.mark.parametrize(
    ("text", "slug", "says"),
    [
        (REFERENCE_STUDY.read_text(), "chat-only", "it cannot see your document editor"),
        (DOCUMENT_STUDY, "with-document", "it can see your document editor"),
    ],
)
def test_the_page_says_whether_the_assistant_sees_the_editor(client, text, slug, says):
    version = study_load(text=text, slug=slug, offline=True).version
    participation = make_participation(version, "base")
    _enter(client, participation)
    html = client.get(f"/study/{slug}/write/").content.decode()
    assert 'id="model-sees"' in html
    assert says in html


async def test_the_demo_runs_without_the_package_on_the_project_prompts(
    tmp_path, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.setenv("PUBLISHED_PROMPTS_PATH", str(tmp_path))  # an empty directory
    version = await db(
        lambda: study_load(text=REFERENCE_STUDY.read_text(), slug="demo", offline=True).version
    )
    assert version.prompts["proactive_base"]["version"] == "proactive.v1"
    assert version.prompts["proactive_base"]["fallback_for"] == "collabllm:proact_instruction"
    assert version.prompts["collabllm"]["fallback_for"] == "collabllm:system_prompt"
    participation = await db(make_participation, version, "proactive_base")
    client, _ = await open_client("demo", token_for(participation))
    frames = await client.turn("Help me write a blog post about budget travel.", "m1")
    assert frames[-1]["type"] == "turn_end"
    assert frames[-1]["text"]
    (reply,) = await db(_replies, participation)
    assert reply.prompt_version == "proactive.v1"
    assert reply.prompt_sha256 == hashlib.sha256(PROJECT_PROACTIVE.strip().encode()).hexdigest()
    await client.close()

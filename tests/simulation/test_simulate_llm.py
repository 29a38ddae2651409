"""simulate_participants --simulator llm against a loopback vLLM-format server: the simulator's
requests carry the authors' user-simulator prompt with the hidden goal and the chat so far, and
the chat ends on the terminal signal."""

from __future__ import annotations

import json
import re
from io import StringIO
from typing import Any

import pytest
import yaml
from django.core.management import call_command

from collab_models.arms import override_offline
from collab_models.published_prompts import published_prompt
from studyapp.feedback.models import Rating, Scale, SurveyKind, SurveyResponse
from studyapp.participants.models import Participation
from studyapp.studies.services import study_load
from studyapp.writing.models import Message, Role
from tests.collab_models.vllm_fake import FakeVLLM, Script
from tests.conftest import REFERENCE_STUDY

pytestmark = pytest.mark.django_db(transaction=True)

SIGNAL = "[[TERMINATE CHAT]]"
MODEL = "meta-llama/Llama-3.1-8B-Instruct"
TEMPLATE = published_prompt("collabllm:user_simulator").text
_QUESTION = re.compile(r"Question:\n(?P<q>.*?)\n\nHow to answer:", re.S)


class SimulatorServer(FakeVLLM):
    """Answers as a participant would: chat messages until three replies, then the terminal
    signal; rubric questions with a rating of 8, the attention check's asked choice, words."""

    async def _chat(self, body: Any, receive: Any, send: Any) -> None:
        self.script(Script(text=self._answer(body["messages"][-1]["content"]), tps=0))
        await super()._chat(body, receive, send)

    @staticmethod
    def _answer(content: str) -> str:
        if content.startswith(TEMPLATE.split("{task_desc}")[0]):
            replies = content.count("**Assistant**:")
            if replies >= 3:
                return json.dumps({"current_answer": "done", "thought": "good", "response": SIGNAL})
            return json.dumps({"current_answer": "a draft", "thought": "more",
                               "response": f"Message {replies + 1}: please keep working on it"})
        question = _QUESTION.search(content).group("q")
        if '"Somewhat disagree"' in question:
            return json.dumps({"answer": "Somewhat disagree"})
        if "whole number" in content.split("How to answer:")[1]:
            return json.dumps({"answer": 8})
        return json.dumps({"answer": f"My own view on: {question}"})


def _study(url: str):
    raw = yaml.safe_load(REFERENCE_STUDY.read_text())
    # The arms offline, the simulator on the loopback server (--offline would move it too).
    raw["conditions"] = [override_offline(c) for c in raw["conditions"]]
    raw["writing"]["min_turns"] = 3
    raw["simulation"] = {
        "simulator": {
            "backend": "openai", "endpoints": [url], "model": MODEL, "response_format": "text",
            "sampling": {"temperature": 0.7, "max_tokens": 400}, "retries": 0,
        },
        "rubric": "simulator_rubric",
    }  # fmt: skip
    return study_load(text=yaml.safe_dump(raw), slug="demo").version


def _transcript(messages) -> str:
    return "\n".join(f"**{m.role.capitalize()}**: {m.text}" for m in messages)


def test_an_llm_participant_chats_from_its_hidden_goal_until_the_terminal_signal(
    served_app_env,
):
    with SimulatorServer().running_in_thread() as fake:
        _study(fake.url)
        out = StringIO()
        call_command(
            "simulate_participants", "demo", "--n", "1", "--simulator", "llm",
            "--offline-rate", "400", stdout=out, stderr=StringIO(),
        )  # fmt: skip
        requests = fake.chat_requests()
    assert "1 simulated participants: 1 went through, 0 failed" in out.getvalue(), out.getvalue()

    person = Participation.objects.get()
    assert person.is_simulated
    assert person.status == "completed"
    assert person.outcome == "completed"  # it read the attention check
    chat = list(Message.objects.filter(participation=person, is_active=True).order_by("turn", "id"))
    users = [m for m in chat if m.role == Role.USER]
    # Three messages, then the signal ended the chat: it was never sent.
    assert [m.text for m in users] == [
        f"Message {i}: please keep working on it" for i in (1, 2, 3)
    ]
    assert all(SIGNAL not in m.text for m in chat)
    assert Rating.objects.get(participation=person, scale=Scale.INTERACTION, turn=3).value == 8

    prewriting = SurveyResponse.objects.get(participation=person, kind=SurveyKind.PREWRITING)
    answers = prewriting.answers["answers"]
    assert list(answers.values()) == [f"My own view on: {q}" for q in answers]
    simulator = [r for r in requests if r.body["messages"][0]["content"].startswith(
        TEMPLATE.split("{task_desc}")[0])]  # fmt: skip
    assert len(simulator) == 4  # three messages and the terminal signal
    for i, request in enumerate(simulator):
        assert request.body["model"] == MODEL
        assert len(request.body["messages"]) == 1
        content = request.body["messages"][0]["content"]
        # The authors' text around the filled slots, byte for byte.
        for part in re.split(r"\{(?:task_desc|single_turn_prompt|chat_history|terminal_signal)\}",
                             TEMPLATE):  # fmt: skip
            assert part in content
        assert content.count(SIGNAL) == TEMPLATE.count("{terminal_signal}")
        # The task from the document type.
        task = content.split("<|The Start of Task Description (Not visible to the AI)|>")[1]
        label = {"blog_post": "blog post", "creative_writing": "creative writing",
                 "personal_statement": "personal statement"}[person.document_type]  # fmt: skip
        assert label in task.split("<|The End of Task Description|>")[0]
        # The hidden goal: the topic and this participant's own pre-writing answers.
        goal = content.split("<|The Start of Complete Prompt or Reference Goal")[1]
        goal = goal.split("<|The End of Complete Prompt or Reference Goal|>")[0]
        assert person.topic in goal
        assert all(answer in goal for answer in answers.values())
        # The chat so far, as stored: i turns (user message and reply) before request i.
        so_far = [m for m in chat if m.turn <= i]
        assert (
            f"<|The Start of Chat History|>\n{_transcript(so_far)}\n<|The End of Chat History|>"
            in content
        )

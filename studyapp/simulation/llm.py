"""LLM participants: a model plays each simulated participant (collab_models/user_simulator.py).

The study file's ``simulation`` block names the model (``simulator``: a condition-like block
for any collab_models backend: vLLM/OpenAI-compatible, transformers, offline), the authors'
user-simulator prompt and the rubric of the answers outside the chat. The chat ends when the
model answers with the terminal signal; the participant then clicks Finish.
"""

from __future__ import annotations

import random
from typing import Any

from django.conf import settings

from collab_models.arms import Arm, build_arm
from collab_models.base import ChatMessage
from collab_models.prompts import file_prompt, named_prompt
from collab_models.published_prompts import PublishedPromptError
from collab_models.user_simulator import (
    hidden_goal,
    parse_answer,
    parse_choice,
    parse_scale,
    parse_simulator_reply,
    render_rubric,
    render_user_simulator,
    task_description,
    user_simulator_prompt,
)
from studyapp.simulation.brains import Chat, Habits
from studyapp.studies.spec import STUDY_FILES_DIR, document_type

# Where a study names no simulator model: the offline backend, fast (it only stands in).
OFFLINE_SIMULATOR = {"name": "simulator", "backend": "offline", "style": "base", "rate": 1000}
SHORT_ANSWER = "A short answer in this person's own words: one or two sentences."


class LLMBrain:
    """One simulated participant played by the simulation model."""

    persona = "llm"
    habits = Habits()

    def __init__(
        self, *, arm: Arm, template: str, rubric: str, signal: str, spec: dict[str, Any],
        seed: str,
    ) -> None:  # fmt: skip
        self.arm, self.template, self.rubric, self.signal = arm, template, rubric, signal
        self.spec = spec
        self.rng = random.Random(seed)  # noqa: S311 - a topic choice, not a secret
        self.task_desc = ""
        self.goal = ""
        self.ended_by_signal = False

    async def _ask(self, messages: list[ChatMessage]) -> str:
        stream = self.arm.reply(messages)
        return "".join([delta async for delta in stream])

    async def _answer(self, chat: Chat | None, question: str, answer_format: str) -> str:
        history = chat.history() if chat is not None else []
        return await self._ask(
            render_rubric(
                self.rubric, task_desc=self.task_desc, goal=self.goal, chat=history,  # type: ignore[arg-type]
                question=question, answer_format=answer_format,
            )
        )  # fmt: skip

    async def prewriting(
        self, *, document_type: str, topics: list[str], questions: list[str]
    ) -> tuple[str, list[str]]:
        doc = _document(self.spec, document_type)
        label = doc.get("label", document_type.replace("_", " "))
        self.task_desc = task_description(
            document_label=label, description=doc.get("task_description", "")
        )
        topic = self.rng.choice(topics)
        self.goal = hidden_goal(document_label=label, topic=topic, answers=[])
        limit = self.spec["prewriting"]["max_answer_chars"]
        answers = []
        for question in questions:
            raw = await self._answer(None, question, SHORT_ANSWER)
            answers.append((parse_answer(raw) or "No preference.")[:limit])
        self.goal = hidden_goal(
            document_label=label, topic=topic, answers=list(zip(questions, answers, strict=True))
        )
        return topic, answers

    async def next_message(self, chat: Chat) -> str | None:
        if sum(1 for m in chat.messages if m["role"] == "user") >= chat.max_turns:
            return None
        messages = render_user_simulator(
            self.template, task_desc=self.task_desc, single_turn_prompt=self.goal,
            chat=chat.history(), terminal_signal=self.signal,  # type: ignore[arg-type]
        )  # fmt: skip
        reply = parse_simulator_reply(await self._ask(messages))
        if reply.is_terminal(self.signal) or not reply.response:
            self.ended_by_signal = True
            return None
        return reply.response[: settings.MAX_MESSAGE_CHARS]

    async def rate(self, chat: Chat, *, turn: int, scale: dict[str, Any]) -> int:
        low, high = scale["min"], scale["max"]
        anchors = ", ".join(f"{k} = {v}" for k, v in scale.get("anchors", {}).items())
        answer_format = f"A whole number from {low} to {high}"
        answer_format += f" ({anchors})." if anchors else "."
        raw = await self._answer(chat, scale["question"], answer_format)
        return parse_scale(raw, low=low, high=high)

    async def edit_document(self, chat: Chat) -> str:
        # The participant keeps the assistant's latest draft in the editor.
        replies = [m["text"] for m in chat.messages if m["role"] == "assistant" and m["text"]]
        return replies[-1] if replies else chat.document

    async def survey(self, chat: Chat, *, spec: dict[str, Any]) -> dict[str, str]:
        answers: dict[str, str] = {}
        survey = spec["survey"]
        for q in survey["questions"]:
            answers[q["key"]] = await self._survey_answer(chat, q)
        check = survey.get("attention_check")
        if check:
            answers[check["key"]] = await self._survey_answer(chat, {**check, "kind": "choice"})
        return answers

    async def _survey_answer(self, chat: Chat, q: dict[str, Any]) -> str:
        if q["kind"] == "scale":
            low, high = q.get("min", 1), q.get("max", 10)
            fmt = f"A whole number from {low} ({q.get('min_label', 'very poor')}) to {high} " \
                  f"({q.get('max_label', 'very good')})."  # fmt: skip
            return str(parse_scale(await self._answer(chat, q["text"], fmt), low=low, high=high))
        if q["kind"] == "choice":
            fmt = "Exactly one of these choices, copied as written:\n" + "\n".join(
                f"- {c}" for c in q["choices"]
            )
            return parse_choice(await self._answer(chat, q["text"], fmt), q["choices"])
        least = q.get("min_chars", 0)
        text = parse_answer(await self._answer(chat, q["text"], SHORT_ANSWER))
        if len(text) < least:
            text = f"{text} (nothing more to add)".strip()
        return text[: q.get("max_chars", 5000)]


def _document(spec: dict[str, Any], key: str) -> dict[str, Any]:
    return document_type(spec, key) or {}


def llm_brain_factory(spec: dict[str, Any]):
    """A factory of LLM participants for the study ``spec`` (``ValueError`` when its simulation
    block cannot be served: the authors' package missing, a bad model block)."""
    simulation = spec["simulation"]
    config = simulation["simulator"] or OFFLINE_SIMULATOR
    arm = build_arm({"name": "simulator", **config}, base_dir=STUDY_FILES_DIR)
    try:
        published = user_simulator_prompt(simulation["prompt"])
    except PublishedPromptError as exc:
        raise ValueError(str(exc)) from exc
    wanted = str(simulation["prompt_package_version"])
    if published.package_version != wanted:
        raise ValueError(
            f"simulation.prompt {simulation['prompt']}: the study names version {wanted}, "
            f"{published.package_version} is installed"
        )
    if simulation["rubric_file"]:
        rubric = file_prompt(simulation["rubric_file"], base_dir=STUDY_FILES_DIR).text or ""
    else:
        rubric = named_prompt(simulation["rubric"]).text or ""

    def make(index: int, label: str) -> LLMBrain:
        return LLMBrain(
            arm=arm, template=published.text, rubric=rubric,
            signal=simulation["terminal_signal"], spec=spec, seed=label,
        )  # fmt: skip

    return make

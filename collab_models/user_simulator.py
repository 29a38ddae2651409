"""An LLM that plays a study participant: the CollabLLM authors' user simulator, and a rubric
for the answers a participant gives outside the chat (pre-writing, ratings, final questions).

The chat turns use the authors' ``user_simulator.txt`` (read from their installed ``collabllm``
package, never copied here), rendered as they render it: ``str.format`` with ``task_desc``,
``single_turn_prompt`` (the hidden goal: what this participant wants, not visible to the
assistant), ``chat_history`` (their ``**User**: ...`` transcript) and ``terminal_signal``. It
answers with a JSON object whose ``response`` is the next message, or the terminal signal when
the participant is done.

The other answers use a rubric, a project prompt a study names (``simulator_rubric``), filled by
``str.replace`` of ``{task_desc}``, ``{goal}``, ``{chat_history}``, ``{question}`` and
``{answer_format}``; it answers ``{"answer": ...}``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass

from collab_models.base import ChatMessage
from collab_models.prompts import authors_transcript
from collab_models.published_prompts import PublishedPrompt, published_prompt

USER_SIMULATOR_SOURCE = "collabllm:user_simulator"
# The signal the authors' simulator is told to answer with when it is done.
TERMINAL_SIGNAL = "[[TERMINATE CHAT]]"
_OBJECT = re.compile(r"\{.*\}", re.S)
_INTEGER = re.compile(r"-?\d+")


@dataclass(frozen=True)
class SimulatorReply:
    """One parsed reply of the user simulator: the message to send, and its hidden parts."""

    response: str
    thought: str = ""
    current_answer: str = ""

    def is_terminal(self, signal: str = TERMINAL_SIGNAL) -> bool:
        return signal in self.response


def user_simulator_prompt(source: str = USER_SIMULATOR_SOURCE) -> PublishedPrompt:
    """The authors' user-simulator template from their installed package (see
    :mod:`collab_models.published_prompts`; raises where the package is absent)."""
    return published_prompt(source)


def task_description(*, document_label: str, description: str = "") -> str:
    """``task_desc``: the document type as the participant's task (a study's own wording when
    its document type has a ``task_description``)."""
    if description.strip():
        return description.strip()
    return (
        f"Co-writing a {document_label.lower()} with an AI assistant: the user chats with the "
        "assistant and keeps the document in an editor beside the chat."
    )


def hidden_goal(*, document_label: str, topic: str, answers: Sequence[tuple[str, str]]) -> str:
    """``single_turn_prompt``: what this participant wants, from the topic they chose and their
    own pre-writing answers."""
    lines = [f"Write a {document_label.lower()} about: {topic}", "What I have in mind:"]
    lines += [f"- {question} {answer}" for question, answer in answers if answer.strip()]
    return "\n".join(lines)


def render_user_simulator(
    template: str,
    *,
    task_desc: str,
    single_turn_prompt: str,
    chat: Sequence[ChatMessage],
    terminal_signal: str = TERMINAL_SIGNAL,
) -> list[ChatMessage]:
    """The request for the next participant message, as the authors send it (one user message)."""
    content = template.format(
        task_desc=task_desc,
        single_turn_prompt=single_turn_prompt,
        chat_history=authors_transcript(list(chat)),
        terminal_signal=terminal_signal,
    )
    return [{"role": "user", "content": content}]


def _json_object(raw: str) -> dict[str, object] | None:
    match = _OBJECT.search(raw)
    if match is None:
        return None
    try:
        value = json.loads(match.group(0))
    except json.JSONDecodeError:
        return None
    return value if isinstance(value, dict) else None


def parse_simulator_reply(raw: str) -> SimulatorReply:
    """The ``response`` of the simulator's JSON (a fenced or prose-wrapped object is found);
    a reply that is not such an object is taken as the message itself."""
    obj = _json_object(raw)
    if obj is None or not isinstance(obj.get("response"), str):
        return SimulatorReply(response=raw.strip())
    return SimulatorReply(
        response=str(obj["response"]).strip(),
        thought=str(obj.get("thought") or ""),
        current_answer=str(obj.get("current_answer") or ""),
    )


def render_rubric(
    rubric: str,
    *,
    task_desc: str,
    goal: str,
    chat: Sequence[ChatMessage],
    question: str,
    answer_format: str,
) -> list[ChatMessage]:
    """The request for one answer outside the chat (a rating, a pre-writing or final answer)."""
    values = {
        "{task_desc}": task_desc,
        "{goal}": goal,
        "{chat_history}": authors_transcript(list(chat)) or "(no conversation yet)",
        "{question}": question,
        "{answer_format}": answer_format,
    }
    content = rubric
    for slot, value in values.items():
        content = content.replace(slot, value)
    return [{"role": "user", "content": content}]


def parse_answer(raw: str) -> str:
    """The ``answer`` of the rubric's JSON reply, or the whole reply when it is not JSON."""
    obj = _json_object(raw)
    if obj is not None and "answer" in obj:
        return str(obj["answer"]).strip()
    return raw.strip()


def parse_scale(raw: str, *, low: int, high: int) -> int:
    """A whole number on ``low..high`` from a rubric answer (the middle when there is none)."""
    match = _INTEGER.search(parse_answer(raw))
    if match is None:
        return (low + high) // 2
    return min(high, max(low, int(match.group(0))))


def parse_choice(raw: str, choices: Sequence[str]) -> str:
    """The offered choice a rubric answer names (exactly, else by inclusion; else the first)."""
    answer = parse_answer(raw)
    for choice in choices:
        if answer.strip().lower() == choice.lower():
            return choice
    for choice in sorted(choices, key=len, reverse=True):
        if choice.lower() in answer.lower():
            return choice
    return choices[0]

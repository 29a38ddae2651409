"""Scripted participants: no model, fixed personas for load tests, CI and a first pilot.

Each persona writes plain requests until the study's minimum of turns, rates when asked, keeps
the document growing from the replies, and answers the final questions; some also stop a reply,
regenerate one, reload the page mid-reply, leave for good, or fail the attention check. A run
of ``len(PERSONAS)`` participants or more meets every persona (they are dealt in turn).
"""

from __future__ import annotations

import random
from typing import Any

from studyapp.simulation.brains import Chat, Habits

PERSONAS: dict[str, Habits] = {
    "steady": Habits(),
    "stopper": Habits(stop_from=2),
    "regenerator": Habits(regenerate_at=frozenset({2})),
    "reloader": Habits(reload_at=frozenset({4})),
    "dropout": Habits(drop_after=3),
    "inattentive": Habits(fail_attention=True),
}

_REQUESTS = (
    "Please help me start a {doc} about {topic}.",
    "Can you make the opening a little more personal?",
    "Add a paragraph with a concrete example please.",
    "Could the tone be warmer and less formal?",
    "Please suggest a better title for it.",
    "Shorten the second paragraph a bit please.",
    "Add a closing paragraph that ties it together.",
    "Check the whole text for repetition please.",
)


def persona_for(index: int) -> str:
    return list(PERSONAS)[index % len(PERSONAS)]


class ScriptedBrain:
    """A persona's fixed behaviour; its numbers come from a generator seeded by its label."""

    def __init__(self, persona: str, *, seed: str) -> None:
        self.persona = persona
        self.habits = PERSONAS[persona]
        self.rng = random.Random(seed)  # noqa: S311 - made-up answers, not secrets

    async def prewriting(
        self, *, document_type: str, topics: list[str], questions: list[str]
    ) -> tuple[str, list[str]]:
        topic = self.rng.choice(topics)
        answers = [f"My answer about {q.rstrip('?').lower()}: keep it simple." for q in questions]
        return topic, answers

    async def next_message(self, chat: Chat) -> str | None:
        if chat.turns_completed >= chat.min_turns:
            return None
        sent = sum(1 for m in chat.messages if m["role"] == "user")
        text = _REQUESTS[sent % len(_REQUESTS)]
        return text.format(doc=chat.document_type.replace("_", " ") or "text", topic=chat.topic)

    async def rate(self, chat: Chat, *, turn: int, scale: dict[str, Any]) -> int:
        return self.rng.randint(scale["min"], scale["max"])

    async def edit_document(self, chat: Chat) -> str:
        replies = [m["text"] for m in chat.messages if m["role"] == "assistant" and m["text"]]
        if not replies:
            return chat.document
        sentence = " ".join(replies[-1].split()[:30])
        return f"{chat.document}\n\n{sentence}".strip()

    async def survey(self, chat: Chat, *, spec: dict[str, Any]) -> dict[str, str]:
        answers: dict[str, str] = {}
        for q in spec["survey"]["questions"]:
            if q["kind"] == "scale":
                answers[q["key"]] = str(self.rng.randint(q.get("min", 1), q.get("max", 10)))
            elif q["kind"] == "choice":
                answers[q["key"]] = self.rng.choice(q["choices"])
            else:
                answers[q["key"]] = "It was a reasonable experience for a short document."
        check = spec["survey"].get("attention_check")
        if check:
            wrong = [c for c in check["choices"] if c != check["expected"]]
            answers[check["key"]] = wrong[0] if self.habits.fail_attention else check["expected"]
        return answers

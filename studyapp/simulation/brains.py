"""What a simulated participant decides: the interface the journey asks, and what it sees."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol


@dataclass
class Chat:
    """What the participant sees on the co-writing page (from the latest ``state`` frame)."""

    document_type: str  # the key, e.g. "blog_post"
    topic: str
    answers: dict[str, str]  # pre-writing question -> answer
    messages: list[dict[str, Any]] = field(default_factory=list)
    document: str = ""
    turns_completed: int = 0
    min_turns: int = 1
    max_turns: int = 30

    def history(self) -> list[dict[str, str]]:
        """The conversation as chat messages (``role``, ``content``)."""
        return [{"role": m["role"], "content": m["text"]} for m in self.messages]


@dataclass(frozen=True)
class Habits:
    """What a participant does besides sending: the turns (1-based) it reloads or regenerates
    at, the turn from which it stops each reply as it starts until one is stopped, the turn
    after which it leaves for good, whether it fails the attention check."""

    stop_from: int | None = None
    reload_at: frozenset[int] = frozenset()
    regenerate_at: frozenset[int] = frozenset()
    drop_after: int | None = None
    fail_attention: bool = False


class Brain(Protocol):
    """One simulated participant's mind: asked by the journey at each step."""

    persona: str
    habits: Habits

    async def prewriting(
        self, *, document_type: str, topics: list[str], questions: list[str]
    ) -> tuple[str, list[str]]:
        """The chosen topic and an answer to each question, in order."""
        ...

    async def next_message(self, chat: Chat) -> str | None:
        """The next message to send; ``None`` ends the chat (the participant would Finish)."""
        ...

    async def rate(self, chat: Chat, *, turn: int, scale: dict[str, Any]) -> int:
        """The in-chat interaction rating for checkpoint ``turn`` on ``scale``."""
        ...

    async def edit_document(self, chat: Chat) -> str:
        """The document's next text, after the latest reply."""
        ...

    async def survey(self, chat: Chat, *, spec: dict[str, Any]) -> dict[str, str]:
        """The final questions' answers by field name (the attention check among them)."""
        ...

"""The one backend interface every model backend implements.

A backend streams the reply to a list of chat messages as text deltas. After the stream ends
(normally, by error, or because the caller closed it) ``ReplyStream.record`` holds a
:class:`TurnRecord` describing the turn.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from dataclasses import asdict, dataclass, field
from typing import Any, Literal, Protocol, TypedDict


class ChatMessage(TypedDict):
    role: Literal["system", "user", "assistant"]
    content: str


@dataclass(frozen=True)
class SamplingParams:
    """Sampling values, always sent explicitly (servers otherwise apply their own defaults)."""

    temperature: float = 0.8
    top_p: float = 1.0
    max_tokens: int = 1024
    seed: int | None = None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


FinishReason = Literal["stop", "length", "cancelled", "error"]


@dataclass
class TurnRecord:
    """Everything worth logging about one generated turn."""

    text: str  # the text shown to the participant
    raw_output: str  # what the model produced before any response adapter
    backend: str
    model: str
    adapter: str = ""
    prompt_version: str = ""
    # The sha256 of the prompt's text (its template, before the chat is filled in).
    prompt_sha256: str = ""
    sampling: dict[str, Any] = field(default_factory=dict)
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    ttft_ms: float | None = None
    duration_ms: float | None = None
    finish_reason: FinishReason = "stop"
    error: str = ""
    # Where the turn was served (base URL of the replica), for researchers.
    endpoint: str = ""

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


class ModelError(Exception):
    """A generation failed. ``permanent`` errors are not worth retrying (bad model name, 4xx)."""

    def __init__(self, message: str, *, permanent: bool = False) -> None:
        super().__init__(message)
        self.permanent = permanent


class ReplyStream(Protocol):
    """An async iterator of text deltas; ``record`` is set once iteration has ended.

    Closing it early (``await stream.aclose()``) cancels the generation and leaves a record
    with ``finish_reason == "cancelled"`` and the partial text. ``start()`` begins the
    generation before the first delta is asked for; ``deliver_to(listener)`` hands each delta to
    ``listener`` as it arrives instead of iterating, and returns when the stream has ended.
    """

    record: TurnRecord | None

    def __aiter__(self) -> AsyncIterator[str]: ...

    def start(self) -> None: ...

    async def deliver_to(self, listener: Callable[[str], None]) -> None: ...

    async def aclose(self) -> None: ...


class Backend(Protocol):
    name: str

    def stream(self, messages: list[ChatMessage], sampling: SamplingParams) -> ReplyStream: ...

"""Keeping a conversation within the model's context window.

The policy: system messages, the first exchange (the participant's first message, which sets
the task, and its reply) and the latest user message are always kept; the oldest exchanges
after the first are dropped, whole (a user message with its reply), until the prompt fits.
The number of exchanges dropped is recorded on the turn (``TurnRecord.dropped_turns``).

Two triggers apply it:

- an arm with ``context_tokens`` (the model's window, e.g. vLLM's ``--max-model-len``)
  estimates the prompt's size before sending (``CHARS_PER_TOKEN`` characters a token, a
  cautious figure for English with Llama tokenizers) and leaves room for ``max_tokens``;
- a server that answers with its context-length error (vLLM: HTTP 400 "This model's maximum
  context length is ...") has the conversation shortened by the excess it reports, and the
  request is sent again, a few times at most.

A latest message too long to fit even alone is a permanent error.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from collab_models.base import ChatMessage

CHARS_PER_TOKEN = 3.0
CONTEXT_LENGTH = "context_length"

_LIMIT = re.compile(r"maximum context length is (\d+)", re.IGNORECASE)
_PROMPT = re.compile(r"(\d+) in the messages|has (\d+) input tokens|(\d+) tokens in the prompt")


@dataclass(frozen=True)
class Trimmed:
    messages: list[ChatMessage]
    dropped: int  # whole exchanges left out


def is_context_error(message: str) -> bool:
    """Whether a server's error message says the prompt is longer than its window."""
    return bool(_LIMIT.search(message)) or "context length" in message.lower()


def context_overflow(message: str, max_tokens: int) -> float | None:
    """The share of the prompt that must go (0..1) according to the error ``message``, or
    None when it does not say (the caller then drops a fixed share)."""
    limit = _LIMIT.search(message)
    prompt = _PROMPT.search(message)
    if not (limit and prompt):
        return None
    prompt_tokens = int(next(g for g in prompt.groups() if g))
    room = int(limit.group(1)) - max_tokens
    if prompt_tokens <= 0:
        return None
    return min(1.0, max(0.0, 1 - room / prompt_tokens))


def _exchanges(messages: list[ChatMessage]) -> tuple[list[ChatMessage], list[list[ChatMessage]]]:
    """System messages, then the conversation cut into exchanges, each starting at a user
    message."""
    system = [m for m in messages if m["role"] == "system"]
    chat = [m for m in messages if m["role"] != "system"]
    exchanges: list[list[ChatMessage]] = []
    for message in chat:
        if message["role"] == "user" or not exchanges:
            exchanges.append([message])
        else:
            exchanges[-1].append(message)
    return system, exchanges


def _size(messages: list[ChatMessage]) -> int:
    return sum(len(m["content"]) + 8 for m in messages)  # a few characters of template each


def drop_oldest(messages: list[ChatMessage], chars: int) -> Trimmed:
    """Drop the oldest exchanges after the first until at least ``chars`` characters are gone
    (or only the first exchange and the latest one are left)."""
    system, exchanges = _exchanges(messages)
    if len(exchanges) <= 2:
        return Trimmed(list(messages), 0)
    middle = exchanges[1:-1]
    dropped, removed = 0, 0
    while middle and removed < chars:
        removed += _size(middle.pop(0))
        dropped += 1
    kept = [exchanges[0], *middle, exchanges[-1]]
    return Trimmed(system + [m for exchange in kept for m in exchange], dropped)


def fit_window(messages: list[ChatMessage], *, context_tokens: int, max_tokens: int) -> Trimmed:
    """Trim ``messages`` so that their estimated size leaves ``max_tokens`` of the window."""
    budget = (context_tokens - max_tokens) * CHARS_PER_TOKEN
    excess = _size(messages) - budget
    if excess <= 0:
        return Trimmed(list(messages), 0)
    return drop_oldest(messages, int(excess))


def shrink_for_error(messages: list[ChatMessage], message: str, max_tokens: int) -> Trimmed:
    """Shorten ``messages`` after the server's context-length error ``message``: by the
    share it reports as too much (with 10% to spare), else by a quarter."""
    share = context_overflow(message, max_tokens)
    share = 0.25 if share is None else min(1.0, share + 0.1)
    return drop_oldest(messages, max(1, int(_size(messages) * share)))

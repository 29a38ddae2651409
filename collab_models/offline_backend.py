"""A model-free backend for demos, pilots and tests.

It writes plausible co-writing replies from templates and streams them word by word at a fixed
rate, so the whole study can run on a laptop. Its ``style`` mimics each arm:

* ``base`` drafts at once and asks nothing;
* ``proactive`` asks one clarifying question with numbered options on the first turn(s), then
  drafts and offers options for what to do next;
* ``collabllm`` also clarifies first, then drafts and ends with an open follow-up question.

The reply depends only on the conversation and the seed (``SamplingParams.seed``), so a run is
reproducible. With ``json_reply`` the reply comes wrapped in the Proactive Base JSON object,
which exercises the ``json_response`` adapter exactly as a real model would.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import random
import re

from collab_models.base import ChatMessage, SamplingParams, TurnRecord
from collab_models.streaming import ProducerStream

STYLES = ("base", "proactive", "collabllm")
DEFAULT_RATE = 40.0  # tokens (words) per second

_WORD = re.compile(r"\s*\S+")
_KEYWORD = re.compile(r"[A-Za-z][A-Za-z'-]{4,}")
_STOPWORDS = frozenset(
    {
        "about", "after", "again", "against", "their", "there", "these", "those", "which",
        "while", "would", "could", "should", "write", "wrote", "written", "please", "thanks",
        "thank", "draft", "start", "something", "really", "little", "maybe", "making", "where",
        "other", "being", "because", "before", "think", "document", "assistant",
    }
)  # fmt: skip

_QUESTIONS: list[tuple[str, list[str]]] = [
    (
        "Who will read this, and what tone should it have?",
        [
            "Friends and family, in a warm and personal tone",
            "A general audience, clear and informative",
            "Readers you want to persuade, confident and direct",
        ],
    ),
    (
        "What should the reader take away at the end?",
        [
            "A practical tip they can use right away",
            "A feeling or a memorable image",
            "A clear argument they might agree with",
        ],
    ),
    (
        "How long should the piece be?",
        [
            "Short: a few paragraphs",
            "Medium: about a page",
            "Long: several pages with sections",
        ],
    ),
    (
        "Where should the piece begin?",
        [
            "With a personal moment or scene",
            "With a surprising fact or claim",
            "With a question to the reader",
        ],
    ),
    (
        "Is there a detail or example you definitely want in it?",
        [
            "Yes, something from my own experience",
            "A concrete example I will give you",
            "No, surprise me with one",
        ],
    ),
    (
        "What should the piece avoid?",
        [
            "Sounding too formal or stiff",
            "Clichés and generic advice",
            "Getting too long or wordy",
        ],
    ),
]

# Enough variants that two seeds almost never compose the same reply: side-by-side candidates
# and regenerations of the demo must look different (tests/collab_models checks the rate).
_CLARIFY_LEADS = [
    "Happy to help with this. Before I draft anything, one question so the piece fits what you"
    " have in mind:",
    "Glad to work on this with you. One quick question first, so the draft fits what you have in"
    " mind:",
    "Sounds like a good project. Before I write a first version, let me check one thing:",
    "Let's do it. So that I don't guess wrong, one question before I start:",
]
_CLARIFY_ENDS = [
    "Pick a number, or tell me in your own words.",
    "Reply with a number, or describe it in your own words.",
    "Any of these, or something else entirely?",
]
_OPENINGS = [
    "Some ideas only make sense after living with them for a while, and {k0} is one of them.",
    "It is easy to overlook {k0} until the day it changes how you see everything else.",
    "Nobody warned me that {k0} would turn out to matter this much.",
    "I used to think {k0} was something other people worried about.",
    "There is a moment with {k0} when the plan stops being a plan and starts being a life.",
    "Ask anyone who has tried it: {k0} is never quite what you expect.",
]
_MIDDLES = [
    "At first, {k1} seemed like a detail, but it kept coming back in small, surprising ways.",
    "What made the difference was {k1}: simple to describe, harder to practise every day.",
    "The turning point came with {k1}, when the plan on paper finally met real life.",
    "Looking closer at {k1} showed a pattern that had been there from the start.",
    "Then {k1} entered the picture, and nothing about the routine felt ordinary any more.",
    "The hardest part was {k1}, mostly because nobody talks about it honestly.",
    "Small things, like {k1}, ended up carrying most of the weight.",
]
_CLOSINGS = [
    "In the end, {k2} is less a destination than a habit, and that is good news for anyone"
    " starting out.",
    "If there is one lesson here, it is that {k2} rewards patience more than talent.",
    "That is why {k2} still matters: it turns good intentions into something that lasts.",
    "So start small with {k2}; the rest tends to follow.",
    "Whatever you decide, give {k2} a real chance before you judge it.",
]
_NEXT_OPTIONS = [
    "Expand the middle with a concrete example",
    "Make it shorter and punchier",
    "Rewrite the opening to grab attention",
    "Change the tone to be more personal",
    "Add a closing call to action",
]
_FOLLOW_UPS = [
    "Does this match what you had in mind, or should I shift the focus?",
    "Which part feels closest to your voice, and which part should change?",
    "Is there a personal detail you would like me to weave in?",
]


def _keywords(text: str) -> list[str]:
    seen: dict[str, None] = {}
    for word in _KEYWORD.findall(text):
        low = word.lower()
        if low not in _STOPWORDS:
            seen.setdefault(low, None)
    return list(seen) or ["this topic"]


def _seed_for(messages: list[ChatMessage], seed: int | None) -> int:
    if seed is not None:
        return seed
    digest = hashlib.sha256(json.dumps(messages, sort_keys=True).encode()).digest()
    return int.from_bytes(digest[:8], "big")


def compose_reply(
    messages: list[ChatMessage], *, style: str, seed: int | None, clarify_turns: int = 1
) -> tuple[str, str]:
    """The reply text and a one-line "thought" for ``messages`` in ``style`` (deterministic)."""
    rng = random.Random(_seed_for(messages, seed))  # noqa: S311 (not for security)
    users = [m["content"] for m in messages if m["role"] == "user"]
    assistant_turns = sum(1 for m in messages if m["role"] == "assistant")
    words = _keywords(" ".join(users))
    rng.shuffle(words)
    k = [*words, *words, *words][:3]
    if style != "base" and assistant_turns < clarify_turns:
        question, options = rng.choice(_QUESTIONS)
        options = rng.sample(options, len(options))
        lines = [f"{i}. {o}" for i, o in enumerate(options, 1)]
        text = (
            f"{rng.choice(_CLARIFY_LEADS)} {question}\n\n"
            + "\n".join(lines)
            + f"\n\n{rng.choice(_CLARIFY_ENDS)}"
        )
        return text, "The goal is still vague; one focused question will save a rewrite."
    paragraphs = [
        rng.choice(_OPENINGS).format(k0=k[0]),
        " ".join(m.format(k1=w) for m, w in zip(rng.sample(_MIDDLES, 2), k[1:], strict=True)),
        rng.choice(_CLOSINGS).format(k2=k[0]),
    ]
    lead = "Here is a draft:" if assistant_turns == 0 else "Thanks, that helps. Here is a draft:"
    text = lead + "\n\n" + "\n\n".join(paragraphs)
    if style == "proactive":
        options = rng.sample(_NEXT_OPTIONS, 3)
        text += "\n\nWhat should I do next?\n" + "\n".join(
            f"{i}. {o}" for i, o in enumerate(options, 1)
        )
    elif style == "collabllm":
        text += "\n\n" + rng.choice(_FOLLOW_UPS)
    return text, "Enough is known to draft; ask what to change next."


class OfflineBackend:
    """Template replies streamed word by word at ``rate`` tokens per second (no model)."""

    name = "offline"
    uses_prompt = False  # the style stands in for the prompt

    def __init__(
        self,
        *,
        style: str = "base",
        rate: float | None = DEFAULT_RATE,
        json_reply: bool = False,
        clarify_turns: int = 1,
    ) -> None:
        if style not in STYLES:
            raise ValueError(f"unknown offline style {style!r} (expected one of {STYLES})")
        if rate is not None and rate < 0:
            raise ValueError("offline rate must be >= 0 tokens per second")
        self.style = style
        self.rate = rate or None  # 0 or None: as fast as possible
        self.json_reply = json_reply
        self.clarify_turns = clarify_turns

    def stream(self, messages: list[ChatMessage], sampling: SamplingParams) -> ProducerStream:
        draft = TurnRecord(
            text="",
            raw_output="",
            backend=self.name,
            model=f"offline/{self.style}",
            sampling=sampling.as_dict(),
            endpoint="offline",
        )
        messages = list(messages)

        async def produce(stream: ProducerStream) -> None:
            await self._produce(stream, messages, sampling)

        return ProducerStream(produce, draft)

    def _reply_text(self, messages: list[ChatMessage], seed: int | None) -> str:
        text, thought = compose_reply(
            messages, style=self.style, seed=seed, clarify_turns=self.clarify_turns
        )
        if not self.json_reply:
            return text
        last = next((m["content"] for m in reversed(messages) if m["role"] == "user"), "")
        problem = f"The user is working on: {last[:120]}".strip()
        return json.dumps(
            {"current_problem": problem, "thought": thought, "response": text},
            ensure_ascii=False,
        )

    async def _produce(
        self, stream: ProducerStream, messages: list[ChatMessage], sampling: SamplingParams
    ) -> None:
        tokens = _WORD.findall(self._reply_text(messages, sampling.seed))
        truncated = len(tokens) > sampling.max_tokens
        tokens = tokens[: sampling.max_tokens]
        loop = asyncio.get_running_loop()
        start = loop.time()
        for i, token in enumerate(tokens, 1):
            if self.rate:
                # Paced against the start time so that the rate holds under load.
                await asyncio.sleep(max(0.0, start + i / self.rate - loop.time()))
            stream.emit(token)
        stream.draft.prompt_tokens = sum(len(m["content"].split()) for m in messages)
        stream.draft.completion_tokens = len(tokens)
        stream.draft.finish_reason = "length" if truncated else "stop"

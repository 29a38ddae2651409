"""Prompts as versioned text files, and the small functions that turn them into messages.

A prompt comes from one of five places, and its ``version`` says which (it goes into every
:class:`~collab_models.base.TurnRecord`, with the ``sha256`` of its text):

* a prompt its authors publish in a package (:mod:`collab_models.published_prompts`), named by
  source: version ``"collabllm:system_prompt@0.0.8"``;
* a named prompt shipped here, ``prompts/<name>.v<N>.txt``: version ``"proactive.v1"``;
* a study's own file (``prompt_file``): version ``"file:<file name>@<sha256[:12]>"``;
* an inline ``system_prompt``: version ``"inline@<sha256[:12]>"``;
* nothing (the Base arm): version ``"none"``.

A prompt whose text contains ``{{conversation}}`` is used in the CollabLLM paper's form: the
whole conversation is pasted into it as a transcript and sent as one user message (the model then
sees none of its earlier replies as plain assistant turns, which keeps it answering in JSON).
The authors' own proactive instruction (``collabllm:proact_instruction``) is sent as they send it:
``str.format`` with ``chat_history`` (their transcript: ``**User**: ...`` lines),
``additional_info`` and ``max_new_tokens`` (the arm's ``max_tokens``), as one user message.
Any other prompt is sent, byte for byte, as a system message before the conversation.

System messages at the head of a history are what the study lets the model see besides the chat
(the task, the document: ``model_context``). They follow the prompt's system message, go before
a pasted transcript, or fill the authors' ``additional_info``.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from collab_models.base import ChatMessage, SamplingParams
from collab_models.published_prompts import PackageNotInstalled, PublishedPromptError
from collab_models.published_prompts import published_prompt as read_published

PROMPT_DIR = Path(__file__).resolve().parent / "prompts"
CONVERSATION_SLOT = "{{conversation}}"

# The version each short name stands for. A new wording is a new file and a new entry here, so
# studies already run keep pointing at the text they used.
NAMED_PROMPTS: dict[str, str] = {
    "proactive": "proactive.v1",
    "collabllm": "collabllm.v1",
    # Not an arm's prompt: the simulated participants' answers outside the chat.
    "simulator_rubric": "simulator_rubric.v1",
}
_VERSION_NAME = re.compile(r"^[a-z0-9_-]+\.v[0-9]+$")
_ROLE_LABELS = {"user": "User", "assistant": "Assistant", "system": "System"}

# The published prompts an arm can send, and how their authors send them.
SYSTEM, PASTE, AUTHORS_PROACT = "system", "paste", "authors_proact"
PUBLISHED_ARM_PROMPTS: dict[str, str] = {
    "collabllm:system_prompt": SYSTEM,
    "collabllm:proact_instruction": AUTHORS_PROACT,
}


@dataclass(frozen=True)
class Prompt:
    """A prompt's text (``None``: no prompt), the version recorded with each turn, and how it is
    sent (``form``). A project prompt that stands in for a published one that is not installed
    names it in ``fallback_for``."""

    text: str | None
    version: str
    form: str = SYSTEM
    package_version: str = ""
    fallback_for: str = ""

    @property
    def pastes_conversation(self) -> bool:
        return self.form == PASTE

    @property
    def sha256(self) -> str:
        """The hex sha256 of the text's UTF-8 bytes ("" for no prompt)."""
        if self.text is None:
            return ""
        return hashlib.sha256(self.text.encode("utf-8")).hexdigest()

    def describe(self) -> dict[str, str]:
        """What a study version records about the prompt."""
        return {
            "version": self.version,
            "sha256": self.sha256,
            "package_version": self.package_version,
            "fallback_for": self.fallback_for,
        }


NO_PROMPT = Prompt(text=None, version="none")


def _short_sha(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:12]


def named_prompt(name: str) -> Prompt:
    """A prompt shipped with the package, by short name (``"proactive"``) or version."""
    version = NAMED_PROMPTS.get(name, name)
    path = PROMPT_DIR / f"{version}.txt"
    if not _VERSION_NAME.match(version) or not path.is_file():
        known = ", ".join(sorted({*NAMED_PROMPTS, *(p.stem for p in PROMPT_DIR.glob("*.txt"))}))
        raise ValueError(f"unknown prompt {name!r} (known: {known})")
    return _project_prompt(path.read_text(encoding="utf-8").strip(), version)


def _project_prompt(text: str, version: str) -> Prompt:
    return Prompt(text=text, version=version, form=PASTE if CONVERSATION_SLOT in text else SYSTEM)


def published_arm_prompt(
    source: str, *, package_version: str | None, fallback: str | None = None
) -> Prompt:
    """The published prompt ``source`` names, read from its installed package.

    ``package_version`` must match the installed one. Where the package is not installed,
    ``fallback`` (a project prompt's name) stands in, recorded as itself with ``fallback_for``;
    without one that is an error.
    """
    form = PUBLISHED_ARM_PROMPTS.get(source)
    if form is None:
        raise ValueError(
            f"{source!r} is not an arm prompt (known: {sorted(PUBLISHED_ARM_PROMPTS)})"
        )
    if not package_version:
        raise ValueError(f"prompt {source!r} needs prompt_package_version (e.g. '0.0.8')")
    try:
        published = read_published(source)
    except PackageNotInstalled as exc:
        if not fallback:
            raise ValueError(str(exc)) from exc
        return replace(named_prompt(fallback), fallback_for=source)
    except PublishedPromptError as exc:
        raise ValueError(str(exc)) from exc
    if published.package_version != str(package_version):
        raise ValueError(
            f"prompt {source!r}: the study names version {package_version}, "
            f"{published.package_version} is installed"
        )
    return Prompt(
        text=published.text,
        version=f"{source}@{published.package_version}",
        form=form,
        package_version=published.package_version,
    )


def file_prompt(path: str | Path, *, base_dir: Path | None = None) -> Prompt:
    """A prompt from a study's own file; a relative ``path`` is taken from ``base_dir``."""
    full = Path(path)
    if not full.is_absolute() and base_dir is not None:
        full = base_dir / full
    try:
        text = full.read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise ValueError(f"cannot read prompt_file {str(full)!r}: {exc.strerror}") from exc
    return _project_prompt(text, f"file:{full.name}@{_short_sha(text)}")


def inline_prompt(text: str) -> Prompt:
    """A system prompt written into the study file itself."""
    text = text.strip()
    return _project_prompt(text, f"inline@{_short_sha(text)}") if text else NO_PROMPT


def resolve_prompt(
    *,
    prompt: str | None = None,
    system_prompt: str | None = None,
    prompt_file: str | None = None,
    base_dir: Path | None = None,
    package_version: str | None = None,
    fallback: str | None = None,
) -> Prompt:
    """The prompt a condition names; at most one of the three may be given. A ``prompt`` of
    the form ``package:name`` is a published prompt (:func:`published_arm_prompt`)."""
    given = [
        k
        for k, v in (
            ("prompt", prompt),
            ("system_prompt", system_prompt),
            ("prompt_file", prompt_file),
        )
        if v
    ]
    if len(given) > 1:
        raise ValueError(f"give only one of prompt, system_prompt, prompt_file (got {given})")
    if prompt and ":" in prompt:
        return published_arm_prompt(prompt, package_version=package_version, fallback=fallback)
    if prompt:
        return named_prompt(prompt)
    if prompt_file:
        return file_prompt(prompt_file, base_dir=base_dir)
    if system_prompt:
        return inline_prompt(system_prompt)
    return NO_PROMPT


def render_transcript(history: list[ChatMessage]) -> str:
    """The conversation as plain text: ``User: ...`` and ``Assistant: ...`` blocks."""
    blocks = [f"{_ROLE_LABELS.get(m['role'], m['role'])}: {m['content'].strip()}" for m in history]
    return "\n\n".join(blocks)


def authors_transcript(history: list[ChatMessage]) -> str:
    """The conversation as the CollabLLM authors paste it: ``**User**: ...`` lines, the text
    as it is, system messages left out."""
    return "\n".join(
        f"**{m['role'].capitalize()}**: {m['content']}" for m in history if m["role"] != "system"
    )


def split_context(history: list[ChatMessage]) -> tuple[str, list[ChatMessage]]:
    """The leading system messages' text (the study's ``model_context``) and the chat."""
    head = 0
    while head < len(history) and history[head]["role"] == "system":
        head += 1
    return "\n\n".join(m["content"] for m in history[:head]), list(history[head:])


def build_messages(
    prompt: Prompt, history: list[ChatMessage], sampling: SamplingParams | None = None
) -> list[ChatMessage]:
    """The messages to send for ``history`` under ``prompt`` (see the module docstring)."""
    context, chat = split_context(history)
    context_messages: list[ChatMessage] = (
        [{"role": "system", "content": context}] if context else []
    )
    if prompt.text is None:
        return [*context_messages, *chat]
    if prompt.form == AUTHORS_PROACT:
        max_tokens = (sampling or SamplingParams()).max_tokens
        content = prompt.text.format(
            chat_history=authors_transcript(chat),
            additional_info=context,
            max_new_tokens=max_tokens,
        )
        return [{"role": "user", "content": content}]
    if prompt.form == PASTE:
        transcript = render_transcript(chat)
        pasted = f"{context}\n\n{transcript}" if context else transcript
        return [{"role": "user", "content": prompt.text.replace(CONVERSATION_SLOT, pasted)}]
    return [{"role": "system", "content": prompt.text}, *context_messages, *chat]


def study_context(
    *,
    document_type: str,
    topic: str,
    answers: Sequence[tuple[str, str]],
    document: str | None = None,
) -> str:
    """What a study lets the model see besides the chat (its ``model_context``), as text for a
    system message: the task (document type, topic, the participant's pre-writing answers)
    and, when ``document`` is given, the latest version of their document ("" when empty)."""
    lines = [
        f"The user is writing a {document_type} with your help.",
        f"Topic: {topic}",
    ]
    notes = [(q, a) for q, a in answers if a.strip()]
    if notes:
        lines += ["", "Their answers to the questions asked before the chat:"]
        lines += [f"- {q.strip()} {a.strip()}" for q, a in notes]
    if document is not None:
        lines.append("")
        if document.strip():
            lines += [
                "Their document as it stands now (they edit it beside the chat):",
                "<document>",
                document,
                "</document>",
            ]
        else:
            lines.append("Their document is empty so far (they edit it beside the chat).")
    return "\n".join(lines)

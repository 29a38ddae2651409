"""Prompts as versioned text files, and the small functions that turn them into messages.

A prompt comes from one of four places, and its ``version`` says which (it goes into every
:class:`~collab_models.base.TurnRecord`):

* a named prompt shipped here, ``prompts/<name>.v<N>.txt``: version ``"proactive.v1"``;
* a study's own file (``prompt_file``): version ``"file:<file name>@<sha256[:12]>"``;
* an inline ``system_prompt``: version ``"inline@<sha256[:12]>"``;
* nothing (the Base arm): version ``"none"``.

A prompt whose text contains ``{{conversation}}`` is used in the CollabLLM paper's form: the
whole conversation is pasted into it as a transcript and sent as one user message (the model then
sees none of its earlier replies as plain assistant turns, which keeps it answering in JSON).
Any other prompt is sent as a system message before the conversation.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path

from collab_models.base import ChatMessage

PROMPT_DIR = Path(__file__).resolve().parent / "prompts"
CONVERSATION_SLOT = "{{conversation}}"

# The version each short name stands for. A new wording is a new file and a new entry here, so
# studies already run keep pointing at the text they used.
NAMED_PROMPTS: dict[str, str] = {
    "proactive": "proactive.v1",
    "collabllm": "collabllm.v1",
}
_VERSION_NAME = re.compile(r"^[a-z0-9_-]+\.v[0-9]+$")
_ROLE_LABELS = {"user": "User", "assistant": "Assistant", "system": "System"}


@dataclass(frozen=True)
class Prompt:
    """A prompt's text (``None``: no prompt) and the version recorded with each turn."""

    text: str | None
    version: str

    @property
    def pastes_conversation(self) -> bool:
        return self.text is not None and CONVERSATION_SLOT in self.text


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
    return Prompt(text=path.read_text(encoding="utf-8").strip(), version=version)


def file_prompt(path: str | Path, *, base_dir: Path | None = None) -> Prompt:
    """A prompt from a study's own file; a relative ``path`` is taken from ``base_dir``."""
    full = Path(path)
    if not full.is_absolute() and base_dir is not None:
        full = base_dir / full
    try:
        text = full.read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise ValueError(f"cannot read prompt_file {str(full)!r}: {exc.strerror}") from exc
    return Prompt(text=text, version=f"file:{full.name}@{_short_sha(text)}")


def inline_prompt(text: str) -> Prompt:
    """A system prompt written into the study file itself."""
    text = text.strip()
    return Prompt(text=text, version=f"inline@{_short_sha(text)}") if text else NO_PROMPT


def resolve_prompt(
    *,
    prompt: str | None = None,
    system_prompt: str | None = None,
    prompt_file: str | None = None,
    base_dir: Path | None = None,
) -> Prompt:
    """The prompt a condition names; at most one of the three may be given."""
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


def build_messages(prompt: Prompt, history: list[ChatMessage]) -> list[ChatMessage]:
    """The messages to send for ``history`` under ``prompt`` (see the module docstring)."""
    if prompt.text is None:
        return list(history)
    if prompt.pastes_conversation:
        content = prompt.text.replace(CONVERSATION_SLOT, render_transcript(history))
        return [{"role": "user", "content": content}]
    return [{"role": "system", "content": prompt.text}, *history]

"""The judges: which models score documents, from the study file's ``judge`` block and from
judges added to the study afterwards (scoring.models.StudyJudge), all in the same shape.

Either an arm of the study (``judge: {condition: base}``) or an endpoint of its own::

    judge:
      backend: openai
      endpoints: ["${JUDGE_URL}"]
      model: meta-llama/Llama-3.1-70B-Instruct
      sampling: {temperature: 0.0, max_tokens: 512}   # the default
      rubric: document_quality_v1                      # the default

The judge never uses an arm's system prompt or response format: the rubric is its only prompt.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from asgiref.sync import async_to_sync

from collab_models.arms import build_arm
from collab_models.base import ModelError
from studyapp.scoring.models import StudyJudge
from studyapp.scoring.rubrics import DEFAULT_RUBRIC
from studyapp.studies.models import StudyVersion

JUDGE_SAMPLING = {"temperature": 0.0, "top_p": 1.0, "max_tokens": 512}
_PROMPT_KEYS = (
    "prompt", "system_prompt", "prompt_file", "prompt_package_version", "prompt_fallback",
    "response_format", "weight",
)  # fmt: skip
_OWN_KEYS = ("condition", "rubric")


class JudgeConfigError(ValueError):
    """The study's judge block cannot be used; the message says why."""


@dataclass(frozen=True)
class Judge:
    label: str  # stored as DocumentScore.judge
    rubric: str  # rubric version
    arm_config: dict[str, Any]


def judge_for(version: StudyVersion) -> Judge | None:
    """The version's own judge, or None when its study file has no ``judge`` block."""
    block = version.spec.get("judge")
    if not block:
        return None
    return judge_build(block, version=version)


def judges_for(version: StudyVersion) -> list[Judge]:
    """Every judge of ``version``'s documents: the study file's, then those added to the study.

    A judge added later whose block cannot be used for this version is left out; the study
    file's own judge raises JudgeConfigError as before.
    """
    judges = [j for j in [judge_for(version)] if j is not None]
    for added in StudyJudge.objects.filter(study_id=version.study_id, is_active=True):
        try:
            judges.append(judge_build(added.config, version=version, name=added.name))
        except JudgeConfigError:
            continue
    return judges


def judge_build(block: Any, *, version: StudyVersion, name: str = "") -> Judge:
    """A judge from a ``judge`` block; ``name`` (a judge added to the study) labels its scores."""
    if not isinstance(block, dict):
        raise JudgeConfigError("judge must be a mapping")
    rubric = str(block.get("rubric") or DEFAULT_RUBRIC)
    if block.get("condition"):
        condition_name = str(block["condition"])
        condition = version.conditions.filter(name=condition_name).first()
        if condition is None:
            raise JudgeConfigError(f"judge.condition: no condition named {condition_name!r}")
        base = dict(condition.config)
        label_source = f"condition:{condition_name}"
    else:
        base = {k: v for k, v in block.items() if k not in _OWN_KEYS}
        base.setdefault("name", "judge")
        label_source = str(base.get("backend", "openai"))
    config = {k: v for k, v in base.items() if k not in _PROMPT_KEYS}
    config["response_format"] = "text"
    config["sampling"] = {**JUDGE_SAMPLING, **(block.get("sampling") or {})}
    model = str(config.get("model") or config.get("style") or "")
    label = name or f"{label_source}/{model}"
    return Judge(label=label[:200], rubric=rubric, arm_config=config)


@dataclass(frozen=True)
class JudgeReply:
    text: str
    raw_output: str


async def _ask(config: dict[str, Any], prompt: str) -> JudgeReply:
    stream = build_arm(config).reply([{"role": "user", "content": prompt}])
    parts = [delta async for delta in stream]
    record = stream.record
    text = record.text if record is not None else "".join(parts)
    raw = record.raw_output if record is not None and record.raw_output else text
    return JudgeReply(text=text, raw_output=raw)


def judge_ask(judge: Judge, prompt: str) -> JudgeReply:
    """Send the rubric prompt and wait for the whole reply. Raises ModelError."""
    try:
        return async_to_sync(_ask)(judge.arm_config, prompt)
    except ModelError:
        raise
    except ValueError as exc:  # collab_models.arms.ConfigError
        raise JudgeConfigError(str(exc)) from exc

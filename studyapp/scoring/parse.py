"""Reading a score out of a judge's reply, whatever shape the reply took."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

_NUMBER = r"(-?\d+(?:\.\d+)?)"
_LABELLED = re.compile(r"score\W{0,6}" + _NUMBER, re.IGNORECASE)
_OUT_OF = re.compile(_NUMBER + r"\s*(?:/|out of)\s*10\b", re.IGNORECASE)
_ONLY = re.compile(r"^\s*" + _NUMBER + r"\s*$")
_RATIONALE_KEYS = ("rationale", "reason", "reasoning", "explanation", "justification")
MAX_RATIONALE = 4000


class ScoreParseError(ValueError):
    """No usable score in the reply."""


@dataclass(frozen=True)
class ParsedScore:
    score: float
    rationale: str


def _json_objects(text: str) -> list[dict[str, Any]]:
    """Every JSON object embedded in ``text`` (code fences and chatter around them allowed)."""
    found = []
    decoder = json.JSONDecoder()
    for start in (m.start() for m in re.finditer(r"\{", text)):
        try:
            value, _ = decoder.raw_decode(text, start)
        except json.JSONDecodeError:
            continue
        if isinstance(value, dict):
            found.append(value)
    return found


def _number(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):
        match = re.search(_NUMBER, value)
        return float(match.group(1)) if match else None
    return None


def parse_score(text: str, *, low: float = 1, high: float = 10) -> ParsedScore:
    """The score in ``text``: a JSON ``score`` field first, then "score: 7", "7/10", a bare
    number. Raises ScoreParseError when none is found or it lies outside ``low..high``."""
    score: float | None = None
    rationale = ""
    for obj in _json_objects(text):
        value = _number(obj.get("score", obj.get("rating")))
        if value is not None:
            score = value
            rationale = next((str(obj[k]) for k in _RATIONALE_KEYS if obj.get(k)), "")
    if score is None:
        for pattern in (_LABELLED, _OUT_OF, _ONLY):
            matches = pattern.findall(text)
            if matches:
                score = float(matches[-1])
                rationale = text.strip()
                break
    if score is None:
        raise ScoreParseError("no score found in the judge's reply")
    if not low <= score <= high:
        raise ScoreParseError(f"score {score:g} is outside {low:g}..{high:g}")
    return ParsedScore(score=score, rationale=rationale[:MAX_RATIONALE])

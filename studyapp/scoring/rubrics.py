"""Versioned rubric prompts: text files named ``<name>_<version>.txt`` in rubrics/.

A rubric file is never edited once used: a change is a new version, so scores made with
different wordings are never mixed up (DocumentScore.rubric_version).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from string import Template

RUBRIC_DIR = Path(__file__).resolve().parent / "rubrics"
DEFAULT_RUBRIC = "document_quality_v1"
_NAME = re.compile(r"^[a-z0-9_]+_v[0-9]+$")


@dataclass(frozen=True)
class Rubric:
    version: str  # e.g. "document_quality_v1"
    template: str
    low: int = 1
    high: int = 10

    def render(self, *, document_type: str, topic: str, document: str) -> str:
        # string.Template: documents are full of braces, which str.format would trip on.
        return Template(self.template).safe_substitute(
            document_type=document_type, topic=topic, document=document.strip()
        )


def rubric_load(version: str = DEFAULT_RUBRIC) -> Rubric:
    if not _NAME.match(version):
        raise ValueError(f"rubric names look like document_quality_v1, got {version!r}")
    path = RUBRIC_DIR / f"{version}.txt"
    if not path.is_file():
        known = sorted(p.stem for p in RUBRIC_DIR.glob("*.txt"))
        raise ValueError(f"unknown rubric {version!r} (known: {', '.join(known)})")
    return Rubric(version=version, template=path.read_text(encoding="utf-8"))

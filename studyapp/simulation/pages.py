"""Reading the participant pages the way a browser would: forms, their fields and labels."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from html.parser import HTMLParser
from typing import Any

_CONFIG = re.compile(
    r'<script id="writing-config" type="application/json">(?P<json>.*?)</script>', re.S
)


@dataclass
class Form:
    """The named fields of a page's forms: each name's offered values, and label texts by id."""

    values: dict[str, list[str]] = field(default_factory=dict)
    kinds: dict[str, str] = field(default_factory=dict)
    labels: dict[str, str] = field(default_factory=dict)

    def label_of(self, name: str) -> str:
        return self.labels.get(f"id_{name}", "")


class _FormReader(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.form = Form()
        self._label_for: str | None = None
        self._label_text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        if tag in ("input", "textarea", "select") and a.get("name"):
            name = a["name"]
            self.form.kinds.setdefault(name, a.get("type", tag) if tag == "input" else tag)
            if a.get("value") is not None and tag == "input":
                self.form.values.setdefault(name, []).append(a.get("value", ""))
        elif tag == "label" and a.get("for"):
            self._label_for, self._label_text = a["for"], []

    def handle_data(self, data: str) -> None:
        if self._label_for is not None:
            self._label_text.append(data)

    def handle_endtag(self, tag: str) -> None:
        if tag == "label" and self._label_for is not None:
            self.form.labels[self._label_for] = " ".join("".join(self._label_text).split())
            self._label_for = None


def read_form(html: str) -> Form:
    reader = _FormReader()
    reader.feed(html)
    return reader.form


def writing_config(html: str) -> dict[str, Any]:
    """The co-writing page's configuration (token, socket path, Finish URL, the rules)."""
    match = _CONFIG.search(html)
    if match is None:
        raise ValueError("the writing page has no writing-config")
    config: dict[str, Any] = json.loads(match.group("json"))
    return config

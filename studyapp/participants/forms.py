"""Forms built from the study file: the consent checkboxes and the pre-writing questions."""

from __future__ import annotations

from typing import Any

from django import forms

from studyapp.participants.selectors import prewriting_answer_rule, prewriting_min_answers
from studyapp.studies.spec import document_type


class ConsentForm(forms.Form):
    def __init__(self, *args: Any, spec: dict[str, Any], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        for i, text in enumerate(spec["consent"]["checkboxes"]):
            self.fields[f"agree_{i}"] = forms.BooleanField(
                label=text,
                required=True,
                error_messages={"required": "Please tick this box to take part."},
            )

    def agreed(self) -> list[int]:
        return [int(name.split("_")[1]) for name, value in self.cleaned_data.items() if value]


class PrewritingForm(forms.Form):
    topic = forms.ChoiceField(
        label="Choose a topic for your document",
        widget=forms.RadioSelect,
        error_messages={
            "required": "Please choose a topic.",
            "invalid_choice": "Please choose one of the listed topics.",
        },
    )

    def __init__(self, *args: Any, spec: dict[str, Any], doc_key: str, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        doc = document_type(spec, doc_key)
        if doc is None:
            raise ValueError(f"unknown document type {doc_key!r}")
        self.questions: list[str] = list(doc["questions"])
        self.min_answers = prewriting_min_answers(spec=spec, doc_key=doc_key)
        self.max_chars: int = spec["prewriting"]["max_answer_chars"]
        self.fields["topic"].choices = [(t, t) for t in doc["topics"]]
        for i, question in enumerate(self.questions):
            self.fields[f"answer_{i}"] = forms.CharField(
                label=question,
                required=False,
                max_length=self.max_chars,
                widget=forms.Textarea(attrs={"rows": 3}),
                error_messages={
                    "max_length": f"Please keep this answer under {self.max_chars} characters."
                },
            )

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean()
        given = sum(1 for i in range(len(self.questions)) if cleaned.get(f"answer_{i}"))
        if given < self.min_answers:
            raise forms.ValidationError(f"Please answer {self.answer_rule} (you answered {given}).")
        return cleaned

    @property
    def answer_rule(self) -> str:
        return prewriting_answer_rule(needed=self.min_answers, total=len(self.questions))

    def answer_fields(self) -> list[forms.BoundField]:
        return [self[f"answer_{i}"] for i in range(len(self.questions))]

    def answers(self) -> dict[str, str]:
        return {q: self.cleaned_data.get(f"answer_{i}", "") for i, q in enumerate(self.questions)}

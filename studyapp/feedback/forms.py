"""The final questions, built from the study file's survey block."""

from __future__ import annotations

from typing import Any

from django import forms

TEXT_MAX_CHARS = 5000
_CHOOSE = {"required": "Please choose an answer.", "invalid_choice": "Please choose an answer."}


def _scale_field(question: dict[str, Any]) -> forms.Field:
    low, high = question.get("min", 1), question.get("max", 10)
    field = forms.TypedChoiceField(
        label=question["text"],
        choices=[(i, str(i)) for i in range(low, high + 1)],
        coerce=int,
        widget=forms.RadioSelect,
        error_messages={
            "required": "Please choose a number.",
            "invalid_choice": f"Please choose a number from {low} to {high}.",
        },
    )
    field.kind = "scale"
    field.anchors = [
        f"{low} = {question.get('min_label', 'very poor')}",
        f"{high} = {question.get('max_label', 'very good')}",
    ]
    return field


def _text_field(question: dict[str, Any]) -> forms.Field:
    min_chars = question.get("min_chars", 0)
    return forms.CharField(
        label=question["text"],
        min_length=min_chars or None,
        max_length=question.get("max_chars", TEXT_MAX_CHARS),
        help_text=f"At least {min_chars} characters." if min_chars else "",
        widget=forms.Textarea(attrs={"rows": 4}),
        error_messages={
            "required": "Please answer this question.",
            "min_length": f"Please write at least {min_chars} characters.",
        },
    )


def _choice_field(question: dict[str, Any]) -> forms.Field:
    return forms.ChoiceField(
        label=question["text"],
        choices=[(c, c) for c in question["choices"]],
        widget=forms.RadioSelect,
        error_messages=_CHOOSE,
    )


_BUILDERS = {"scale": _scale_field, "text": _text_field, "choice": _choice_field}


class FinalSurveyForm(forms.Form):
    """Every survey question in order, with the attention check placed among them."""

    def __init__(self, *args: Any, spec: dict[str, Any], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        survey = spec["survey"]
        questions = list(survey["questions"])
        fields = [(q["key"], _BUILDERS[q["kind"]](q)) for q in questions]
        check = survey.get("attention_check")
        if check:
            # In the middle rather than last, where a hurried participant would expect it.
            position = check.get("position", (len(fields) + 1) // 2)
            fields.insert(position, (check["key"], _choice_field(check)))
        for key, field in fields:
            self.fields[key] = field

"""The dataset card (README.md) written next to every training-data export."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import yaml

from studyapp.dashboards.filters import ParticipationFilter
from studyapp.exports.datasets.kinds import DatasetOptions, Kind
from studyapp.studies.models import Study


@dataclass
class CardFacts:
    study: Study
    kind: Kind
    fmt: str
    participation_filter: ParticipationFilter
    options: DatasetOptions
    generated_at: str
    split_files: dict[str, str]  # split -> file name
    split_rows: dict[str, int]
    participants: int
    conversations_used: int
    platforms: Counter = field(default_factory=Counter)
    conditions: Counter = field(default_factory=Counter)
    stats: Counter = field(default_factory=Counter)
    models: Counter = field(default_factory=Counter)  # (backend, model) -> assistant replies
    # (arm, prompt_version, prompt_sha256) -> assistant replies
    prompts: Counter = field(default_factory=Counter)


def _front_matter(facts: CardFacts) -> str:
    meta: dict[str, Any] = {
        "pretty_name": f"{facts.study.title} ({facts.kind.name})",
        "language": ["en"],
        "license": "other",
        "task_categories": ["text-generation"],
        "tags": ["human-feedback", "co-writing", "multiturn", "collabstudy", facts.kind.name],
        "configs": [
            {
                "config_name": "default",
                "data_files": [
                    {"split": split, "path": name} for split, name in facts.split_files.items()
                ],
            }
        ],
    }
    return "---\n" + yaml.safe_dump(meta, sort_keys=False, allow_unicode=True) + "---\n"


def _consent(study: Study) -> list[str]:
    seen: dict[str, list[int]] = {}
    boxes: dict[str, list[str]] = {}
    for version in study.versions.order_by("number"):
        consent = version.spec.get("consent") or {}
        text = str(consent.get("text", "")).strip()
        seen.setdefault(text, []).append(version.number)
        boxes[text] = list(consent.get("checkboxes") or [])
    lines: list[str] = []
    for text, numbers in seen.items():
        label = ", ".join(str(n) for n in numbers)
        lines += [f"Consent shown in study version(s) {label}:", ""]
        lines += [f"> {line}" if line else ">" for line in text.splitlines()]
        lines.append("")
        if boxes[text]:
            lines += ["Participants had to tick:", ""]
            lines += [f"- {box}" for box in boxes[text]]
            lines.append("")
    return lines


def _versions(study: Study) -> list[str]:
    return [
        f"- version {v.number}, loaded {v.created_at:%Y-%m-%d}, study file sha256 "
        f"`{v.source_sha256[:16]}`"
        for v in study.versions.order_by("number")
    ]


def _prompts(study: Study, prompts: Counter) -> list[str]:
    """What each version let the model see and which prompt text each arm sent, by sha256."""
    lines = ["## Prompts and what the model saw", ""]
    for v in study.versions.order_by("number"):
        lines.append(f"- version {v.number}: the model saw `{v.model_context}`")
        for arm, record in sorted((v.prompts or {}).items()):
            text = f"  - {arm}: `{record.get('version') or 'none'}`"
            if record.get("sha256"):
                text += f", sha256 `{record['sha256']}`"
            if record.get("fallback_for"):
                text += f" (the project's own prompt, standing in for `{record['fallback_for']}`)"
            lines.append(text)
    lines.append("")
    if prompts:
        lines += ["| arm | prompt | sha256 | assistant replies |", "| --- | --- | --- | --- |"]
        for (arm, version, digest), n in sorted(prompts.items()):
            lines.append(f"| {arm} | {version or '(none)'} | `{digest or '-'}` | {n} |")
        lines.append("")
    lines += [
        "A published prompt (`collabllm:...@0.0.8`) is the CollabLLM authors' text from their "
        "`collabllm` package, sent byte for byte; its sha256 identifies the exact text.",
        "",
    ]
    return lines


def _labelling(facts: CardFacts) -> list[str]:
    o = facts.options
    r = o.reward
    reward = [
        "For the assistant reply at user turn t:",
        "",
        "```",
        f"R(t) = {r.rating} * mean(norm(rating_r) for checkpoints r, t <= r <= t + {r.window})",
        f"     + {r.document} * norm(final document quality)",
        f"     - {r.cost} * min({r.lam} * tokens(t .. t + {r.window}), 1)",
        "```",
        "",
        "norm maps the study's scale (interaction 1-10, document quality 1-10 unless the study "
        "file says otherwise) onto 0..1. Interaction ratings are the in-chat checkpoint "
        "ratings (\"based on your experience so far\"), asked after the reply to every "
        "rating_every-th turn. tokens counts the assistant tokens of the replies at turns t to "
        f"t + {r.window} as the backend reported them (estimated as characters / 4 when it did "
        "not). Turns with no rating in their window have no observed future and are left out. "
        f"Final document quality comes from the {o.document_source}"
        + (" (the LLM judge's latest score)" if o.document_source == "judge" else
           " (the final question)")
        + "; when it is missing the term counts 0 and reward_components.document is empty.",
    ]
    if facts.kind.name == "kto":
        return [
            f"label is true when the covering rating is >= {o.kto_desirable} and false when "
            f"it is <= {o.undesirable}"
            + (f"; turns rated {o.undesirable + 1} to {o.kto_desirable - 1} are left out"
               if o.kto_desirable - o.undesirable > 1 else "")
            + ". Turns after the last checkpoint have no covering rating and are left out.",
        ]
    if facts.kind.name == "dpo":
        return [
            "Pairs come from two kinds of evidence, told apart by source. side_by_side: two "
            "candidates were shown at once and the participant picked one (an explicit "
            "comparison; the pick is chosen). regeneration: the participant asked for another "
            "reply and the conversation went on with the new one (chosen); each discarded "
            "reply gives a pair. A regeneration is weaker evidence than a pick: the "
            "participant may never have compared the two, only wanted a different draft, and "
            "the newest reply is kept by default. Filter on source to train on explicit picks "
            "only. Failed or empty replies never enter a pair. score_chosen is the chosen "
            "reply's real-user reward:",
            "",
            *reward,
        ]
    if facts.kind.name == "collabllm":
        return [*reward, "", *_collabllm_alternatives(o)]
    if facts.kind.name == "reward":
        return reward
    return [
        "Conversations are cut before the first turn whose reply failed (error or empty), "
        "and a last user message that never got a reply is dropped, so every conversation "
        "ends with an assistant message.",
    ]


def _collabllm_alternatives(o: DatasetOptions) -> list[str]:
    return [
        "Here, unlike the reward kind, a kept reply with no rating in its window stays in "
        "(score empty, score_observed false), so every conversation is whole.",
        "",
        "Alternatives: every usable reply that was not kept is a row of its own at the same "
        "turn_id, so collabllm's MultiturnDataset.to_dpo_dataset, which pairs the highest and "
        "the lowest score of each (conv_id, turn_id), yields a pair there. A discarded reply "
        "has no observed future, so its score is not a reward: it is the kept reply's score "
        "(0 when that is empty) minus a gap that says how strong the evidence is: "
        f"{o.gap_side_by_side} for a side-by-side pick (an explicit comparison), "
        f"{o.gap_regeneration} for a regeneration (weaker: the participant asked for another "
        "reply and went on with it, which is not a comparison of the two). "
        f"to_dpo_dataset(minimum_gap={(o.gap_side_by_side + o.gap_regeneration) / 2:g}) keeps "
        "only the explicit picks; alternative_source says which rows are which.",
    ]


def _table(counter: Counter, label: str) -> list[str]:
    if not counter:
        return []
    lines = [f"| {label} | participants |", "| --- | --- |"]
    lines += [f"| {key or '(none)'} | {n} |" for key, n in sorted(counter.items())]
    return [*lines, ""]


def _models(models: Counter) -> list[str]:
    if not models:
        return []
    lines = ["## Models", "", "| backend | model | assistant replies |", "| --- | --- | --- |"]
    for (backend, model), n in sorted(models.items()):
        lines.append(f"| {backend or '(none)'} | {model or '(none)'} | {n} |")
    lines.append("")
    offline = sum(n for (backend, _), n in models.items() if backend == "offline")
    if offline:
        lines += [
            f"**Warning: {offline} replies came from CollabStudy's offline backend** (canned "
            "text for demos and tests, no language model). They are not model behaviour; do "
            "not train or evaluate on them.",
            "",
        ]
    return lines


def card_markdown(facts: CardFacts) -> str:
    kind, study = facts.kind, facts.study
    lines = [
        _front_matter(facts),
        f"# {study.title}: {kind.name} dataset",
        "",
        kind.summary,
        "",
        "## Provenance",
        "",
        f"- Study `{study.slug}` ({study.title}), run with CollabStudy: participants recruited "
        "from crowd-work platforms co-wrote a document with one anonymous AI assistant, "
        "randomly assigned among the study's arms, and rated the interaction as they went.",
        *_versions(study),
        f"- Exported {facts.generated_at} as {facts.fmt}.",
        "",
        "## Consent",
        "",
        *_consent(study),
        "## Population",
        "",
        f"Filter: {facts.participation_filter.describe()}",
        "",
        f"{facts.participants} participants in the filtered population, "
        f"{facts.conversations_used} contributed rows.",
        "",
        *_table(facts.platforms, "platform"),
        *_table(facts.conditions, "arm"),
        *_models(facts.models),
        *_prompts(study, facts.prompts),
        "## Counts",
        "",
        "| split | file | rows |",
        "| --- | --- | --- |",
        *(
            f"| {split} | `{name}` | {facts.split_rows.get(split, 0)} |"
            for split, name in facts.split_files.items()
        ),
        "",
    ]
    if facts.options.test_fraction:
        lines += [
            f"Splits are by participant (about {facts.options.test_fraction:.0%} in test), "
            "so no conversation is in both.",
            "",
        ]
    if facts.stats:
        lines += ["Left out or noted while building:", ""]
        lines += [f"- {reason}: {n}" for reason, n in sorted(facts.stats.items())]
        lines.append("")
    lines += [
        "## Fields",
        "",
        *(f"- `{name}`: {meaning}" for name, meaning in kind.fields.items()),
        "",
        "## How rows are built",
        "",
        *_labelling(facts),
        "",
        "Options used: `" + yaml.safe_dump(facts.options.as_dict(), default_flow_style=True)
        .strip() + "`",
        "",
        "## Personal data",
        "",
        "- Participants appear only under keyed pseudonyms: HMAC-SHA256 of platform and "
        "platform id under a secret kept with the study, truncated to 16 hex characters. "
        "Platform ids (participant, study, session, assignment and HIT ids) are never "
        "exported; where a participant typed their own id into the chat, a pre-writing "
        "answer or the document, it is replaced by `[platform id]`.",
        "- No names, IP addresses or browser fingerprints are collected.",
        "- Participants were told not to share personal information in the chat, but the "
        "free text is theirs: review it before publishing.",
        "",
        "## Limitations",
        "",
        "- Ratings are single-item judgements by crowd workers; they are noisy and were given "
        "about the interaction so far, not about any one reply.",
        "- Replies were sampled (the arms' sampling settings are in the analysis export's "
        "messages table).",
        "",
    ]
    return "\n".join(lines)

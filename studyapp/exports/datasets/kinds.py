"""The five training-data kinds: how a conversation becomes rows, and each kind's schema."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa

from collab_models.real_user_reward import (
    RewardWeights,
    TurnReward,
    covering_checkpoint,
    turn_reward,
)
from studyapp.exports.datasets.conversations import Conversation
from studyapp.studies.spec import document_type as spec_document_type

DOCUMENT_SOURCES = ("participant", "judge")


@dataclass(frozen=True)
class DatasetOptions:
    """Labelling choices; every one is written into the dataset card."""

    # KTO: a turn covered by a rating >= desirable is desirable (label true); <= undesirable
    # is undesirable; ratings in between are left out. Default: everything below 7 is false.
    kto_desirable: int = 7
    kto_undesirable: int | None = None
    reward: RewardWeights = field(default_factory=RewardWeights)
    document_source: str = "participant"  # final quality from the participant or the judge
    test_fraction: float = 0.0
    # collabllm: a discarded alternative scores this far below the reply kept at its turn.
    # An explicit side-by-side pick is stronger evidence than keeping a regeneration, so its
    # gap is larger: to_dpo_dataset(minimum_gap=...) between the two keeps only the picks.
    gap_side_by_side: float = 1.0
    gap_regeneration: float = 0.5

    def __post_init__(self) -> None:
        if self.document_source not in DOCUMENT_SOURCES:
            raise ValueError(f"document_source must be one of {DOCUMENT_SOURCES}")
        if not 0.0 <= self.test_fraction < 1.0:
            raise ValueError("test_fraction must be in [0, 1)")
        if self.kto_undesirable is not None and self.kto_undesirable >= self.kto_desirable:
            raise ValueError("kto_undesirable must be below kto_desirable")
        if not 0.0 < self.gap_regeneration <= self.gap_side_by_side:
            raise ValueError(
                "gap_regeneration must be above 0 and at most gap_side_by_side "
                "(a regeneration is weaker evidence than an explicit pick)"
            )

    def gap(self, source: str) -> float:
        return self.gap_side_by_side if source == "side_by_side" else self.gap_regeneration

    @property
    def undesirable(self) -> int:
        return self.kto_desirable - 1 if self.kto_undesirable is None else self.kto_undesirable

    def as_dict(self) -> dict[str, Any]:
        return {
            "kto_desirable": self.kto_desirable,
            "kto_undesirable": self.undesirable,
            "reward": self.reward.as_dict(),
            "document_source": self.document_source,
            "test_fraction": self.test_fraction,
            "gap_side_by_side": self.gap_side_by_side,
            "gap_regeneration": self.gap_regeneration,
        }


def dataset_options_from(params: Mapping[str, Any]) -> DatasetOptions:
    """Options from a flat mapping (a dashboard form, a job's stored params).

    Keys: kto_desirable, kto_undesirable, window, w_rating, w_document, w_cost, token_lambda,
    document_source, test_fraction, gap_side_by_side, gap_regeneration; missing or empty keys
    take the defaults. Raises ValueError.
    """

    def get(key: str, cast: Callable[[Any], Any], default: Any) -> Any:
        value = params.get(key)
        if value is None or value == "":
            return default
        try:
            return cast(value)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"{key}: {value!r} is not a valid value") from exc

    base = RewardWeights()
    return DatasetOptions(
        kto_desirable=get("kto_desirable", int, 7),
        kto_undesirable=get("kto_undesirable", int, None),
        reward=RewardWeights(
            window=get("window", int, base.window),
            rating=get("w_rating", float, base.rating),
            document=get("w_document", float, base.document),
            cost=get("w_cost", float, base.cost),
            lam=get("token_lambda", float, base.lam),
        ),
        document_source=get("document_source", str, "participant"),
        test_fraction=get("test_fraction", float, 0.0),
        gap_side_by_side=get("gap_side_by_side", float, 1.0),
        gap_regeneration=get("gap_regeneration", float, 0.5),
    )


Row = dict[str, Any]
Builder = Callable[[Conversation, DatasetOptions, Counter], Iterator[Row]]

_MESSAGE = pa.struct([("role", pa.string()), ("content", pa.string())])
_MESSAGES = pa.list_(_MESSAGE)
_ABOUT = [
    ("conversation_id", pa.string()),
    ("condition", pa.string()),
]


def _about(c: Conversation) -> Row:
    return {"conversation_id": c.person.pseudonym, "condition": c.person.condition}


# --- sft --------------------------------------------------------------------------------------


def sft_rows(c: Conversation, options: DatasetOptions, stats: Counter) -> Iterator[Row]:
    if not c.messages:
        stats["conversations without a usable reply"] += 1
        return
    yield {
        "messages": c.messages,
        **_about(c),
        "document_type": c.document_type,
        "topic": c.topic,
    }


# --- kto --------------------------------------------------------------------------------------


def kto_rows(c: Conversation, options: DatasetOptions, stats: Counter) -> Iterator[Row]:
    every = int(c.spec.get("writing", {}).get("rating_every", 3))
    for turn in c.turns:
        checkpoint = covering_checkpoint(turn, every)
        rating = c.interaction.get(checkpoint)
        if rating is None:
            stats["turns without a covering rating"] += 1
            continue
        if options.undesirable < rating < options.kto_desirable:
            stats["turns rated between the thresholds"] += 1
            continue
        yield {
            "prompt": c.prompt_for(turn),
            "completion": [c.reply(turn)],
            "label": rating >= options.kto_desirable,
            "rating": rating,
            "rating_turn": checkpoint,
            **_about(c),
            "turn": turn,
        }


# --- reward (and the score of collabllm rows) -------------------------------------------------


def rewards_of(c: Conversation, options: DatasetOptions) -> dict[int, TurnReward | None]:
    ratings = c.normalised_ratings()
    document = c.normalised_document(options.document_source)
    return {
        turn: turn_reward(
            turn=turn, ratings=ratings, document_quality=document,
            tokens_by_turn=c.tokens_by_turn, weights=options.reward,
        )
        for turn in c.turns
    }


def reward_rows(c: Conversation, options: DatasetOptions, stats: Counter) -> Iterator[Row]:
    for turn, reward in rewards_of(c, options).items():
        if reward is None:
            stats["turns without a rating in the window"] += 1
            continue
        yield {
            "prompt": c.prompt_for(turn),
            "completion": [c.reply(turn)],
            "reward": reward.reward,
            "reward_components": reward.components(),
            **_about(c),
            "turn": turn,
        }


# --- dpo --------------------------------------------------------------------------------------


def dpo_rows(c: Conversation, options: DatasetOptions, stats: Counter) -> Iterator[Row]:
    rewards = rewards_of(c, options) if c.alternatives else {}
    for alternatives in sorted(c.alternatives, key=lambda a: a.turn):
        chosen_reward = rewards.get(alternatives.turn)
        for rejected in alternatives.rejected:
            stats[f"pairs from {alternatives.source}"] += 1
            yield {
                "prompt": c.prompt_for(alternatives.turn),
                "chosen": [{"role": "assistant", "content": alternatives.chosen.text}],
                "rejected": [{"role": "assistant", "content": rejected.text}],
                # Only the kept reply has an observed future, so only it has a reward.
                "score_chosen": chosen_reward.reward if chosen_reward else None,
                "score_rejected": None,
                "source": alternatives.source,
                **_about(c),
                "turn": alternatives.turn,
            }


# --- collabllm --------------------------------------------------------------------------------


def single_turn_prompt(c: Conversation) -> str:
    """The task as one prompt: document type, topic and the participant's pre-writing notes."""
    doc = spec_document_type(c.spec, c.document_type) or {}
    label = str(doc.get("label") or c.document_type or "document").lower()
    lines = [f"Write a {label} on the topic: {c.topic}"]
    notes = [(q, a) for q, a in c.prewriting.items() if a.strip()]
    if notes:
        lines += ["", "The writer's notes:"]
        lines += [f"- {q} {a}" for q, a in notes]
    return "\n".join(lines)


def collabllm_rows(c: Conversation, options: DatasetOptions, stats: Counter) -> Iterator[Row]:
    """Every turn of the whole conversation, and every usable alternative reply of a turn.

    CollabLLM pairs the rows of one (conv_id, turn_id) by score, so the kept reply must score
    above the discarded ones: a discarded reply scores the kept one's score minus the gap of
    its source. Only the kept reply has an observed future; ``score_observed`` says which.
    """
    shared = {
        "conv_id": c.person.pseudonym,
        "single_turn_prompt": single_turn_prompt(c),
        "single_turn_completion": c.final_document,
        "single_turn_metadata": {
            "document_type": c.document_type,
            "topic": c.topic,
            "condition": c.person.condition,
            "study_version": c.person.version,
            "document_quality": c.document_quality,
            "judge_score": c.judge_score,
        },
    }
    alternatives = {a.turn: a for a in c.alternatives}
    for turn, reward in rewards_of(c, options).items():
        prompt = c.prompt_for(turn)
        # CollabLLM's convention: turn_id is the number of messages in the prompt.
        at_turn = {"prompt": prompt, "turn_id": len(prompt), **shared}
        score = reward.reward if reward else None
        if reward is None:
            stats["turns without a rating in the window (score empty)"] += 1
        alt = alternatives.get(turn)
        if alt is None:
            yield _collabllm_row(at_turn, c.reply(turn)["content"], score, "none", True, score)
            continue
        # With no observed reward the pair still needs an order: 0 anchors it.
        anchor = 0.0 if score is None else score
        yield _collabllm_row(at_turn, c.reply(turn)["content"], anchor, alt.source, True, score)
        for rejected in alt.rejected:
            stats[f"discarded alternatives from {alt.source}"] += 1
            yield _collabllm_row(
                at_turn, rejected.text, anchor - options.gap(alt.source), alt.source, False, None
            )


def _collabllm_row(
    at_turn: Row, completion: str, score: float | None, source: str, kept: bool,
    observed: float | None,
) -> Row:
    return {
        "prompt": at_turn["prompt"],
        "completion": completion,
        "conv_id": at_turn["conv_id"],
        "turn_id": at_turn["turn_id"],
        "score": score,
        "single_turn_prompt": at_turn["single_turn_prompt"],
        "single_turn_completion": at_turn["single_turn_completion"],
        "single_turn_metadata": at_turn["single_turn_metadata"],
        "alternative_source": source,
        "kept": kept,
        "score_observed": observed is not None,
    }


@dataclass(frozen=True)
class Kind:
    name: str
    build: Builder
    schema: pa.Schema
    summary: str
    fields: dict[str, str]


_COMPONENTS = pa.struct(
    [
        ("rating", pa.float64()),
        ("document", pa.float64()),
        ("cost", pa.float64()),
        ("tokens", pa.int64()),
        ("rating_turns", pa.list_(pa.int64())),
    ]
)
_METADATA = pa.struct(
    [
        ("document_type", pa.string()),
        ("topic", pa.string()),
        ("condition", pa.string()),
        ("study_version", pa.int64()),
        ("document_quality", pa.int64()),
        ("judge_score", pa.float64()),
    ]
)
_ABOUT_FIELDS = {
    "conversation_id": "keyed pseudonym of the participant (one conversation each)",
    "condition": "the assistant arm that wrote the replies",
}

KINDS: dict[str, Kind] = {
    "sft": Kind(
        name="sft",
        build=sft_rows,
        schema=pa.schema(
            [("messages", _MESSAGES), *_ABOUT, ("document_type", pa.string()),
             ("topic", pa.string())]
        ),
        summary=(
            "Whole conversations in TRL's conversational language-modelling format, as the "
            "participant saw them: the active user and assistant messages, without the arm's "
            "system prompt (it differs between arms and was never shown)."
        ),
        fields={
            "messages": "list of {role, content}: user and assistant turns, alternating",
            **_ABOUT_FIELDS,
            "document_type": "the document type written",
            "topic": "the topic the participant picked",
        },
    ),
    "kto": Kind(
        name="kto",
        build=kto_rows,
        schema=pa.schema(
            [("prompt", _MESSAGES), ("completion", _MESSAGES), ("label", pa.bool_()),
             ("rating", pa.int64()), ("rating_turn", pa.int64()), *_ABOUT,
             ("turn", pa.int64())]
        ),
        summary=(
            "Every assistant turn covered by an in-chat interaction rating, in TRL's unpaired "
            "preference format. The rating asked after turn r covers turns "
            "r - rating_every + 1 .. r."
        ),
        fields={
            "prompt": "the conversation before the reply (ends with the user's message)",
            "completion": "the assistant reply, as a one-message list",
            "label": "true when the covering rating >= the desirable threshold",
            "rating": "the covering interaction rating, on the study's scale",
            "rating_turn": "the checkpoint turn of that rating",
            **_ABOUT_FIELDS,
            "turn": "the user turn the reply answers",
        },
    ),
    "dpo": Kind(
        name="dpo",
        build=dpo_rows,
        schema=pa.schema(
            [("prompt", _MESSAGES), ("chosen", _MESSAGES), ("rejected", _MESSAGES),
             ("score_chosen", pa.float64()), ("score_rejected", pa.float64()),
             ("source", pa.string()), *_ABOUT, ("turn", pa.int64())]
        ),
        summary=(
            "Observed preference pairs only, in TRL's conversational preference format: two "
            "replies to the same context, where the participant picked one of two candidates "
            "shown side by side (an explicit choice) or regenerated a reply and went on with "
            "the new one (weaker evidence: see source)."
        ),
        fields={
            "prompt": "the shared context (ends with the user's message)",
            "chosen": "the reply the conversation continued with",
            "rejected": "the reply the participant discarded or did not pick",
            "score_chosen": "real-user reward of the chosen reply (see reward), when known",
            "score_rejected": "always empty: a discarded reply has no observed future",
            "source": "side_by_side (an explicit pick) or regeneration (weaker: the "
            "participant asked for another reply and went on with it)",
            **_ABOUT_FIELDS,
            "turn": "the user turn both replies answer",
        },
    ),
    "reward": Kind(
        name="reward",
        build=reward_rows,
        schema=pa.schema(
            [("prompt", _MESSAGES), ("completion", _MESSAGES), ("reward", pa.float64()),
             ("reward_components", _COMPONENTS), *_ABOUT, ("turn", pa.int64())]
        ),
        summary=(
            "Every assistant turn with a real-user multiturn-aware reward (prompt-completion "
            "format plus a scalar): the ratings that followed it, the final document quality "
            "and the reading cost."
        ),
        fields={
            "prompt": "the conversation before the reply",
            "completion": "the assistant reply, as a one-message list",
            "reward": "R(t), see the formula below",
            "reward_components": "rating (mean normalised), document (normalised), cost, "
            "tokens, rating_turns",
            **_ABOUT_FIELDS,
            "turn": "the user turn the reply answers",
        },
    ),
    "collabllm": Kind(
        name="collabllm",
        build=collabllm_rows,
        schema=pa.schema(
            [("prompt", _MESSAGES), ("completion", pa.string()), ("conv_id", pa.string()),
             ("turn_id", pa.int64()), ("score", pa.float64()),
             ("single_turn_prompt", pa.string()), ("single_turn_completion", pa.string()),
             ("single_turn_metadata", _METADATA), ("alternative_source", pa.string()),
             ("kept", pa.bool_()), ("score_observed", pa.bool_())]
        ),
        summary=(
            "CollabLLM's flat multiturn rows (loadable by collabllm's MultiturnDataset): one "
            "row per assistant reply of the whole conversation, scored with the real-user "
            "reward, plus every usable alternative reply of a turn (regenerations and "
            "side-by-side candidates), so that MultiturnDataset.to_dpo_dataset yields pairs."
        ),
        fields={
            "prompt": "the conversation before the reply",
            "completion": "the assistant reply (text)",
            "conv_id": "keyed pseudonym of the participant",
            "turn_id": "number of messages in prompt (CollabLLM's convention)",
            "score": "real-user reward of a kept reply (same as the reward kind; empty when "
            "no rating is in its window); a discarded alternative scores the kept reply's "
            "score (0 when that is empty) minus the gap of its source",
            "single_turn_prompt": "the task in one prompt: type, topic, pre-writing notes",
            "single_turn_completion": "the final document",
            "single_turn_metadata": "document_type, topic, condition, study_version, "
            "document_quality, judge_score",
            "alternative_source": "none (the turn had one reply), regeneration or "
            "side_by_side",
            "kept": "true for the reply the conversation continued with",
            "score_observed": "true when score is an observed real-user reward; false for "
            "discarded alternatives and for kept replies with no rating in their window",
        },
    ),
}

"""A real-user multiturn-aware reward for assistant turns (pure functions; no I/O).

CollabLLM's Multiturn-aware Reward scores a reply by the conversations that follow it, sampled
from a user simulator. With real participants the future is observed instead: the interaction
ratings they gave in the next few turns, the quality they gave the final document, and how
much they had to read. For the assistant reply at user turn ``t``::

    R(t) = w_rating   * mean(norm(rating_r) for checkpoints r with t <= r <= t + window)
         + w_document * norm(final document quality)
         - w_cost     * min(lambda * tokens(t .. t + window), 1)

``norm`` maps a scale onto [0, 1]; ``tokens`` counts the assistant tokens of the replies at
turns ``t`` to ``t + window`` (what the participant read in the look-ahead window, as the
paper's token cost counts the assistant tokens of the sampled continuation). Defaults follow
the paper: window 2, lambda 1e-4 per token, unit weights.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

from collab_models.reward import DOCUMENT_LAMBDA, token_penalty

# English text with a Llama-3 tokenizer runs at roughly four characters per token; used only
# when a backend did not report a reply's length.
CHARS_PER_TOKEN = 4


@dataclass(frozen=True)
class RewardWeights:
    window: int = 2
    rating: float = 1.0
    document: float = 1.0
    cost: float = 1.0
    lam: float = DOCUMENT_LAMBDA

    def __post_init__(self) -> None:
        if self.window < 0:
            raise ValueError("window must be >= 0")
        if self.lam < 0:
            raise ValueError("lam must be >= 0")

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class TurnReward:
    reward: float
    rating: float | None  # mean normalised rating in the window
    document: float | None  # normalised final document quality
    cost: float  # min(lambda * tokens, 1), before its weight
    tokens: int
    rating_turns: list[int] = field(default_factory=list)

    def components(self) -> dict[str, Any]:
        return {
            "rating": self.rating,
            "document": self.document,
            "cost": self.cost,
            "tokens": self.tokens,
            "rating_turns": list(self.rating_turns),
        }


def normalise(value: float, low: float, high: float) -> float:
    """``value`` on the scale ``low..high`` mapped to [0, 1] (clipped)."""
    if high <= low:
        raise ValueError(f"empty scale {low}..{high}")
    return min(max((value - low) / (high - low), 0.0), 1.0)


def estimate_tokens(text: str) -> int:
    return math.ceil(len(text) / CHARS_PER_TOKEN)


def ratings_in_window(turn: int, ratings: Mapping[int, float], window: int) -> list[int]:
    """Checkpoint turns whose rating follows the reply at ``turn`` within ``window`` turns."""
    return sorted(r for r in ratings if turn <= r <= turn + window)


def turn_reward(
    *,
    turn: int,
    ratings: Mapping[int, float],
    document_quality: float | None,
    tokens_by_turn: Mapping[int, int],
    weights: RewardWeights = RewardWeights(),
) -> TurnReward | None:
    """The reward of the assistant reply at user turn ``turn``.

    ``ratings`` maps checkpoint turn -> normalised interaction rating (0..1);
    ``document_quality`` is normalised (0..1) or None when the participant gave none (the term
    then counts 0 and the components say None); ``tokens_by_turn`` maps turn -> assistant reply
    tokens. Returns None when no rating falls in the window: the turn has no observed future.
    """
    covering = ratings_in_window(turn, ratings, weights.window)
    if not covering:
        return None
    rating = sum(ratings[r] for r in covering) / len(covering)
    tokens = sum(tokens_by_turn.get(t, 0) for t in range(turn, turn + weights.window + 1))
    cost = token_penalty(tokens, weights.lam)
    reward = weights.rating * rating - weights.cost * cost
    if document_quality is not None:
        reward += weights.document * document_quality
    return TurnReward(
        reward=reward,
        rating=rating,
        document=document_quality,
        cost=cost,
        tokens=tokens,
        rating_turns=covering,
    )


def covering_checkpoint(turn: int, rating_every: int) -> int:
    """The checkpoint whose rating covers the reply at ``turn``.

    A rating asked after the reply to turn r ("so far") covers turns r - rating_every + 1 .. r.
    """
    if rating_every < 1:
        raise ValueError("rating_every must be >= 1")
    return math.ceil(turn / rating_every) * rating_every

"""Reward functions."""

from __future__ import annotations

import pytest

from collab_models.reward import token_penalty


def test_token_penalty_is_linear_then_capped() -> None:
    assert token_penalty(0) == 0.0
    assert token_penalty(500) == pytest.approx(0.05)
    assert token_penalty(10_000) == 1.0
    assert token_penalty(50_000) == 1.0
    assert token_penalty(1000, lam=5e-4) == pytest.approx(0.5)


def test_token_penalty_rejects_negative_inputs() -> None:
    with pytest.raises(ValueError, match="tokens"):
        token_penalty(-1)

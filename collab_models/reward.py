"""Reward and metric functions (pure; no I/O).

The CollabLLM Multiturn-aware Reward is R* = R_ext + R_int with
R_int = -min(lambda * tokens, 1) + R_interactivity; λ is 1e-4 per token for documents
(5e-4 for code and math).
"""

from __future__ import annotations

DOCUMENT_LAMBDA = 1e-4
CODE_MATH_LAMBDA = 5e-4


def token_penalty(tokens: int, lam: float = DOCUMENT_LAMBDA) -> float:
    """The cost of a reply's length, ``min(lam * tokens, 1)``, in [0, 1] (subtract it)."""
    if tokens < 0:
        raise ValueError("tokens must be >= 0")
    if lam < 0:
        raise ValueError("lam must be >= 0")
    return min(lam * tokens, 1.0)

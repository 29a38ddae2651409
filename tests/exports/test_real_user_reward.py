import pytest

from collab_models.real_user_reward import (
    RewardWeights,
    covering_checkpoint,
    normalise,
    ratings_in_window,
    turn_reward,
)


def test_normalise_maps_the_scale_onto_zero_one_and_clips():
    assert normalise(1, 1, 10) == 0.0
    assert normalise(10, 1, 10) == 1.0
    assert normalise(7, 1, 10) == pytest.approx(2 / 3)
    assert normalise(12, 1, 10) == 1.0
    with pytest.raises(ValueError, match="empty scale"):
        normalise(3, 5, 5)


def test_window_takes_checkpoints_from_the_turn_to_window_turns_later():
    ratings = {3: 0.5, 6: 0.1, 9: 0.9}
    assert ratings_in_window(1, ratings, 2) == [3]
    assert ratings_in_window(3, ratings, 2) == [3]
    assert ratings_in_window(4, ratings, 2) == [6]
    assert ratings_in_window(4, ratings, 5) == [6, 9]
    assert ratings_in_window(7, {3: 0.5, 6: 0.1}, 2) == []


def test_turn_reward_combines_ratings_document_and_capped_token_cost():
    weights = RewardWeights(window=2, rating=1.0, document=0.5, cost=2.0, lam=1e-3)
    reward = turn_reward(
        turn=4, ratings={3: 0.2, 6: 0.8}, document_quality=0.6,
        tokens_by_turn={4: 100, 5: 200, 6: 300, 7: 999}, weights=weights,
    )
    assert reward.rating == 0.8
    assert reward.tokens == 600
    assert reward.cost == pytest.approx(0.6)
    assert reward.reward == pytest.approx(0.8 + 0.5 * 0.6 - 2.0 * 0.6)
    huge = turn_reward(turn=4, ratings={6: 1.0}, document_quality=None,
                       tokens_by_turn={4: 10**6}, weights=weights)
    assert huge.cost == 1.0
    assert huge.document is None
    assert huge.reward == pytest.approx(1.0 - 2.0)


def test_turn_without_a_rating_in_its_window_has_no_reward():
    assert turn_reward(turn=7, ratings={3: 1.0, 6: 1.0}, document_quality=1.0,
                       tokens_by_turn={}) is None


def test_covering_checkpoint_is_the_next_rating_turn():
    assert [covering_checkpoint(t, 3) for t in range(1, 8)] == [3, 3, 3, 6, 6, 6, 9]
    assert covering_checkpoint(5, 1) == 5

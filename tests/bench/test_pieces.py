"""bench/pieces.py: which configurations a run compares, and how a piece's gain is judged."""

from bench.pieces import ALL_OFF, ALL_ON, PIECES, configurations, gain, verdict


def test_a_run_compares_all_on_each_piece_off_alone_and_all_off():
    configs = configurations([])
    names = list(configs)
    assert names[0] == ALL_ON
    assert names[-1] == ALL_OFF
    assert configs[ALL_ON] == {}
    for piece in PIECES:
        assert configs[f"{piece.name} off"] == piece.off
        assert piece.off.items() <= configs[ALL_OFF].items()
    assert list(configurations(["http1"])) == [ALL_ON, "http1 off", ALL_OFF]


def test_every_piece_names_files_that_exist():
    assert all(piece.lines() > 0 for piece in PIECES)


def test_a_gain_is_the_difference_of_medians_against_the_larger_range():
    # On: median 10, range 4; off: median 30, range 10.
    assert gain([8.0, 10.0, 12.0], [20.0, 30.0, 30.0]) == (20.0, 10.0)
    # A piece that makes things worse has a negative gain.
    assert gain([30.0, 31.0, 29.0], [10.0, 11.0, 12.0]) == (-19.0, 2.0)


def test_a_piece_is_kept_only_for_a_p50_gain_beyond_the_spread_at_every_load():
    assert verdict([[30.0, 10.0], [100.0, 40.0]]) == "keep"
    assert verdict([[30.0, 10.0], [30.0, 40.0]]).startswith("within the spread")
    assert verdict([[-5.0, 1.0], [-5.0, 1.0]]).startswith("within the spread")

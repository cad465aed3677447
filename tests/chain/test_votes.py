"""chain.votes: FFG's two slashing conditions and the signed vote's size bound, as pure functions.

The runtime (pol.report_vote_equivocation) and the collector (consensus.finality) both call
these, so each boundary is pinned here directly (mutation testing: `mutmut run "chain.votes*"`).
"""

from __future__ import annotations

import pytest

from chain.errors import CodecError
from chain.votes import (
    MAX_VOTE_BYTES,
    Checkpoint,
    Vote,
    decode_signed_vote,
    is_double_vote,
    surrounds,
)


def _link(source_round: int, target_round: int, target: bytes = b"\xaa" * 32) -> Vote:
    return Vote(0, Checkpoint(b"\x11" * 32, 1, source_round), Checkpoint(target, 2, target_round))


def test_a_double_vote_is_two_different_votes_with_one_target_round() -> None:
    a = _link(0, 3)
    assert is_double_vote(a, _link(0, 3, b"\xbb" * 32))
    assert is_double_vote(a, _link(1, 3))  # another source, same target round
    assert not is_double_vote(a, a)  # one vote, seen twice
    assert not is_double_vote(a, _link(3, 4))  # consecutive rounds: what an honest voter does
    assert not is_double_vote(a, _link(0, 4, b"\xbb" * 32))


def test_a_surround_is_strict_on_both_ends() -> None:
    outer = _link(1, 5)
    assert surrounds(outer, _link(2, 4))
    assert not surrounds(_link(2, 4), outer)  # one way only
    assert not surrounds(outer, _link(1, 4))  # same source round
    assert not surrounds(outer, _link(2, 5))  # same target round: a double vote, not a surround
    assert not surrounds(outer, _link(0, 4))
    assert not surrounds(outer, _link(2, 6))


def test_an_oversize_vote_is_refused_before_decoding_and_the_bound_is_inclusive() -> None:
    with pytest.raises(CodecError, match=f"at most {MAX_VOTE_BYTES} bytes, got {MAX_VOTE_BYTES + 1}"):
        decode_signed_vote(b"\x00" * (MAX_VOTE_BYTES + 1))
    # At the bound the bytes are decoded (and these are no SignedVote): not an oversize error.
    with pytest.raises(CodecError) as caught:
        decode_signed_vote(b"\x00" * MAX_VOTE_BYTES)
    assert "at most" not in str(caught.value)

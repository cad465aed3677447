"""The challenge window (consensus.finality): a validator votes for a block only once it has
``challenge_blocks`` descendants on its best chain, so finality lags by about that many
blocks more; no vote is made for a block proven invalid or its descendants, the collector
does not justify one, and a justification for one is refused ("invalid_block"). On the
`local` chain (4 validators), real LevelDB."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
from consensuskit import ALICE, BOB, CHARLIE, DAVE, build, open_chain

from chain.blockchain import Blockchain
from consensus import finality
from consensus.errors import InvalidJustification
from consensus.finality import Checkpoint, Justification, Vote, VoteCollector, sign_vote
from genesis.spec import load_chain_spec

FOUR = (ALICE, BOB, CHARLIE, DAVE)


def _open(path: Path, challenge_blocks: int) -> Blockchain:
    spec = load_chain_spec("local")
    spec = replace(spec, runtime_config=replace(spec.runtime_config, challenge_blocks=challenge_blocks))
    chain = open_chain(path, spec)
    assert chain.config.challenge_blocks == challenge_blocks  # read from the genesis state
    return chain


def _round(chain: Blockchain, collector: VoteCollector, round_number: int, keys=FOUR) -> list[Checkpoint]:
    """Every validator of ``keys`` votes in ``round_number`` from the highest justified
    checkpoint (as of the round's start); justifications are imported. The targets voted."""
    source = collector.highest_justified()
    targets = []
    for key in keys:
        vote = finality.make_vote(chain, key, round_number, source)
        if vote is None:
            continue
        targets.append(vote.vote.target)
        justification = collector.add(vote, round_number)
        if justification is not None:
            finality.import_justification(chain, justification)
    return targets


@pytest.mark.parametrize("window", [0, 4])
def test_no_vote_targets_a_block_within_the_window_and_finality_lags_by_it(tmp_path, window) -> None:
    chain = _open(tmp_path / "node", window)
    collector = VoteCollector(chain)
    lags = []
    for slot in range(1, 21):
        build(chain, slot)
        targets = _round(chain, collector, slot)
        if chain.best_number < window:
            assert targets == []  # nothing has `window` descendants yet
        for target in targets:
            assert target.block_number == chain.best_number - window  # never within `window` of the tip
            assert chain.get_hash(target.block_number) == target.block_hash
        lags.append(chain.best_number - chain.finalized_number)
    # Round r votes for block r - window from the checkpoint of round r - 1 (block r - 1 - window):
    # that link finalizes the source, so finality trails the best block by window + 1.
    assert chain.finalized_number > 0
    assert lags[-10:] == [window + 1] * 10
    chain.db.close()


def test_no_vote_is_made_for_an_invalid_block_or_its_descendants_nor_counted_for_it(tmp_path) -> None:
    chain = _open(tmp_path / "node", 4)
    blocks = [build(chain, slot) for slot in range(1, 11)]  # B1..B10, no votes yet
    genesis = Checkpoint(chain.genesis_hash, 0, 0)
    before_fraud = [finality.make_vote(chain, key, 10, genesis) for key in FOUR]
    assert all(v is not None and v.vote.target.block_hash == blocks[5].hash() for v in before_fraud)  # B6 = B10 - 4

    route = chain.invalidate(blocks[4].hash(), "fraud: segment 2 of extrinsic 0")  # B5 and B6..B10
    assert route is not None and chain.best_hash == blocks[3].hash()
    # B4 is best now: the only block with 4 descendants is genesis itself.
    for key in FOUR:
        vote = finality.make_vote(chain, key, 11, genesis)
        assert vote is not None and vote.vote.target.block_hash == chain.genesis_hash

    # Votes signed before the fraud was known count for the valid part of their branch only.
    collector = VoteCollector(chain)
    for vote in before_fraud[:3]:
        assert vote is not None
        collector.add(vote, 10)
    justified = collector.highest_justified()
    assert justified == Checkpoint(blocks[3].hash(), 4, 10) and not chain.is_invalid(justified.block_hash)

    # A justification for B6 (3 of 4 on the link (B6, 10) -> 11) is refused for what B6 is.
    source = Checkpoint(blocks[5].hash(), 6, 10)
    votes = tuple(sign_vote(k, chain.genesis_hash, Vote(0, source, Checkpoint(blocks[5].hash(), 6, 11))) for k in FOUR[:3])
    with pytest.raises(InvalidJustification) as err:
        finality.verify_justification(chain, Justification(blocks[5].hash(), 6, 0, 11, source, votes))
    assert err.value.reason == "invalid_block" and f"descends from invalid block {blocks[4].hash().hex()}" in str(err.value)
    assert chain.finalized_number == 0

    # The chain goes on from B4 on another branch; every vote from now on is for a valid block,
    # and finality follows that branch.
    for slot in range(11, 23):
        build(chain, slot)
        for target in _round(chain, collector, slot):
            assert not chain.is_invalid(target.block_hash)
            assert target.block_number <= chain.best_number - 4
    assert chain.finalized_number >= 10 and not chain.is_invalid(chain.finalized_hash)
    assert chain.get_hash(5) != blocks[4].hash()
    chain.db.close()


def test_a_justified_block_proven_invalid_is_no_longer_a_source(tmp_path) -> None:
    chain = _open(tmp_path / "node", 4)
    blocks = [build(chain, slot) for slot in range(1, 11)]
    collector = VoteCollector(chain)
    genesis = Checkpoint(chain.genesis_hash, 0, 0)
    for key in FOUR[:3]:
        vote = finality.make_vote(chain, key, 10, genesis)
        assert vote is not None
        collector.add(vote, 10)
    b6 = Checkpoint(blocks[5].hash(), 6, 10)
    assert collector.highest_justified() == b6
    chain.invalidate(blocks[4].hash(), "fraud")  # B5: B6 with it
    assert collector.highest_justified() == genesis
    assert finality.follow_justified(chain, b6.block_hash) is None
    assert finality.make_vote(chain, ALICE, 11, b6) is None  # nothing valid descends from it
    # Round-11 votes from (B6, 10) (signed before the fraud was known) justify and finalize nothing.
    for key in FOUR[:3]:
        collector.add(sign_vote(key, chain.genesis_hash, Vote(0, b6, Checkpoint(blocks[9].hash(), 10, 11))), 11)
    # The recount gives the round-10 votes to the valid part of their branch: (B4, 10).
    assert collector.check() is None and collector.highest_justified() == Checkpoint(blocks[3].hash(), 4, 10)
    assert chain.finalized_number == 0
    chain.db.close()


def test_a_best_chain_block_marked_invalid_is_never_a_target(tmp_path) -> None:
    """Defence in depth: the best chain never holds a marked block (invalidate moves it in the
    same batch), but the target check reads the mark anyway."""
    from chain.storage import Column

    chain = _open(tmp_path / "node", 4)
    blocks = [build(chain, slot) for slot in range(1, 7)]
    genesis = Checkpoint(chain.genesis_hash, 0, 0)
    assert finality.select_target(chain, genesis) == (blocks[1].hash(), 2)
    with chain.db.write_batch() as batch:
        batch.put(Column.INVALID, blocks[1].hash(), b"marked by hand")
    assert finality.select_target(chain, genesis) is None
    assert finality.make_vote(chain, ALICE, 7, genesis) is None
    chain.db.close()

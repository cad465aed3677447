"""Tests that kill the mutants mutation testing (mutmut, README "Development") found alive in
the proofs of justification of consensus/finality.py (``proves_finality``, the proof a
``VoteCollector`` builds, keeps and stores) and chain/blockchain.py (``put_justified_proof``);
tests/node/test_proof_offer_mutants.py has those of node/service.py and gives the
command, the scores and the survivors explained.

Real chains on LevelDB, real ed25519 votes; each test asserts the one rule a mutant broke.
"""

from __future__ import annotations

import dataclasses

import msgspec
import pytest
from consensuskit import ALICE, BOB, CHARLIE, DAVE, build, open_chain, open_local

from chain.crypto import dev_keypair
from chain.pallets.staking import get_validators
from consensus.aura import compute_slot_author
from consensus.finality import (
    Checkpoint,
    Justification,
    Vote,
    VoteCollector,
    justified_checkpoint,
    proves_finality,
    sign_vote,
)
from genesis.spec import load_chain_spec


@pytest.fixture
def local(tmp_path):
    """The `local` chain (four validators) holding A1, A2 (slots 1, 2)."""
    chain = open_local(tmp_path / "local")
    blocks = [build(chain, s) for s in (1, 2)]
    yield chain, blocks
    chain.db.close()


def _cp(block, round_number: int) -> Checkpoint:
    return Checkpoint(block.hash(), block.header.number, round_number)


def _link(chain, keys, source: Checkpoint, target: Checkpoint) -> Justification:
    votes = tuple(sorted((sign_vote(k, chain.genesis_hash, Vote(0, source, target)) for k in keys), key=lambda v: v.voter))
    return Justification(target.block_hash, target.block_number, 0, target.round, source, votes)


def test_proves_finality_needs_the_source_block_itself_and_the_next_round(local) -> None:
    """Each clause of a finality proof on its own (kills ``x_proves_finality__mutmut_2``, 5..11):
    a link from the target to the next round finalizes; the same block two rounds on, a higher
    block in the next round, or the source's hash under another number only justify."""
    chain, (a1, a2) = local
    keys = (ALICE, BOB, CHARLIE)
    assert proves_finality(chain, _link(chain, keys, _cp(a1, 4), _cp(a1, 5)))
    assert not proves_finality(chain, _link(chain, keys, _cp(a1, 4), _cp(a1, 6)))  # rounds not consecutive
    assert not proves_finality(chain, _link(chain, keys, _cp(a1, 4), _cp(a2, 5)))  # the target is above the source
    same_hash = _link(chain, keys, _cp(a1, 4), _cp(a1, 5))
    assert not proves_finality(chain, msgspec.structs.replace(same_hash, target_number=2))  # another number
    other_hash = msgspec.structs.replace(same_hash, target_hash=a2.hash())  # the source's number, not its block
    assert not proves_finality(chain, other_hash)


def test_a_sole_validators_every_link_proves_finality_and_keeps_no_proof(tmp_path) -> None:
    """On the dev chain (Alice validates alone) every link finalizes its target, consecutive
    or not (kills ``x_proves_finality__mutmut_3`` and ``_4``); the collector builds and stores
    no proof of justification for it (the finalized block's justification is stored with it):
    kills ``xǁVoteCollectorǁcheck__mutmut_72``/``_73``, which made one for a sole validator."""
    chain = open_chain(tmp_path / "dev")
    try:
        b1 = chain.build_block([], ALICE, slot=1).block
        genesis = Checkpoint(chain.genesis_hash, 0, 0)
        assert proves_finality(chain, _link(chain, (ALICE,), genesis, _cp(b1, 7)))
        collector = VoteCollector(chain)
        found = collector.add(sign_vote(ALICE, chain.genesis_hash, Vote(0, genesis, _cp(b1, 7))))
        assert found is not None and found.target_hash == b1.hash() and proves_finality(chain, found)
        assert collector.justified_proof() is None and chain.get_justified_proof() is None
    finally:
        chain.db.close()


@pytest.mark.parametrize("names", [("Alice", "Bob"), ("Alice", "Bob", "Charlie")])
def test_two_or_three_validators_keep_the_proof_too(tmp_path, names) -> None:
    """The proof is kept for every set of more than one validator: with two (a threshold of
    both) ``len(validators) > 2`` held no more (kills ``xǁVoteCollectorǁcheck__mutmut_74``);
    three is the tester's set (a threshold of all three)."""
    spec = load_chain_spec("local")
    assert spec.config is not None
    small = dataclasses.replace(spec, config={**spec.config, "validators": [f"//{n}" for n in names]})
    chain = open_chain(tmp_path / "small", small)
    try:
        keys = [dev_keypair(n) for n in names]
        author = compute_slot_author(get_validators(chain.state.overlay()), 1)
        b1 = chain.build_block([], next(k for k in keys if k.public == author), slot=1).block
        genesis = Checkpoint(chain.genesis_hash, 0, 0)
        collector = VoteCollector(chain)
        for key in keys:
            assert collector.add(sign_vote(key, chain.genesis_hash, Vote(0, genesis, _cp(b1, 7)))) is None
        proof = collector.justified_proof()
        assert proof is not None and justified_checkpoint(proof) == _cp(b1, 7) and not proves_finality(chain, proof)
        assert chain.get_justified_proof() == proof.encode()
    finally:
        chain.db.close()


def test_a_higher_proof_replaces_the_kept_one_and_an_equal_one_does_not(local) -> None:
    """Only a proof of a higher checkpoint (round, then height) replaces the kept one, in
    memory and in the database (kills ``xǁVoteCollectorǁnote_justified__mutmut_4`` and the
    comparison's mutants): another proof of the same checkpoint (other voters) leaves it."""
    chain, (a1, a2) = local
    genesis = Checkpoint(chain.genesis_hash, 0, 0)
    collector = VoteCollector(chain)
    first = _link(chain, (ALICE, BOB, CHARLIE), genesis, _cp(a1, 7))
    collector.note_justified(justified_checkpoint(first), first)
    assert collector.justified_proof() == first and chain.get_justified_proof() == first.encode()
    same = _link(chain, (BOB, CHARLIE, DAVE), genesis, _cp(a1, 7))  # the same checkpoint, other votes
    collector.note_justified(justified_checkpoint(same), same)
    assert collector.justified_proof() == first and chain.get_justified_proof() == first.encode()
    higher = _link(chain, (ALICE, BOB, DAVE), genesis, _cp(a2, 7))  # the same round, a higher block
    collector.note_justified(justified_checkpoint(higher), higher)
    assert collector.justified_proof() == higher and chain.get_justified_proof() == higher.encode()
    later = _link(chain, (ALICE, BOB, DAVE), _cp(a2, 7), _cp(a2, 9))  # a later round
    collector.note_justified(justified_checkpoint(later), later)
    assert collector.justified_proof() == later and chain.get_justified_proof() == later.encode()
    lower = _link(chain, (ALICE, BOB, CHARLIE), genesis, _cp(a2, 8))  # a lower round, whatever the block
    collector.note_justified(justified_checkpoint(lower), lower)
    assert collector.justified_proof() == later and chain.get_justified_proof() == later.encode()


def test_the_proofs_votes_are_in_voter_order(local) -> None:
    """A collector's proof lists its votes by voter key whatever order they came in (kills
    ``x__make_justification__mutmut_8``, which kept arrival order)."""
    chain, (a1, _) = local
    genesis = Checkpoint(chain.genesis_hash, 0, 0)
    keys = (ALICE, BOB, CHARLIE, DAVE)
    # Each round's proof is higher than the last, so each collector keeps its own.
    for round_number, order in ((7, keys), (8, tuple(sorted(keys, key=lambda k: k.public, reverse=True)))):
        collector = VoteCollector(chain)
        for key in order:
            collector.add(sign_vote(key, chain.genesis_hash, Vote(0, genesis, _cp(a1, round_number))))
        proof = collector.justified_proof()
        assert proof is not None and proof.round == round_number
        # Built when the third vote came (the threshold): from those three.
        assert [v.voter for v in proof.votes] == sorted(k.public for k in order[:3])

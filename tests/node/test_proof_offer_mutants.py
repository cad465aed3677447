"""Mutation testing of the proofs of justification (a0d997f, 44eee67): what a node sends a
validator that votes from an older source, and what the validator does with it.

Run by name (the modules are in ``[tool.mutmut] only_mutate``): the new functions whole,
and of the older ones only the mutants on the new lines (a script picked them by the
diff of each mutant; their other mutants are the existing suites' business)::

    rm -rf mutants && mutmut run --max-children 2 \\
      "consensus.finality.x_proves_finality__*" "consensus.finality.x_justified_checkpoint__*" \\
      "consensus.finality.x_checkpoint_order__*" "consensus.finality.x__make_justification__*" \\
      "consensus.finality.xǁVoteCollectorǁ__init____*" "consensus.finality.xǁVoteCollectorǁnote_justified__*" \\
      "consensus.finality.xǁVoteCollectorǁjustified_proof__*" \\
      "node.service.xǁNodeServiceǁ_knows_justified__*" "node.service.xǁNodeServiceǁ_note_justified__*" \\
      "node.service.xǁNodeServiceǁ_offer_justified__*" \\
      "chain.blockchain.xǁBlockchainǁput_justified_proof__*" "chain.blockchain.xǁBlockchainǁget_justified_proof__*" \\
      <the new-line mutants of x_verify_justification (1, 2, 67-70), xǁVoteCollectorǁcheck (71-99),
       xǁNodeServiceǁimport_justification (16-23, 27-35, 57, 58), xǁNodeServiceǁ_after_import (73-78),
       xǁNodeServiceǁadd_vote (13-16)>

with ``pytest_add_cli_args_test_selection`` narrowed to the tests of this code
(tests/consensus/test_justified_proof.py, test_justified_proof_mutants.py, test_finality.py,
test_mutants_finality.py, test_finality_window.py, tests/node/test_finality_stall.py, this
file, tests/chain/test_blockchain.py; the configured selection holds them, which can only
kill more; the new files were added to it for the second run). 223 mutants (159 of the new
functions, 64 on new lines of the older ones; ``checkpoint_order`` has none: a bare tuple). Before
these tests (2026-11-29) 170 were killed and 53 lived: no test made a proof of justification
wait for its block (the block-arrival retry and the kept-proof check), imported a finality
proof through the service, or called ``proves_finality`` on a finality proof or a sole
validator's link; the once-a-round limit, the ``vote.round <= proof.round + 1`` filter and the
older-source comparison of ``_offer_justified`` were unpinned at their edges; a proof no
higher than what is known was not shown dropped unchecked; the service's return value and log
line, the higher-proof-only rule for an equal checkpoint, the proof's vote order and a set of
two validators were untested. Now 214/223, no defect found; the 9 survivors are equivalent.

Survivors explained (equivalent mutants):

- ``chain.blockchain.xǁBlockchainǁput_justified_proof__mutmut_1``, ``_2``: ``sync=None`` (as
  falsy as False: the same unsynced write) and ``sync=True``: a synced write differs only
  across a power cut, which no test can make; its docstring says why unsynced is enough.
- ``consensus.finality.xǁVoteCollectorǁnote_justified__mutmut_1``, ``_13``: the two
  explained in tests/consensus/test_mutants_finality.py (the dict's values are never read;
  ``>=`` KEPT_JUSTIFIED prunes an empty slice).
- ``consensus.finality.xǁVoteCollectorǁcheck__mutmut_78``: ``>=`` in the guard before a
  proof is built: a proof of the same checkpoint as the kept one is built and then refused by
  ``note_justified``'s own ``>`` (tests/consensus/test_justified_proof_mutants.py pins that):
  only the cost of building it differs.
- ``node.service.xǁNodeServiceǁimport_justification__mutmut_29``: ``target_known=None`` for
  ``False`` in the check of a proof kept for its block: as falsy, the same checks.
- ``import_justification__mutmut_30``: ``final=None`` there: for a proof of justification
  ``final`` is False already (None is as falsy); for a finality proof what ``final=True`` adds
  is the two "not_final" checks, whose conditions are ``proves_finality``'s own (a sole
  validator's link takes the other branch either way), so they cannot fail.
- ``_note_justified__mutmut_2``: ``return True`` for a proof already known: unreachable from
  ``import_justification``, which returns False before it for a known proof of justification
  (under the lock: nothing changes between the two checks); from the block-arrival retry the
  value is ignored.
- ``_note_justified__mutmut_6``: ``final=None`` for ``final=False`` in the full check: as
  falsy, the same checks.

The pending proof's slot (19d49c0), run after it and after 25f58ef (2026-11-29; mutant
numbers are of that code, not of the run above). The same narrowed selection; node/service.py
is in ``only_mutate`` already, nothing was added. ``_knows_justified`` whole, and of the
others the mutants whose diff touches a line 19d49c0 added or changed (found with ``git
blame``; the same picking script)::

    rm -rf mutants && mutmut run --max-children 2 "node.service.xǁNodeServiceǁ_knows_justified__*" \
      <xǁNodeServiceǁ__init__ (191: the slot), xǁNodeServiceǁtable_sizes (2, 16-19: the slot
       counted), xǁNodeServiceǁ_after_import (73: a kept finality proof now always finalizes;
       82-95: the slot retried when its block arrives), xǁNodeServiceǁimport_justification
       (27-37: the check on a thread; 53-55: a proof of justification goes to the slot),
       consensus.finality.xǁVoteCollectorǁ__init__ (9-24: the unreadable stored proof)>

68 mutants (17 of ``_knows_justified``, 51 on new lines). Before the tests below 50 were
killed, 13 lived and 5 had no test: every one of ``_knows_justified``'s was killed by the
tests 19d49c0 added; the log line of a kept proof that fails when its block arrives had no
test at all (``_after_import__mutmut_88``..``95``: no proof passed the checks made without
the block and failed the ones made with it), the unreadable stored proof's warning was
matched by a substring without its reason (``VoteCollector.__init____mutmut_15``, 17, 18),
and ``table_sizes`` was run by no test of the selection (2, 16-19). Killed by
:func:`test_a_kept_proof_that_fails_when_its_block_arrives_is_dropped_and_logged` (new), the
slot's count in :func:`test_lower_proofs_do_not_push_out_a_higher_one_waiting_for_its_block`
and the whole warning line in tests/consensus/test_justified_proof.py's
``test_an_unreadable_stored_proof_is_ignored_not_fatal``. Now 66/68, no defect found; the 2
survivors are equivalent:

- ``import_justification__mutmut_30``: ``target_known=None`` in the check of a proof kept for
  its block: as falsy, the same checks (the run above's ``_29``, on the line before it moved
  to a thread).
- ``import_justification__mutmut_31``: ``final=None`` there: the run above's ``_30``, the
  same reasons.

The other lines 25f58ef changed (``checkpoint_order`` in ``_offer_justified``,
``_follow_justified``, ``_check_own_vote``, ``VoteCollector.note_justified``,
``highest_justified`` and ``check``: 31 mutants, tests/node/test_validator_ops.py added to the
selection for ``_check_own_vote``): 29 killed; ``_follow_justified__mutmut_4`` (``>=``: the
record queued for writing again at every import and counted vote, though its source had not
risen) lived and is killed by :func:`test_the_record_is_written_only_when_the_source_rises`;
``check__mutmut_78`` is the run above's ``_78`` (equivalent, explained there). 30/31.
"""

from __future__ import annotations

import logging
from dataclasses import replace

import msgspec
import pytest
from netkit import FAST, build_sealed_chain, running

import consensus.finality as verify_justification_module
from chain.crypto import Keypair, dev_keypair
from consensus.errors import InvalidJustification
from consensus.finality import (
    SET_ID,
    Checkpoint,
    Justification,
    SignedVote,
    Vote,
    justified_checkpoint,
    sign_vote,
)
from genesis.spec import load_chain_spec, with_slot_duration
from node.service import NodeConfig, NodeService

SPEC = with_slot_duration(load_chain_spec("local"), 500)
ALICE, BOB, CHARLIE, DAVE, FERDIE = (dev_keypair(n) for n in ("Alice", "Bob", "Charlie", "Dave", "Ferdie"))
THREE = (ALICE, BOB, DAVE)


def _full_node() -> NodeService:
    """A full node of the `local` chain on loopback, with no peers: nothing arrives but what
    a test hands it."""
    return NodeService(NodeConfig(chain="local", tmp=True, author=None, network=replace(FAST, bootnodes=())), SPEC)


def _count_signature_checks(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """A 1 for each vote signature consensus.finality checks from now on (the real check)."""
    checked: list[int] = []
    real = verify_justification_module.verify_signature

    def counting(*args: bytes) -> None:
        checked.append(1)
        real(*args)

    monkeypatch.setattr(verify_justification_module, "verify_signature", counting)
    return checked


def _link(genesis: bytes, keys: tuple[Keypair, ...], source: Checkpoint, target: Checkpoint) -> Justification:
    votes = tuple(sorted((sign_vote(k, genesis, Vote(SET_ID, source, target)) for k in keys), key=lambda v: v.voter))
    return Justification(target.block_hash, target.block_number, SET_ID, target.round, source, votes)


def _forged(proof: Justification) -> Justification:
    """``proof`` with its last vote re-signed by an outsider: it fails at its signature only."""
    last = proof.votes[-1]
    resigned = sign_vote(FERDIE, b"\0" * 32, last.vote)
    return msgspec.structs.replace(proof, votes=(*proof.votes[:-1], SignedVote(last.vote, last.voter, resigned.signature)))


def _spy(node: NodeService) -> list[bytes]:
    """The payloads ``node`` gossips as justifications (the real network still sends them)."""
    assert node.network is not None
    sent: list[bytes] = []
    real = node.network.broadcast_justification

    def broadcast(payload: bytes) -> int:
        sent.append(payload)
        return real(payload)

    node.network.broadcast_justification = broadcast  # type: ignore[method-assign]
    return sent


async def _justify_genesis(full: NodeService) -> Justification:
    """Votes of Alice, Bob and Dave from genesis (round 0) to genesis in the current round:
    genesis justified in that round, the collector's proof made (nothing finalizes)."""
    genesis = full.chain.genesis_hash
    target = Checkpoint(genesis, 0, full._current_round())
    for key in THREE:
        await full.add_vote(sign_vote(key, genesis, Vote(SET_ID, Checkpoint(genesis, 0, 0), target)))
    proof = full.collector.justified_proof()
    assert proof is not None and justified_checkpoint(proof) == target == full.collector.highest_justified()
    return proof


async def test_the_proof_goes_to_an_older_source_a_full_round_on_once_a_round() -> None:
    """``_offer_justified``: the round after the link's is still the link's (a validator may
    not have had its votes in time), from two rounds on an older source means the votes were
    missed; a source as new as the proof's checkpoint, or newer, needs nothing; and one
    sending a round however many such votes come (kills ``_offer_justified__mutmut_1``, 3, 7,
    8, 9, 12, 13)."""
    async with running(_full_node()) as full:
        proof = await _justify_genesis(full)
        sent = _spy(full)
        genesis, r = full.chain.genesis_hash, proof.round

        def vote(key: Keypair, source_round: int, round_number: int) -> SignedVote:
            return sign_vote(key, genesis, Vote(SET_ID, Checkpoint(genesis, 0, source_round), Checkpoint(genesis, 0, round_number)))

        current = r + 2
        full._offer_justified(vote(CHARLIE, 0, r + 1), current)  # the link's next round: not yet
        full._offer_justified(vote(CHARLIE, r, r + 2), current)  # from the proof's checkpoint itself
        full._offer_justified(vote(CHARLIE, r + 1, r + 2), current)  # from a newer one
        assert sent == [] and full._proof_sent_round == 0
        full._offer_justified(vote(CHARLIE, r - 1, r + 2), current)  # older, two rounds on: sent
        assert sent == [proof.encode()] and full._proof_sent_round == current
        full._offer_justified(vote(BOB, 0, r + 2), current)  # another in the same round: not again
        assert len(sent) == 1 and full._proof_sent_round == current
        full._offer_justified(vote(BOB, 0, r + 3), current + 1)  # the next round: again
        assert len(sent) == 2 and full._proof_sent_round == current + 1


async def test_a_proof_no_higher_than_what_is_known_is_dropped_unchecked() -> None:
    """``_knows_justified`` and the early return in ``import_justification``: a proof of a
    checkpoint lower than the highest justified one, or of another block at the same round
    and height, brings nothing and is dropped before its signatures are checked, here even
    forged and for a block this node lacks; so is one of a checkpoint justified here already,
whatever its order (kills ``_knows_justified__mutmut_4``, ``_5``, ``_6`` and
    ``import_justification__mutmut_22``, each of which checked it and raised
    bad_signature)."""
    async with running(_full_node()) as full:
        proof = await _justify_genesis(full)
        genesis, r = full.chain.genesis_hash, proof.round
        unknown = b"\x42" * 32
        lower = _forged(_link(genesis, THREE, Checkpoint(genesis, 0, 0), Checkpoint(unknown, 0, r - 1)))
        level = _forged(_link(genesis, THREE, Checkpoint(genesis, 0, 0), Checkpoint(unknown, 0, r)))
        # Justified here but not the highest (its block is missing): known all the same.
        noted = Checkpoint(b"\x43" * 32, 5, r + 5)
        full.collector.note_justified(noted)
        assert full.collector.highest_justified() == justified_checkpoint(proof)
        justified_elsewhere = _forged(_link(genesis, THREE, Checkpoint(genesis, 0, 0), noted))
        for known in (lower, level, justified_elsewhere):
            assert await full.import_justification(known) is False
            assert full.collector.justified_proof() == proof
        higher = _forged(_link(genesis, THREE, Checkpoint(genesis, 0, 0), Checkpoint(unknown, 0, r + 1)))
        with pytest.raises(InvalidJustification) as err:  # a higher claim is checked
            await full.import_justification(higher)
        assert err.value.reason == "bad_signature"


async def test_proofs_kept_for_a_block_not_imported_are_taken_when_it_arrives(tmp_path, caplog) -> None:
    """The block-arrival retry (``_after_import``) and ``import_justification``'s two kinds: a
    proof of justification for #1 before #1 is checked as far as it can be and kept; when #1
    arrives it is noted (the collector keeps it to pass on, the record follows it, the log says
    so); a finality proof for #1 then finalizes it at once; one for #2 kept until #2 arrives
    finalizes #2 then (kills ``_after_import__mutmut_73``..``78``,
    ``import_justification__mutmut_16``, 21, 34, 35, ``_note_justified__mutmut_13``, 15, 27)."""
    caplog.set_level(logging.INFO)
    async with running(_full_node()) as full:
        now = full._current_round()
        blocks = build_sealed_chain(tmp_path, SPEC, (now - 20, now - 19))
        genesis = full.chain.genesis_hash
        b1, b2 = (Checkpoint(b.hash(), b.header.number, 0) for b in blocks[1:])
        r = now - 10
        proof = _link(genesis, THREE, Checkpoint(genesis, 0, 0), Checkpoint(b1.block_hash, b1.block_number, r))
        assert await full.import_justification(proof) is False  # kept for #1
        await full.import_block(blocks[1])
        assert full.collector.highest_justified() == justified_checkpoint(proof) == full._voter.justified
        assert full.collector.justified_proof() == proof
        assert f"The checkpoint #1 of round {r} is justified (a peer sent the votes of its link): votes go from it" in caplog.messages
        final_one = _link(genesis, THREE, Checkpoint(b1.block_hash, b1.block_number, r), Checkpoint(b1.block_hash, b1.block_number, r + 1))
        assert await full.import_justification(final_one) is True
        assert full.chain.finalized_hash == b1.block_hash
        final_two = _link(genesis, THREE, Checkpoint(b2.block_hash, b2.block_number, r + 2), Checkpoint(b2.block_hash, b2.block_number, r + 3))
        assert await full.import_justification(final_two) is False  # kept for #2
        assert full.chain.finalized_number == 1
        await full.import_block(blocks[2])
        assert full.chain.finalized_hash == b2.block_hash


async def test_a_proof_that_moves_nothing_reports_nothing(tmp_path) -> None:
    """A genuine proof of a higher checkpoint whose block is below the finalized one (genesis
    justified in a later round than #1's finalization) is noted, but the node's source stays:
    ``import_justification`` says False (the network does not gossip it on) and logs nothing
    (kills ``_note_justified__mutmut_17``, ``_18``, ``_19``, which said True)."""
    async with running(_full_node()) as full:
        now = full._current_round()
        blocks = build_sealed_chain(tmp_path, SPEC, (now - 20,))
        await full.import_block(blocks[1])
        genesis = full.chain.genesis_hash
        b1 = Checkpoint(blocks[1].hash(), 1, now - 10)
        assert await full.import_justification(_link(genesis, THREE, b1, Checkpoint(b1.block_hash, b1.block_number, now - 9))) is True
        before = full._voter.justified
        assert before == Checkpoint(b1.block_hash, b1.block_number, now - 9)
        stale = _link(genesis, THREE, Checkpoint(genesis, 0, 0), Checkpoint(genesis, 0, now - 5))
        assert await full.import_justification(stale) is False
        assert full._voter.justified == before == full.collector.highest_justified()


async def test_lower_proofs_do_not_push_out_a_higher_one_waiting_for_its_block(tmp_path, monkeypatch) -> None:
    """One link's votes make many valid proofs (any lower target, any order of the votes). A
    reviewer's finding: four of them evicted the higher one waiting for its block, and the
    network's seen-sets never let the same bytes in again, so a lagging validator stayed on a
    lower source. Now the highest pending proof keeps its slot; lower or equal ones are dropped
    before any signature is checked; it is taken when its block arrives. The slot counts in
    ``table_sizes`` (kills ``table_sizes__mutmut_2``, 16-19 of the 19d49c0 run)."""
    async with running(_full_node()) as full:
        now = full._current_round()
        blocks = build_sealed_chain(tmp_path, SPEC, (now - 20, now - 19))
        genesis = full.chain.genesis_hash
        await full.import_block(blocks[1])  # #1 is here, #2 is not
        b2 = Checkpoint(blocks[2].hash(), 2, now - 10)
        high = _link(genesis, THREE, Checkpoint(genesis, 0, 0), b2)
        assert full.table_sizes()["pending_justifications"] == 0
        assert await full.import_justification(high) is False  # kept for #2
        assert full.table_sizes()["pending_justifications"] == 1
        checked = _count_signature_checks(monkeypatch)
        for round_number in range(now - 14, now - 10):  # lower rounds, same block: all dropped
            lower = _link(genesis, THREE, Checkpoint(genesis, 0, 0), Checkpoint(b2.block_hash, 2, round_number))
            assert await full.import_justification(lower) is False
        reordered = msgspec.structs.replace(high, votes=tuple(reversed(high.votes)))
        assert await full.import_justification(reordered) is False
        assert checked == [] and full._pending_proof == high
        await full.import_block(blocks[2])
        assert full.collector.highest_justified() == b2 == full._voter.justified
        assert full._pending_proof is None and full.collector.justified_proof() == high
        assert full.table_sizes()["pending_justifications"] == 0


async def test_a_finality_proof_kept_for_its_block_is_not_checked_again_in_another_order(tmp_path, monkeypatch) -> None:
    """A finality proof of a block not here yet is checked (signatures included) and kept
    until the block arrives; another proof of the same block brings nothing and is dropped
    before any signature is checked. Checked each time, the votes of one real proof, reordered
    (n! orders), cost a node that is behind every signature of the set per message,
    uncharged (valid): 45 ms for 1,024 validators, at 4 a second a peer. The kept one still
    finalizes its block when it arrives."""
    async with running(_full_node()) as full:
        now = full._current_round()
        blocks = build_sealed_chain(tmp_path, SPEC, (now - 20, now - 19))
        genesis = full.chain.genesis_hash
        await full.import_block(blocks[1])  # #1 is here, #2 is not
        source = Checkpoint(blocks[2].hash(), 2, now - 10)
        final = _link(genesis, THREE, source, Checkpoint(blocks[2].hash(), 2, now - 9))
        checked = _count_signature_checks(monkeypatch)
        assert await full.import_justification(final) is False  # kept for #2, its 3 votes checked
        assert checked == [1, 1, 1] and full.table_sizes()["pending_justifications"] == 1
        reordered = msgspec.structs.replace(final, votes=tuple(reversed(final.votes)))
        assert await full.import_justification(reordered) is False
        forged = msgspec.structs.replace(final, votes=(*final.votes[:2], SignedVote(final.votes[2].vote, final.votes[2].voter, bytes(64))))
        assert await full.import_justification(forged) is False
        assert checked == [1, 1, 1] and full._pending_justifications[blocks[2].hash()] == final
        await full.import_block(blocks[2])
        assert full.chain.finalized_number == 2 and full.chain.get_justification(blocks[2].hash()) == final.encode()


async def test_a_finality_proof_notes_the_checkpoint_its_link_justifies(tmp_path) -> None:
    """A finality proof is a link from the target's checkpoint to the target in the next round,
    which justifies the target in that round too. A node that finalized the block from a peer's
    proof noted only the finalized checkpoint (the link's source round) and voted from it, while
    the validators that counted the link's votes voted from the round after: with a threshold of
    all three, no link formed again, for good (retest43's N1; the node had refused the honest
    third vote as a double vote, a byzantine key's having come first). The proof that
    reconciles them, sent again as a proof of justification, was dropped as final already. Now
    the import notes the link's target checkpoint, and a proof of a block final here already
    still raises the highest justified checkpoint when it can."""
    async with running(_full_node()) as full:
        now = full._current_round()
        blocks = build_sealed_chain(tmp_path, SPEC, (now - 20, now - 19))
        genesis = full.chain.genesis_hash
        for block in blocks[1:]:
            await full.import_block(block)
        b2 = blocks[2].hash()
        # Dave's vote of round now - 9 that came first: his link vote is a double vote here.
        first = sign_vote(DAVE, genesis, Vote(SET_ID, Checkpoint(genesis, 0, 0), Checkpoint(blocks[1].hash(), 1, now - 9)))
        await full.add_vote(first)
        link = _link(genesis, THREE, Checkpoint(b2, 2, now - 10), Checkpoint(b2, 2, now - 9))
        assert await full.import_justification(link) is True and full.chain.finalized_number == 2
        assert full.collector.highest_justified() == Checkpoint(b2, 2, now - 9) == full._voter.justified
        assert full.collector.justified_proof() == link
        later = _link(genesis, THREE, Checkpoint(b2, 2, now - 9), Checkpoint(b2, 2, now - 8))  # final here already
        assert await full.import_justification(later) is True
        assert full.collector.highest_justified() == Checkpoint(b2, 2, now - 8) == full._voter.justified
        assert await full.import_justification(later) is False  # nothing new


async def test_a_kept_proof_that_fails_when_its_block_arrives_is_dropped_and_logged(tmp_path, caplog) -> None:
    """What a proof kept for its block cannot be checked for before the block is here (the
    target's number, here #5 for block #2) is checked when it arrives: the proof is refused
    with one INFO line naming the block and the reason, its slot is emptied, nothing is
    noted justified and the block's import goes on (kills ``_after_import__mutmut_88``..``95``
    of the 19d49c0 run, which changed that line)."""
    caplog.set_level(logging.INFO)
    async with running(_full_node()) as full:
        now = full._current_round()
        blocks = build_sealed_chain(tmp_path, SPEC, (now - 20, now - 19))
        genesis = full.chain.genesis_hash
        before = full.collector.highest_justified()
        wrong_number = _link(genesis, THREE, Checkpoint(genesis, 0, 0), Checkpoint(blocks[2].hash(), 5, now - 10))
        assert await full.import_justification(wrong_number) is False  # kept: its block is not here
        assert full._pending_proof == wrong_number
        await full.import_block(blocks[1])
        assert full._pending_proof == wrong_number  # not its block: still kept
        await full.import_block(blocks[2])
        assert full.chain.best_hash == blocks[2].hash()
        assert full._pending_proof is None and full.table_sizes()["pending_justifications"] == 0
        assert full.collector.highest_justified() == before == full._voter.justified
        assert full.collector.justified_proof() is None
        assert "a proof of justification for #2 did not verify: target block is #2, the justification says #5" in caplog.messages


async def test_the_record_is_written_only_when_the_source_rises(tmp_path) -> None:
    """``_follow_justified`` runs after every import and every counted vote; it queues a
    write of the slashing protection record (two fsyncs on the record's thread) only when the
    highest justified checkpoint is above the record's source, not when it equals it (kills
    ``_follow_justified__mutmut_4`` of the 25f58ef lines: ``>=`` wrote it again at every
    block)."""
    async with running(_full_node()) as full:
        now = full._current_round()
        blocks = build_sealed_chain(tmp_path, SPEC, (now - 20, now - 19, now - 18))
        genesis = full.chain.genesis_hash
        written: list[object] = []
        real = full._records.submit

        def submit(state):
            written.append(state)
            return real(state)

        full._records.submit = submit  # type: ignore[method-assign]
        await full.import_block(blocks[1])
        assert written == []  # genesis is still the source: nothing to write
        b1 = Checkpoint(blocks[1].hash(), 1, now - 10)
        assert await full.import_justification(_link(genesis, THREE, Checkpoint(genesis, 0, 0), b1)) is True
        assert [state.justified for state in written] == [b1]  # type: ignore[attr-defined]
        for block in blocks[2:]:
            await full.import_block(block)
        assert len(written) == 1 and full._voter.justified == b1

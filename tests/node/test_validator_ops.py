"""What routine validator operations do to a validator's signing, and what must never follow
from them: two blocks in one slot or two votes in one round (each a slashable offence).

Each test drives a real NodeService (LevelDB in a temporary directory, the runtime, real
ed25519) in this process, with its clock (``NodeService.clock``, the seam where the node
reads time) set by the test, so a round or a slot comes when the test says, not when the
machine's clock does. Found by asking what an operator's hot standby, a skewed or stepped
clock, a full disk and a restore from backup do to a 4-validator devnet.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import re
import shutil
import tempfile
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest
from msgspec.structs import replace as replace_struct
from netkit import FAST, answer_blocks_late, build_sealed_chain, running, wait_for
from netkit import start_node as start_peer
from nodekit import start_node

from chain import calls
from chain.block import Block
from chain.blockchain import Blockchain
from chain.config import SPEC_VERSION
from chain.crypto import dev_keypair, ss58_encode
from chain.extrinsic import sign_extrinsic
from chain.header import seal_header
from chain.pallets.staking import get_validators
from chain.storage import Database
from consensus import finality
from consensus.aura import compute_slot_author, get_equivocations
from consensus.errors import InvalidHeader, InvalidJustification, InvalidVote
from consensus.finality import (
    SET_ID,
    Checkpoint,
    Justification,
    SignedVote,
    Vote,
    VoterState,
    sign_vote,
    surrounds,
)
from genesis.spec import load_chain_spec, with_slot_duration
from node import service as node_service
from node.cli import main as cli_main
from node.service import STALL_SLOTS, NodeConfig, NodeService
from node.voter_record import VoterRecordError, compute_record_path, load_record, store_record

SLOT_MS = 1000
_LOCAL = load_chain_spec("local")
# No challenge window, so that a vote has a target (genesis) at once: these tests are about
# when a validator signs, not what (the window: tests/consensus/test_finality_window.py).
SPEC = replace(_LOCAL, runtime_config=replace(_LOCAL.runtime_config, challenge_blocks=0, slot_duration_ms=SLOT_MS))
ALICE = dev_keypair("Alice")
AUTHORS = {dev_keypair(n).public: dev_keypair(n) for n in ("Alice", "Bob", "Charlie", "Dave")}


class Clock:
    """A settable clock: seconds since the epoch, as time.time."""

    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    @classmethod
    def in_slot(cls, slot: int) -> Clock:
        clock = cls(0.0)
        clock.to_slot(slot)
        return clock

    def to_slot(self, slot: int) -> None:
        """Move into ``slot``, a little after its start."""
        self.now = (slot * SLOT_MS + 100) / 1000


def _slot_now() -> int:
    return int(time.time() * 1000) // SLOT_MS


@functools.cache
def _validators() -> tuple[bytes, ...]:
    with tempfile.TemporaryDirectory() as tmp:
        db = Database(Path(tmp) / "db")
        try:
            return get_validators(Blockchain(db, chain_id=SPEC.id, build_genesis=SPEC.apply_genesis).state.overlay())
        finally:
            db.close()


def _alices_slot(after: int) -> int:
    """The first slot after ``after`` that Aura gives Alice (round robin over the set)."""
    validators = _validators()
    return next(s for s in range(after + 1, after + 1 + len(validators)) if compute_slot_author(validators, s) == ALICE.public)


def _node(base: Path, clock: Clock, **changes: object) -> NodeService:
    config = NodeConfig(chain="local", base_path=base, **{"author": "//Alice", **changes})  # type: ignore[arg-type]
    return NodeService(config, SPEC, clock=clock)


@contextlib.contextmanager
def _opened(base: Path, clock: Clock, **changes: object) -> Iterator[NodeService]:
    """:func:`_node`, closed when the block ends."""
    node = _node(base, clock, **changes)
    try:
        yield node
    finally:
        node.close()


def _own_votes(node: NodeService, *, besides: tuple[SignedVote, ...] = ()) -> list[SignedVote]:
    return [v for v in node.collector.recent_votes() if v.voter == ALICE.public and v not in besides]


def _build_on_genesis(tmp: Path, slots: list[int]) -> list[Block]:
    """Real blocks of the chain from genesis, one in each of ``slots``, each sealed by its owner."""
    return build_sealed_chain(tmp, SPEC, slots)[1:]


def _count_signature_checks(monkeypatch: pytest.MonkeyPatch) -> list[bytes]:
    """The keys node.service checks signatures of from now on (the real check, counted)."""
    checks: list[bytes] = []
    real = node_service.verify_signature

    def counted(public: bytes, message: bytes, signature: bytes) -> None:
        checks.append(public)
        real(public, message, signature)

    monkeypatch.setattr(node_service, "verify_signature", counted)
    return checks


def _errors(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]


# --- 1. doppelganger: the same key on two nodes --------------------------------------------------
async def test_a_vote_of_its_own_key_it_did_not_make_stops_the_validator_signing(tmp_path, caplog) -> None:
    start = _slot_now()
    clock = Clock.in_slot(start)
    with _opened(tmp_path / "alice", clock) as node:
        genesis = node.chain.genesis_hash
        source = Checkpoint(genesis, 0, 0)
        # Its own vote comes back from a peer (gossip): that is no doppelganger.
        clock.to_slot(start + 1)
        await node._vote_if_due()
        (mine,) = _own_votes(node)
        await node.add_vote(mine)
        assert _errors(caplog) == []
        # The hot standby, with the same key, votes in the next round before this node does.
        twin = sign_vote(ALICE, genesis, Vote(SET_ID, source, Checkpoint(genesis, 0, start + 2)))
        await node.add_vote(twin)
        errors = _errors(caplog)
        assert len(errors) == 1, errors
        assert errors[0].startswith(f"Doppelganger: a vote in round {start + 2} signed with this validator's key "
                                    f"{ss58_encode(ALICE.public)} that this node did not make")
        assert "not signing votes or blocks until restarted" in errors[0]
        # It signs nothing more: no vote in this round or any later one, no block in its slot.
        for later in (start + 2, start + 3, start + 9):
            clock.to_slot(later)
            await node._vote_if_due()
        assert _own_votes(node, besides=(mine, twin)) == []
        clock.to_slot(_alices_slot(start + 9))
        assert await node.author_block() is None
        assert node.chain.best_number == 0
        # One mistake, one line: more of the twin's votes are not logged again.
        await node.add_vote(sign_vote(ALICE, genesis, Vote(SET_ID, source, Checkpoint(genesis, 0, start + 10))))
        assert len(_errors(caplog)) == 1


async def test_a_justification_of_many_votes_in_its_name_costs_one_signature_check(tmp_path, caplog, monkeypatch) -> None:
    # Before its votes are checked as a justification, each naming this key was checked for
    # another signer: a peer's 1,024 forged votes in Alice's name cost 1,024 signature checks
    # for one refusal. A justification holds each voter once, so one check is enough.
    start = _slot_now()
    with _opened(tmp_path / "alice", Clock.in_slot(start)) as node:
        genesis = node.chain.genesis_hash
        source = Checkpoint(genesis, 0, 0)
        forged = sign_vote(dev_keypair("Ferdie"), genesis, Vote(SET_ID, source, Checkpoint(genesis, 0, start + 1)))
        votes = tuple(SignedVote(forged.vote, ALICE.public, forged.signature) for _ in range(1024))
        checks = _count_signature_checks(monkeypatch)
        with pytest.raises(InvalidJustification) as refused:
            await node.import_justification(Justification(genesis, 0, SET_ID, start + 1, source, votes))
        assert refused.value.reason == "bad_signature" and str(refused.value).startswith(f"vote of {ss58_encode(ALICE.public)}: ")
        assert checks == [ALICE.public]
        assert _errors(caplog) == []  # a forged vote shows no other signer


async def test_a_forged_vote_in_its_name_does_not_stop_a_validator(tmp_path, caplog, monkeypatch) -> None:
    # Anyone can put a validator's key in a vote: only a good signature shows another signer.
    # Its signature checked once for that, a forged one is refused for it (its sender charged),
    # even in a round the collector would refuse unblamed, unchecked: a flood of stale votes in
    # the node's own name cost a check each, uncharged (retest40's F7), and a current one two.
    start = _slot_now()
    clock = Clock.in_slot(start)
    with _opened(tmp_path / "alice", clock) as node:
        genesis = node.chain.genesis_hash
        checks = _count_signature_checks(monkeypatch)
        real = finality.verify_signature
        monkeypatch.setattr(finality, "verify_signature", lambda *args: (checks.append(b"collector"), real(*args)))
        for round_number in (start + 2, start - 100):
            forged = sign_vote(dev_keypair("Ferdie"), genesis, Vote(SET_ID, Checkpoint(genesis, 0, 0), Checkpoint(genesis, 0, round_number)))
            forged = SignedVote(forged.vote, ALICE.public, forged.signature)
            with pytest.raises(InvalidVote) as refused:
                await node.add_vote(forged)
            assert refused.value.reason == "bad_signature"
            assert str(refused.value).startswith(f"vote of {ss58_encode(ALICE.public)}: ")
        assert checks == [ALICE.public] * 2
        assert _errors(caplog) == []
        clock.to_slot(start + 2)
        await node._vote_if_due()
        assert len(_own_votes(node)) == 1


async def test_a_block_of_its_own_key_it_did_not_make_stops_the_validator_signing(tmp_path, caplog) -> None:
    start = _slot_now()
    clock = Clock.in_slot(start)
    with _opened(tmp_path / "alice", clock) as node:
        slot = _alices_slot(start + 1)
        (block,) = _build_on_genesis(tmp_path, [slot])  # the hot standby's block in Alice's slot
        clock.to_slot(slot)
        await node.import_block(block)
        assert node.chain.best_hash == block.hash()
        errors = _errors(caplog)
        assert len(errors) == 1, errors
        assert errors[0].startswith(f"Doppelganger: a block in slot {slot} signed with this validator's key "
                                    f"{ss58_encode(ALICE.public)} that this node did not make")
        assert f"did not make (block #1 0x{block.hash().hex()[:12]}…): another node" in errors[0], errors
        # No block in its next slot, no vote.
        clock.to_slot(_alices_slot(slot))
        assert await node.author_block() is None
        await node._vote_if_due()
        assert _own_votes(node) == []


async def test_doppelganger_protection_listens_before_signing(tmp_path, caplog) -> None:
    # Opt-in (Lighthouse's --enable-doppelganger-protection): N rounds of listening for the
    # key's votes and blocks before the first signature.
    start = _slot_now()
    clock = Clock.in_slot(start)
    with _opened(tmp_path / "alice", clock, doppelganger_rounds=3) as node:
        for r in (start + 1, start + 2, start + 3):
            clock.to_slot(r)
            await node._vote_if_due()
        assert _own_votes(node) == []
        clock.to_slot(_alices_slot(start))  # Alice's slot inside the wait
        if _alices_slot(start) <= start + 3:
            assert await node.author_block() is None
        clock.to_slot(start + 4)
        await node._vote_if_due()
        assert [v.vote.round for v in _own_votes(node)] == [start + 4]


async def test_doppelganger_protection_catches_the_twin_during_the_wait(tmp_path, caplog) -> None:
    start = _slot_now()
    clock = Clock.in_slot(start)
    with _opened(tmp_path / "alice", clock, doppelganger_rounds=3) as node:
        genesis = node.chain.genesis_hash
        clock.to_slot(start + 1)
        twin = sign_vote(ALICE, genesis, Vote(SET_ID, Checkpoint(genesis, 0, 0), Checkpoint(genesis, 0, start + 1)))
        await node.add_vote(twin)
        assert len(_errors(caplog)) == 1
        for r in range(start + 2, start + 8):
            clock.to_slot(r)
            await node._vote_if_due()
        assert _own_votes(node, besides=(twin,)) == []


# --- 2. clocks -------------------------------------------------------------------------------------
async def test_a_purged_validator_restarted_in_the_slot_it_authored_in_does_not_author_again(tmp_path) -> None:
    # The database had the first block, so the slot claim refused a second one; purge-chain
    # deleted it (or a clock stepped back a slot, or both). The record beside the keys keeps
    # the last slot this key sealed a block in.
    base = tmp_path / "alice"
    slot = _alices_slot(_slot_now() + 1)
    clock = Clock(0.0)
    clock.to_slot(slot - 1)
    with _opened(base, clock) as node:
        clock.to_slot(slot)
        first = await node.author_block()
        assert first is not None and first.block.header.slot == slot
    shutil.rmtree(base / "chains" / SPEC.id / "db")  # what purge-chain does
    for now in (slot, slot - 1):  # restarted in the same slot, or with its clock a slot back
        clock.to_slot(now)
        with _opened(base, clock) as node:
            # The pool differs after a restart, so a second block would not be the first again.
            xt = sign_extrinsic(
                dev_keypair("Eve"), calls.Transfer(dev_keypair("Ferdie").public, 10**9), nonce=0,
                genesis_hash=node.chain.genesis_hash, spec_version=SPEC_VERSION,
            )
            node.submit(xt.encode())
            assert await node.author_block() is None
            assert node.chain.get_slot_blocks(slot, ALICE.public) == ()
    clock.to_slot(_alices_slot(slot) - 1)
    with _opened(base, clock) as node:
        clock.to_slot(_alices_slot(slot))
        later = await node.author_block()
        assert later is not None and later.block.header.slot == _alices_slot(slot)


async def test_a_block_a_slot_ahead_of_the_clock_does_not_make_the_next_author_seal_early(tmp_path) -> None:
    """Aura's author claims the slot its clock is in (Substrate's ``sc-consensus-slots``).
    It claimed one past the best block's slot instead, whenever that was later: a validator
    whose clock ran 1.5 s fast (under a slot) sealed a block a slot early, the owner of the next
    slot then sealed at once, and so on, so the chain ran slots ahead of the wall clock for as
    long as the fast node ran, and each of its own blocks was deferred as too far ahead on
    every honest node (an outside tester's finding, round 13)."""
    slot = _alices_slot(_slot_now() + 3)
    clock = Clock.in_slot(slot - 2)
    with _opened(tmp_path / "alice", clock) as node:
        (early,) = _build_on_genesis(tmp_path / "early", [slot - 1])  # a slot ahead of our clock
        await node.import_block(early)
        assert node.chain.best_hash == early.hash()
        assert await node.author_block() is None  # Alice's slot is two ahead of her clock
        clock.to_slot(slot)
        authored = await node.author_block()
        assert authored is not None and authored.block.header.slot == slot


async def test_a_clock_stepped_back_never_makes_a_second_vote_or_block(tmp_path) -> None:
    start = _slot_now()
    clock = Clock.in_slot(start)
    with _opened(tmp_path / "alice", clock) as node:
        slot = _alices_slot(start + 1)
        clock.to_slot(slot)
        authored = await node.author_block()
        assert authored is not None
        (vote,) = _own_votes(node)  # the new best block of its round made it vote
        assert vote.vote.round == slot
        for now in (slot - 1, slot, slot - 1):  # NTP steps the clock back, then on again
            clock.to_slot(now)
            assert await node.author_block() is None
            await node._vote_if_due()
        assert _own_votes(node) == [vote]
        assert node.chain.get_slot_blocks(slot, ALICE.public) == (authored.block.hash(),)
        assert get_equivocations(node.chain) == []


async def test_votes_of_a_validator_whose_clock_runs_ahead_are_named_once(tmp_path, caplog) -> None:
    # A vote more than MAX_FUTURE_ROUNDS ahead of the local round is dropped without blame
    # (it may be our clock that is behind); a validator whose clock runs 3 slots ahead then
    # loses every vote, and no one said so. Now its peers name it once; a good signature first.
    start = _slot_now()
    clock = Clock.in_slot(start)
    with _opened(tmp_path / "alice", clock) as node:
        genesis = node.chain.genesis_hash
        bob = dev_keypair("Bob")
        source = Checkpoint(genesis, 0, 0)
        near = sign_vote(bob, genesis, Vote(SET_ID, source, Checkpoint(genesis, 0, start + 2)))
        await node.add_vote(near)  # two rounds ahead: counted, nothing said
        forged = sign_vote(dev_keypair("Ferdie"), genesis, Vote(SET_ID, source, Checkpoint(genesis, 0, start + 3)))
        # Its signature checked, a forged one is refused as forged (its sender charged), not as stale.
        with pytest.raises(InvalidVote) as refused:
            await node.add_vote(SignedVote(forged.vote, bob.public, forged.signature))
        assert refused.value.reason == "bad_signature" and str(refused.value).startswith(f"vote of {ss58_encode(bob.public)}: ")
        for vote in (sign_vote(bob, genesis, Vote(SET_ID, source, Checkpoint(genesis, 0, start + 3))),
                     sign_vote(bob, genesis, Vote(SET_ID, source, Checkpoint(genesis, 0, start + 4)))):
            with pytest.raises(InvalidVote) as refused:
                await node.add_vote(vote)
            assert refused.value.reason == "stale"
        warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
        assert warnings == [
            f"Votes of {ss58_encode(bob.public)} are 3 rounds ahead of this node's clock (round {start + 3}, this "
            f"node's {start}): its clock or this node's is off by about 3 s, and such votes are not counted"
        ], warnings


# --- 3. the record cannot be written -----------------------------------------------------------------
async def test_a_vote_whose_record_cannot_be_written_is_not_sent_and_voting_resumes_after(tmp_path, caplog) -> None:
    start = _slot_now()
    clock = Clock.in_slot(start)
    base = tmp_path / "alice"
    node = _node(base, clock)
    record = compute_record_path(base / "chains" / SPEC.id)
    try:
        clock.to_slot(start + 1)
        await node._vote_if_due()
        assert load_record(record) is not None and load_record(record).voted_round == start + 1  # type: ignore[union-attr]
        # The record cannot be replaced (a directory in its place: root ignores a read-only mode).
        record.unlink()
        record.mkdir()
        clock.to_slot(start + 2)
        await node._vote_if_due()
        errors = _errors(caplog)
        assert len(errors) == 1, errors
        assert errors[0].startswith(f"Not voting in round {start + 2}: the slashing protection record {record} could not be written")
        assert errors[0].endswith("could not be written (Is a directory); nothing is signed that it does not record"), errors
        assert [v.vote.round for v in _own_votes(node)] == [start + 1]
        # Nor a block: it too is recorded before it leaves.
        clock.to_slot(_alices_slot(start + 2))
        assert await node.author_block() is None
        assert node.chain.best_number == 0
        assert any(f"Not authoring in slot {_alices_slot(start + 2)}" in e for e in _errors(caplog))
        # The disk recovers: the next round's vote is recorded, then sent; never a second vote in a round.
        record.rmdir()
        clock.to_slot(_alices_slot(start + 2) + 1)
        await node._vote_if_due()
        rounds = [v.vote.round for v in _own_votes(node)]
        assert rounds == [start + 1, _alices_slot(start + 2) + 1]
        assert load_record(record).voted_round == rounds[-1]  # type: ignore[union-attr]
    finally:
        node.close()


# --- 4. restored from a backup ---------------------------------------------------------------------
async def test_a_validator_restored_from_a_backup_raises_its_source_to_its_own_votes_noted_on_chain(tmp_path, caplog) -> None:
    # An old base path (database and record) while the network moved on: this key voted,
    # after the backup, from a justified checkpoint the node's record never held. The blocks it
    # syncs note that vote (rewards.note_votes); seeing it, the node raises its source to that
    # vote's, so its next vote cannot surround it.
    spec = replace(SPEC, runtime_config=replace(SPEC.runtime_config, block_reward=10**9))  # votes are noted
    start = _slot_now()
    db = Database(tmp_path / "builder")
    try:
        builder = Blockchain(db, chain_id=spec.id, build_genesis=spec.apply_genesis)
        genesis = builder.genesis_hash
        validators = get_validators(builder.state.overlay())
        blocks = [builder.build_block([], AUTHORS[compute_slot_author(validators, s)], s).block for s in (start - 20, start - 19)]
        past = Vote(SET_ID, Checkpoint(blocks[0].hash(), 1, start - 15), Checkpoint(blocks[1].hash(), 2, start - 14))
        author = AUTHORS[compute_slot_author(validators, start - 18)]
        note = sign_extrinsic(
            author, calls.NoteVotes((sign_vote(ALICE, genesis, past),)), nonce=0, genesis_hash=genesis, spec_version=SPEC_VERSION,
        )
        third = builder.build_block([note], author, start - 18)
        assert [r.hash for r in third.receipts] == [note.hash()]
        blocks.append(third.block)
    finally:
        db.close()
    clock = Clock.in_slot(start)
    config = NodeConfig(chain="local", base_path=tmp_path / "alice", author="//Alice")
    node = NodeService(config, spec, clock=clock)
    try:
        for block in blocks:
            await node.import_block(block)
        assert node.chain.best_hash == blocks[-1].hash()
        clock.to_slot(start + 1)
        await node._vote_if_due()
        (vote,) = _own_votes(node)
        assert not surrounds(vote.vote, past), (vote.vote.source, past.source)
        assert vote.vote.source == past.source
        record = load_record(compute_record_path(tmp_path / "alice" / "chains" / SPEC.id))
        assert record is not None and record.justified == past.source
        assert _errors(caplog) == []  # its own past, not a doppelganger
        assert any(w.endswith(f"round {start - 15} (noted in block #3) is newer than its slashing protection record "
                              "(restored from an old backup?): the record is raised to it") for w in _warnings(caplog)), _warnings(caplog)
    finally:
        node.close()


async def test_a_restored_validators_own_past_vote_in_gossip_raises_its_source(tmp_path, caplog) -> None:
    start = _slot_now()
    (block,) = _build_on_genesis(tmp_path, [start - 20])
    clock = Clock.in_slot(start)
    with _opened(tmp_path / "alice", clock) as node:
        genesis = node.chain.genesis_hash
        await node.import_block(block)
        past_source = Checkpoint(block.hash(), 1, start - 8)
        past = Vote(SET_ID, past_source, Checkpoint(block.hash(), 1, start - 7))
        await node.add_vote(sign_vote(ALICE, genesis, past))
        clock.to_slot(start + 1)
        await node._vote_if_due()
        (vote,) = [v for v in _own_votes(node) if v.vote != past]
        assert not surrounds(vote.vote, past), (vote.vote.source, past.source)
        assert _errors(caplog) == []


async def test_a_validator_does_not_vote_while_its_best_block_is_far_behind(tmp_path, caplog) -> None:
    # Restored from an old backup, a validator knows only what its old database and record
    # knew; the blocks that note the votes it cast since come with the sync. A vote made in
    # the meantime (the round's timer does not wait for the sync) came from the old source
    # and surrounded them. Ethereum's validator clients do not attest while their node syncs;
    # here the node does not vote while its best block is minutes behind the round. The round
    # after the start is Alice's slot: the block she seals there on her stale best must not
    # count as catching up (it did, and she voted from the old source in that round).
    start = _alices_slot(_slot_now()) - 1
    spec = replace(SPEC, runtime_config=replace(SPEC.runtime_config, block_reward=10**9))  # votes are noted
    db = Database(tmp_path / "builder")
    try:
        builder = Blockchain(db, chain_id=spec.id, build_genesis=spec.apply_genesis)
        genesis = builder.genesis_hash
        validators = get_validators(builder.state.overlay())
        # Then #1 the backup's best, #2 and #3 since, still far behind the round: the block
        # that notes the vote (#4) is the first near it. (With #2 and #3 near the round, the
        # node's own round timer could vote between their import and #4's, from the source it
        # had then: the window the rule leaves open, in the note of 2026-11-29.)
        blocks = [builder.get_block(genesis)]
        blocks += [builder.build_block([], AUTHORS[compute_slot_author(validators, s)], s).block for s in (start - 200, start - 199, start - 198)]
        past = Vote(SET_ID, Checkpoint(blocks[2].hash(), 2, start - 4), Checkpoint(blocks[3].hash(), 3, start - 3))
        author = AUTHORS[compute_slot_author(validators, start - 2)]
        note = sign_extrinsic(
            author, calls.NoteVotes((sign_vote(ALICE, genesis, past),)), nonce=0, genesis_hash=genesis, spec_version=SPEC_VERSION,
        )
        blocks.append(builder.build_block([note], author, start - 2).block)
    finally:
        db.close()
    caplog.set_level(logging.INFO, logger="polchain")
    clock = Clock.in_slot(start)
    config = NodeConfig(chain="local", base_path=tmp_path / "alice", author="//Alice", network=FAST)
    node = NodeService(config, spec, clock=clock)
    peer = await start_peer(genesis=genesis, blocks=1)
    peer.blocks = blocks
    answer_blocks_late(peer, 1.0)
    try:
        async with running(node):
            assert node.network is not None and node.link is not None
            await node.import_block(blocks[1])  # what the old database held
            await peer.service.dial(node.network.listen_addresses[0])
            await wait_for(lambda: node.link.is_syncing, 5)  # type: ignore[union-attr]
            clock.to_slot(start + 1)  # the round's timer, while the sync waits for the peer
            async with node._lock:
                await node._vote_if_due()
            assert _own_votes(node) == []
            infos = [r.getMessage() for r in caplog.records if r.levelno == logging.INFO and r.name == "polchain"]
            said = [m for m in infos if m.startswith("Not voting in round ")]
            assert len(said) == 1, infos  # once while it lasts, not once a round
            assert re.fullmatch(r"Not voting in round \d+: the best block #1 is 20[01] slots behind it \(catching up first\)", said[0])
            await wait_for(lambda: node.chain.best_hash == blocks[-1].hash(), 10)
            clock.to_slot(start + 2)
            async with node._lock:
                await node._vote_if_due()
            votes = _own_votes(node)
            assert votes and all(v.vote.source == past.source and not surrounds(v.vote, past) for v in votes), votes
    finally:
        await peer.service.stop()


# --- 5. a clock hours off ----------------------------------------------------------------------
async def test_blocks_of_a_validator_whose_clock_runs_hours_ahead_are_named_as_such_once(tmp_path, caplog) -> None:
    # Slots are the clock divided by the chain's slot duration: a validator whose clock runs
    # decades ahead seals blocks in slots decades ahead of the others' clocks. They are
    # deferred ("ahead of our clock") and retried every slot for ever, and the validator
    # drops out without a word. (Before the slot duration was the chain's, a validator started
    # with half the others' --block-time did the same: found with 4 in-process validators.)
    # Skew of a few slots stays a deferral, with no error.
    start = _slot_now()
    clock = Clock.in_slot(start)
    with _opened(tmp_path / "alice", clock) as node:
        skewed, mismatched, again = (_build_on_genesis(tmp_path / str(s), [s])[0] for s in (start + 5, 2 * start, 2 * start + 4))  # the last two: one author
        # A forged seal hours ahead is a bad block (its sender charged), not a deferral checked at every retry.
        forged = Block(replace_struct(mismatched.header, seal=bytes(64)), mismatched.body)
        with pytest.raises(InvalidHeader) as refused:
            await node.import_block(forged)
        assert refused.value.reason == "bad_seal"
        # A stranger's well-sealed block hours ahead stays a deferral and is not named: anyone
        # can seal with a key of their own, and fresh keys must not make a line each.
        ferdie = dev_keypair("Ferdie")
        stranger = replace_struct(mismatched.header, author=ferdie.public)
        stranger = seal_header(ferdie, node.chain.genesis_hash, stranger)
        with pytest.raises(InvalidHeader) as refused:
            await node.import_block(Block(stranger, mismatched.body))
        assert refused.value.reason == "future_slot"
        assert _errors(caplog) == []
        for block in (skewed, mismatched, again):
            with pytest.raises(InvalidHeader) as refused:
                await node.import_block(block)
            assert refused.value.reason == "future_slot"
        errors = _errors(caplog)
        assert len(errors) == 1, errors
        author = ss58_encode(mismatched.header.author)
        assert errors[0].startswith(
            f"Block #1 by {author} is in slot {2 * start}, {start} slots ({start * SLOT_MS / 1000 / 86400 / 365.25:.0f} years) "
            "ahead of this node's clock: its author's clock or this node's is wrong (every node of a chain needs a "
            "synchronised clock); its blocks are not imported"
        ), errors
        assert node.chain.best_number == 0


def test_the_doppelganger_wait_is_a_node_flag(tmp_path, capsys) -> None:
    node = start_node(tmp_path, "--chain", "local", "--alice", "--tmp", "--no-prometheus", "--doppelganger-rounds", "2")
    try:
        assert "Doppelganger protection: listening for votes and blocks of " + ss58_encode(ALICE.public) in node.read_log()
    finally:
        node.stop()
    with pytest.raises(SystemExit) as exited:
        cli_main(["node", "--chain", "local", "--alice", "--tmp", "--doppelganger-rounds", "1001"])
    assert exited.value.code == 2
    assert "1001 is out of range: a number of rounds is 0..1000" in capsys.readouterr().err


async def test_a_spec_renamed_on_the_same_base_path_keeps_the_validators_record(tmp_path, caplog) -> None:
    # The record lives under <base>/chains/<spec id>/, and the genesis hash does not depend on
    # the id: an operator who exports the spec, gives it another id and restarts on the same
    # base path joins the same network with an empty record (and an empty database), and
    # votes from genesis again: each vote surrounds the ones it cast before.
    start = _slot_now()
    (block,) = _build_on_genesis(tmp_path, [start - 20])
    base = tmp_path / "alice"
    clock = Clock.in_slot(start)
    with _opened(base, clock) as node:
        genesis = node.chain.genesis_hash
        await node.import_block(block)
        past = Vote(SET_ID, Checkpoint(block.hash(), 1, start - 8), Checkpoint(block.hash(), 1, start - 7))
        await node.add_vote(sign_vote(ALICE, genesis, past))  # raises its record (see above)
        clock.to_slot(start + 3)
        await node._vote_if_due()
        (before,) = [v for v in _own_votes(node) if v.vote != past]
    renamed = replace(SPEC, id="renamed_testnet", name="Renamed")
    clock.to_slot(start + 2)  # a clock a little behind, too
    config = NodeConfig(chain="renamed", base_path=base, author="//Alice")
    node = NodeService(config, renamed, clock=clock)
    try:
        assert node.chain.genesis_hash == genesis
        await node.import_block(block)
        for r in range(start + 3, start + 6):
            clock.to_slot(r)
            await node._vote_if_due()
        votes = [v.vote for v in _own_votes(node)]
        assert [v.round for v in votes] == [start + 4, start + 5]
        assert not any(surrounds(v, past) or surrounds(v, before.vote) for v in votes), votes
        warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
        assert any(w.startswith(f"The slashing protection record {compute_record_path(base / 'chains' / SPEC.id)} is of this chain") for w in warnings), warnings
    finally:
        node.close()


def test_a_record_of_another_chain_is_refused_by_name(tmp_path) -> None:
    # A purged base path restarted with a spec of another genesis under the same id (the
    # database's own genesis check cannot see it: the database is gone): the record's source
    # is a block the new chain never has, and the validator would stay silent for ever.
    base = tmp_path / "alice"
    record = compute_record_path(base / "chains" / SPEC.id)
    store_record(record, VoterState(Checkpoint(b"\x01" * 32, 5, 9), 10, 0, b"\x02" * 32))
    with pytest.raises(VoterRecordError) as refused:
        _node(base, Clock.in_slot(_slot_now()))
    assert str(refused.value).startswith(f"the slashing protection record {record} is of another chain (genesis 0x0202")
    assert load_record(record) == VoterState(Checkpoint(b"\x01" * 32, 5, 9), 10, 0, b"\x02" * 32)


# --- 6. the signing rules at their edges -------------------------------------------------------------
# Mutation testing of these rules in node/service.py (``mutmut run "node.service.*_catching_up*"
# "node.service.*_check_own_vote*" ...`` with this module and test_voter_record.py selected)
# left 76 of 285 mutants alive: the catching-up thresholds met exactly, the own blocks it skips,
# how a record is raised by each of its own past votes (one mutant wrote ``None`` as the record,
# another lowered its source), the end of the doppelganger wait (one crashed on its second
# call), the named-once sets when full, and the lines' texts. The 8 left are equivalent:
# ``best.number >= 0`` in _newest_not_sealed_here (genesis has no author to skip), ``_catching_up_logged =
# None`` for False and ``_listen_until = -2`` for -1 (the same truth), ``_listen_until > 0`` or
# ``>= 1`` (a round number, never 0), a named-once set's value "" for None in both sets (only
# keys are read), and the log argument ``ahead_ms / slot_ms`` for ``//`` (%d prints the same).

BOB = dev_keypair("Bob")
CHARLIE = dev_keypair("Charlie")


def _slot_of(who: bytes, after: int) -> int:
    """The first slot after ``after`` that Aura gives ``who``."""
    validators = _validators()
    return next(s for s in range(after + 1, after + 1 + len(validators)) if compute_slot_author(validators, s) == who)


def _warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING and r.name == "polchain"]


async def test_the_catching_up_rule_at_its_edges(tmp_path, caplog) -> None:
    caplog.set_level(logging.INFO, logger="polchain")
    start = _slot_now()
    old = _slot_of(BOB.public, start - 400)
    mine = _slot_of(ALICE.public, start)  # the node starts in it: a block of Alice's there is from before this run
    later = _slot_of(BOB.public, mine + 100)
    blocks = _build_on_genesis(tmp_path, [old, mine, later])
    clock = Clock.in_slot(mine)
    with _opened(tmp_path / "alice", clock) as node:
        for block in blocks[:2]:
            await node.import_block(block)
        assert _errors(caplog) == []  # Alice's block in the start slot is her past, not a twin's
        assert not node._catching_up(mine + 1)  # that block counts as recent
        # 60 s behind (4 validators x 2 turns is 8 s): still voting; a slot more: catching up.
        assert not node._catching_up(mine + 60)
        assert node._catching_up(mine + 61) and node._catching_up(mine + 62)
        assert not node._catching_up(mine + 1)
        assert node._catching_up(mine + 61)
        said = [r.getMessage() for r in caplog.records if r.getMessage().startswith("Not voting in round")]
        assert said == [f"Not voting in round {mine + 61}: the best block #2 is 61 slots behind it (catching up first)"] * 2, said
        # Another validator's block made during this run counts as recent too.
        clock.to_slot(later)
        await node.import_block(blocks[2])
        assert not node._catching_up(later + 1)


async def test_catching_up_skips_the_blocks_this_run_sealed_down_to_genesis(tmp_path) -> None:
    start = _slot_now()
    clock = Clock.in_slot(start)
    with _opened(tmp_path / "alice", clock) as node:
        slot = _alices_slot(start)
        clock.to_slot(slot)
        assert await node.author_block() is not None and node.chain.best_number == 1
        # Its own #1 on genesis does not count: genesis is what is left, and genesis is exempt.
        assert not node._catching_up(slot + 61)


async def test_the_catching_up_window_is_two_turns_of_every_validator_when_that_is_longer(tmp_path) -> None:
    slot_ms = 10_000  # 4 validators x 2 turns x 10 s = 80 s, over the 60 s floor
    spec = with_slot_duration(SPEC, slot_ms)
    start = int(time.time() * 1000) // slot_ms
    old = _slot_of(BOB.public, start - 40)
    block = build_sealed_chain(tmp_path, spec, [old])[1]
    clock = Clock((old + 1) * slot_ms / 1000 + 0.1)
    config = NodeConfig(chain="local", base_path=tmp_path / "alice", author="//Alice")
    node = NodeService(config, spec, clock=clock)
    assert node.slot_ms == slot_ms
    try:
        await node.import_block(block)
        assert not node._catching_up(old + 8)
        assert node._catching_up(old + 9)
    finally:
        node.close()


async def test_own_votes_from_before_the_run_raise_the_record_to_the_highest_source_and_latest_round(tmp_path, caplog) -> None:
    start = _slot_now()
    blocks = _build_on_genesis(tmp_path, [start - 40, start - 39])
    base = tmp_path / "alice"
    path = compute_record_path(base / "chains" / SPEC.id)
    low, mid, high = Checkpoint(blocks[0].hash(), 1, start - 30), Checkpoint(blocks[0].hash(), 1, start - 25), Checkpoint(blocks[1].hash(), 2, start - 23)
    store_record(path, VoterState(mid, voted_round=start - 20))
    clock = Clock.in_slot(start)
    with _opened(base, clock) as node:
        for block in blocks:
            await node.import_block(block)
        genesis = node.chain.genesis_hash

        def seen(source: Checkpoint, round_: int) -> None:
            node._check_own_vote(sign_vote(ALICE, genesis, Vote(SET_ID, source, Checkpoint(blocks[1].hash(), 2, round_))), "from a peer")
            node._records.flush()  # a raise is written off the loop, in order

        seen(high, start - 22)  # a higher source in an older round: the source is raised, the round kept
        assert load_record(path) == VoterState(high, voted_round=start - 20, genesis_hash=genesis)
        assert _warnings(caplog) == [
            f"A vote of this validator in round {start - 22} from the checkpoint #2 of round {start - 23} (from a peer) is "
            "newer than its slashing protection record (restored from an old backup?): the record is raised to it"
        ]
        seen(low, start - 10)  # a later round from a lower source: the round is raised, the source kept
        assert load_record(path) == VoterState(high, voted_round=start - 10, genesis_hash=genesis)
        seen(high, start - 15)  # neither newer: nothing to say
        seen(low, start - 10)
        assert len(_warnings(caplog)) == 2
        seen(low, start)  # in the round it started in: still its past (it does not vote in that round)
        assert load_record(path).voted_round == start  # type: ignore[union-attr]
        # Another validator's vote is no business of this check, whatever its round.
        node._check_own_vote(sign_vote(BOB, genesis, Vote(SET_ID, low, Checkpoint(blocks[1].hash(), 2, start + 5))), "from a peer")
        assert _errors(caplog) == [] and not node._signing_paused()
        # The first round after: another signer, named with where it was seen.
        seen(low, start + 1)
        assert _errors(caplog) == [
            f"Doppelganger: a vote in round {start + 1} signed with this validator's key {ss58_encode(ALICE.public)} that "
            "this node did not make (from a peer): another node signs with this key; not signing votes or blocks until "
            "restarted. Stop one of them: every round both sign, the key may be slashed"
        ]
        # A raise whose record cannot be written is kept in memory and said.
        path.unlink()
        path.mkdir()
        node._raise_record(VoterState(high, voted_round=start + 1, genesis_hash=genesis))
        node._records.flush()
        assert _warnings(caplog)[-1] == f"the slashing protection record {path} could not be written (Is a directory)"


async def test_the_doppelganger_wait_ends_once_with_one_line(tmp_path, caplog) -> None:
    caplog.set_level(logging.INFO, logger="polchain")
    start = _slot_now()
    clock = Clock.in_slot(start)
    with _opened(tmp_path / "alice", clock, doppelganger_rounds=2) as node:
        assert node._signing_paused()
        for r in (start + 3, start + 4, start + 5):
            clock.to_slot(r)
            assert not node._signing_paused()
        said = [r.getMessage() for r in caplog.records if r.getMessage().startswith("Doppelganger protection: no other")]
        assert said == [f"Doppelganger protection: no other signer of this key seen; signing from round {start + 3}"]


async def test_validators_named_for_votes_far_ahead_are_forgotten_oldest_first(tmp_path, caplog, monkeypatch) -> None:
    monkeypatch.setattr(node_service, "MAX_FAR_FUTURE_AUTHORS", 1)
    start = _slot_now()
    clock = Clock.in_slot(start)
    with _opened(tmp_path / "alice", clock) as node:
        genesis = node.chain.genesis_hash
        source = Checkpoint(genesis, 0, 0)

        async def ahead(key, rounds: int) -> None:
            with pytest.raises(InvalidVote) as refused:
                await node.add_vote(sign_vote(key, genesis, Vote(SET_ID, source, Checkpoint(genesis, 0, start + rounds))))
            assert refused.value.reason == "stale"

        await ahead(BOB, 1000)
        await ahead(CHARLIE, 5)  # Bob forgotten (the set holds one)
        await ahead(CHARLIE, 6)  # Charlie remembered: not named again
        await ahead(BOB, 7)
        named = [w.split(" are ")[0] for w in _warnings(caplog)]
        assert named == [f"Votes of {ss58_encode(k.public)}" for k in (BOB, CHARLIE, BOB)], _warnings(caplog)
        assert _warnings(caplog)[0].endswith("its clock or this node's is off by about 1000 s, and such votes are not counted")


async def test_validators_named_for_blocks_far_ahead_from_exactly_an_hour_are_forgotten_oldest_first(tmp_path, caplog, monkeypatch) -> None:
    monkeypatch.setattr(node_service, "MAX_FAR_FUTURE_AUTHORS", 1)
    bob_slot = _slot_of(BOB.public, _slot_now() + 3600)
    now = bob_slot - 3600  # Bob's block exactly an hour ahead (FAR_FUTURE_MS): named
    charlie_slot = _slot_of(CHARLIE.public, bob_slot)
    charlie_again = _slot_of(CHARLIE.public, charlie_slot)
    bob_again = _slot_of(BOB.public, charlie_again)
    blocks = [_build_on_genesis(tmp_path / str(s), [s])[0] for s in (bob_slot, charlie_slot, charlie_again, bob_again)]
    with _opened(tmp_path / "alice", Clock.in_slot(now)) as node:
        for block in blocks:
            with pytest.raises(InvalidHeader) as refused:
                await node.import_block(block)
            assert refused.value.reason == "future_slot"
        named = [e.split(" is in slot ")[0] for e in _errors(caplog)]
        assert named == [f"Block #1 by {ss58_encode(k.public)}" for k in (BOB, CHARLIE, BOB)], _errors(caplog)
        assert _errors(caplog)[0].startswith(f"Block #1 by {ss58_encode(BOB.public)} is in slot {bob_slot}, 3600 slots (1 hour")
        assert _errors(caplog)[0].endswith("(every node of a chain needs a synchronised clock); its blocks are not imported")
        forged = Block(replace_struct(blocks[1].header, seal=bytes(64)), blocks[1].body)  # Charlie's: forgotten, so checked
        with pytest.raises(InvalidHeader) as refused:
            await node.import_block(forged)
        assert refused.value.reason == "bad_seal" and str(refused.value).startswith("block #1: bad seal: ")


async def test_a_block_of_failed_note_votes_in_its_name_costs_no_signature_check(tmp_path, caplog, monkeypatch) -> None:
    # An imported block's note_votes were read for this key's votes and each checked: a
    # byzantine author could fill its block with note_votes that fail (they pay a fee) holding
    # 1,024 forged votes in one validator's name each, and that validator checked every one on
    # its event loop (about 70 ms a call). Only the note_votes that succeeded count now: the
    # runtime checked each of their votes' signatures before they did.
    spec = replace(SPEC, runtime_config=replace(SPEC.runtime_config, block_reward=10**9))  # votes are noted
    start = _slot_now()
    db = Database(tmp_path / "builder")
    try:
        builder = Blockchain(db, chain_id=spec.id, build_genesis=spec.apply_genesis)
        genesis = builder.genesis_hash
        validators = get_validators(builder.state.overlay())
        first = builder.build_block([], AUTHORS[compute_slot_author(validators, start - 20)], start - 20).block
        # In a round after the start: taken for checked, it would read as a twin's vote.
        vote = Vote(SET_ID, Checkpoint(genesis, 0, 0), Checkpoint(first.hash(), 1, start + 5))
        forged = SignedVote(vote, ALICE.public, sign_vote(dev_keypair("Ferdie"), genesis, vote).signature)
        past = sign_vote(ALICE, genesis, Vote(SET_ID, Checkpoint(genesis, 0, 0), Checkpoint(first.hash(), 1, start - 19)))
        author = AUTHORS[compute_slot_author(validators, start - 18)]
        notes = [sign_extrinsic(author, calls.NoteVotes(votes), nonce=n, genesis_hash=genesis, spec_version=SPEC_VERSION)
                 for n, votes in enumerate([(past,)] + [(forged,) * calls.MAX_NOTED_VOTES] * 3)]
        built = builder.build_block(notes, author, start - 18)
        assert [r.success for r in built.receipts] == [True] + [False] * 3, [r.error for r in built.receipts]
        blocks = [first, built.block]
    finally:
        db.close()
    node = NodeService(NodeConfig(chain="local", base_path=tmp_path / "alice", author="//Alice"),
                       spec, clock=Clock.in_slot(start))
    try:
        checks = _count_signature_checks(monkeypatch)
        for block in blocks:
            await node.import_block(block)
        assert node.chain.best_hash == blocks[-1].hash()
        assert checks == [] and _errors(caplog) == [] and not node._signing_paused()
        assert node._voter.voted_round == start - 19  # Alice's own past vote, noted, read without a second check
    finally:
        node.close()


async def test_the_catching_up_rule_reads_each_block_it_skips_once(tmp_path) -> None:
    # The rule walks down the blocks this run sealed to the newest one another node made. It
    # walked them all again every round: a validator sealing alone (a dev chain, or the others
    # offline) read every header it had sealed since its start, each round (O(blocks) a round,
    # 10,000 header reads a round after a day of 6 s blocks).
    start = _slot_now()
    clock = Clock.in_slot(start)
    with _opened(tmp_path / "alice", clock) as node:
        slot = start
        for _ in range(12):
            slot = _alices_slot(slot)
            clock.to_slot(slot)
            assert await node.author_block() is not None
        reads: list[bytes] = []
        real = node.chain.get_header

        def counted(block_hash: bytes):  # type: ignore[no-untyped-def]
            reads.append(block_hash)
            return real(block_hash)

        node.chain.get_header = counted  # type: ignore[method-assign]
        assert not node._catching_up(slot + 1)  # all its own down to genesis: exempt
        slot = _alices_slot(slot)
        clock.to_slot(slot)
        assert await node.author_block() is not None
        reads.clear()
        assert not node._catching_up(slot + 1)
        assert len(reads) <= 1, len(reads)  # the new block only, not the twelve below it again


async def test_the_catching_up_rule_finds_the_newest_block_another_node_made_below_its_own(tmp_path) -> None:
    # Below this run's own blocks, the newest block another node made is what counts: here
    # Bob's #1, long ago, so the validator is catching up, whatever it sealed since.
    start = _slot_now()
    old = _slot_of(BOB.public, start - 100)
    (bobs,) = _build_on_genesis(tmp_path, [old])
    clock = Clock.in_slot(start)
    with _opened(tmp_path / "alice", clock) as node:
        await node.import_block(bobs)
        slot = start
        for _ in range(2):
            slot = _alices_slot(slot)
            clock.to_slot(slot)
            assert await node.author_block() is not None
        assert node.chain.best_number == 3
        assert node._newest_not_sealed_here().number == 1
        assert node._catching_up(slot + 1)


# --- a validator punished for an offence ------------------------------------------------------
# Mutation testing of f0b87d7's SelfReport lines in _report_fraud (2026-11-30, mutmut 3.8.1): the
# mutants were made by the run in tests/node/test_network_transcripts.py's docstring (mutmut makes
# every module's); LevelDB hangs mutmut's forked runners, so each was applied with ``mutmut apply
# "node.service.xǁNodeServiceǁ_report_fraud__mutmut_N"`` in a scratch copy and the test below run in
# a fresh process. _report_fraud__mutmut_2..10 are on those lines: 1 of 9 killed before (``!=``), 9
# of 9 after the check of the log line below (its text, case and block: 3..10).
async def test_a_validator_punished_for_an_offence_stops_authoring_until_it_leaves(tmp_path, caplog) -> None:
    """Once a report of Alice's equivocation lands, she is disabled (chain.pallets.staking
    .is_disabled) and Aura refuses her blocks: her node leaves her slots empty instead of
    sealing blocks every peer refuses, and logs no authoring failure. The block holding the
    report is Bob's, imported as a peer's would be."""
    from chain.header import Header

    own = _alices_slot(_slot_now() + 1)
    clock = Clock.in_slot(own - 1)
    with _opened(tmp_path / "alice", clock) as node:
        chain = node.chain
        assert node._next_own_slot(own) == own
        header = Header(chain.genesis_hash, 1, b"\x01" * 32, bytes(32), 1, ALICE.public)
        twins = [seal_header(ALICE, chain.genesis_hash, replace_struct(header, state_root=r)).encode() for r in (b"\x01" * 32, b"\x02" * 32)]
        report = sign_extrinsic(
            dev_keypair("Eve"), calls.ReportEquivocation(*twins), nonce=0, genesis_hash=chain.genesis_hash, spec_version=SPEC_VERSION,
        )
        slot = next(s for s in range(1, 10) if compute_slot_author(_validators(), s) != ALICE.public)
        peer = Blockchain(Database(tmp_path / "peer"), chain_id=SPEC.id, build_genesis=SPEC.apply_genesis)
        try:
            block = peer.build_block([report], AUTHORS[compute_slot_author(_validators(), slot)], slot=slot).block
        finally:
            peer.db.close()
        (receipt,) = chain.import_block(block).receipts
        assert receipt.success, receipt.error
        assert node._next_own_slot(own) is None
        clock.to_slot(own)
        assert await node.author_block() is None
        assert node.metrics.authoring_failures._value.get() == 0
        assert chain.best_number == 1
        # Nor does her node pay for reports the runtime refuses: a fraud of her own (SelfReport,
        # whatever the block: a forger's node filed one against itself on every gossiped proof
        # of its forgery, an outside tester's finding of 2026-11-30), here in a block of another
        # fork and in a block of this chain (genesis stands in for one: the only block whose
        # hash this state names here).
        caplog.set_level(logging.INFO, logger="polchain")
        node._report_fraud(b"\x00" * 64, bytes(32), ALICE.public)
        node._report_fraud(b"\x01" * 64, chain.genesis_hash, ALICE.public)
        assert node.pool.status().ready == 0
        # ... and says so, naming the block (kills the log line's mutants of the f0b87d7 run below).
        assert [r.getMessage() for r in caplog.records if r.name == "polchain" and "this node's own" in r.msg] == [
            f"Not reporting the fraud in block 0x{h.hex()[:12]}…: it is this node's own" for h in (bytes(32), chain.genesis_hash)
        ]
        # Another's fraud it does report: the node submits it, and (the 64 bytes standing in for
        # a proof do not decode) the pool refuses it at admission, as any pool would.
        node._report_fraud(b"\x00" * 64, bytes(32), dev_keypair("Bob").public)
        assert _submitted_and_refused(caplog, 1)
    with _opened(tmp_path / "bob", clock, author="//Bob") as bob:
        (receipt,) = bob.chain.import_block(block).receipts
        assert receipt.success, receipt.error
        # Bob's node does not report a fraud of punished Alice in a block of another fork
        # (AlreadyPunished), but does in a block of this chain: it is proven whoever its author
        # and voids a bounty claim resting on it.
        bob._report_fraud(b"\x00" * 64, bytes(32), ALICE.public)
        assert _submitted_and_refused(caplog, 1)  # (Alice's node's one, above)
        bob._report_fraud(b"\x01" * 64, bob.chain.genesis_hash, ALICE.public)
        assert _submitted_and_refused(caplog, 2)


def _submitted_and_refused(caplog, count: int) -> bool:
    """Whether the nodes submitted ``count`` fraud reports so far, each refused by the pool at
    admission as its stand-in proof does not decode (Runtime.verify_admissible)."""
    refused = [r.getMessage() for r in caplog.records if r.getMessage().startswith("could not submit pol.report_fraud: ")]
    return len(refused) == count and all(": pol.InvalidFraudProof: " in m for m in refused)


async def test_an_author_leaves_out_a_report_another_report_made_stale(tmp_path) -> None:
    """Eve's and Ferdie's reports of Bob's equivocation wait in Alice's pool when her slot
    comes: her block includes the first only, the second is dropped from her pool, and
    Ferdie pays nothing (pol.STALE_REPORT_ERRORS; before, it was included, failed with
    DuplicateReport and cost Ferdie its fee: an outside tester's finding, round 6a)."""
    from chain.header import Header
    from chain.pallets import balances

    own = _alices_slot(_slot_now() + 1)
    clock = Clock.in_slot(own - 1)
    with _opened(tmp_path / "alice", clock) as node:
        chain = node.chain
        bob = dev_keypair("Bob")
        header = Header(chain.genesis_hash, 1, b"\x01" * 32, bytes(32), 1, bob.public)
        twins = [seal_header(bob, chain.genesis_hash, replace_struct(header, state_root=r)).encode() for r in (b"\x01" * 32, b"\x02" * 32)]
        reports = [
            sign_extrinsic(
                dev_keypair(name), calls.ReportEquivocation(*twins), nonce=0, genesis_hash=chain.genesis_hash, spec_version=SPEC_VERSION,
            )
            for name in ("Eve", "Ferdie")
        ]
        for report in reports:
            node.submit(report.encode())
        assert node.pool.status().ready == 2
        ferdie = balances.get_account(chain.state.overlay(), dev_keypair("Ferdie").public)
        clock.to_slot(own)
        imported = await node.author_block()
        assert imported is not None
        outcomes = {r.hash: r.success for r in imported.receipts}
        assert outcomes.get(reports[0].hash()) is True
        assert reports[1].hash() not in {r.hash for r in imported.receipts}
        assert node.pool.status().ready == 0
        assert balances.get_account(chain.state.overlay(), dev_keypair("Ferdie").public) == ferdie


async def test_the_last_enabled_validator_goes_on_voting_while_it_authors_alone(tmp_path) -> None:
    """Bob, Charlie and Dave are reported in one block (Bob's), so Alice is the only validator
    not disabled, and she authors every block. A node does not vote while the newest block
    another node made is more than a minute old (catching up, _catching_up); here no other
    node may make one, and she stopped voting for good a minute after the reports: finality
    stalled (a reviewer's finding). She votes on."""
    from chain.header import Header

    start = _slot_now() + 1
    clock = Clock.in_slot(start)
    with _opened(tmp_path / "alice", clock) as node:
        chain = node.chain
        eve = dev_keypair("Eve")
        reports = []
        for nonce, name in enumerate(("Bob", "Charlie", "Dave")):
            key = dev_keypair(name)
            header = Header(chain.genesis_hash, 1, b"\x01" * 32, bytes(32), 1, key.public)
            twins = [seal_header(key, chain.genesis_hash, replace_struct(header, state_root=r)).encode() for r in (b"\x01" * 32, b"\x02" * 32)]
            reports.append(sign_extrinsic(
                eve, calls.ReportEquivocation(*twins), nonce=nonce, genesis_hash=chain.genesis_hash, spec_version=SPEC_VERSION,
            ))
        slot = next(s for s in range(start, start + 8) if compute_slot_author(_validators(), s) == dev_keypair("Bob").public)
        peer = Blockchain(Database(tmp_path / "peer"), chain_id=SPEC.id, build_genesis=SPEC.apply_genesis)
        try:
            block = peer.build_block(reports, dev_keypair("Bob"), slot=slot).block
        finally:
            peer.db.close()
        clock.to_slot(slot)
        assert all(r.success for r in chain.import_block(block).receipts)
        assert node._authors_alone()
        slots_in_a_catch_up = node_service.CATCH_UP_MS // SLOT_MS
        own = slot
        while own - slot <= slots_in_a_catch_up + 8:
            own = _alices_slot(own)
            clock.to_slot(own)
            assert await node.author_block() is not None
        assert not node._catching_up(own + 1), "the only author stopped voting"


async def test_a_database_failure_is_one_line_a_bug_keeps_its_traceback(tmp_path, caplog) -> None:
    """A full disk made every slot log a whole traceback under its one-line cause (an outside
    tester's finding, round 4). A database error is logged as its message alone, each slot it
    lasts; any other exception is a bug and keeps its traceback. The database error here is a
    real one: the node's database closed under it."""
    own = _alices_slot(_slot_now() + 1)
    clock = Clock.in_slot(own - 1)  # (a node does not author in the slot it started in)
    with _opened(tmp_path / "alice", clock) as node:
        clock.to_slot(own)

        async def broken() -> None:
            raise RuntimeError("a bug")

        real = node.author_block
        node.author_block = broken  # type: ignore[method-assign]
        await node._author_slot()
        node.author_block = real  # type: ignore[method-assign]
        node.db.close()
        await node._author_slot()
        failures = [r for r in caplog.records if r.getMessage().startswith("Authoring failed in this slot")]
        assert [bool(r.exc_info) for r in failures] == [True, False]
        assert failures[1].getMessage() == (
            "Authoring failed in this slot; trying again in the next: "
            f"database at {str(tmp_path / 'alice' / 'chains' / SPEC.id / 'db')!r} is closed"
        )
        assert node.metrics.authoring_failures._value.get() == 2


async def test_an_author_woken_slots_late_skips_that_slot_and_syncs_first(tmp_path, caplog) -> None:
    """A validator stopped for a while (SIGSTOP, a paused VM) sealed a block on its stale best
    the moment it resumed, before its peers' blocks reached it: a wasted block and a reorg
    each time (an outside tester's F3, round 13). Its slot timer, woken STALL_SLOTS slots or
    more after it was due, now skips that slot; a timer woken less late authors."""
    late = _alices_slot(_slot_now() + 8)
    clock = Clock.in_slot(late)
    with _opened(tmp_path / "alice", clock) as node:
        with caplog.at_level(logging.INFO, logger="polchain"):
            await node._author_slot((late - STALL_SLOTS) * SLOT_MS)  # due STALL_SLOTS slots ago
        assert node.chain.best_number == 0
        assert any("woken 2.1 s late" in r.getMessage() for r in caplog.records)
        on_time = _alices_slot(late + 1)
        clock.to_slot(on_time)
        await node._author_slot((on_time - 1) * SLOT_MS)  # a slot and a bit late: it authors
        assert node.chain.best_number == 1 and node.chain.best_header.slot == on_time

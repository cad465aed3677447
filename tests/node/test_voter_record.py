"""A validator's finality record (its source and last voted round) outlives its database.

Casper FFG slashes a validator for a *surround vote*: a vote whose (source round, target
round) strictly contains one of its earlier votes (consensus/finality.py). An honest
validator avoids it by never lowering its source; the source and the last round it voted in
are its slashing protection. Kept in the chain database, they were deleted by
``polchain purge-chain`` (or lost with the disk, or left behind when a validator moves to a
new machine): the restarted validator voted from genesis, or from whatever checkpoint its
sync had reached, while the network was far past it, and each such vote surrounded the
votes it had cast before: an honest operator's routine command got them slashed. Found by
asking what a purge does to a live 4-validator devnet (node/service.py keeps the record in
``voter_state`` beside the database now).
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import replace

import msgspec
import pytest
from netkit import FAST, build_sealed_chain, start_node, wait_for

from chain.block import Block
from chain.codec import CodecError, decode
from chain.crypto import dev_keypair
from consensus.finality import (
    SET_ID,
    Checkpoint,
    Justification,
    SignedVote,
    Vote,
    VoterState,
    sign_vote,
)
from genesis.spec import load_chain_spec
from node.cli import main as cli_main
from node.network.messages import BlockData
from node.service import NodeConfig, NodeService
from node.voter_record import VoterRecordError, adopt_chain_records, load_record, store_record

SLOT_MS = 500
# No challenge window, so that a vote has a target as soon as the node has a block: this
# test is about the source (the window is tests/consensus/test_finality_window.py).
_LOCAL = load_chain_spec("local")
SPEC = replace(_LOCAL, runtime_config=replace(_LOCAL.runtime_config, challenge_blocks=0, slot_duration_ms=SLOT_MS))
SOURCE_ROUND = 6  # the justified checkpoint's round before the purge


def _justification(target: Block, genesis: bytes) -> bytes:
    """Bob's, Charlie's and Dave's votes (3 of 4) for the link (target, SOURCE_ROUND) -> the next round."""
    source = Checkpoint(target.hash(), target.header.number, SOURCE_ROUND)
    vote = Vote(SET_ID, source, Checkpoint(target.hash(), target.header.number, SOURCE_ROUND + 1))
    votes = tuple(sign_vote(dev_keypair(n), genesis, vote) for n in ("Bob", "Charlie", "Dave"))
    return Justification(target.hash(), target.header.number, SET_ID, SOURCE_ROUND + 1, source, votes).encode()


def _alices_votes(payloads: list[bytes]) -> list[Vote]:
    """Alice's votes among what the peer was sent (votes and justifications share its list)."""
    alice = dev_keypair("Alice").public
    out = []
    for raw in payloads:
        try:
            signed = decode(raw, SignedVote)
        except CodecError:
            continue
        if signed.voter == alice:
            out.append(signed.vote)
    return out


async def test_a_purged_validator_never_votes_from_a_lower_source(tmp_path, caplog) -> None:
    first = int(time.time() * 1000) // SLOT_MS - 20
    blocks = build_sealed_chain(tmp_path, SPEC, range(first, first + 6))
    genesis = blocks[0].hash()
    attached = {blocks[3].hash(): _justification(blocks[3], genesis)}
    base = tmp_path / "alice"
    config = NodeConfig(chain="local", base_path=base, author="//Alice", network=FAST)
    peer = await start_node(genesis=genesis, blocks=1)
    serve = peer.serve

    async def serve_with_justification(who, req):  # type: ignore[no-untyped-def]
        return [BlockData(d.block, attached.get(d.block.hash())) for d in await serve(who, req)]

    peer.service.handlers.serve_block_request = serve_with_justification

    async def run_alice(blocks_served: list[Block], until) -> list[Vote]:  # type: ignore[no-untyped-def]
        """Alice's node on ``base`` with the peer serving ``blocks_served``; her votes once ``until()``."""
        peer.blocks = blocks_served
        peer.votes.clear()
        node = NodeService(config, SPEC)
        run = asyncio.create_task(node.run())
        try:
            await wait_for(lambda: node.network is not None and bool(node.network.listen_addresses))
            assert node.network is not None
            await peer.service.dial(node.network.listen_addresses[0])
            await wait_for(until, 10)
            return _alices_votes(peer.votes)
        finally:
            node.request_stop()
            await run

    try:
        # Before: Alice syncs the six blocks, finalizes #3 by the justification, and votes
        # from it (source round 6 or 7; a vote in a round that came before the justification
        # was imported has genesis as its source).
        before = await run_alice(blocks, lambda: any(v.source.round >= SOURCE_ROUND for v in _alices_votes(peer.votes)))
        floor = max(v.source.round for v in before)

        # The operator purges the chain (the database only: keys and secrets stay) and
        # restarts; the one peer serves only genesis and #1 for now (a sync far from done).
        assert cli_main(["purge-chain", "--chain", "local", "--base-path", str(base), "-y"]) == 0
        started = time.monotonic()
        during = await run_alice(blocks[:2], lambda: time.monotonic() - started > 6 * SLOT_MS / 1000)
        # Each of these would surround a vote of `before`: a slashable offence.
        assert [(v.source.round, v.source.block_number, v.target.round, v.target.block_number) for v in during if v.source.round < floor] == [], floor
        assert during == []  # no vote at all: the source it keeps is a block it has not synced yet
        # ... and it says so, above DEBUG: after a relaunch of the whole network from genesis no
        # sync ever reaches that source, and the node waited for good in silence (an outside
        # tester's F5, round 12).
        warned = [r for r in caplog.records if r.levelname == "WARNING" and "No finality vote: the slashing-protection record" in r.getMessage()]
        assert warned and f"names source #{blocks[3].header.number} 0x{blocks[3].hash().hex()}" in warned[0].getMessage()

        # Once the sync reaches the source, Alice votes again, from it or above.
        after = await run_alice(blocks, lambda: bool(_alices_votes(peer.votes)))
        assert after and all(v.source.round >= floor for v in after), after
    finally:
        await peer.service.stop()


def test_the_record_round_trips_and_a_damaged_one_is_refused_by_name(tmp_path, capsys) -> None:
    path = tmp_path / "chains" / SPEC.id / "keystore" / "slashing_protection"
    assert load_record(path) is None
    state = VoterState(Checkpoint(bytes(range(32)), 7, 9), 12)
    store_record(path, state)
    assert load_record(path) == state
    assert path.stat().st_mode & 0o777 == 0o600
    assert [p.name for p in path.parent.iterdir()] == ["slashing_protection"]  # no temporary left behind

    for data, problem in ((b"\x92\x01", "damaged"), (b"", "damaged"), (bytes(2000), "1025 bytes or more, at most 1024")):
        path.write_bytes(data)
        with pytest.raises(VoterRecordError, match=problem) as err:
            load_record(path)
        assert str(path) in str(err.value)
        # The node refuses to start on it, in one line, and leaves the file as it was.
        code = cli_main(["node", "--chain", "local", "--base-path", str(tmp_path), "--rpc-port", "0", "--no-prometheus"])
        assert code == 1
        err_lines = capsys.readouterr().err.strip().splitlines()
        assert err_lines[-1].startswith(f"Error: the slashing protection record {path} is damaged"), err_lines
        assert path.read_bytes() == data

    # A record that cannot be read at all (a directory in its place) is named too, never taken as none.
    path.unlink()
    path.mkdir()
    with pytest.raises(VoterRecordError, match=f"cannot read the slashing protection record {path}: Is a directory"):
        load_record(path)


# --- adopting the records of the same chain under other spec ids (node.voter_record) -------------
# Mutation testing of node/voter_record.py and node/durable_file.py (``mutmut run
# "node.voter_record*" "node.durable_file*"``, as configured in pyproject.toml) left 42 of 189
# mutants alive before the tests below and test_secret_files.py's last three: the merge of two
# records (never run), the siblings that are not adopted, the genesis stamp, the messages,
# create_private_file's answer, the temporary's flags and its removal after a failed write.
# The 7 left are equivalent: ``len(data) >= MAX_RECORD_BYTES`` (a file of exactly 1,024 bytes
# is refused either way, only the detail differs: a record encodes in under 100 bytes); in
# durable_file, the temporary's name length (token_hex(8) or other), ``suppress(None)``
# around unlinking a temporary that exists at that point (three places), and ``O_RDONLY &
# O_DIRECTORY`` (Linux opens a directory read-only either way).

GENESIS, OTHER = bytes([1]) * 32, bytes([2]) * 32


def _record(chains, spec_id: str, state: VoterState | bytes) -> None:
    path = chains / spec_id / "keystore" / "slashing_protection"
    if isinstance(state, bytes):
        path.parent.mkdir(parents=True)
        path.write_bytes(state)
    else:
        store_record(path, state)


def test_records_of_the_same_chain_under_other_ids_are_merged_to_the_highest_source_round_and_slot(tmp_path, caplog) -> None:
    chains = tmp_path / "chains"
    own = VoterState(Checkpoint(bytes([5]) * 32, 50, 5), voted_round=9, authored_slot=20, genesis_hash=None)  # from before genesis was kept
    _record(chains, "a_damaged", b"\xff")  # sorted first: skipped with a warning, the rest still read
    _record(chains, "b_other_chain", VoterState(Checkpoint(bytes([9]) * 32, 90, 99), 99, 99, OTHER))
    (chains / "c_no_record").mkdir(parents=True)  # a chain directory without a record
    (chains / "d_a_file").write_bytes(b"not a chain directory")
    _record(chains, "e_renamed", VoterState(Checkpoint(bytes([7]) * 32, 70, 7), voted_round=8, authored_slot=25, genesis_hash=GENESIS))
    _record(chains, "f_renamed_again", VoterState(Checkpoint(bytes([6]) * 32, 60, 6), voted_round=11, authored_slot=3, genesis_hash=GENESIS))
    chain_dir = chains / "mine"
    _record(chains, "mine", own)
    with caplog.at_level("WARNING", logger="polchain"):
        merged = adopt_chain_records(chain_dir, GENESIS, own)
    # The higher source (round 7 of e_renamed; round 6 < 7), the latest round (11) and slot (25),
    # stamped with this chain's genesis; nothing of the other chain's record.
    assert merged == VoterState(Checkpoint(bytes([7]) * 32, 70, 7), voted_round=11, authored_slot=25, genesis_hash=GENESIS)
    warnings = [r.getMessage() for r in caplog.records]
    assert len(warnings) == 3, warnings  # one skipped, two adopted; not mine, not the file, not the other chain
    assert "a_damaged" in warnings[0] and "is damaged" in warnings[0]
    assert warnings[0].endswith("has not voted on this chain (not adopted: it may be of this chain)")
    for warning, spec_id in zip(warnings[1:], ("e_renamed", "f_renamed_again"), strict=True):
        assert f"(genesis 0x{GENESIS.hex()[:12]}…, spec id {spec_id!r})" in warning
        assert warning.endswith(f"rounds and slots are kept in {chain_dir / 'keystore' / 'slashing_protection'}")
    # Alone, an old record is stamped with the genesis; none stays none; a base path with no
    # chains directory yet adopts nothing.
    assert adopt_chain_records(tmp_path / "empty" / "chains" / "mine", GENESIS, own) == msgspec.structs.replace(own, genesis_hash=GENESIS)
    assert adopt_chain_records(tmp_path / "empty" / "chains" / "mine", GENESIS, None) is None


def test_a_record_of_another_genesis_under_this_id_is_refused_with_what_to_do(tmp_path) -> None:
    chain_dir = tmp_path / "chains" / "local"
    theirs = VoterState(Checkpoint(bytes(32), 0, 0), genesis_hash=OTHER)
    with pytest.raises(VoterRecordError) as err:
        adopt_chain_records(chain_dir, GENESIS, theirs)
    assert str(err.value).endswith(
        "keep the record while that chain runs (move it aside), or give this spec another id"
    ), err.value


def test_the_damaged_record_message_says_when_deleting_it_is_safe(tmp_path) -> None:
    path = tmp_path / "slashing_protection"
    path.write_bytes(b"\x92")
    with pytest.raises(VoterRecordError) as err:
        load_record(path)
    assert str(err.value).endswith(
        "without it this validator could vote twice in a round or surround its own votes; restore it, or delete it "
        "only if this key has not voted on this chain"
    ), err.value


def test_the_record_directory_is_created_private(tmp_path) -> None:
    path = tmp_path / "chains" / "local" / "keystore" / "slashing_protection"
    store_record(path, VoterState(Checkpoint(bytes(32), 0, 0)))
    assert path.parent.stat().st_mode & 0o777 == 0o700

"""Federated rounds through real blocks: an honest three-party round end to end (a second node
imports every block), and each cheating strategy caught or excluded. apply_close_round was
mutation-tested on 2026-11-30 (266/283; the survivors are explained in the docstring of
tests/chain/test_bounties.py): the events' fields and a round failed at close are asserted here.

Mutation testing of the lines 550c116 and c910e62 changed (2026-11-30, 08:38-09:05 UTC; the
mutants of that run were made and run as the docstring of tests/chain/test_pallet_pol.py says). Tests: _verify_open with
tests/chain/test_federated_pallet.py and this file; _apply_fail_round with this file and
test_federated_pallet.py; _verify_base_not_forged, apply_open_round's call of it,
apply_close_round's forged-base branch and apply_commit_update's counted samples with this
file's ``-k "forged or sample_total"``. Killed/total, before -> after the tests added then (each
watched failing on its mutants): _verify_open (the reveal window) 49/52 -> 52/52,
_apply_fail_round 29/31, _verify_base_not_forged 20/20, apply_open_round 6/6, apply_close_round
20/21 -> 21/21, apply_commit_update 18/20 -> 20/20. Killed then: half a block's weight taken as
a third, and either of its two divisions made a true one (test_federated_pallet.py's
test_a_reveal_window_bound_by_weight_counts_whole_reveals_a_block: 2.5 reveals a block of
weight, 8 blocks needed, the refusal matched whole); the sample bound's ``>=`` for ``>`` and
``total - counted`` (the bound met exactly and passed by one, in
test_a_rounds_sample_total_adds_what_each_update_counts_for). apply_close_round's ``made is not
None or is_forged(...)`` (every round with a base version, so every round, failed at close)
survived the ``-k`` selection only: test_honest_three_party_round_end_to_end kills it. The 2
survivors are equivalent: _apply_fail_round's ``None`` for PALLET in the owner's release and in
the burn of the forfeited bonds: balances names the pallet only in HeldShortfall, raised when
the escrow holds less than it gives up, which its accounting never allows (it holds every open
round's pool and bonds)."""

from __future__ import annotations

import numpy as np
import pytest
from chainkit import ALICE
from fedkit import (
    BOB,
    CHARLIE,
    DAVE,
    EVE,
    FERDIE,
    Driver,
    Participant,
    accuracy,
    open_call,
    replace,
    split_digits,
)

import ml_runtime
from chain import calls
from chain.pallets import balances, federated, models
from ml_runtime import twins


def _free(chain, key) -> int:
    return balances.get_account(chain.state.overlay(), key.public).free


def test_honest_three_party_round_end_to_end(chains) -> None:
    chain, follower = chains
    d = Driver(chain, follower)
    shares, (x_test, y_test) = split_digits(3, seed=11)
    people = [Participant(k, x, y) for k, (x, y) in zip((BOB, CHARLIE, DAVE), shares, strict=True)]
    state = chain.state.overlay()
    spec = models.decode_spec(models.get_model(state, 0).spec)
    base = models.get_weights(state, 0, 0)

    owner_before = _free(chain, ALICE)
    d.ok(ALICE, open_call(min_updates=3, reward_pool=9 * 10**9 + 7))
    assert federated.get_round(chain.state.overlay(), 0).status == federated.OPEN
    commits = [p.train(chain, 0) for p in people]
    fees: dict[bytes, int] = {p.key.public: 0 for p in people}
    before = {p.key.public: _free(chain, p.key) for p in people}
    for p, c in zip(people, commits, strict=True):
        fees[p.key.public] += d.ok(p.key, c).fee
    d.until(5)  # the commit deadline
    d.ok(EVE, calls.ChallengeRound(0))
    info = federated.get_round(chain.state.overlay(), 0)
    assert info.status == federated.REVEALING and info.challenge_seed is not None
    # The seed depends on the commit deadline's block, not on who challenged or when.
    assert info.challenge_seed == federated.compute_challenge_seed(0, chain.get_hash(info.commit_deadline))
    for p in people:
        challenged = federated.compute_challenged(info, p.key.public)
        assert len(challenged) == 2
        for reveal in p.reveals(chain, 0):
            fees[p.key.public] += d.ok(p.key, reveal).fee
        assert federated.UPDATES.get(chain.state.overlay(), 0, p.key.public).status == federated.ACCEPTED
    # Every update is decided, so the round may close before its reveal deadline.
    receipt = d.ok(FERDIE, calls.CloseRound(0))
    state = chain.state.overlay()
    info = federated.get_round(state, 0)
    assert info.status == federated.CLOSED and info.new_version == 1

    # The new version is FedAvg of the three updates in ascending account order, bit for bit
    # against the NumPy twin.
    order = sorted(people, key=lambda p: p.key.public)
    stacked = np.stack([np.asarray(p.result.weights, dtype=np.float32) for p in order])
    counts = np.array([len(p.leaves) for p in order], dtype=np.int64)
    expected, status = twins.fedavg(stacked, counts, int(counts.sum()))
    assert status == -1
    aggregate = models.get_weights(state, 0, 1)
    assert aggregate.tobytes() == expected.tobytes()
    version = models.VERSIONS.get(state, 0, 1)
    assert version.parent == 0 and version.training is None and version.weights_hash == ml_runtime.hash_weights(aggregate)
    lineage = federated.LINEAGE.get(state, 0, 1)
    assert lineage.round == 0
    assert [e.participant for e in lineage.entries] == [p.key.public for p in order]
    assert [e.data_root for e in lineage.entries] == [ml_runtime.compute_merkle_root(p.leaves) for p in order]
    assert [e.transcript_root for e in lineage.entries] == [p.result.transcript.root for p in order]

    # Rewards in proportion to samples (floor), bonds back, the remainder to the owner, escrow empty.
    pool, total = 9 * 10**9 + 7, int(counts.sum())
    rewards = {p.key.public: pool * len(p.leaves) // total for p in people}
    for p in people:
        assert _free(chain, p.key) == before[p.key.public] - fees[p.key.public] + rewards[p.key.public]
        assert federated.UPDATES.get(state, 0, p.key.public).reward == rewards[p.key.public]
    assert _free(chain, ALICE) > owner_before - pool  # the owner got the remainder (and block fees)
    assert balances.get_account(state, federated.ESCROW_ACCOUNT).free == 0
    events = [e.name for e in receipt.events]
    assert events.count("RewardPaid") == 3 and "RoundClosed" in events
    paid = [dict(e.args) for e in receipt.events if (e.pallet, e.name) == ("federated", "RewardPaid")]
    assert paid == [{"round": 0, "participant": "0x" + p.key.public.hex(), "amount": rewards[p.key.public]} for p in order]
    closed = [dict(e.args) for e in receipt.events if (e.pallet, e.name) == ("federated", "RoundClosed")]
    assert closed == [{
        "round": 0, "model": 0, "version": 1, "accepted": 3, "excluded": 0, "excused": 0,
        "weights_hash": "0x" + ml_runtime.hash_weights(aggregate).hex(),
    }]

    # The aggregate is better than the base version on held-out rows.
    assert accuracy(spec, aggregate, x_test, y_test) > accuracy(spec, base, x_test, y_test) + 0.3


def _forge_transcript(base: np.ndarray, segments: int, seed: int) -> ml_runtime.JobResult:
    """Checkpoints that no training produced: the base version, then noise, but a consistent
    transcript (its root, paths and losses all check out at commit)."""
    rng = np.random.default_rng(seed)
    checkpoints = [base] + [
        (base + rng.normal(0, 0.05, base.shape)).astype(np.float32) for _ in range(segments)
    ]
    entries = [ml_runtime.TranscriptEntry(0, ml_runtime.hash_weights(base), 0.0)] + [
        ml_runtime.TranscriptEntry(j, ml_runtime.hash_weights(w), 1.5) for j, w in enumerate(checkpoints[1:], 1)
    ]
    return ml_runtime.JobResult(checkpoints[-1], tuple(checkpoints), ml_runtime.Transcript.build(entries), True)


def test_cheaters_are_caught_or_excluded(chains) -> None:
    chain, _ = chains
    d = Driver(chain)
    shares, _ = split_digits(5, seed=5)
    honest = Participant(BOB, *shares[0])
    faker = Participant(CHARLIE, *shares[1])  # fake weights: a forged transcript
    wrong_data = Participant(DAVE, *shares[2])  # trains on rows other than those committed
    silent = Participant(EVE, *shares[3])  # never reveals
    copier = Participant(FERDIE, *shares[4])  # reuses Bob's update
    d.ok(ALICE, open_call(min_updates=1, commit_deadline=9, reveal_deadline=20))
    state = chain.state.overlay()
    info = federated.get_round(state, 0)
    base = models.get_weights(state, 0, 0)

    d.ok(BOB, honest.train(chain, 0))
    honest_commit = honest.train(chain, 0)

    faker.train(chain, 0)  # for its leaves
    faker.result = _forge_transcript(base, info.segments, seed=1)
    d.ok(CHARLIE, federated.compute_commit(0, ml_runtime.compute_merkle_root(faker.leaves), len(faker.leaves), len(faker.leaves), faker.result))

    # Dave commits to his rows but trains on the same rows with shifted labels.
    committed_leaves = federated.compute_row_leaves(models.decode_spec(models.get_model(state, 0).spec), wrong_data.x, wrong_data.y)
    wrong_data.y = (wrong_data.y + 1) % 10
    commit = wrong_data.train(chain, 0)
    d.ok(DAVE, replace(commit, data_root=ml_runtime.compute_merkle_root(committed_leaves)))

    d.ok(EVE, silent.train(chain, 0))

    # The copier resubmits Bob's update, and gets Bob's rows too (collusion). The commit is
    # accepted (refusing copies would let a copier front-run Bob and lock him out) but cannot
    # survive its challenge: its batches are seeded by Ferdie's account, not Bob's.
    d.ok(FERDIE, honest_commit)
    copier.result, copier.leaves = honest.result, honest.leaves
    # Faking Bob's weights under another transcript fails at commit: entry S is pinned.
    own = Participant(FERDIE, *shares[4]).train(chain, 0)
    d.fails(ALICE, replace(own, weights=honest_commit.weights), "BadTranscriptProof")
    d.until(9)
    d.ok(ALICE, calls.ChallengeRound(0))
    for reveal in honest.reveals(chain, 0):
        d.ok(BOB, reveal)
    receipt = d.ok(FERDIE, copier.reveals(chain, 0)[0])
    assert [e.name for e in receipt.events][:1] == ["UpdateExcluded"]
    # The faker's first challenged segment re-runs to other bits: excluded at once, bond forfeited.
    receipt = d.ok(CHARLIE, faker.reveals(chain, 0)[0])
    assert [e.name for e in receipt.events][:1] == ["UpdateExcluded"]
    update = federated.UPDATES.get(chain.state.overlay(), 0, CHARLIE.public)
    assert update.status == federated.EXCLUDED and "does not re-run" in update.reason
    d.fails(CHARLIE, faker.reveals(chain, 0)[1], "UpdateDecided")
    # Dave's revealed rows (what he trained on) are not under his data root.
    error = d.fails(DAVE, wrong_data.reveals(chain, 0)[0], "BadRowProof")
    assert "is not under the data root" in error
    # Revealing the committed rows instead re-runs to other bits: excluded.
    wrong_data.leaves = committed_leaves
    d.ok(DAVE, wrong_data.reveals(chain, 0)[0])
    assert federated.UPDATES.get(chain.state.overlay(), 0, DAVE.public).status == federated.EXCLUDED

    d.fails(FERDIE, calls.CloseRound(0), "TooEarly")  # Eve has not revealed; the deadline is ahead
    d.until(19)
    d.fails(FERDIE, calls.CloseRound(0), "TooEarly")  # in block 20, the reveal deadline: Eve may still reveal in it
    d.until(20)
    bob_before = _free(chain, BOB)
    receipt = d.ok(FERDIE, calls.CloseRound(0))
    state = chain.state.overlay()
    silent_update = federated.UPDATES.get(state, 0, EVE.public)
    assert silent_update.status == federated.EXCLUDED and "revealed 0 of 2" in silent_update.reason
    info = federated.get_round(state, 0)
    assert info.status == federated.CLOSED and info.forfeited == 4 * info.bond
    # Bob alone is accepted: the new version is his update bit for bit, and he is paid the
    # whole pool plus the four forfeited bonds, and his bond back.
    assert models.get_weights(state, 0, 1).tobytes() == np.asarray(honest.result.weights, np.float32).tobytes()
    assert _free(chain, BOB) == bob_before + info.bond + info.reward_pool + 4 * info.bond
    assert [e.participant for e in federated.LINEAGE.get(state, 0, 1).entries] == [BOB.public]
    assert balances.get_account(state, federated.ESCROW_ACCOUNT).free == 0
    assert sum(e.name == "UpdateExcluded" for e in receipt.events) == 1
    excluded = [dict(e.args) for e in receipt.events if (e.pallet, e.name) == ("federated", "UpdateExcluded")]
    assert excluded == [{
        "round": 0, "participant": "0x" + EVE.public.hex(), "reason": "revealed 0 of 2 challenged segments by the deadline",
        "bond_forfeited": info.bond,
    }]


def test_a_round_with_too_few_updates_accepted_fails_at_close(chains) -> None:
    """Two commit and one never reveals: at the deadline it is excluded (its bond forfeited),
    and the one update accepted is fewer than min_updates, so the round fails at close: no
    version, the accepted update's bond back, the pool back to the owner, the forfeited bond
    burned (the issuance falls by it; it went to the owner, who sets the round's parameters:
    an outside tester's finding, round 7), the escrow empty, each step an event naming it."""
    chain, _ = chains
    d = Driver(chain)
    shares, _ = split_digits(2, seed=3)
    bob, eve = Participant(BOB, *shares[0]), Participant(EVE, *shares[1])
    d.ok(ALICE, open_call(min_updates=2))
    for p in (bob, eve):
        d.ok(p.key, p.train(chain, 0))
    d.until(5)
    d.ok(FERDIE, calls.ChallengeRound(0))
    for reveal in bob.reveals(chain, 0):
        d.ok(BOB, reveal)
    d.until(20)
    info = federated.get_round(chain.state.overlay(), 0)
    owner, bob_free = _free(chain, ALICE), _free(chain, BOB)
    issuance = balances.TOTAL_ISSUANCE.get(chain.state.overlay())
    receipt = d.ok(FERDIE, calls.CloseRound(0))
    state = chain.state.overlay()
    assert [(e.name, dict(e.args)) for e in receipt.events if e.pallet == "federated"] == [
        ("UpdateExcluded", {
            "round": 0, "participant": "0x" + EVE.public.hex(), "reason": "revealed 0 of 2 challenged segments by the deadline",
            "bond_forfeited": info.bond,
        }),
        ("RoundFailed", {"round": 0, "reason": "1 updates accepted, 2 needed", "bonds_burned": info.bond}),
    ]
    assert balances.TOTAL_ISSUANCE.get(state) == issuance - info.bond
    assert federated.get_round(state, 0).status == federated.FAILED
    assert models.get_model(state, 0).latest_version == 0
    assert _free(chain, BOB) == bob_free + info.bond
    author_share = _free(chain, ALICE) - owner - info.reward_pool  # Alice authors the block too
    assert 0 <= author_share <= receipt.fee
    assert balances.get_account(state, federated.ESCROW_ACCOUNT).free == 0


@pytest.mark.parametrize("family", ["linear", "mlp"])
def test_every_model_family_re_runs_over_revealed_rows_only(chains, family: str) -> None:
    """The validator's data array holds only the revealed rows (zeros elsewhere); the kernels
    of every family read only the rows a batch names, so the segments re-run to the bits."""
    chain, follower = chains
    d = Driver(chain, follower)
    spec = ml_runtime.ModelSpec(family, 64, 10, 16 if family == "mlp" else 0)
    d.ok(ALICE, calls.RegisterModel(f"fl-{family}", spec.encode(), bytes(range(32))))
    shares, _ = split_digits(2, seed=4)
    people = []
    for key, (x, y) in zip((BOB, CHARLIE), shares, strict=True):
        target = np.eye(10, dtype=np.float32)[y] if family == "linear" else y
        people.append(Participant(key, x, target))
    lr = 0.05 if family == "linear" else 0.5
    _revealed_round(d, chain, people, open_call(model=1, lr=calls.compute_f32_bits(lr), samples=3, min_updates=2))
    d.ok(EVE, calls.CloseRound(0))
    state = chain.state.overlay()
    assert federated.get_round(state, 0).status == federated.CLOSED
    expected = twins.fedavg(
        np.stack([np.asarray(p.result.weights, np.float32) for p in sorted(people, key=lambda p: p.key.public)]),
        np.array([len(p.leaves) for p in sorted(people, key=lambda p: p.key.public)], dtype=np.int64),
        sum(len(p.leaves) for p in people),
    )[0]
    assert models.get_weights(state, 1, 1).tobytes() == expected.tobytes()


def test_a_declared_sample_count_counts_at_most_the_rows_the_job_draws(chains) -> None:
    """FedAvg's weights and the pool's split used the sample count each participant declared,
    up to its own row count: Eve tiled 64 rows to the most a commit admits and took 98.85% of
    the pool and of the aggregate (an outside tester's finding, round 5). A job draws
    local_steps x batch_size rows whatever the data set's size, so no update counts for more
    (federated.compute_counted_samples); here both count as much."""
    chain, follower = chains
    d = Driver(chain, follower)
    shares, _ = split_digits(2, seed=1)
    d.ok(ALICE, open_call(min_updates=2, reward_pool=9 * 10**9))
    info = federated.get_round(chain.state.overlay(), 0)
    draws = info.local_steps * info.batch_size
    bob = Participant(BOB, *shares[0])
    x, y = shares[1][0][:64], shares[1][1][:64]
    eve = Participant(EVE, np.tile(x, (4 * draws // 64, 1)), np.tile(y, 4 * draws // 64))
    commits = [(p, p.train(chain, 0)) for p in (bob, eve)]
    assert commits[1][1].sample_count == 4 * draws and commits[0][1].sample_count > draws
    for p, c in commits:
        d.ok(p.key, c)
    d.until(5)
    d.ok(EVE, calls.ChallengeRound(0))
    for p, _ in commits:
        for reveal in p.reveals(chain, 0):
            d.ok(p.key, reveal)
    d.ok(ALICE, calls.CloseRound(0))
    state = chain.state.overlay()
    updates = [federated.UPDATES.get(state, 0, p.key.public) for p in (bob, eve)]
    assert [u.reward for u in updates] == [4_500_000_000, 4_500_000_000]
    order = sorted((bob, eve), key=lambda p: p.key.public)
    stacked = np.stack([np.asarray(p.result.weights, dtype=np.float32) for p in order])
    expected, _ = twins.fedavg(stacked, np.array([draws, draws], dtype=np.int64), 2 * draws)
    assert models.get_weights(state, 0, 1).tobytes() == expected.tobytes()
    assert [e.sample_count for e in federated.LINEAGE.get(state, 0, 1).entries] == [draws, draws]


def _revealed_round(d: Driver, chain, people: list[Participant], opening: calls.Call) -> None:
    """Round 0 opened by Alice with ``opening``, each of ``people``'s update committed,
    challenged by Eve once the commits are in, and every sampled segment revealed."""
    d.ok(ALICE, opening)
    for p in people:
        d.ok(p.key, p.train(chain, 0))
    d.until(5)
    d.ok(EVE, calls.ChallengeRound(0))
    for p in people:
        for reveal in p.reveals(chain, 0):
            d.ok(p.key, reveal)


def _forge_version_one(chain, d: Driver):
    """Bob's TRAIN forged (checkpoint 3) makes version 1, and Eve proves it: models.is_forged."""
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/forgery.py
    from chainkit import sign, train_call
    from forgery import forging_trainer

    from chain.fraud import FAULT_SEGMENT, compute_fraud_proof
    from chain.pallets.training import compute_job_at
    from chain.proofs import TrainingClaim

    honest = chain.trainer
    chain.trainer = forging_trainer("segment", 3)
    xt = sign(chain, BOB, train_call(steps=60, segment=10), balances.get_account(chain.state.overlay(), BOB.public).nonce)
    block = d.block([xt]).block
    chain.trainer = honest
    parent = block.header.parent_hash
    job, version, _ = compute_job_at(chain.state_at(parent), chain.config_at(parent), xt.call, parent, xt.hash(), block.header.number)
    proof = compute_fraud_proof(
        block, TrainingClaim(0, job, block.body.results[0], 0, version), FAULT_SEGMENT, 2,
        [chain.transcripts.get(block.hash(), 0, j) for j in (2, 3)],
    )
    return proof


def test_a_round_cannot_start_from_a_version_proven_forged(chains) -> None:
    """A version made by a TRAIN proven forged cannot be a round's base (federated.ForgedVersion,
    as training.ForgedVersion for a TRAIN), and a round whose base is proven forged after it
    opened fails at close, every bond back: its aggregate would carry the forgery on as a clean
    version (an outside tester's finding, round 7: the forged weights became the latest again)."""
    chain, _ = chains
    d = Driver(chain)
    shares, _ = split_digits(2, seed=3)
    dave, ferdie = (Participant(k, *s) for k, s in zip((DAVE, FERDIE), shares, strict=True))
    proof = _forge_version_one(chain, d)  # #1: version 1, forged; not proven yet
    d.ok(ALICE, open_call(base_version=1, commit_deadline=chain.best_number + 4, reveal_deadline=chain.best_number + 20))
    for p in (dave, ferdie):
        d.ok(p.key, p.train(chain, 0))
    d.ok(EVE, calls.ReportFraud(proof.encode()))
    assert d.fails(ALICE, open_call(base_version=1, commit_deadline=chain.best_number + 4, reveal_deadline=chain.best_number + 20), "ForgedVersion") == (
        "federated.ForgedVersion: version 1 of model 0 was made by a TRAIN proven forged; open the round on another"
    )
    info = federated.get_round(chain.state.overlay(), 0)
    d.until(info.commit_deadline)
    d.ok(EVE, calls.ChallengeRound(0))
    for p in (dave, ferdie):
        for reveal in p.reveals(chain, 0):
            d.ok(p.key, reveal)
    before = {p.key.public: _free(chain, p.key) for p in (dave, ferdie)}
    receipt = d.ok(EVE, calls.CloseRound(0))
    assert [(e.name, dict(e.args)) for e in receipt.events if e.pallet == "federated"] == [
        ("RoundFailed", {"round": 0, "reason": "its base version 1 was proven forged", "bonds_burned": 0}),
    ]
    assert models.get_model(chain.state.overlay(), 0).latest_version == 1
    assert {p.key.public: _free(chain, p.key) - info.bond for p in (dave, ferdie)} == before


def test_a_rounds_sample_total_adds_what_each_update_counts_for(chains) -> None:
    """The round-wide bound on sample counts (fedavg.MAX_SAMPLES) adds what each update counts
    for, at most local_steps x batch_size (compute_counted_samples), not what it declares: 16
    data-less commits declaring 2^20 rows each filled a 64-update round and locked honest
    participants out (an outside tester's finding, round 7)."""
    from chain.crypto import Keypair, blake2_256

    chain, _ = chains
    d = Driver(chain)
    spec = ml_runtime.ModelSpec("softmax", 2, 2)
    registered = d.ok(ALICE, calls.RegisterModel("tiny", spec.encode(), bytes(32)))
    model = next(dict(e.args)["model"] for e in registered.events if e.name == "ModelRegistered")
    sybils = [Keypair.from_seed(blake2_256(b"sybil" + bytes([i]))) for i in range(17)]
    for key in sybils:
        d.ok(ALICE, calls.Transfer(key.public, 10 * 10**9))
    d.ok(ALICE, open_call(
        model=model, local_steps=40, batch_size=16, segment_len=5, samples=2, min_updates=1, max_updates=64,
        commit_deadline=chain.best_number + 40, reveal_deadline=chain.best_number + 60,
    ))
    info = federated.get_round(chain.state.overlay(), 0)
    base = models.get_weights(chain.state.overlay(), model, 0)
    entries = [ml_runtime.TranscriptEntry(i, ml_runtime.hash_weights(base), 1.0) for i in range(info.segments + 1)]
    transcript = ml_runtime.Transcript.build(entries)
    rows = federated.compute_max_rows(spec)
    commit = calls.CommitUpdate(
        0, bytes(32), rows, rows, np.asarray(base, "<f4").tobytes(), transcript.root,
        tuple(int(np.float32(1.0).view(np.uint32)) for _ in range(info.segments + 1)),
        ml_runtime.merkle_proof(transcript, 0), ml_runtime.merkle_proof(transcript, info.segments),
    )
    for key in sybils:  # 17 x 2^20 declared: past 2^24, were each counted as declared
        d.ok(key, commit)
    assert federated.get_round(chain.state.overlay(), 0).total_samples == 17 * 40 * 16
    # The bound itself, met exactly and passed by one (a mutation run's survivors: ``>=`` for
    # ``>``, and the counted samples taken off the total): a late commit on a state whose total
    # leaves it exactly its 640 rows is accepted; one row less room, TooManySamples.
    import msgspec

    from chain.errors import DispatchError
    from chain.pallets.context import BlockInfo, CallContext

    late = Keypair.from_seed(blake2_256(b"late"))
    d.ok(ALICE, calls.Transfer(late.public, 10 * 10**9))
    for room in (40 * 16, 40 * 16 - 1):
        state = chain.state.overlay()
        full = msgspec.structs.replace(federated.get_round(state, 0), total_samples=ml_runtime.fedavg.MAX_SAMPLES - room)
        federated.ROUNDS.apply_set(state, full, 0)
        block = BlockInfo(chain.best_number + 1, chain.best_hash, ALICE.public, True, None)
        ctx = CallContext(state, late.public, 0, bytes(32), 0, block, chain.config)  # type: ignore[arg-type]
        if room == 40 * 16:
            federated.apply_commit_update(ctx, commit)
            assert federated.get_round(state, 0).total_samples == ml_runtime.fedavg.MAX_SAMPLES
        else:
            with pytest.raises(DispatchError) as caught:
                federated.apply_commit_update(ctx, commit)
            assert (caught.value.module, caught.value.error, str(caught.value)) == (
                "federated", "TooManySamples", f"the round's sample counts would exceed {ml_runtime.fedavg.MAX_SAMPLES}"
            )


def test_a_train_in_a_rounds_closing_block_trains_the_version_before_the_block(chains) -> None:
    """A round's close makes a version too. A TRAIN naming no version after it in the same block
    trained the aggregate, and a start-fault proof naming the version before the block framed
    the honest author (tester17's H1, round 12, there with two TRAINs). It now trains the
    latest version made before its block (models.compute_latest_before), as every importer (the
    follower) agrees: the proof naming version 0 shows no fault, at the parent state and later,
    and one naming the aggregate, made in the block, is refused."""
    from chainkit import sign, train_call

    from chain.errors import InvalidFraudProof
    from chain.fraud import FAULT_START, compute_fraud_proof, verify_fraud_proof
    from chain.pallets.training import compute_job_at
    from chain.proofs import TrainingClaim
    from chain.transcripts import LocalSource

    chain, follower = chains
    d = Driver(chain)
    shares, _ = split_digits(2, seed=5)
    people = [Participant(k, *s) for k, s in zip((BOB, CHARLIE), shares, strict=True)]
    _revealed_round(d, chain, people, open_call())

    def nonce(key) -> int:  # type: ignore[no-untyped-def]
        return balances.get_account(chain.state.overlay(), key.public).nonce

    xts = [sign(chain, FERDIE, calls.CloseRound(0), nonce(FERDIE)), sign(chain, DAVE, train_call(steps=20, segment=10), nonce(DAVE))]
    built = d.block(xts)
    assert [r.success for r in built.receipts] == [True, True], [r.error for r in built.receipts]
    block = built.block
    for number in range(1, block.header.number + 1):  # an importer re-running every segment agrees
        follower.import_block(chain.get_block(chain.get_hash(number)), LocalSource(chain.transcripts))
    assert follower.state.root() == chain.state.root()
    state = chain.state.overlay()
    assert federated.get_round(state, 0).new_version == 1
    assert [(models.VERSIONS.get(state, 0, v).parent, models.VERSIONS.get(state, 0, v).block) for v in (1, 2)] == [
        (0, block.header.number), (0, block.header.number)
    ]
    parent = block.header.parent_hash
    xt = block.body.extrinsics[1]
    job, version, _ = compute_job_at(chain.state_at(parent), chain.config_at(parent), xt.call, parent, xt.hash(), block.header.number)
    assert version == 0
    (result,) = block.body.results
    proof = compute_fraud_proof(block, TrainingClaim(1, job, result, 0, 0), FAULT_START, 0, [chain.transcripts.get(block.hash(), 1, 0)])
    for checked, reason in (
        ((chain.state_at(parent), proof), "no_fault"),
        ((state, proof), "no_fault"),
        ((state, replace(proof, parent_version=1)), "bad_parent_version"),
    ):
        with pytest.raises(InvalidFraudProof) as caught:
            verify_fraud_proof(chain.genesis_hash, checked[0], chain.config, checked[1])
        assert caught.value.reason == reason, str(caught.value)

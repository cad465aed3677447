"""Every bad federated call gets its specific error and changes nothing but its fee (the
driver compares the state root with the parent's plus the fee); the detection rate of a
cheater who fakes f of S segments matches 1 - C(S-f, m) / C(S, m).

_verify_open and compute_reveal_bound were mutation-tested on 2026-11-30 (197/199 and 24/24;
the command and the two equivalent survivors are in the docstring of tests/chain/test_bounties.py):
the tests calling _verify_open directly meet each limit exactly under a config built for it."""

from __future__ import annotations

import math

import msgspec
import numpy as np
import pytest
from chainkit import ALICE, event_args, open_chain, sign
from fedkit import (
    BOB,
    CHARLIE,
    DAVE,
    EVE,
    FERDIE,
    Driver,
    Participant,
    open_call,
    replace,
    split_digits,
)

import ml_runtime
from chain import calls
from chain.errors import DispatchError
from chain.pallets import balances, federated, models


@pytest.mark.parametrize(
    ("changes", "error", "reason"),
    [
        ({"model": 7}, "models.UnknownModel", "no model with id 7"),
        ({"base_version": 3}, "models.UnknownVersion", "has no version 3"),
        ({"local_steps": 0}, "InvalidSteps", "local_steps must be in 1..100000"),
        ({"batch_size": 5000}, "InvalidBatchSize", "batch_size must be in 1..4096"),
        ({"lr": calls.compute_f32_bits(float("inf"))}, "InvalidLearningRate", "finite float32 > 0"),
        ({"lr": calls.compute_f32_bits(0.0)}, "InvalidLearningRate", "finite float32 > 0"),
        ({"l2": calls.compute_f32_bits(-1.0)}, "InvalidDecay", ">= 0"),
        ({"l2": calls.compute_f32_bits(2.0**101), "lr": calls.compute_f32_bits(2.0**-100)}, "DecayTooLarge", "lr * l2 must be below 1"),
        ({"segment_len": 41}, "InvalidSegmentLength", "1..local_steps (40)"),
        ({"local_steps": 2000, "segment_len": 1}, "TooManySegments", "2000 segments; the limit is 64"),
        ({"samples": 0}, "InvalidSamples", "must be in 1..8"),
        ({"samples": 9}, "InvalidSamples", "must be in 1..8"),
        ({"min_updates": 0}, "InvalidUpdateCounts", "1 <= min_updates (0)"),
        ({"min_updates": 5, "max_updates": 4}, "InvalidUpdateCounts", "min_updates (5) <= max_updates (4)"),
        ({"max_updates": 65}, "InvalidUpdateCounts", "<= 64"),
        ({"allowlist": (BOB.public,), "min_updates": 2}, "InvalidUpdateCounts", "the allowlist's size"),
        ({"allowlist": (BOB.public, BOB.public)}, "DuplicateParticipant", "names an account twice"),
        ({"commit_deadline": 1}, "InvalidDeadlines", "1 < commit_deadline (1)"),
        ({"commit_deadline": 19}, "InvalidDeadlines", "< reveal_deadline - 1"),
        ({"reveal_deadline": 200_000}, "InvalidDeadlines", "reveal_deadline <= 100001"),
        ({"segment_len": 40, "local_steps": 40, "batch_size": 4096, "samples": 1}, "RevealTooLarge", "its rows field holds at most"),
        # Within half a block (2.5 MiB) but past what one extrinsic may carry (2 MiB): no pool
        # took the reveals, and the participants' bonds went to the owner (outside tester, round 5).
        ({"segment_len": 1, "batch_size": 2300, "samples": 1}, "RevealTooLarge", "and a signed extrinsic carries at most 2,097,152 bytes"),
        ({"reward_pool": 2**62}, "InsufficientBalance", "cannot hold the reward pool"),
    ],
)
def test_impossible_rounds_are_refused(chain, changes: dict, error: str, reason: str) -> None:
    message = Driver(chain).fails(ALICE, open_call(**changes), error)
    assert reason in message


@pytest.mark.parametrize(
    ("spec", "segment_len", "batch"),
    [
        (ml_runtime.ModelSpec("softmax", 64, 10), 5, 16),
        (ml_runtime.ModelSpec("linear", 511, 512), 1, 1),  # 2^18 parameters
        (ml_runtime.ModelSpec("mlp", 32, 4, 16), 3, 100),
    ],
)
def test_the_reveal_bound_covers_the_longest_reveal(spec, segment_len: int, batch: int) -> None:
    """Every part at its largest: one checkpoint, two paths and every row the segment's
    batches may draw, each with a path of MAX_ROW_PATH hashes, numbers at 2^32 - 1. The bound
    is what a round must fit in one extrinsic (RevealTooLarge), so it must not undercount;
    it counted the checkpoint twice, which refused models of 2^18 parameters."""
    call = open_call(segment_len=segment_len, local_steps=segment_len, batch_size=batch)
    rows = segment_len * batch
    path = (b"\xff" * 32,) * federated.MAX_ROW_PATH
    longest = calls.RevealSegment(
        2**32 - 1, 2**32 - 1, bytes(4 * spec.param_count), path, bytes(32), path,
        bytes(rows * federated.compute_row_dtype(spec).itemsize), (path,) * rows,
    )
    bound = federated.compute_reveal_bound(spec, call)
    envelope = balances.compute_longest_length(federated._EMPTY_REVEAL)
    assert balances.compute_longest_length(longest) <= envelope + bound
    assert bound - (balances.compute_longest_length(longest) - envelope) < 100 + 5 * rows  # and not far above it


def test_a_model_whose_update_no_commit_carries_is_refused(tmp_path) -> None:
    """A commit and a reveal carry the weights in a field of at most 1 MiB (2^18 float32s),
    while a spec may allow models of 500,000 parameters: a round on one took the bonds of
    updates no pool could take (a reviewer's finding, round 5)."""
    import dataclasses

    from chainkit import dev_spec

    spec = dev_spec()
    spec = dataclasses.replace(spec, runtime_config=dataclasses.replace(spec.runtime_config, max_model_params=500_000))
    chain = open_chain(tmp_path / "big", spec)
    d = Driver(chain)
    spec = ml_runtime.ModelSpec("linear", 512, 512)  # 262,656 parameters, just past 2^18
    receipt = d.ok(BOB, calls.RegisterModel("big", spec.encode(), bytes(32)))
    model = event_args(receipt, "ModelRegistered")["model"]
    message = d.fails(BOB, open_call(model=model, local_steps=1, batch_size=1, segment_len=1, samples=1, min_updates=1), "ModelTooLarge")
    assert message == (
        "federated.ModelTooLarge: an update of 262,656 parameters is 1,050,624 bytes; "
        "a commit and a reveal carry at most 1,048,576"
    )
    # Within an extrinsic, but past a reveal's rows field (1 MiB): 200 rows of 2,048 features
    # (1.64 MB) decoded nowhere, and the bond went to the owner.
    wide = ml_runtime.ModelSpec("softmax", 2048, 2)
    model = event_args(d.ok(BOB, calls.RegisterModel("wide", wide.encode(), bytes(32))), "ModelRegistered")["model"]
    call = open_call(model=model, local_steps=1, batch_size=200, segment_len=1, samples=1, min_updates=1)
    assert federated.compute_reveal_bound(wide, call) <= federated.MAX_REVEAL_CALL
    message = d.fails(BOB, call, "RevealTooLarge")
    assert message == (
        "federated.RevealTooLarge: a reveal's rows could take 1,639,200 bytes (200 rows of 8,196); "
        "its rows field holds at most 1,048,576"
    )
    chain.db.close()


# Pinned bounds of the three cases above: the bound decides which rounds open
# (RevealTooLarge), so a change to it is a change of consensus, and a one-byte slack in a
# constant passed the covering test above (mutation testing, 2026-11-30).
@pytest.mark.parametrize(
    ("spec", "segment_len", "batch", "bound"),
    [
        (ml_runtime.ModelSpec("softmax", 64, 10), 5, 16, 79_480),
        (ml_runtime.ModelSpec("linear", 511, 512), 1, 1, 1_054_791),
        (ml_runtime.ModelSpec("mlp", 32, 4, 16), 3, 100, 248_324),
    ],
)
def test_the_reveal_bound_is_pinned(spec, segment_len: int, batch: int, bound: int) -> None:
    call = open_call(segment_len=segment_len, local_steps=segment_len, batch_size=batch)
    assert federated.compute_reveal_bound(spec, call) == bound


def _open_ctx(chain, **config: int):  # type: ignore[no-untyped-def]
    """A CallContext at block #1 under the chain's config with ``config`` changed, for
    federated._verify_open called directly (a limit met exactly needs a config built for it)."""
    import dataclasses

    from chain.pallets.context import BlockInfo, CallContext

    cfg = dataclasses.replace(chain.config, **config)
    return CallContext(chain.state.overlay(), ALICE.public, 0, bytes(32), 0, BlockInfo(1, bytes(32), ALICE.public, True, None), cfg)  # type: ignore[arg-type]


def _open_error(ctx, call, spec) -> str:  # type: ignore[no-untyped-def]
    from chain.errors import DispatchError

    with pytest.raises(DispatchError) as caught:
        federated._verify_open(ctx, call, spec)
    return f"{caught.value.module}.{caught.value.error}: {caught.value}"


def test_a_reveal_that_meets_either_limit_exactly_opens(chain, monkeypatch) -> None:
    """A reveal may take exactly half a block and exactly what one extrinsic carries
    (MAX_REVEAL_CALL), not a byte more, whichever is smaller; the refusal names both. Here
    a segment of one step at batch 2,000 on model 0: 1,890,040 bytes, above a third of the
    default 5 MiB block and within both limits, so it opens."""
    spec = ml_runtime.ModelSpec("softmax", 64, 10)
    call = open_call(segment_len=1, batch_size=2000, samples=1)
    bound = federated.compute_reveal_bound(spec, call)
    assert bound == 1_890_040 and chain.config.max_block_length // 3 < bound < federated.MAX_REVEAL_CALL
    federated._verify_open(_open_ctx(chain), call, spec)
    federated._verify_open(_open_ctx(chain, max_block_length=2 * bound), call, spec)
    assert _open_error(_open_ctx(chain, max_block_length=2 * bound - 1), call, spec) == (
        f"federated.RevealTooLarge: a reveal could take 1,890,040 bytes; at most half a block (1,890,039), and a signed "
        f"extrinsic carries at most 2,097,152 bytes (a reveal's call {federated.MAX_REVEAL_CALL:,})"
    )
    monkeypatch.setattr(federated, "MAX_REVEAL_CALL", bound)
    federated._verify_open(_open_ctx(chain), call, spec)
    monkeypatch.setattr(federated, "MAX_REVEAL_CALL", bound - 1)
    assert _open_error(_open_ctx(chain), call, spec) == (
        f"federated.RevealTooLarge: a reveal could take 1,890,040 bytes; at most half a block "
        f"({chain.config.max_block_length // 2:,}), and a signed extrinsic carries at most 2,097,152 bytes (a reveal's call 1,890,039)"
    )


def test_a_round_at_the_block_weight_or_the_cells_limit_exactly_opens(chain) -> None:
    """Re-running a segment or closing may take exactly a block's weight, and a batch exactly
    MAX_CELLS numbers: one more unit, or one more feature, is refused with its reason."""
    spec = ml_runtime.ModelSpec("softmax", 64, 10)
    call = open_call(reveal_deadline=22)  # room for 16 reveals at one a block (the next test)
    weight = max(federated.compute_reveal_weight(spec, call), federated.compute_close_weight(spec, call.max_updates))
    federated._verify_open(_open_ctx(chain, max_block_weight=weight), call, spec)
    assert _open_error(_open_ctx(chain, max_block_weight=weight - 1), call, spec) == (
        f"federated.SegmentTooHeavy: re-running a segment or closing could take {weight} work units; a block holds {weight - 1}"
    )
    wide = open_call(batch_size=1025, segment_len=1, local_steps=1, samples=1)
    at = ml_runtime.ModelSpec("softmax", federated.MAX_CELLS // 1025, 2)  # 4,092 x 1,025 = 4,194,300 numbers
    assert _open_error(_open_ctx(chain), wide, at).startswith("federated.RevealTooLarge:")  # past the cells check
    over = ml_runtime.ModelSpec("softmax", federated.MAX_CELLS // 1025 + 1, 2)
    assert _open_error(_open_ctx(chain), wide, over) == (
        "federated.DataTooLarge: batch_size x features = 4195325 exceeds 4194304 values"
    )


def test_a_round_opens_only_with_room_for_every_reveal_in_its_window(chain) -> None:
    """max_updates x samples reveals, at most half a block's length and weight given to them a
    block, must fit the blocks after the challenge's up to the reveal deadline: a window one
    block short is refused, naming the count (an outside tester's finding, round 7: a round
    whose window held 11 of its 24 reveals failed, and its honest participants' bonds went to
    its owner)."""
    spec = ml_runtime.ModelSpec("softmax", 64, 10)
    call = open_call(reveal_deadline=22)
    heavy = _open_ctx(chain, max_block_weight=max(
        federated.compute_reveal_weight(spec, call), federated.compute_close_weight(spec, call.max_updates)
    ))  # one reveal a block: 16 reveals need blocks 7..22
    federated._verify_open(heavy, call, spec)
    assert _open_error(heavy, replace(call, reveal_deadline=21), spec) == (
        "federated.RevealWindowTooShort: up to 16 reveals (max_updates x samples) at 1 a block need 16 blocks after the "
        "challenge's; blocks 7..21 are 15"
    )
    # By length: half a block of 1,000 bytes more than two reveals' bound holds two a block.
    reveal = federated.compute_reveal_bound(spec, call)
    short = _open_ctx(chain, max_block_weight=10**15, max_block_length=2 * (2 * reveal + 1000))
    federated._verify_open(short, replace(call, reveal_deadline=14), spec)
    assert _open_error(short, replace(call, reveal_deadline=13), spec).startswith(
        "federated.RevealWindowTooShort: up to 16 reveals (max_updates x samples) at 2 a block need 8 blocks"
    )
    # The default config holds them all in the block after the challenge's.
    federated._verify_open(_open_ctx(chain), replace(call, commit_deadline=5, reveal_deadline=7), spec)


def test_a_reveal_window_bound_by_weight_counts_whole_reveals_a_block(chain) -> None:
    """Half of a block of five reveals' weight holds two reveals (2.5, rounded down), not one
    and not two and a half: 16 reveals need 8 blocks after the challenge's, and a window of 7
    is refused, the count of a block named as a whole number (a mutation run's survivors:
    half the weight taken as a third, and either division made a true one)."""
    spec = ml_runtime.ModelSpec("softmax", 64, 10)
    call = open_call(reveal_deadline=14)
    reveal_weight = federated.compute_reveal_weight(spec, call)
    assert federated.compute_close_weight(spec, call.max_updates) <= 5 * reveal_weight
    ctx = _open_ctx(chain, max_block_weight=5 * reveal_weight, max_block_length=10**9)  # weight binds, not length
    federated._verify_open(ctx, call, spec)
    assert _open_error(ctx, replace(call, reveal_deadline=13), spec) == (
        "federated.RevealWindowTooShort: up to 16 reveals (max_updates x samples) at 2 a block need 8 blocks after the "
        "challenge's; blocks 7..13 are 7"
    )


def test_a_round_at_each_field_limit_of_a_reveal_exactly_opens(chain) -> None:
    """An update of exactly MAX_FL_WEIGHTS bytes (2^18 parameters) and a reveal's rows of
    exactly MAX_ROWS_CHUNK bytes or MAX_FL_REVEAL_ROWS rows pass their checks; a byte or a row
    more is refused, and the refusal names the row count only when the rows are what is over
    (mutation testing, 2026-11-30: each limit was met by no test). The block weight is raised
    here so that only these limits decide."""
    roomy = _open_ctx(chain, max_block_weight=10**15)
    one = {"local_steps": 1, "segment_len": 1, "samples": 1, "min_updates": 1, "max_updates": 1}
    federated._verify_open(roomy, open_call(batch_size=1, **one), ml_runtime.ModelSpec("linear", 511, 512))  # 2^18 parameters
    # 256 rows of 1,024 float32s (1,023 features and the label): exactly 1 MiB; one feature more is past it.
    federated._verify_open(roomy, open_call(batch_size=256, **one), ml_runtime.ModelSpec("softmax", 1023, 2))
    assert _open_error(roomy, open_call(batch_size=256, **one), ml_runtime.ModelSpec("softmax", 1024, 2)) == (
        "federated.RevealTooLarge: a reveal's rows could take 1,049,600 bytes (256 rows of 4,100); "
        "its rows field holds at most 1,048,576"
    )
    # 65,536 rows of 16 bytes, both limits met: past these checks, the reveal's paths are too long.
    rows = {**one, "local_steps": 16, "segment_len": 16, "batch_size": 4096}
    assert _open_error(roomy, open_call(**rows), ml_runtime.ModelSpec("softmax", 3, 2)).startswith(
        "federated.RevealTooLarge: a reveal could take "
    )
    assert _open_error(roomy, open_call(**rows), ml_runtime.ModelSpec("softmax", 4, 2)) == (
        "federated.RevealTooLarge: a reveal's rows could take 1,310,720 bytes (65,536 rows of 20); "
        "its rows field holds at most 1,048,576"
    )
    more = {**rows, "local_steps": 17, "segment_len": 17}
    assert _open_error(roomy, open_call(**more), ml_runtime.ModelSpec("softmax", 1, 2)) == (
        "federated.RevealTooLarge: a reveal's rows could take 557,056 bytes (69,632 rows of 8); "
        "its rows field holds at most 1,048,576 and 65,536 rows"
    )


def test_a_round_at_each_counting_limit_exactly_opens(chain) -> None:
    """local_steps of max_train_steps, max_segments segments, l2 of 0 and a reveal deadline
    MAX_ROUND_BLOCKS ahead are all allowed; the update-count refusal names the allowlist only
    when the allowlist is what caps it."""
    spec = ml_runtime.ModelSpec("softmax", 64, 10)
    cfg = chain.config
    longest = open_call(local_steps=cfg.max_train_steps, segment_len=-(-cfg.max_train_steps // cfg.max_segments), batch_size=1,
                        samples=1, l2=calls.compute_f32_bits(0.0), reveal_deadline=1 + federated.MAX_ROUND_BLOCKS)
    federated._verify_open(_open_ctx(chain), longest, spec)
    federated._verify_open(_open_ctx(chain), open_call(local_steps=cfg.max_segments, segment_len=1, batch_size=1, samples=1), spec)
    assert _open_error(_open_ctx(chain), open_call(max_updates=65), spec) == (
        "federated.InvalidUpdateCounts: need 1 <= min_updates (2) <= max_updates (65) <= 64"
    )
    listed = open_call(allowlist=(BOB.public,), min_updates=2)
    assert _open_error(_open_ctx(chain), listed, spec) == (
        "federated.InvalidUpdateCounts: need 1 <= min_updates (2) <= max_updates (8) <= 1 (the allowlist's size)"
    )
    full = tuple(bytes([i]) * 32 for i in range(calls.MAX_FL_ALLOWLIST))  # as many as a round admits: not what caps it
    assert _open_error(_open_ctx(chain), open_call(allowlist=full, max_updates=65), spec) == (
        "federated.InvalidUpdateCounts: need 1 <= min_updates (2) <= max_updates (65) <= 64"
    )
    assert _open_error(_open_ctx(chain), open_call(allowlist=(BOB.public, BOB.public)), spec) == (
        "federated.DuplicateParticipant: the allowlist names an account twice"
    )


def test_only_the_owner_opens_a_round(chain) -> None:
    assert "only the owner of model 0" in Driver(chain).fails(BOB, open_call(), "models.NotOwner")


class _Round:
    """Round 0 open with Bob (and Charlie) committed honestly."""

    def __init__(self, chain, **kw) -> None:
        self.d = Driver(chain)
        shares, _ = split_digits(3, seed=3)
        self.bob, self.charlie, self.dave = (Participant(k, x, y) for k, (x, y) in zip((BOB, CHARLIE, DAVE), shares, strict=True))
        self.d.ok(ALICE, open_call(**kw))
        self.bob_commit = self.bob.train(chain, 0)


def test_bad_commits_are_refused(chain) -> None:
    r = _Round(chain, allowlist=(BOB.public, CHARLIE.public), min_updates=1, max_updates=2, commit_deadline=18)
    d, c = r.d, r.bob_commit
    spec = models.decode_spec(models.get_model(chain.state.overlay(), 0).spec)
    assert "round with id 4" in d.fails(BOB, replace(c, round=4), "UnknownRound")
    assert "allowlist only" in d.fails(DAVE, r.dave.train(chain, 0), "NotAllowed")
    assert "the model has 650 float32" in d.fails(BOB, replace(c, weights=c.weights[:-4]), "WrongShape")
    assert "9 transcript entries" in d.fails(BOB, replace(c, losses=c.losses[:-1]), "WrongShape")
    nan = np.frombuffer(c.weights, dtype="<f4").copy()
    nan[3] = np.nan
    d.fails(BOB, replace(c, weights=nan.tobytes()), "NonFiniteWeights")
    inf_loss = calls.compute_f32_bits(float("inf"))
    d.fails(BOB, replace(c, losses=(*c.losses[:-1], inf_loss)), "NonFiniteWeights")
    assert "entry 0 (the base version's weights)" in d.fails(BOB, replace(c, first_path=c.last_path), "BadTranscriptProof")
    assert "entry 8 (the submitted weights)" in d.fails(BOB, replace(c, losses=(*c.losses[:-1], c.losses[-1] ^ 1)), "BadTranscriptProof")
    d.fails(BOB, replace(c, row_count=15), "InvalidRowCount")  # fewer rows than the batch size
    too_many = federated.MAX_CELLS // spec.d + 1
    d.fails(BOB, replace(c, row_count=too_many, sample_count=1), "InvalidRowCount")
    d.fails(BOB, replace(c, sample_count=0), "InvalidSampleCount")
    d.fails(BOB, replace(c, sample_count=c.row_count + 1), "InvalidSampleCount")
    d.ok(BOB, c)
    assert "already committed" in d.fails(BOB, c, "DuplicateUpdate")
    d.ok(CHARLIE, r.charlie.train(chain, 0))
    d.until(18)
    assert "took commits up to block 18" in d.fails(BOB, c, "CommitClosed")


def test_a_full_round_refuses_more_updates(chain) -> None:
    r = _Round(chain, min_updates=1, max_updates=1)
    r.d.ok(BOB, r.bob_commit)
    assert "has its 1 updates" in r.d.fails(CHARLIE, r.charlie.train(chain, 0), "RoundFull")


def test_bad_challenges_reveals_and_closes_are_refused(chain) -> None:
    r = _Round(chain, min_updates=1)
    d = r.d
    d.ok(BOB, r.bob_commit)
    assert "takes commits until block 5" in d.fails(EVE, calls.ChallengeRound(0), "TooEarly")
    with pytest.raises(DispatchError, match=r"round 0 is open, not revealing$"):  # (an author leaves it for a later block)
        federated.find_revealing_update(chain.state.overlay(), BOB.public, _reveal_any(r, chain), chain.best_number + 1)
    assert "takes reveals until block 20" in d.fails(EVE, calls.CloseRound(0), "TooEarly")
    d.until(5)
    d.ok(EVE, calls.ChallengeRound(0))
    assert "is revealing" in d.fails(EVE, calls.ChallengeRound(0), "AlreadyChallenged")
    info = federated.get_round(chain.state.overlay(), 0)
    challenged = federated.compute_challenged(info, BOB.public)
    first = r.bob.reveals(chain, 0)[0]
    other = next(j for j in range(info.segments) if j not in challenged)
    unchallenged = federated.compute_reveal(0, info, other, r.bob.result, r.bob.leaves, BOB.public)
    assert f"segment {other} is not one of" in d.fails(BOB, unchallenged, "NotChallenged")
    assert "committed no update" in d.fails(CHARLIE, first, "NoUpdate")
    d.fails(BOB, replace(first, weights=first.weights[:8]), "WrongShape")
    d.fails(BOB, replace(first, start_path=first.end_path), "BadTranscriptProof")
    d.fails(BOB, replace(first, end_hash=bytes(32)), "BadTranscriptProof")
    d.fails(BOB, replace(first, rows=first.rows[:-1]), "WrongRows")
    d.fails(BOB, replace(first, row_paths=first.row_paths[:-1]), "WrongRows")
    bad_path = (tuple(bytes(32) for _ in first.row_paths[0]), *first.row_paths[1:])
    assert "is not under the data root" in d.fails(BOB, replace(first, row_paths=bad_path), "BadRowProof")
    tampered = bytearray(first.rows)
    tampered[0] ^= 1
    d.fails(BOB, replace(first, rows=bytes(tampered)), "BadRowProof")
    d.ok(BOB, first)
    assert "already verified" in d.fails(BOB, first, "AlreadyRevealed")
    for reveal in r.bob.reveals(chain, 0)[1:]:
        d.ok(BOB, reveal)
    d.ok(EVE, calls.CloseRound(0))
    assert "already closed" in d.fails(EVE, calls.CloseRound(0), "RoundEnded")
    d.fails(BOB, first, "NotRevealing")


def test_a_pool_admits_only_a_reveal_the_round_awaits(chain) -> None:
    """A reveal that fails at its first checks pays BASE_WEIGHT, yet declared a segment's
    re-run and, as an operational call, was ordered by five times that fee: a reveal by an
    account with no update in the round outranked a transfer tipping 5 POL while it paid
    0.0014 POL (an outside tester's finding, round 9). The pool's check of a call
    (Runtime.verify_admissible) refuses it, as "call", with the reason the block would give;
    a reveal to a round still open, which a block this node lacks may have challenged, as
    future (no ban: banned, an honest reveal that arrived a moment before that block stayed
    out for 30 minutes; the retest of round 9)."""
    from chain.errors import InvalidTransaction

    r = _Round(chain, min_updates=1)
    d = r.d
    d.ok(BOB, r.bob_commit)

    def refused(key, call, error: str) -> None:  # (refused as invalid: banned)
        with pytest.raises(InvalidTransaction) as exc:
            chain.runtime.verify_admissible(chain.state.overlay(), sign(chain, key, call, 0), chain.best_number + 1)
        assert exc.value.reason == "call" and str(exc.value).startswith(f"federated.{error}: "), str(exc.value)

    from chain.errors import FutureTransaction

    with pytest.raises(FutureTransaction, match=r"^round 0 is open, not revealing yet: a reveal is taken once a block challenges it$"):
        chain.runtime.verify_admissible(chain.state.overlay(), sign(chain, BOB, _reveal_any(r, chain), 0), chain.best_number + 1)
    d.until(5)
    d.ok(EVE, calls.ChallengeRound(0))
    first, *rest = r.bob.reveals(chain, 0)
    refused(CHARLIE, first, "NoUpdate")
    refused(BOB, replace(first, round=99), "UnknownRound")
    chain.runtime.verify_admissible(chain.state.overlay(), sign(chain, BOB, first, 0), chain.best_number + 1)  # admitted
    deadline = federated.get_round(chain.state.overlay(), 0).reveal_deadline
    chain.runtime.verify_admissible(chain.state.overlay(), sign(chain, BOB, first, 0), deadline)  # in the deadline's block too
    for reveal in (first, *rest):
        d.ok(BOB, reveal)
    refused(BOB, first, "UpdateDecided")
    d.until(federated.get_round(chain.state.overlay(), 0).reveal_deadline)
    refused(BOB, first, "TooLate")
    d.ok(EVE, calls.CloseRound(0))
    refused(BOB, first, "NotRevealing")  # closed: for good


def test_an_author_leaves_a_reveal_to_a_round_still_open_for_a_later_block(chain) -> None:
    """A reveal pooled while its round revealed, then a reorg onto a branch where the round is
    open again: the author included it, it failed (NotRevealing) and its sender paid 0.045
    POL (the retest of round 9, A-N3). A candidate the pool's check calls future
    (Runtime.verify_admissible) is left out of the block, with nothing charged; the same
    reveal goes into the block that holds the challenge before it."""
    r = _Round(chain, min_updates=1)
    d = r.d
    d.ok(BOB, r.bob_commit)
    d.until(5)
    free = balances.get_account(chain.state.overlay(), BOB.public).free
    reveal = sign(chain, BOB, _reveal_any(r, chain), 1)
    left = chain.build_block([reveal], ALICE, slot=d.slot + 1)
    d.slot += 1
    assert left.receipts == () and left.block.body.extrinsics == ()
    assert balances.get_account(chain.state.overlay(), BOB.public) == balances.AccountInfo(1, free, 0)
    challenge = sign(chain, EVE, calls.ChallengeRound(0), balances.get_account(chain.state.overlay(), EVE.public).nonce)
    taken = chain.build_block([challenge, reveal], ALICE, slot=d.slot + 1)
    d.slot += 1
    assert len(taken.receipts) == 2 and taken.receipts[0].success


def _reveal_any(r: _Round, chain) -> calls.RevealSegment:
    """A well-formed reveal of segment 0 before any challenge."""
    info = federated.get_round(chain.state.overlay(), 0)
    return federated.compute_reveal(0, info, 0, r.bob.result, r.bob.leaves, BOB.public)


def test_a_round_without_enough_updates_fails_and_refunds(chain) -> None:
    r = _Round(chain, min_updates=2)
    d = r.d
    d.ok(BOB, r.bob_commit)
    d.until(5)
    receipt = d.ok(EVE, calls.ChallengeRound(0))
    assert "1 updates committed, 2 needed" in dict(receipt.events[-2].args)["reason"]
    state = chain.state.overlay()
    assert federated.get_round(state, 0).status == federated.FAILED
    assert federated.balances.get_account(state, federated.ESCROW_ACCOUNT).free == 0
    assert models.get_model(state, 0).latest_version == 0


def test_detection_rate_matches_the_formula(chain) -> None:
    """A cheater fakes the last f segments (honest training up to there, then made-up
    checkpoints). Which segments fail is found by re-running every segment with the reveal
    code path; the chance that a challenge hits one, over many challenge seeds, is compared
    with 1 - C(S-f, m) / C(S, m) within four standard deviations."""
    r = _Round(chain, local_steps=40, segment_len=5, samples=2)
    state = chain.state.overlay()
    info = federated.get_round(state, 0)
    spec = federated.get_spec(state, info)
    base = models.get_weights(state, 0, 0)
    S, m, f = info.segments, info.samples, 3
    honest = r.bob.result
    assert honest is not None
    checkpoints = list(honest.checkpoints)
    for j in range(S - f + 1, S + 1):
        checkpoints[j] = (checkpoints[j] * np.float32(0.999)).astype(np.float32)
    losses = [e.loss for e in honest.transcript.entries]
    entries = [ml_runtime.TranscriptEntry(j, ml_runtime.hash_weights(w), losses[j]) for j, w in enumerate(checkpoints)]
    forged = ml_runtime.JobResult(checkpoints[-1], tuple(checkpoints), ml_runtime.Transcript.build(entries), True)
    job = federated.compute_job(info, spec, base, BOB.public, r.bob.x, r.bob.y, 0)
    failing = set()
    for j in range(S):
        try:
            ml_runtime.verify_segment(job, j, forged.checkpoints[j], entries[j + 1], entries[j])
        except ml_runtime.SegmentMismatch:
            failing.add(j)
    assert failing == set(range(S - f, S))
    trials = 4000
    caught = 0
    for t in range(trials):
        seeded = msgspec.structs.replace(info, status=federated.REVEALING, challenge_seed=federated.compute_challenge_seed(0, t.to_bytes(32, "little")))
        caught += bool(failing & set(federated.compute_challenged(seeded, BOB.public)))
    p = 1 - math.comb(S - f, m) / math.comb(S, m)
    assert abs(caught / trials - p) < 4 * math.sqrt(p * (1 - p) / trials), (caught / trials, p)


def test_leaf_paths_match_the_data_root_for_every_count() -> None:
    """One-pass paths equal what verify_leaf_path accepts, for odd and even tree sizes."""
    for n in (1, 2, 3, 5, 8, 13, 64, 100):
        leaves = [bytes([i % 256, i // 256]) * 3 for i in range(n)]
        root = ml_runtime.compute_merkle_root(leaves)
        paths = federated.compute_leaf_paths(leaves, list(range(n)))
        for i in range(n):
            assert federated.verify_leaf_path(root, leaves[i], paths[i], i, n)
            assert not federated.verify_leaf_path(root, leaves[i] + b"x", paths[i], i, n)
            if n > 1:
                assert not federated.verify_leaf_path(root, leaves[i], paths[i], (i + 1) % n, n)


def test_an_update_on_a_registered_data_set_pays_its_licence(chain) -> None:
    """Rows that are a registered data set's (the dev digits, Ferdie's at 1000 per row used):
    the provider is paid price x local_steps x batch_size, as for TRAIN; other rows are refused."""
    d = Driver(chain)
    d.ok(ALICE, open_call(min_updates=1))
    x, y = ml_runtime.load_digits()
    public = Participant(BOB, x, y)
    commit = public.train(chain, 0)
    third = Participant(CHARLIE, x[:600], y[:600])
    d.fails(CHARLIE, replace(third.train(chain, 0), dataset=0), "DatasetMismatch")
    d.fails(BOB, replace(commit, dataset=7), "datasets.UnknownDataset")
    ferdie_before = federated.balances.get_account(chain.state.overlay(), FERDIE.public).free
    receipt = d.ok(BOB, replace(commit, dataset=0))
    paid = 1000 * 40 * 16
    assert federated.balances.get_account(chain.state.overlay(), FERDIE.public).free == ferdie_before + paid
    event = next(e for e in receipt.events if e.name == "LicensePaid")
    assert dict(event.args)["amount"] == paid


def test_a_commit_pays_a_data_licence_no_higher_than_its_limit(chain) -> None:
    """A commit signed at a licence of 1,000 a row, held back past the provider's notice and
    included after a rise, paid 10^9 times that (an outside tester's finding, round 13): it had
    no limit, as TRAIN has. Over its ``max_data_license`` it fails before anything is paid
    (Driver: only the fee changes); at it, it pays."""
    d = Driver(chain)
    d.ok(ALICE, open_call(min_updates=1))
    x, y = ml_runtime.load_digits()
    commit = replace(Participant(BOB, x, y).train(chain, 0), dataset=0)
    paid = 1000 * 40 * 16  # Ferdie's price per row x local_steps x batch_size
    refused = d.fails(BOB, replace(commit, max_data_license=paid - 1), "LicenseAboveLimit")
    assert f"the data set's licence is {paid}; the commit pays at most {paid - 1}" in refused
    # A limit is in one currency: the terms here are in POL, a limit in asset 1 is no limit on them.
    refused = d.fails(BOB, replace(commit, max_data_license=paid, data_license_asset=1), "LicenseCurrencyMismatch")
    assert "the data set's licence is paid in POL; the commit's limit is in asset 1" in refused
    ferdie_before = federated.balances.get_account(chain.state.overlay(), FERDIE.public).free
    d.ok(BOB, replace(commit, max_data_license=paid))
    assert federated.balances.get_account(chain.state.overlay(), FERDIE.public).free == ferdie_before + paid


def test_a_late_reveal_is_refused_and_the_update_excluded(chain) -> None:
    r = _Round(chain, min_updates=1, commit_deadline=3, reveal_deadline=7)
    d = r.d
    d.ok(BOB, r.bob_commit)
    d.ok(CHARLIE, r.charlie.train(chain, 0))
    d.ok(EVE, calls.ChallengeRound(0))
    for reveal in r.bob.reveals(chain, 0):
        d.ok(BOB, reveal)
    d.until(7)
    late = r.charlie.reveals(chain, 0)[0]
    assert "took reveals up to block 7" in d.fails(CHARLIE, late, "TooLate")
    d.ok(EVE, calls.CloseRound(0))
    state = chain.state.overlay()
    assert federated.UPDATES.get(state, 0, CHARLIE.public).status == federated.EXCLUDED
    assert federated.UPDATES.get(state, 0, BOB.public).status == federated.ACCEPTED


def test_a_round_never_challenged_fails_at_close_and_refunds_everyone(chain) -> None:
    r = _Round(chain, min_updates=1, commit_deadline=3, reveal_deadline=5)
    d = r.d
    alice_free = federated.balances.get_account(chain.state.overlay(), ALICE.public).free
    d.ok(BOB, r.bob_commit)
    d.until(5)
    assert "reveal deadline 5 has passed" in d.fails(EVE, calls.ChallengeRound(0), "TooLate")
    receipt = d.ok(EVE, calls.CloseRound(0))
    assert dict(receipt.events[-2].args)["reason"] == "the round was never challenged"
    state = chain.state.overlay()
    assert federated.get_round(state, 0).status == federated.FAILED
    assert federated.balances.get_account(state, federated.ESCROW_ACCOUNT).free == 0
    # Alice got the pool back (and authored every block, earning the fees).
    assert federated.balances.get_account(state, ALICE.public).free >= alice_free + 9 * 10**9


def test_a_commit_leaves_what_revealing_it_costs(chain) -> None:
    """As a bond (staking.compute_bond_reserve): a commit whose bond took all the participant
    had left free 0, so it could not pay for its reveals and its bond went to the pool at close.
    A commit now leaves at least federated.compute_commit_reserve (the declared fees of its
    ``samples`` reveals, above the existential deposit); one that leaves exactly that reveals
    every challenged segment with nothing else and gets its bond back. A refused commit
    changes only the fee (Driver)."""
    from chainkit import sign

    from chain.pallets import balances

    d = Driver(chain)
    shares, _ = split_digits(3, seed=3)
    bob = Participant(BOB, *shares[0])
    spec = models.decode_spec(models.get_model(chain.state.overlay(), 0).spec)

    def free() -> int:
        return balances.get_account(chain.state.overlay(), BOB.public).free

    def open_for(left: int) -> int:
        """Open a round with a bond that leaves Bob ``left`` free after his commit to it."""
        round_id = federated.NEXT_ROUND.get(chain.state.overlay())
        call = open_call(min_updates=1, commit_deadline=chain.best_number + 4, reveal_deadline=chain.best_number + 20)
        # The commit's fee, with Bob's commit to a round with these parameters (the bond is not in it).
        d.ok(ALICE, replace(call, bond=1))
        commit = bob.train(chain, round_id)
        xt = sign(chain, BOB, commit, balances.get_account(chain.state.overlay(), BOB.public).nonce)
        fee = chain.runtime.compute_fee(chain.runtime.compute_dispatch_info(chain.state.overlay(), xt), len(xt.encode()), 0)
        # Reopen with the bond that leaves ``left``: same parameters, so the same job and commit.
        d.ok(ALICE, replace(call, bond=free() - fee - left))
        return round_id + 1

    reserve = federated.compute_commit_reserve(chain.config, spec, open_call())
    assert reserve > chain.config.existential_deposit
    for left in (0, reserve - 1):
        assert "the fees of the 2 reveals" in d.fails(BOB, bob.train(chain, open_for(left)), "InsufficientFreeAfterCommit")
    commit = bob.train(chain, open_for(reserve))
    d.ok(BOB, commit)
    assert free() == reserve
    info = federated.get_round(chain.state.overlay(), commit.round)
    d.until(info.commit_deadline + 1)
    d.ok(EVE, calls.ChallengeRound(commit.round))
    for reveal in bob.reveals(chain, commit.round):
        d.ok(BOB, reveal)
    d.ok(EVE, calls.CloseRound(commit.round))
    assert federated.get_round(chain.state.overlay(), commit.round).status == federated.CLOSED
    assert free() > info.bond


# --- a referendum lowers the block limits while a round is open (tester19's E4) ---------------


def _lowering_round(chains, **kw) -> tuple[Driver, list[Participant]]:
    """Round 0 opened in block 1 (4 updates x 1 reveal: at the default limits 55 reveals fit a
    block, so one reveal block suffices), Charlie's referendum to set max_block_weight to
    ``weight`` proposed in block 2 and voted in block 3 (enacted in block 6's on_initialize: in
    force from block 7 on), Bob, Dave, Eve and Ferdie committed in block 4."""
    weight = kw.pop("weight")
    chain, follower = chains
    d = Driver(chain, follower)
    shares, _ = split_digits(4, 0)
    people = [Participant(k, x, y) for k, (x, y) in zip((BOB, DAVE, EVE, FERDIE), shares, strict=True)]
    d.ok(ALICE, open_call(**{"local_steps": 10, "batch_size": 8, "segment_len": 5, "samples": 1, "min_updates": 1, "max_updates": 4, **kw}))
    r = d.ok(CHARLIE, calls.ProposeConfig((calls.ConfigChange("max_block_weight", weight),)))
    d.ok(CHARLIE, calls.VoteConfig(int(event_args(r, "Proposed")["referendum"]), True, 7 * 10**14))
    state = chain.state.overlay()
    built = d.block([sign(chain, p.key, p.train(chain, 0), balances.get_account(state, p.key.public).nonce) for p in people])
    assert all(rc.success for rc in built.receipts) and len(built.receipts) == 4
    return d, people


def _one_reveal_a_block(chain) -> int:
    """A max_block_weight at which one of these reveals fits a block (tester19's: 1.5 x what a
    reveal uses after its refund; each declares more, capped at the block's weight)."""
    state = chain.state.overlay()
    info = federated.get_round(state, 0)
    used = federated.compute_reveal_weight(federated.get_spec(state, info), info, 375)
    return used + used // 2


def _offer_reveals(d: Driver, people: list[Participant], until: int) -> dict[bytes, int]:
    """Offer every participant's pending reveal to each block up to ``until``, as honest
    participants do (the author takes what fits); the block each reveal got into."""
    chain = d.chain
    landed: dict[bytes, int] = {}
    while chain.best_number < until:
        state = chain.state.overlay()
        pending = [p for p in people if p.key.public not in landed]
        xts = [sign(chain, p.key, rv, balances.get_account(state, p.key.public).nonce) for p in pending for rv in p.reveals(chain, 0)]
        built = d.block(xts)
        for rc in built.receipts:
            assert rc.success, rc.error
            (who,) = (p.key.public for p, xt in zip(pending, xts, strict=True) if xt.hash() == rc.hash)
            landed[who] = chain.best_number
    return landed


def _frees(chain, people) -> dict[bytes, int]:
    state = chain.state.overlay()
    return {p.key.public: balances.get_account(state, p.key.public).free for p in people}


def test_a_limit_lowered_before_the_challenge_moves_the_reveal_deadline_out(chains) -> None:
    """tester19's E4: a referendum lowers max_block_weight after the round opened so that one
    reveal fits a block, and the window (block 11 only) was sized at opening for 55 a block.
    Before, three of four honest reveals missed the deadline and their bonds went to the
    fourth. The challenge now sizes the window for the committed updates' reveals at the limits
    then in force: the deadline moves from 11 to 14, every honest reveal gets in, and Ferdie,
    who withholds his, still loses his bond (the window held it)."""
    chain, _ = chains
    d, people = _lowering_round(chains, weight=2_205_270, commit_deadline=9, reveal_deadline=11)
    assert _one_reveal_a_block(chain) == 2_205_270
    d.until(9)
    assert chain.config.max_block_weight == 2_205_270
    challenge = d.ok(ALICE, calls.ChallengeRound(0))  # block 10
    honest, ferdie = people[:3], people[3]
    landed = _offer_reveals(d, honest, 14)
    assert sorted(landed.values()) == [11, 12, 13]  # one a block, all before the deadline
    assert event_args(challenge, "RevealDeadlineExtended") == {"round": 0, "reveal_deadline": 14, "reveals_per_block": 1}
    info = federated.get_round(chain.state.overlay(), 0)
    assert (info.reveal_deadline, info.reveal_rate) == (14, 1)
    before = _frees(chain, people)
    receipt = d.ok(ALICE, calls.CloseRound(0))  # block 15
    state = chain.state.overlay()
    bond = info.bond
    for p in honest:
        update = federated.UPDATES.get(state, 0, p.key.public)
        assert update.status == federated.ACCEPTED
        assert update.reward == (9 * 10**9 + bond) // 3  # the pool and Ferdie's bond, equal counts
        assert _frees(chain, [p])[p.key.public] == before[p.key.public] + bond + update.reward
    assert federated.UPDATES.get(state, 0, ferdie.key.public).status == federated.EXCLUDED
    assert _frees(chain, [ferdie])[ferdie.key.public] == before[ferdie.key.public]
    assert event_args(receipt, "UpdateExcluded")["bond_forfeited"] == bond
    assert federated.get_round(state, 0).status == federated.CLOSED
    assert balances.get_account(state, federated.ESCROW_ACCOUNT).free == 0


def test_a_moved_deadline_stops_at_max_round_blocks_from_the_opening_and_excuses_what_it_left_out(chains, monkeypatch) -> None:
    """The challenge moves the deadline no further than MAX_ROUND_BLOCKS from the opening (so a
    round still ends, whatever a referendum did to the limits); a window still short then is
    what the close's excuse covers. With the bound at 12 blocks (the round opened in block 1)
    the deadline the lowered limit asks for, 14, stops at 13: three reveals land, one a block,
    and the fourth update, which the window could not hold, is excused with its bond back.
    The bound is patched in this process, which builds and imports every block alike."""
    monkeypatch.setattr(federated, "MAX_ROUND_BLOCKS", 12)
    chain, _ = chains
    d, people = _lowering_round(chains, weight=2_205_270, commit_deadline=9, reveal_deadline=11)
    d.until(9)
    challenge = d.ok(ALICE, calls.ChallengeRound(0))  # block 10
    assert event_args(challenge, "RevealDeadlineExtended") == {"round": 0, "reveal_deadline": 13, "reveals_per_block": 1}
    landed = _offer_reveals(d, people, 13)
    assert sorted(landed.values()) == [11, 12, 13]
    before = _frees(chain, people)
    receipt = d.ok(ALICE, calls.CloseRound(0))
    state = chain.state.overlay()
    bond = federated.get_round(state, 0).bond
    (left,) = (p for p in people if p.key.public not in landed)
    update = federated.UPDATES.get(state, 0, left.key.public)
    assert (update.status, update.reward) == (federated.EXCUSED, 0) and "could hold 3 of the round's 4 reveals" in update.reason
    assert _frees(chain, [left])[left.key.public] == before[left.key.public] + bond
    assert event_args(receipt, "UpdateExcused")["bond_returned"] == bond
    assert balances.get_account(state, federated.ESCROW_ACCOUNT).free == 0


def test_a_limit_lowered_during_the_reveal_window_returns_the_bonds_it_kept_out(chains) -> None:
    """The lowering is enacted after the challenge (block 6), so the window (blocks 7..8, sized
    for 55 reveals a block) stays, and from block 7 on one reveal fits a block: two of the four
    honest reveals get in, two cannot. Before, the two were excluded and their bonds paid to the
    two who got in. Now the round keeps the fewest reveals a block seen since the challenge (1,
    by the reveal in block 7); a window that could not hold the round's reveals at that rate
    returns the bonds of the updates it left unrevealed (status ``excused``, in no aggregate)."""
    chain, _ = chains
    d, people = _lowering_round(chains, weight=2_205_270, commit_deadline=5, reveal_deadline=8)
    d.until(5)
    d.ok(ALICE, calls.ChallengeRound(0))  # block 6: the limits of block 5's state, not lowered yet
    assert federated.get_round(chain.state.overlay(), 0).reveal_deadline == 8
    assert chain.config.max_block_weight == 2_205_270  # from block 7 on
    landed = _offer_reveals(d, people, 8)
    assert sorted(landed.values()) == [7, 8]
    before = _frees(chain, people)
    receipt = d.ok(ALICE, calls.CloseRound(0))  # block 9
    state = chain.state.overlay()
    bond = federated.get_round(state, 0).bond
    for p in people:
        update = federated.UPDATES.get(state, 0, p.key.public)
        if p.key.public in landed:
            assert _frees(chain, [p])[p.key.public] == before[p.key.public] + bond + 9 * 10**9 // 2
            assert (update.status, update.reward) == ("accepted", 9 * 10**9 // 2)
        else:
            assert _frees(chain, [p])[p.key.public] == before[p.key.public] + bond  # the bond back
            assert (update.status, update.reward) == ("excused", 0)
            assert "could hold 2 of the round's 4 reveals" in update.reason
    excused = [dict(e.args) for e in receipt.events if e.name == "UpdateExcused"]
    assert sorted(e["participant"] for e in excused) == sorted("0x" + p.key.public.hex() for p in people if p.key.public not in landed)
    assert all(e["bond_returned"] == bond for e in excused)
    assert not any(e.name == "UpdateExcluded" for e in receipt.events)
    info = federated.get_round(state, 0)
    assert (info.status, info.forfeited) == (federated.CLOSED, 0)
    closed = event_args(receipt, "RoundClosed")
    assert (closed["accepted"], closed["excluded"], closed["excused"]) == (2, 0, 2)
    assert balances.get_account(state, federated.ESCROW_ACCOUNT).free == 0
    assert info.reveal_rate == 1  # seen by the reveal in block 7


def test_a_limit_lowered_during_the_window_that_still_holds_the_reveals_forfeits_a_withheld_bond(chains) -> None:
    """Lowered during the window to one reveal a block, a window of four blocks (7..10) still
    holds the four reveals: Ferdie, who withholds his, loses his bond to the three who revealed
    (a fall in the limits excuses only what the window could no longer hold)."""
    chain, _ = chains
    d, people = _lowering_round(chains, weight=2_205_270, commit_deadline=5, reveal_deadline=10)
    d.until(5)
    d.ok(ALICE, calls.ChallengeRound(0))  # block 6
    info = federated.get_round(chain.state.overlay(), 0)
    assert info.reveal_deadline == 10
    honest, ferdie = people[:3], people[3]
    landed = _offer_reveals(d, honest, 10)
    assert sorted(landed.values()) == [7, 8, 9]
    receipt = d.ok(ALICE, calls.CloseRound(0))
    state = chain.state.overlay()
    assert federated.UPDATES.get(state, 0, ferdie.key.public).status == federated.EXCLUDED
    assert event_args(receipt, "UpdateExcluded")["bond_forfeited"] == info.bond
    assert not any(e.name == "UpdateExcused" for e in receipt.events)
    for p in honest:
        assert federated.UPDATES.get(state, 0, p.key.public).reward == (9 * 10**9 + info.bond) // 3
    assert balances.get_account(state, federated.ESCROW_ACCOUNT).free == 0
    assert federated.get_round(state, 0).reveal_rate == 1  # the lowering was seen, and the window held


def _two_committed(chains, min_updates: int) -> tuple[Driver, Participant, Participant]:
    """Round 0 (commit deadline 3, reveal deadline 5: the shortest window, one reveal a
    participant) with Bob's and Charlie's updates committed in blocks 2 and 3."""
    chain, follower = chains
    d = Driver(chain, follower)
    shares, _ = split_digits(2, 0)
    bob, charlie = (Participant(k, x, y) for k, (x, y) in zip((BOB, CHARLIE), shares, strict=True))
    d.ok(ALICE, open_call(local_steps=10, batch_size=8, segment_len=5, samples=1, min_updates=min_updates, max_updates=2,
                          commit_deadline=3, reveal_deadline=5))
    d.ok(BOB, bob.train(chain, 0))
    d.ok(CHARLIE, charlie.train(chain, 0))
    return d, bob, charlie


def test_a_withheld_reveal_forfeits_its_bond_when_the_limits_stand(chains) -> None:
    """No regression: with the limits as at opening, an update left unrevealed is excluded at
    close and its bond goes to the pool, as before (this passes on the code before the fix too)."""
    chain, _ = chains
    d, bob, charlie = _two_committed(chains, min_updates=1)
    d.ok(EVE, calls.ChallengeRound(0))  # block 4
    info = federated.get_round(chain.state.overlay(), 0)
    assert info.reveal_deadline == 5
    (reveal,) = bob.reveals(chain, 0)
    d.ok(BOB, reveal)  # block 5
    before = _frees(chain, [bob, charlie])
    receipt = d.ok(EVE, calls.CloseRound(0))
    state = chain.state.overlay()
    assert federated.UPDATES.get(state, 0, CHARLIE.public).status == federated.EXCLUDED
    assert event_args(receipt, "UpdateExcluded")["bond_forfeited"] == info.bond
    assert _frees(chain, [charlie])[CHARLIE.public] == before[CHARLIE.public]
    assert _frees(chain, [bob])[BOB.public] == before[BOB.public] + info.bond + 9 * 10**9 + info.bond
    assert federated.get_round(state, 0).forfeited == info.bond
    assert balances.get_account(state, federated.ESCROW_ACCOUNT).free == 0


def test_a_round_failed_after_a_lowering_returns_the_excused_bonds_with_the_accepted(chains) -> None:
    """As the test before, with min_updates 3: two accepted fail the round, and the failure
    returns the bonds of the two accepted and of the two excused, the pool to the owner, and
    burns nothing (no bond was forfeited)."""
    chain, _ = chains
    d, people = _lowering_round(chains, weight=2_205_270, commit_deadline=5, reveal_deadline=8, min_updates=3)
    d.until(5)
    d.ok(ALICE, calls.ChallengeRound(0))  # block 6
    landed = _offer_reveals(d, people, 8)
    assert sorted(landed.values()) == [7, 8]
    before = _frees(chain, people)
    alice_before = balances.get_account(chain.state.overlay(), ALICE.public).free
    receipt = d.ok(CHARLIE, calls.CloseRound(0))  # block 9
    state = chain.state.overlay()
    info = federated.get_round(state, 0)
    for p in people:
        assert _frees(chain, [p])[p.key.public] == before[p.key.public] + info.bond
        status = federated.UPDATES.get(state, 0, p.key.public).status
        assert status == ("accepted" if p.key.public in landed else "excused")
    assert event_args(receipt, "RoundFailed") == {
        "round": 0, "reason": "2 updates accepted, 3 needed", "bonds_burned": 0,
    }
    # Alice gets the pool back (and, as the author, the close's fee share).
    assert balances.get_account(state, ALICE.public).free >= alice_before + info.reward_pool
    assert (info.status, info.forfeited) == (federated.FAILED, 0)
    assert balances.get_account(state, federated.ESCROW_ACCOUNT).free == 0


def test_a_challenge_held_back_to_the_deadline_moves_it_out_for_the_reveals(chains) -> None:
    """The opening counts the reveal window from commit_deadline + 2, as if the challenge came
    in the block after the commit deadline; no reveal can come before the challenge's block.
    An author who left the challenge out until the reveal deadline, in the shortest window the
    opening admits (one block), made every honest reveal TooLate, and the round failed with
    every bond burned (an outside retest's R2, round 14). The challenge now counts the window
    from its own block: here it comes in block 5, the deadline moves to 6, both reveals land."""
    chain, _ = chains
    d, bob, charlie = _two_committed(chains, min_updates=2)
    d.until(4)  # block 4, the one after the commit deadline, leaves the challenge out
    challenge = d.ok(EVE, calls.ChallengeRound(0))  # block 5, the reveal deadline
    assert event_args(challenge, "RevealDeadlineExtended")["reveal_deadline"] == 6
    info = federated.get_round(chain.state.overlay(), 0)
    assert (info.reveal_deadline, info.challenged_at, federated.compute_window_capacity(info)) == (6, 5, info.reveal_rate)
    state = chain.state.overlay()
    built = d.block([sign(chain, p.key, rv, balances.get_account(state, p.key.public).nonce)
                     for p in (bob, charlie) for rv in p.reveals(chain, 0)])  # block 6
    assert [r.success for r in built.receipts] == [True, True], [r.error for r in built.receipts]
    d.ok(EVE, calls.CloseRound(0))
    state = chain.state.overlay()
    assert federated.get_round(state, 0).status == federated.CLOSED
    assert {federated.UPDATES.get(state, 0, p.key.public).status for p in (bob, charlie)} == {federated.ACCEPTED}
    assert balances.get_account(state, federated.ESCROW_ACCOUNT).free == 0

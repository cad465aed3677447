"""Declared weights bound the real cost of calls under state an attacker shapes
(benches/weights.py measures it): a federated reveal materialises its participant's whole
data array (n rows, zeros but the revealed ones) to re-run a segment, and n is the
participant's to choose at commit, up to MAX_CELLS numbers."""

from __future__ import annotations

import numpy as np
from chainkit import ALICE, event_args
from fedkit import BOB, CHARLIE, Driver, Participant, open_call, split_digits

import ml_runtime
from chain import calls
from chain.pallets import federated, models


def test_a_reveal_declares_the_largest_data_array_a_commit_admits(chain) -> None:
    """Before: a reveal of one step of batch 1 on a 4-feature model declared about 214,000
    units, and materialised (and checked) up to 2^20 x 4 + 2^20 numbers: 8.5 ms each, some
    3,800 well-formed reveals a block (by length): 33 s (benches/weights.py)."""
    d = Driver(chain)
    spec = ml_runtime.ModelSpec("softmax", 4, 2)
    receipt = d.ok(BOB, calls.RegisterModel("tiny", spec.encode(), bytes(32)))
    model = event_args(receipt, "ModelRegistered")["model"]
    d.ok(BOB, open_call(model=model, local_steps=64, batch_size=1, segment_len=1, samples=64, min_updates=1, max_updates=1,
                        bond=0, reward_pool=0, commit_deadline=5, reveal_deadline=50))
    reveal = calls.RevealSegment(0, 0, bytes(40), (), bytes(32), (), bytes(20), ((),))
    weight = federated.compute_weight(chain.state.overlay(), reveal)
    rows = min(ml_runtime.MAX_ROWS, federated.MAX_CELLS // (spec.d + 1))
    assert weight >= rows * (spec.d + 1)  # at least a unit a number
    info = federated.get_round(chain.state.overlay(), 0)
    assert weight == federated.compute_reveal_weight(spec, info) == federated.compute_reveal_weight(spec, info, rows)


def test_a_reveal_is_charged_for_its_own_participants_rows(chain) -> None:
    """The weight declared is the largest n's; what the reveal reports used (and pays) is its
    update's own n (Substrate's PostDispatchInfo refund)."""
    d = Driver(chain)
    shares, _ = split_digits(2, seed=3)
    people = [Participant(key, x[:200], y[:200]) for key, (x, y) in zip((BOB, CHARLIE), shares, strict=True)]
    d.ok(ALICE, open_call(min_updates=1, max_updates=2, commit_deadline=3, reveal_deadline=20))
    for p in people:
        d.ok(p.key, p.train(chain, 0))
    d.until(4)
    d.ok(ALICE, calls.ChallengeRound(0))
    state = chain.state.overlay()
    info = federated.get_round(state, 0)
    spec = federated.get_spec(state, info)
    reveal = people[0].reveals(chain, 0)[0]
    declared = federated.compute_weight(state, reveal)
    receipt = d.ok(BOB, reveal)
    assert receipt.weight == federated.compute_reveal_weight(spec, info, 200) < declared
    assert models.get_model(state, 0).latest_version == 0


def test_a_commit_is_bounded_by_the_numbers_of_its_rows_labels_included(chain) -> None:
    """Before: row_count was bounded by MAX_CELLS // d, x alone. A linear model of one feature
    and 4,096 targets (8,192 parameters) admitted 2^20 rows, and a reveal allocated y as
    2^20 x 4,096 float32 (16 GiB) and copied it into the job: every importing node out of
    memory. Now n x (d + k) <= MAX_CELLS: 1,023 rows."""
    d = Driver(chain)
    spec = ml_runtime.ModelSpec("linear", 1, 4096)
    receipt = d.ok(BOB, calls.RegisterModel("wide", spec.encode(), bytes(32)))
    model = event_args(receipt, "ModelRegistered")["model"]
    d.ok(BOB, open_call(model=model, local_steps=1, batch_size=1, segment_len=1, samples=1, min_updates=1, max_updates=1,
                        bond=0, reward_pool=0, commit_deadline=5, reveal_deadline=50))
    commit = calls.CommitUpdate(0, bytes(32), 1 << 20, 1, bytes(4 * spec.param_count), bytes(32), (0, 0), (), ())
    error = d.fails(CHARLIE, commit, "InvalidRowCount")  # Driver: the state moved by the fee and nonce only
    assert "row_count must be in 1..1023" in error
    assert federated.compute_max_rows(spec) == federated.MAX_CELLS // 4097 == 1023


def _open_big_round(d: Driver, spec: ml_runtime.ModelSpec) -> None:
    """Bob registers a ``spec`` model and opens round 0 on it: one-step jobs, up to 64 updates."""
    model = event_args(d.ok(BOB, calls.RegisterModel("big", spec.encode(), bytes(32))), "ModelRegistered")["model"]
    d.ok(BOB, open_call(model=model, local_steps=1, batch_size=1, segment_len=1, samples=1, min_updates=1, max_updates=64,
                        bond=0, reward_pool=0, commit_deadline=5, reveal_deadline=50))


def test_closing_declares_fedavg_at_its_measured_cost(chain) -> None:
    """Before: 4 units a parameter of each update, and FedAvg of 64 updates of 2^18
    parameters (the bit-exact kernel, row order, after stacking 64 MiB) took about 380 ms, at
    some 70 million units: 28 such closes a block, 10 s or more."""
    spec = ml_runtime.ModelSpec("linear", 511, 512)  # 2^18 parameters
    _open_big_round(Driver(chain), spec)
    info = federated.get_round(chain.state.overlay(), 0)
    weight = federated.compute_close_weight(spec, info.max_updates)  # what opening checks against a block
    assert weight >= 64 * 20 * spec.param_count  # 380 ms over 64 x 2^18 numbers: 22 ns each
    assert weight == federated.BASE_WEIGHT + 64 * (federated.FEDAVG_WEIGHT * spec.param_count + 50_000)


def test_closing_declares_the_updates_committed_not_the_most_the_round_admits(chain) -> None:
    """A close (or a challenge, which may fail the round) declared FedAvg over max_updates
    updates whatever was committed, checked against the block weight only at opening: a
    referendum that lowered max_block_weight under it left a round of one update unclosable,
    its pool and bonds in escrow until another referendum (an outside tester's finding, round
    5: 540 M units declared for one update of 8.4 M). They declare the updates committed."""
    d = Driver(chain)
    spec = ml_runtime.ModelSpec("softmax", 63, 4096)  # 2^18 parameters
    _open_big_round(d, spec)
    state = chain.state.overlay()
    for call in (calls.CloseRound(0), calls.ChallengeRound(0)):
        assert federated.compute_weight(state, call) == federated.BASE_WEIGHT  # nothing committed yet
    rng = np.random.default_rng(0)
    d.ok(CHARLIE, Participant(CHARLIE, rng.random((16, 63), dtype=np.float32), rng.integers(0, 4096, 16).astype(np.int32)).train(chain, 0))
    one = federated.BASE_WEIGHT + federated.FEDAVG_WEIGHT * spec.param_count + 50_000
    for call in (calls.CloseRound(0), calls.ChallengeRound(0)):
        assert federated.compute_weight(chain.state.overlay(), call) == one

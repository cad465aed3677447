"""Is every call's declared weight an upper bound on its real cost, under state an attacker shapes?

For each call type this bench builds, on a real dev chain (LevelDB in a temporary directory),
the worst case an attacker can afford (the state it can grow, the arguments it picks), then
times blocks of that call twice: authored on one chain (``Blockchain.build_block``) and
imported on a second chain that imported every setup block (``Blockchain.import_block``:
extrinsics root, signatures, dispatch, state root, the write). Caches that a node keeps
across blocks (chain.pallets.datasets' decoded rows) are emptied before each import, since an
attacker rotates its targets to keep them cold. Per call it reports the median over the
repetitions of (block import time - an empty block's import time) / calls, the weight the
call counted towards the block (its receipt's), nanoseconds per weight unit, and the time
to import a block filled with the call up to ``max_block_weight`` or ``max_block_length``,
whichever binds first (projected from the per-call time: the point of the bench is that
some of these blocks would take hours to run). A block of transfers is the calibration: a
transfer is declared at 100,000 units and imports in about 100 us, so a unit is about 1 ns,
and a full block of anything should import in about the time of a full block of transfers.

Each ``on_initialize`` hook (chain/runtime.py: rewards, staking, governance, democracy) is
timed the same way at the worst state its bounds allow: the agendas full (MAX_AGENDA tallies
and MAX_AGENDA enactments a block, each pallet), an era payout to every validator of a large
set, a removal of most of it.

    python -m benches.weights [--quick] [--reps 3] [--only NAME ...] [--out bench-results]

Prints the tables with rich and writes ``<out>/weights.json`` (benches/runner.py). Figures
only, never assertions.
"""

from __future__ import annotations

import argparse
import gc
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

import ml_runtime
from benches.record import check_out_folder
from benches.runner import Context, Report, finish, fmt, summarize
from chain import calls
from chain.block import BLOCK_OVERHEAD, Block
from chain.blockchain import Blockchain
from chain.crypto import Keypair, blake2_256, dev_keypair
from chain.extrinsic import Extrinsic, sign_extrinsic
from chain.pallets import datasets, democracy, governance, models, rewards, staking
from chain.pallets.agenda import MAX_AGENDA
from chain.storage import Database
from consensus.aura import Aura
from consensus.block_import import ConsensusRules
from genesis.spec import ChainSpec, load_chain_spec

ALICE, BOB, CHARLIE, FERDIE = (dev_keypair(n) for n in ("Alice", "Bob", "Charlie", "Ferdie"))
F32_HALF = calls.compute_f32_bits(0.5)


class Bench:
    """Two chains of one spec: ``author`` builds every block, ``follower`` imports it."""

    def __init__(self, root: Path, spec: ChainSpec) -> None:
        self.author = self._open(root / "author", spec)
        self.follower = self._open(root / "follower", spec)
        self.slot = 0
        self.nonces: dict[bytes, int] = {}
        self.data: dict[str, Any] = {}  # what a setup made, for its make

    @staticmethod
    def _open(path: Path, spec: ChainSpec) -> Blockchain:
        return Blockchain(Database(path), chain_id=spec.id, build_genesis=spec.apply_genesis, rules=ConsensusRules(Aura(6000)))

    def close(self) -> None:
        self.author.db.close()
        self.follower.db.close()

    def sign(self, key: Keypair, call: Any) -> Extrinsic:
        nonce = self.nonces.get(key.public, 0)
        self.nonces[key.public] = nonce + 1
        chain = self.author
        return sign_extrinsic(key, call, nonce=nonce, genesis_hash=chain.genesis_hash, spec_version=chain.runtime.spec_version)

    def block(self, xts: list[Extrinsic], *, expect: str | None = "ok") -> tuple[float, float, Block, list[Any]]:
        """Build ``xts`` into one block on the author chain and import it on the follower:
        (author seconds, import seconds, the block, its receipts). ``expect="ok"``: every
        extrinsic must be included and succeed; an error name: every one must fail with it."""
        self.slot += 1
        gc.collect()
        start = time.perf_counter()
        built = self.author.build_block(xts, ALICE, slot=self.slot)
        authored = time.perf_counter() - start
        if len(built.receipts) != len(xts):
            raise RuntimeError(f"{len(built.receipts)} of {len(xts)} extrinsics were included")
        if expect == "ok" and not all(r.success for r in built.receipts):
            raise RuntimeError(f"an extrinsic failed: {[r.error for r in built.receipts if not r.success][:2]}")
        if expect not in (None, "ok") and not all(not r.success and expect in (r.error or "") for r in built.receipts):
            raise RuntimeError(f"expected every extrinsic to fail with {expect}: {[r.error for r in built.receipts][:2]}")
        datasets._ROWS_CACHE.clear()  # an attacker keeps the node's caches cold
        gc.collect()
        start = time.perf_counter()
        self.follower.import_block(built.block)
        imported = time.perf_counter() - start
        return authored, imported, built.block, list(built.receipts)


@dataclass
class Scenario:
    """One call's worst case: ``setup`` shapes the state (real blocks), ``make(bench, n)``
    returns ``n`` extrinsics of the call for one measured block, ``expect`` what they do."""

    name: str
    what: str
    make: Callable[[Bench, int], list[Extrinsic]]
    calls: int
    quick_calls: int
    setup: Callable[[Bench, bool], None] = lambda _b, _q: None
    expect: str | None = "ok"
    notes: list[str] = field(default_factory=list)


# --- setups ---------------------------------------------------------------------------------


def _register_dataset(bench: Bench, key: Keypair, rows: int, features: int, root: bytes) -> int:
    dataset = datasets.NEXT_DATASET_ID.get(bench.author.state.overlay())
    call = calls.RegisterDataset("bench", features, "classification", 2, rows, root, 0, "")
    bench.block([bench.sign(key, call)])
    return dataset


def _rows(count: int, features: int, seed: int) -> bytes:
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((count, features)).astype(np.float32)
    y = rng.integers(0, 2, count).astype(np.uint32)
    return datasets.compute_rows_bytes(x, y, "classification")


def _upload(bench: Bench, key: Keypair, dataset: int, rows: bytes, row_size: int, first: int = 0) -> None:
    """Upload ``rows`` from row ``first`` in full chunks (MAX_ROWS_CHUNK), four to a block."""
    chunk = datasets.compute_chunk_rows(row_size) * row_size
    pending: list[Extrinsic] = []
    for offset in range(0, len(rows), chunk):
        pending.append(bench.sign(key, calls.AppendRows(dataset, first + offset // row_size, rows[offset : offset + chunk])))
        if len(pending) == 4:
            bench.block(pending)
            pending = []
    if pending:
        bench.block(pending)


def _big_rows(quick: bool) -> int:
    return 1 << 18 if quick else ml_runtime.MAX_ROWS


def setup_almost_complete(bench: Bench, quick: bool) -> None:
    """A data set of ``MAX_ROWS`` 8-byte rows (one feature, a label), all uploaded but the last,
    registered under a root the rows do not have: the last row's append hashes every row, fails
    with RootMismatch, is rolled back, and can be sent again and again."""
    rows = _big_rows(quick)
    bench.data["dataset"] = _register_dataset(bench, BOB, rows, 1, bytes(32))
    _upload(bench, BOB, bench.data["dataset"], _rows(rows - 1, 1, 1), 8)
    bench.data["last_row"] = _rows(1, 1, 2)
    bench.data["row_count"] = rows


def make_last_append(bench: Bench, n: int) -> list[Extrinsic]:
    b = bench.data
    return [bench.sign(BOB, calls.AppendRows(b["dataset"], b["row_count"] - 1, b["last_row"])) for _ in range(n)]


def setup_small_rows(bench: Bench, quick: bool) -> None:
    """Data sets of MAX_ROWS 8-byte rows registered, none uploaded: each append is a full
    1 MiB chunk of 131,072 rows (never the last of a data set: the next data set takes over)."""
    bench.data["datasets"] = [_register_dataset(bench, BOB, ml_runtime.MAX_ROWS, 1, bytes(32)) for _ in range(4)]
    bench.data["next_row"] = 0
    bench.data["chunk"] = _rows(datasets.compute_chunk_rows(8), 1, 3)


def make_chunk_append(bench: Bench, n: int) -> list[Extrinsic]:
    b = bench.data
    out = []
    for _ in range(n):
        rows = len(b["chunk"]) // 8
        if b["next_row"] + rows >= ml_runtime.MAX_ROWS:
            b["datasets"].pop(0)
            b["next_row"] = 0
        out.append(bench.sign(BOB, calls.AppendRows(b["datasets"][0], b["next_row"], b["chunk"])))
        b["next_row"] += rows
    return out


def setup_many_chunks(bench: Bench, quick: bool) -> None:
    """Data sets of wide rows (2,048 features, 2,048 regression targets: 16 KiB a row, 64 rows
    a full chunk), of the most rows a data set of them may have (MAX_DATASET_BYTES: 65,536
    rows, whose upload may take 2,064 chunks, datasets.compute_max_chunks), each uploaded one
    row a chunk, 1,000 chunks (``--quick`` 200): an append at row 0 restarts the upload and
    deletes them all. (Until the 1 GiB cap, MAX_ROWS rows; since, registering them failed,
    TooLarge, and the scenario with it.)"""
    chunks = 200 if quick else 1000
    features = 2048
    row = np.ones(2 * features, dtype="<f4").tobytes()
    bench.data["restart"] = []
    for _ in range(4):
        rows = datasets.MAX_DATASET_BYTES // datasets.compute_row_size(features, "regression", features)
        call = calls.RegisterDataset("wide", features, "regression", features, rows, bytes(32), 0, "")
        dataset = datasets.NEXT_DATASET_ID.get(bench.author.state.overlay())
        bench.block([bench.sign(BOB, call)])
        for first in range(0, chunks, 300):
            bench.block([bench.sign(BOB, calls.AppendRows(dataset, r, row)) for r in range(first, min(first + 300, chunks))])
        bench.data["restart"].append((dataset, row))


def make_restart(bench: Bench, n: int) -> list[Extrinsic]:
    pending = bench.data["restart"]
    out = [bench.sign(BOB, calls.AppendRows(dataset, 0, row)) for dataset, row in pending[:n]]
    del pending[:n]
    return out


def _big_dataset_mib(quick: bool) -> int:
    return 8 if quick else 32


def setup_big_dataset(bench: Bench, quick: bool) -> None:
    """A complete data set of wide rows (64 features, so model 0, digits-softmax with d=64
    and k=10, could use it as far as the schema goes, but labels 0..1 of k=2: the bounty's
    DatasetMismatch or ValidationTooLarge comes after the rows are read) and ``--quick`` 8 MiB
    or 32 MiB, uploaded honestly (valid root)."""
    row_size = 4 * 64 + 4
    count = (_big_dataset_mib(quick) << 20) // row_size
    rows = _rows(count, 64, 4)
    root = datasets.compute_rows_root(rows, row_size)
    bench.data["dataset"] = _register_dataset(bench, BOB, count, 64, root)
    _upload(bench, BOB, bench.data["dataset"], rows, row_size)


def make_post_bounty(bench: Bench, n: int) -> list[Extrinsic]:
    b = bench.data
    return [bench.sign(BOB, calls.PostBounty(0, b["dataset"], F32_HALF, 1, 10**6)) for _ in range(n)]


def make_train_big(bench: Bench, n: int) -> list[Extrinsic]:
    """TRAIN of one step, batch 1, on model 0 with the big data set (labels fit k=10? no:
    the data set has 2 classes and the model 10, so DatasetMismatch, after the rows are read)."""
    b = bench.data
    return [bench.sign(BOB, calls.Train(0, b["dataset"], 1, 1, F32_HALF, 0, 1)) for _ in range(n)]


MAX_PARAMS_SPEC = ml_runtime.ModelSpec("linear", 511, 512)  # 511 x 512 + 512 = 2^18 parameters


def make_register_model(bench: Bench, n: int) -> list[Extrinsic]:
    spec = MAX_PARAMS_SPEC.encode()
    return [bench.sign(BOB, calls.RegisterModel("big", spec, blake2_256(os.urandom(8)))) for _ in range(n)]


INFER_SPEC = ml_runtime.ModelSpec("linear", 1, 4096)  # k = 4096 outputs from 1 input


def setup_wide_model(bench: Bench, quick: bool) -> None:
    """A linear model with one input and 4,096 outputs, Bob's."""
    bench.data["model"] = models.NEXT_MODEL_ID.get(bench.author.state.overlay())
    bench.block([bench.sign(BOB, calls.RegisterModel("wide", INFER_SPEC.encode(), bytes(32)))])


def _make_infer(rows: int) -> Callable[[Bench, int], list[Extrinsic]]:
    def make(bench: Bench, n: int) -> list[Extrinsic]:
        x = np.ones((rows, 1), dtype="<f4").tobytes()
        return [bench.sign(BOB, calls.Infer(bench.data["model"], None, x)) for _ in range(n)]

    return make


def setup_big_model(bench: Bench, quick: bool) -> None:
    """A model of max_model_params (2^18) parameters, Bob's."""
    bench.data["model"] = models.NEXT_MODEL_ID.get(bench.author.state.overlay())
    bench.block([bench.sign(BOB, calls.RegisterModel("big", MAX_PARAMS_SPEC.encode(), bytes(32)))])


def make_open_round(bench: Bench, n: int) -> list[Extrinsic]:
    """federated.open_round on the big model's version 0, refused (InvalidSteps) after the
    base version's 1 MiB of weights is read: it changes nothing, so it can be sent again."""
    call = calls.OpenRound(bench.data["model"], 0, (), 0, 1, F32_HALF, 0, 1, 1, 1, 1, 0, 0, 10**6, 10**6 + 10)
    return [bench.sign(BOB, call) for _ in range(n)]


REVEAL_SPEC = ml_runtime.ModelSpec("softmax", 4, 2)  # 4 features: the most rows MAX_CELLS admits bar one


def setup_big_reveals(bench: Bench, quick: bool) -> None:
    """A federated round on Bob's 4-feature model: one step of batch 1 a segment, 64 segments,
    all challenged; Charlie commits an update over the most rows a commit admits
    (federated.compute_max_rows: 838,860, ``--quick`` 65,536), trained honestly, and the
    round is challenged. Each of Charlie's 64 reveals is then well formed and re-runs to its
    entry, and materialises all of Charlie's rows to do so."""
    from chain.pallets import federated

    model = models.NEXT_MODEL_ID.get(bench.author.state.overlay())
    bench.block([bench.sign(BOB, calls.RegisterModel("fl", REVEAL_SPEC.encode(), bytes(32)))])
    deadline = bench.author.best_number + 3
    bench.block([bench.sign(BOB, calls.OpenRound(model, 0, (), 64, 1, F32_HALF, 0, 1, 64, 1, 1, 0, 0, deadline, deadline + 10_000))])
    round_id = federated.NEXT_ROUND.get(bench.author.state.overlay()) - 1
    n = 1 << 16 if quick else federated.compute_max_rows(REVEAL_SPEC)
    rng = np.random.default_rng(5)
    x = rng.standard_normal((n, REVEAL_SPEC.d)).astype(np.float32)
    y = rng.integers(0, 2, n).astype(np.int32)
    state = bench.author.state.overlay()
    info = federated.get_round(state, round_id)
    base = models.get_weights(state, model, 0)
    result = ml_runtime.run_job(federated.compute_job(info, REVEAL_SPEC, base, CHARLIE.public, x, y, round_id))
    leaves = federated.compute_row_leaves(REVEAL_SPEC, x, y)
    commit = federated.compute_commit(round_id, ml_runtime.compute_merkle_root(leaves), n, n, result)
    bench.block([bench.sign(CHARLIE, commit)])
    while bench.author.best_number <= deadline:
        bench.block([])
    bench.block([bench.sign(BOB, calls.ChallengeRound(round_id))])
    info = federated.get_round(bench.author.state.overlay(), round_id)
    seed = federated.compute_batch_seed(round_id, CHARLIE.public)
    wanted = {j: federated.compute_segment_rows(seed, info, j, n).tolist() for j in federated.compute_challenged(info, CHARLIE.public)}
    paths = federated.compute_leaf_paths(leaves, [r for rows in wanted.values() for r in rows])  # one pass for all
    t = result.transcript
    bench.data["reveals"] = [
        calls.RevealSegment(
            round_id, j, np.asarray(result.checkpoints[j], dtype="<f4").tobytes(), ml_runtime.merkle_proof(t, j),
            t.entries[j + 1].weights_hash, ml_runtime.merkle_proof(t, j + 1),
            b"".join(leaves[r] for r in rows), tuple(paths[r] for r in rows),
        )
        for j, rows in wanted.items()
    ]


def make_reveals(bench: Bench, n: int) -> list[Extrinsic]:
    pending = bench.data["reveals"]
    out = [bench.sign(CHARLIE, call) for call in pending[:n]]
    del pending[:n]
    return out


def make_transfers(bench: Bench, n: int) -> list[Extrinsic]:
    return [bench.sign(BOB, calls.Transfer(blake2_256(os.urandom(8)), 10**7)) for _ in range(n)]


def make_remarks(bench: Bench, n: int) -> list[Extrinsic]:
    return [bench.sign(BOB, calls.Remark(os.urandom(calls.MAX_REMARK))) for _ in range(n)]


def setup_shared(bench: Bench, quick: bool) -> None:
    """Model 0 shared into 10^6 shares, Alice holding them."""
    bench.block([bench.sign(ALICE, calls.ShareModel(0, 10**6))])


def make_pay_model(bench: Bench, n: int) -> list[Extrinsic]:
    return [bench.sign(BOB, calls.PayModel(0, 10**7 + 1)) for _ in range(n)]


def make_share_transfers(bench: Bench, n: int) -> list[Extrinsic]:
    from chain.pallets import assets

    shares = assets.compute_shares_asset(0)
    return [bench.sign(ALICE, calls.TransferAsset(shares, blake2_256(os.urandom(8)), 1)) for _ in range(n)]


def make_bonds(bench: Bench, n: int) -> list[Extrinsic]:
    return [bench.sign(CHARLIE, calls.Bond(10**6)) for _ in range(n)]


SCENARIOS = [
    Scenario("transfer", "balances.transfer to a new account (calibration)", make_transfers, 2000, 500),
    Scenario("remark", "system.remark of MAX_REMARK (4 KiB) bytes", make_remarks, 200, 100),
    Scenario("bond", "staking.bond", make_bonds, 500, 200),
    Scenario("pay_model", "models.pay_model to a shared model", make_pay_model, 500, 200, setup_shared),
    Scenario("transfer_shares", "assets.transfer of model shares (revenue settled)", make_share_transfers, 500, 200, setup_shared),
    Scenario(
        "register_model", "models.register_model at max_model_params (2^18 float32 written)", make_register_model, 6, 3,
    ),
    Scenario(
        "append_rows_chunk", "datasets.append_rows of a full 1 MiB chunk of 8-byte rows", make_chunk_append, 4, 2,
        setup_small_rows,
    ),
    Scenario(
        "append_rows_last", "datasets.append_rows of the last row of a MAX_ROWS data set (wrong root: repeatable)",
        make_last_append, 40, 20, setup_almost_complete, "RootMismatch",
    ),
    Scenario(
        "append_rows_restart", "datasets.append_rows at row 0 of an upload of 1,000 one-row chunks (deletes them)",
        make_restart, 1, 1, setup_many_chunks,
    ),
    Scenario(
        "infer_wide", "models.infer, 1,024 rows into a 1-input 4,096-output model (4M outputs)",
        _make_infer(calls.MAX_INFER_ROWS), 100, 50, setup_wide_model, None,
    ),
    Scenario(
        # 8 a block: each call's 2^16 outputs go into its receipt as 512 KiB of hex, which the
        # block's byte limit (5 MiB) counts; 10 did not fit, and the scenario failed.
        "infer_wide_16", "models.infer, 16 rows into a 1-input 4,096-output model (2^16 outputs)",
        _make_infer(16), 8, 8, setup_wide_model,
    ),
    Scenario(
        "open_round_big", "federated.open_round on a 2^18-parameter model, refused after reading its weights",
        make_open_round, 20, 10, setup_big_model, "InvalidSteps",
    ),
    Scenario(
        "reveal_big_n", "federated.reveal_segment of 1 step, batch 1, by a participant of the most rows",
        make_reveals, 20, 10, setup_big_reveals,
    ),
    Scenario(
        # 40 a block (20 with --quick), not 3 (2): each call is refused before it reads a row, a
        # tenth of a millisecond, and two of them measured the empty block's noise: 0 us, or
        # 4 ms a call ("3.6x a transfer's time a unit", on a loaded machine).
        "post_bounty_big", "models.post_bounty naming a large data set that does not fit the model", make_post_bounty, 40, 20,
        setup_big_dataset, None,
    ),
    Scenario(
        "train_big", "training.train, 1 step of batch 1, naming a large data set (cold)", make_train_big, 40, 20,
        setup_big_dataset, None,
    ),
]


# --- measuring ------------------------------------------------------------------------------


def _empty_import(bench: Bench, reps: int) -> float:
    return statistics.median(bench.block([])[1] for _ in range(reps))


def measure_call(scenario: Scenario, spec: ChainSpec, quick: bool, reps: int) -> dict[str, Any]:
    n = scenario.quick_calls if quick else scenario.calls
    with tempfile.TemporaryDirectory(prefix="bench-weights-") as tmp:
        bench = Bench(Path(tmp), spec)
        try:
            setup_start = time.perf_counter()
            scenario.setup(bench, quick)
            setup_s = time.perf_counter() - setup_start
            bench.block([bench.sign(FERDIE, calls.Transfer(ALICE.public, 10**7)) for _ in range(20)])  # warm the import path
            empty = _empty_import(bench, 3)
            per_call_import, per_call_author, weights, lengths, errors = [], [], [], [], set()
            for _ in range(reps):
                xts = scenario.make(bench, n)
                authored, imported, _block, receipts = bench.block(xts, expect=scenario.expect)
                per_call_import.append(max(imported - empty, 0.0) / n * 1e6)
                per_call_author.append(authored / n * 1e6)
                weights += [r.weight for r in receipts]
                lengths += [len(xt.encode()) for xt in xts]
                errors |= {r.error.split(":")[0] for r in receipts if r.error}
        finally:
            bench.close()
    config = spec.runtime_config
    weight, length = max(weights), max(lengths)
    fit_weight = config.max_block_weight // weight
    fit_length = (config.max_block_length - BLOCK_OVERHEAD) // length
    fit = min(fit_weight, fit_length)
    us = summarize(per_call_import)
    return {
        "what": scenario.what, "calls_per_block": n, "setup_s": round(setup_s, 2), "empty_import_ms": empty * 1e3,
        "import_us_per_call": us, "author_us_per_call": summarize(per_call_author),
        "weight": weight, "length": length, "ns_per_unit": us["median"] * 1e3 / weight,
        "full_block_calls": fit, "bound_by": "weight" if fit_weight <= fit_length else "length",
        "full_block_s": us["median"] * fit / 1e6, "errors": sorted(errors),
    }


# --- hooks ----------------------------------------------------------------------------------


def _many_validators(count: int) -> tuple[ChainSpec, list[bytes]]:
    """The dev spec with ``count`` more validators (each bonded with the minimum) and a block
    reward, so rewards' era payout runs."""
    import copy

    from genesis.spec import parse_chain_spec

    base = load_chain_spec("dev")
    obj = copy.deepcopy(base.to_json())
    obj["id"] = "bench_weights_hooks"
    genesis = obj["genesis"]["runtimeGenesisConfig"]
    keys = [blake2_256(b"bench-validator" + i.to_bytes(4, "little")) for i in range(count)]
    for who in keys:
        genesis["balances"].append(["0x" + who.hex(), base.runtime_config.min_validator_bond])
        genesis["validators"].append("0x" + who.hex())
    obj["runtimeConfig"]["block_reward"] = 10**9
    return parse_chain_spec(obj, "bench spec"), keys


def _fill_agendas(state: Any, number: int, count: int) -> None:
    """MAX_AGENDA governance tallies (each passing) and enactments, and as many democracy
    referenda to tally and to enact, all due at block ``number``: each proposal a distinct
    shared model's, as reachable states hold them (at most MAX_ACTIVE per model)."""
    from chain.pallets import assets, revenue

    for i in range(count):
        model = 1000 + i
        models.MODELS.apply_set(state, models.ModelInfo(ALICE.public, "m", models.MODELS.get(state, 0).spec, 0, 0, shares=100), model)  # type: ignore[union-attr]
        revenue.apply_open_pool(state, model, 100)
        assets.BALANCES.apply_set(state, 100, assets.compute_shares_asset(model), ALICE.public)
        spend = calls.ProposeTrainer(model, BOB.public, True)
        tally = governance.Proposal(model, ALICE.public, spend, 0, number, 1, 0, 0, ayes=100)
        enact = governance.Proposal(model, ALICE.public, spend, 0, number - 1, 1, 0, 0, ayes=100, status="passed")
        governance.PROPOSALS.apply_set(state, tally, 2 * i)
        governance.PROPOSALS.apply_set(state, enact, 2 * i + 1)
        governance.ACTIVE.apply_set(state, (2 * i, 2 * i + 1), model)
        governance.AGENDA.apply_add(state, 2 * i, number)
        governance.ENACTMENTS.apply_add(state, 2 * i + 1, number)
        change = (calls.ConfigChange("base_fee", 1_000_000 + i),)
        voting = democracy.Referendum(ALICE.public, change, 0, 0, number, 1, ayes=10**18)
        passed = democracy.Referendum(ALICE.public, change, 0, 0, number - 1, 1, ayes=10**18, status="passed")
        democracy.REFERENDA.apply_set(state, voting, 2 * i)
        democracy.REFERENDA.apply_set(state, passed, 2 * i + 1)
        democracy.AGENDA.apply_add(state, 2 * i, number)
        democracy.ENACTMENTS.apply_add(state, 2 * i + 1, number)


def _give_points(state: Any, earners: list[bytes]) -> None:
    for who in earners:
        rewards._apply_points(state, who, authored=20, voted=5)


def measure_hooks(quick: bool, reps: int) -> list[dict[str, Any]]:
    """Each hook's time at its worst reachable state, on an overlay of a real chain's state."""
    count = 100 if quick else 1000
    spec, keys = _many_validators(count)
    config = spec.runtime_config
    out = []
    with tempfile.TemporaryDirectory(prefix="bench-weights-hooks-") as tmp:
        chain = Bench._open(Path(tmp) / "db", spec)
        try:
            runtime = chain.runtime
            era = config.era_length
            cases: list[tuple[str, str, Callable[[Any], None], Callable[[Any], None]]] = [
                (
                    "empty", "a block that starts no era, with empty agendas",
                    lambda s: None, lambda s: runtime.on_initialize(s, era + 1, ALICE.public, bytes(32)),
                ),
                (
                    "governance+democracy", f"{MAX_AGENDA} tallies and {MAX_AGENDA} enactments in each pallet",
                    lambda s: _fill_agendas(s, era + 1, MAX_AGENDA),
                    lambda s: runtime.on_initialize(s, era + 1, ALICE.public, bytes(32)),
                ),
                (
                    "era payout", f"{count + 1} validators with authoring and vote points",
                    lambda s: _give_points(s, [ALICE.public, *keys]),
                    lambda s: runtime.on_initialize(s, 2 * era, ALICE.public, bytes(32)),
                ),
                (
                    "validator removal", f"{count} of {count + 1} validators queued to leave",
                    lambda s: staking.PENDING_REMOVAL.apply_set(s, tuple(keys)),
                    lambda s: runtime.on_initialize(s, 2 * era, ALICE.public, bytes(32)),
                ),
            ]
            for name, what, prepare, run in cases:
                times = []
                for _ in range(reps):
                    state = chain.state.overlay()
                    prepare(state)
                    start = time.perf_counter()
                    run(state)
                    chain.state.compute_commit(state)
                    times.append((time.perf_counter() - start) * 1e6)
                out.append({"hook": name, "what": what, "us": summarize(times)})
        finally:
            chain.db.close()
    return out


# --- work measured outside a block -------------------------------------------------------------


def measure_fedavg(quick: bool, reps: int) -> dict[str, Any]:
    """federated.close_round's FedAvg of max_updates (64) updates of 2^18 parameters
    (``--quick``: 2^16), from their stored bytes, as close_round does it, against the part of
    the close weight that prices it (FEDAVG_WEIGHT a parameter of each update). Timed alone:
    a round of 64 accepted updates of a 1 MiB model takes 64 MiB of commits to set up."""
    from chain.pallets import federated
    from ml_runtime import fedavg

    params, updates = (1 << 16 if quick else 1 << 18), federated.MAX_UPDATES
    raws = [np.random.default_rng(i).standard_normal(params).astype("<f4").tobytes() for i in range(updates)]
    counts = [1000 + i for i in range(updates)]
    times = []
    for _ in range(reps):
        start = time.perf_counter()
        fedavg.federated_average([np.frombuffer(r, dtype="<f4").astype(np.float32) for r in raws], counts)
        times.append((time.perf_counter() - start) * 1e6)
    weight = federated.FEDAVG_WEIGHT * params * updates
    us = summarize(times)
    return {"updates": updates, "params": params, "us": us, "weight": weight, "ns_per_unit": us["median"] * 1e3 / weight}


# --- the report -----------------------------------------------------------------------------


def run(ctx: Context) -> Report:
    spec = load_chain_spec("dev")
    only = set(ctx.options.get("only") or ())
    results: dict[str, Any] = {"calls": {}, "hooks": []}
    chosen = [s for s in SCENARIOS if not only or s.name in only]
    with ctx.progress(len(chosen), "weights") as advance:
        for scenario in chosen:
            results["calls"][scenario.name] = measure_call(scenario, spec, ctx.quick, ctx.reps)
            advance(1)
    calibration = results["calls"].get("transfer")
    rows = []
    for name, r in results["calls"].items():
        slower = "-" if calibration is None else f"{r['full_block_s'] / calibration['full_block_s']:,.1f}x"
        rows.append([
            name, f"{r['calls_per_block']}", fmt(r["import_us_per_call"], 1), f"{r['weight']:,}", f"{r['ns_per_unit']:,.2f}",
            f"{r['full_block_calls']:,} ({r['bound_by']})", f"{r['full_block_s']:,.2f}", slower,
            ", ".join(r["errors"]) or "ok",
        ])
    report = Report(
        "Weights: measured cost per call vs declared weight (import of a real block, per call)",
        ["call", "calls/block", "import us/call (min-max)", "weight", "ns/unit", "full block: calls", "full block: s",
         "vs transfers", "outcome"],
        rows, results,
        notes=[
            f"{name}: {r['what']}; setup {r['setup_s']} s; author {fmt(r['author_us_per_call'], 1)} us/call"
            for name, r in results["calls"].items()
        ],
    )
    fed = measure_fedavg(ctx.quick, ctx.reps)
    results["fedavg"] = fed
    report.extra_tables.append((
        "federated.close_round's FedAvg, timed alone", ["updates x parameters", "us (min-max)", "weight (FedAvg part)", "ns/unit"],
        [[f"{fed['updates']} x {fed['params']:,}", fmt(fed["us"], 0), f"{fed['weight']:,}", f"{fed['ns_per_unit']:.2f}"]],
    ))
    if not ctx.options.get("no_hooks"):
        hooks = measure_hooks(ctx.quick, ctx.reps)
        results["hooks"] = hooks
        report.extra_tables.append((
            "on_initialize at its worst reachable state (hook + state root)", ["hook", "state", "us (min-max)"],
            [[h["hook"], h["what"], fmt(h["us"], 0)] for h in hooks],
        ))
    return report


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="smaller data sets and blocks")
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--only", nargs="*", choices=[s.name for s in SCENARIOS], help="these call scenarios only")
    parser.add_argument("--no-hooks", action="store_true", help="skip the on_initialize table")
    parser.add_argument("--out", type=Path, default=Path("bench-results"))
    args = parser.parse_args(argv)
    if args.reps < 1:
        parser.error(f"--reps must be at least 1, got {args.reps}")
    problem = check_out_folder(args.out, ["weights.json"])
    if problem is not None:
        parser.error(f"--out {args.out}: {problem}")
    ctx = Context(
        "weights", args.quick, args.reps, args.out, "python -m benches.weights " + " ".join(sys.argv[1:]),
        options={"only": args.only, "no_hooks": args.no_hooks},
    )
    finish(ctx, run(ctx))


if __name__ == "__main__":
    main()

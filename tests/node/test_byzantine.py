"""node/byzantine.py without a network: the --byzantine rule, the forging trainer, the
equivocating sibling.

The forging trainer must produce the strongest forgery (issue 9): a transcript that is
internally consistent (its root is the Merkle root of its entries, every entry hashes its
checkpoint), in which exactly ceil(F*S) segments do not re-run to their entries and every
other one does, so only re-execution of a forged segment can find it.
"""

from __future__ import annotations

import math
import subprocess
import sys
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest

import ml_runtime as mr
from node import byzantine
from node.byzantine import Byzantine, InvalidByzantineMode, parse_byzantine


# --- the rule ---------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("forge-training=0.25", Byzantine("forge-training", Fraction(1, 4))),
        ("forge-training=1", Byzantine("forge-training", Fraction(1))),
        ("forge-training=.5", Byzantine("forge-training", Fraction(1, 2))),
        ("forge-training=0.1", Byzantine("forge-training", Fraction(1, 10))),
        ("withhold-checkpoints", Byzantine("withhold-checkpoints")),
        ("equivocate", Byzantine("equivocate")),
    ],
)
def test_parse_accepts_the_three_modes(text: str, expected: Byzantine) -> None:
    assert parse_byzantine(text) == expected


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ("forge-training=0", "outside (0, 1]"),
        ("forge-training=1.5", "outside (0, 1]"),
        ("forge-training=1.0000001", "outside (0, 1]"),
        ("forge-training=-0.5", "is not a decimal number"),
        ("forge-training=nan", "is not a decimal number"),
        ("forge-training=inf", "is not a decimal number"),
        ("forge-training=1e-1", "is not a decimal number"),
        ("forge-training=0.2.5", "is not a decimal number"),
        ("forge-training=.", "is not a decimal number"),
        ("forge-training=٠.٥", "is not a decimal number"),  # Arabic-Indic digits: isdigit() but not ASCII
        ("forge-training=0." + "1" * 40, "is not a decimal number"),
        ("forge-training=", "needs =F"),
        ("forge-training", "needs =F"),
        ("forge_training=0.25", "got 'forge_training=0.25'"),
        ("withhold-checkpoints=1", "got 'withhold-checkpoints=1'"),
        ("Equivocate", "got 'Equivocate'"),
        ("", "got ''"),
    ],
)
def test_parse_refuses_anything_else_naming_the_rule(text: str, why: str) -> None:
    with pytest.raises(InvalidByzantineMode) as err:
        parse_byzantine(text)
    assert str(err.value).startswith(byzantine.RULE)
    assert why in str(err.value)


def test_cli_refuses_a_bad_mode_with_one_error_line() -> None:
    """``polchain node --byzantine bogus``: one ``Error:`` line naming the rule, non-zero exit,
    before anything starts (no database is created)."""
    out = subprocess.run(
        [sys.executable, "-m", "node.cli", "node", "--dev", "--byzantine", "forge-training=2"],
        capture_output=True, text=True, timeout=60,
    )
    assert out.returncode == 2
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1, out.stderr
    assert lines[0].startswith("Error:") and "--byzantine" in lines[0] and "outside (0, 1]" in lines[0]


def test_cli_devnet_refuses_a_byzantine_node_out_of_range() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "node.cli", "devnet", "--validators", "2", "--byzantine-node", "2",
         "--byzantine", "equivocate", "--base-path", "/nonexistent/never-created"],
        capture_output=True, text=True, timeout=60,
    )
    assert out.returncode == 2
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error:") and "--byzantine-node 2" in lines[0], out.stderr


def test_cli_devnet_needs_both_flags() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "node.cli", "devnet", "--validators", "2", "--byzantine", "equivocate",
         "--base-path", "/nonexistent/never-created"],
        capture_output=True, text=True, timeout=60,
    )
    assert out.returncode == 2
    assert "--byzantine and --byzantine-node go together" in out.stderr


# --- the forging trainer ----------------------------------------------------------------------------
def _job(steps: int = 64, segment_len: int = 8, seed: bytes = b"\x07" * 32) -> mr.TrainingJob:
    spec = mr.ModelSpec("softmax", 8, 3, 0)
    rng = np.random.default_rng(9)
    x = rng.standard_normal((40, 8)).astype(np.float32)
    y = rng.integers(0, 3, 40).astype(np.int32)
    return mr.TrainingJob(spec, mr.init_weights(spec, b"\x01" * 32), x, y, steps, 8, 0.1, 1e-4, seed, segment_len)


def _mismatching_segments(job: mr.TrainingJob, result: mr.JobResult) -> list[int]:
    entries = result.transcript.entries
    bad = []
    for j in range(job.num_segments):
        try:
            mr.verify_segment(job, j, result.checkpoints[j], entries[j + 1], entries[j])
        except mr.SegmentMismatch:
            bad.append(j)
    return bad


def _assert_consistent(job: mr.TrainingJob, result: mr.JobResult) -> None:
    entries = result.transcript.entries
    assert result.finite
    assert len(entries) == len(result.checkpoints) == job.num_segments + 1
    assert result.transcript.root == mr.merkle_root(entries)
    assert [e.index for e in entries] == list(range(len(entries)))
    for entry, checkpoint in zip(entries, result.checkpoints, strict=True):
        assert entry.weights_hash == mr.hash_weights(checkpoint)
        assert np.isfinite(checkpoint).all() and checkpoint.dtype == np.float32
    assert np.array_equal(result.checkpoints[0], job.weights)  # checkpoint 0 is the on-chain weights
    assert np.array_equal(result.weights, result.checkpoints[-1])
    for j, entry in enumerate(entries):  # every opening's audit path leads to the root
        mr.verify_merkle_proof(result.transcript.root, entry, mr.merkle_proof(result.transcript, j), len(entries))


@pytest.mark.parametrize(("fraction", "steps", "segment_len"), [("0.25", 64, 8), ("0.1", 30, 1), ("1", 24, 8), ("0.5", 8, 8)])
def test_forged_result_is_consistent_and_exactly_ceil_fs_segments_do_not_rerun(fraction: str, steps: int, segment_len: int) -> None:
    job = _job(steps, segment_len)
    mode = parse_byzantine(f"forge-training={fraction}")
    S = job.num_segments
    k = math.ceil(Fraction(fraction) * S)
    result = byzantine.trainer_for(mode)(job)
    _assert_consistent(job, result)
    forged = byzantine.choose_forged_segments(job.seed, S, Fraction(fraction))
    assert len(forged) == k
    assert _mismatching_segments(job, result) == list(forged)
    # Not a copy of the honest run: the root and the new weights differ.
    honest = mr.run_job(job)
    assert honest.transcript.root != result.transcript.root
    assert not np.array_equal(honest.weights, result.weights)


def test_ceil_is_exact_on_the_decimal() -> None:
    """0.035 * 200 is 7.000000000000001 in binary floating point; the rule's ceil(F*S) is 7."""
    assert math.ceil(0.035 * 200) == 8
    assert byzantine.count_forged(parse_byzantine("forge-training=0.035").fraction or Fraction(0), 200) == 7
    assert byzantine.count_forged(Fraction("0.25"), 1) == 1  # at least one segment of any job
    assert byzantine.count_forged(Fraction("1"), 7) == 7


def test_forged_segments_come_from_the_job_seed() -> None:
    a = byzantine.choose_forged_segments(b"\x01" * 32, 64, Fraction(1, 4))
    assert a == byzantine.choose_forged_segments(b"\x01" * 32, 64, Fraction(1, 4))
    assert a != byzantine.choose_forged_segments(b"\x02" * 32, 64, Fraction(1, 4))
    assert a == tuple(sorted(set(a))) and all(0 <= j < 64 for j in a)


def test_the_forger_is_deterministic() -> None:
    job = _job()
    trainer = byzantine.trainer_for(parse_byzantine("forge-training=0.25"))
    assert trainer(job).transcript.root == trainer(job).transcript.root


def test_honest_modes_train_honestly() -> None:
    for mode in (None, parse_byzantine("withhold-checkpoints"), parse_byzantine("equivocate")):
        assert byzantine.trainer_for(mode) is mr.run_job


def test_an_honest_segment_that_diverges_ends_the_result_as_run_job_does() -> None:
    """After a forged segment the honest rest may diverge: the result stops at the last finite
    checkpoint, with the segment that diverged, the way run_job reports it."""
    spec = mr.ModelSpec("linear", 2, 1, 0)
    x = np.full((4, 2), 1e18, dtype=np.float32)
    y = np.ones((4, 1), dtype=np.float32)
    job = mr.TrainingJob(spec, np.ones(spec.param_count, dtype=np.float32), x, y, 8, 4, 1.0, 0.0, b"\x03" * 32, 2)
    honest = mr.run_job(job)
    assert not honest.finite
    forged = byzantine.run_forged_job(job, ())
    assert (forged.finite, forged.diverged_segment, forged.diverged_step) == (False, honest.diverged_segment, honest.diverged_step)
    assert forged.transcript.root == honest.transcript.root
    assert byzantine.run_forged_job(job, range(job.num_segments)).finite  # nothing runs, nothing diverges


def test_perturbation_never_rounds_away_and_stays_finite() -> None:
    w = np.array([0.0, 1e-30, 1.0, -3.5, 1e30, 3.0e38, -3.4e38], dtype=np.float32)
    out = byzantine.perturb(w, b"\x05" * 32, 0)
    assert out.dtype == np.float32 and np.isfinite(out).all()
    assert mr.hash_weights(out) != mr.hash_weights(w)
    changed = out != w
    assert changed[:5].sum() >= 4  # ordinary weights move (a draw of exactly 0 leaves one)


# --- the equivocating sibling -----------------------------------------------------------------------
def test_the_empty_sibling_is_a_valid_second_block_of_the_slot(tmp_path) -> None:
    """What ``--byzantine equivocate`` announces besides its normal block: sealed by the same
    author in the same slot on the same parent, and valid, so an honest node imports both and
    keeps the pair as equivocation evidence (consensus.aura)."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "consensus"))
    from consensuskit import ALICE, BOB, open_local

    from chain import calls
    from chain.extrinsic import sign_extrinsic
    from consensus.aura import get_equivocations

    author, honest = open_local(tmp_path / "author"), open_local(tmp_path / "honest")
    try:
        transfer = sign_extrinsic(BOB, calls.Transfer(ALICE.public, 10**9), nonce=0, genesis_hash=author.genesis_hash,
                                  spec_version=author.runtime.spec_version)
        remark = byzantine.equivocation_remark(author, BOB, [transfer], 1)
        assert remark.nonce == 1 and remark.signer == BOB.public  # after Bob's own ready extrinsic
        first = author.build_block([transfer, remark], BOB, slot=1).block
        assert first.body.extrinsics == (transfer, remark)
        second = byzantine.build_empty_sibling(author, first, BOB)
        assert (second.header.parent_hash, second.header.slot, second.header.author) == (
            first.header.parent_hash, first.header.slot, first.header.author)
        assert second.hash() != first.hash() and second.body.extrinsics == ()
        author.import_block(second)  # the equivocator imports its own second block
        honest.import_block(first)
        honest.import_block(second)
        assert honest.has_block(first.hash()) and honest.has_block(second.hash())
        (evidence,) = get_equivocations(honest)
        assert (evidence.slot, evidence.author) == (1, BOB.public)
        assert {evidence.first.hash(), evidence.second.hash()} == {first.hash(), second.hash()}
    finally:
        author.db.close()
        honest.db.close()


# --- the devnet -------------------------------------------------------------------------------------
def _devnet_args(*argv: str):
    from node import cli

    return cli.build_parser().parse_args(["devnet", *argv])


def test_devnet_passes_the_mode_to_node_k_only(tmp_path: Path) -> None:
    from node import cli, devnet

    args = _devnet_args("--validators", "4", "--byzantine-node", "1", "--byzantine", "forge-training=0.035")
    assert devnet.check_byzantine_args(args) is None
    plans = devnet.plan_nodes(args, tmp_path)
    assert [p.byzantine for p in plans] == [None, "forge-training=0.035", None, None]
    parser = cli.build_parser()
    for plan in plans:
        node_args = parser.parse_args(devnet.node_command(plan, tmp_path / "spec.json", plans, args)[len(devnet.CLI) :])
        assert node_args.byzantine == (parse_byzantine("forge-training=0.035") if plan.index == 1 else None)
        assert node_args.pol == "sampled"


def test_devnet_auditors_re_run_everything(tmp_path: Path) -> None:
    from node import cli, devnet

    args = _devnet_args("--validators", "2", "--auditors", "1")
    plans = devnet.plan_nodes(args, tmp_path)
    parser = cli.build_parser()
    pols = [parser.parse_args(devnet.node_command(p, tmp_path / "s", plans, args)[len(devnet.CLI) :]).pol for p in plans]
    assert pols == ["sampled", "sampled", "full"]


def test_metric_reading_sums_every_label_set_and_ignores_lookalikes() -> None:
    from node import devnet

    text = "\n".join([
        "# HELP polchain_pol_frauds_detected_total Fraud proofs found",
        "# TYPE polchain_pol_frauds_detected_total counter",
        'polchain_pol_frauds_detected_total{kind="segment"} 2.0',
        'polchain_pol_frauds_detected_total{kind="start"} 1.0',
        "polchain_pol_frauds_detected_total_created 1.7e9",
        "polchain_pol_frauds_detected_totally 9",
    ])
    assert devnet.read_metric(text, devnet.FRAUDS_METRIC) == 3
    assert devnet.read_metric("polchain_pol_frauds_detected_total 0.0\n", devnet.FRAUDS_METRIC) == 0
    assert devnet.read_metric("polchain_blocks_authored_total 4\n", devnet.FRAUDS_METRIC) is None


def test_status_marks_the_byzantine_node_and_shows_frauds_and_slashes(tmp_path: Path) -> None:
    import re

    from rich.console import Console

    from node import devnet
    from rpc.client import RpcClient

    args = _devnet_args("--validators", "2", "--byzantine-node", "1", "--byzantine", "equivocate")
    plans = devnet.plan_nodes(args, tmp_path)
    running = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        alice = devnet.NodeStatus(plans[0], running, RpcClient("http://127.0.0.1:1"), best=5, answered=True, frauds=1,
                                  slashes=0, slashed=0)
        bob = devnet.NodeStatus(plans[1], running, RpcClient("http://127.0.0.1:1"), best=4, answered=True, frauds=0,
                                slashes=1, slashed=500)
        line = devnet.status_line([alice, bob], 1000)
        assert "Alice up best #5" in line and "frauds 1 slashes 0 slashed 0" in line
        assert "Bob [byzantine equivocate] up best #4" in line and "frauds 0 slashes 1 slashed 500" in line
        console = Console(record=True, width=240)
        console.print(devnet.status_table([alice, bob], 1000, "t"))
        text = console.export_text()
        assert re.search(r"Bob\s+│\s+validator, byzantine: equivocate\s+│\s+up.*│\s+0\s+│\s+1\s+│\s+500\s+│", text), text
        assert re.search(r"Alice\s+│\s+validator\s+│\s+up.*│\s+1\s+│\s+0\s+│\s+0\s+│", text), text
    finally:
        running.kill()
        running.wait()


def test_an_honest_node_reports_the_equivocation_once_and_it_is_slashed(tmp_path) -> None:
    """node/offences.py: the pair consensus.aura stored becomes pol.report_equivocation signed
    by the node's key; the runtime slashes the equivocator; no second report, and an
    equivocator never reports itself."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "consensus"))
    from consensuskit import ALICE, BOB, CHARLIE, open_local

    from chain import calls
    from chain.pallets import balances
    from node.offences import EquivocationReporter

    author, honest = open_local(tmp_path / "author"), open_local(tmp_path / "honest")
    try:
        submitted: list[bytes] = []
        reporter = EquivocationReporter(honest, CHARLIE, submitted.append, lambda: ())
        own = EquivocationReporter(author, BOB, submitted.append, lambda: ())
        first = author.build_block([byzantine.equivocation_remark(author, BOB, [], 1)], BOB, slot=1).block
        second = byzantine.build_empty_sibling(author, first, BOB)
        author.import_block(second)
        assert own.on_block(second.header) is None  # Bob has the evidence of himself, and keeps quiet
        honest.import_block(first)
        assert reporter.on_block(first.header) is None  # one block: no evidence yet
        honest.import_block(second)
        xt = reporter.on_block(second.header)
        assert xt is not None and isinstance(xt.call, calls.ReportEquivocation) and xt.signer == CHARLIE.public
        assert submitted == [xt.encode()]
        assert reporter.on_block(second.header) is None and len(submitted) == 1  # once
        bond = balances.get_account(honest.state.overlay(), BOB.public).staked
        built = honest.build_block([xt], CHARLIE, slot=2)
        assert built.receipts[0].success, built.receipts[0].error
        after = balances.get_account(honest.state.overlay(), BOB.public).staked
        assert after < bond
        assert {e.name for e in built.receipts[0].events} >= {"Slashed", "EquivocationProven"}
        fresh = EquivocationReporter(honest, ALICE, submitted.append, lambda: ())
        assert fresh.on_block(second.header) is None  # punished already in the best state
    finally:
        author.db.close()
        honest.db.close()


# --- the forging author's block, imported ------------------------------------------------------------
@pytest.mark.parametrize(("samples", "hits"), [(4, True), (1, True), (1, False)])
def test_a_forging_authors_block_passes_every_commitment_and_only_re_execution_catches_it(
    tmp_path, samples: int, hits: bool
) -> None:
    """Blockchain(trainer=forging) builds a block whose every commitment (results root, state
    root, seal) is computed from the forged outcome, so only re-running a forged segment finds
    it. A SampledVerifier whose sample covers it (always at m = S = 4; at m = 1 a validator
    secret is picked whose sample does) raises FraudFound with a FraudProof every node accepts
    (verify_fraud_proof), and nothing is stored. One whose sample misses it (m = 1, another
    secret) imports the block: the escape a single validator's check allows, with probability
    C(S-k, m) / C(S, m) = 3/4 here (the other validators' samples, and the fraud proof, are what
    catch it then)."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "chain"))
    from chainkit import open_chain, sign, train_call

    from chain.crypto import dev_keypair
    from chain.errors import FraudFound
    from chain.fraud import FAULT_SEGMENT, verify_fraud_proof
    from chain.transcripts import LocalSource
    from consensus.pol import SampledVerifier, compute_sample

    mode = parse_byzantine("forge-training=0.25")
    author = open_chain(tmp_path / "author", trainer=byzantine.trainer_for(mode))
    try:
        bob = dev_keypair("Bob")
        built = author.build_block([sign(author, bob, train_call(steps=40, segment=10), 0)], dev_keypair("Alice"), slot=1)
        block, block_hash = built.block, built.block.hash()
        assert built.receipts[0].success, built.receipts[0].error
        (result,) = block.body.results
        forged = set(byzantine.choose_forged_segments(_seed_of(block), 4, Fraction(1, 4)))
        assert len(forged) == 1
        secret = next(
            s for s in (bytes([i]) * 32 for i in range(1, 256))
            if bool(set(compute_sample(s, block_hash, 0, 4, samples)) & forged) == hits
        )
        honest = open_chain(tmp_path / "honest", verifier=SampledVerifier(secret, samples))
        try:
            before = (honest.best_hash, honest.state.root())
            if not hits:
                assert honest.import_block(block, LocalSource(author.transcripts)).is_best  # escaped this validator
                return
            with pytest.raises(FraudFound) as err:
                honest.import_block(block, LocalSource(author.transcripts))
            proof = err.value.proof
            assert proof.block_hash() == block_hash and proof.kind == FAULT_SEGMENT and proof.segment in forged
            assert proof.result.transcript_root == result.transcript_root
            verify_fraud_proof(honest.genesis_hash, honest.state_at(honest.best_hash), honest.config, proof)
            assert (honest.best_hash, honest.state.root()) == before and not honest.has_block(block_hash)
        finally:
            honest.db.close()
    finally:
        author.db.close()


def _seed_of(block) -> bytes:
    from chain.pallets.training import compute_job_seed

    return compute_job_seed(block.header.parent_hash, block.body.extrinsics[0].hash())


# --- withhold-checkpoints, on the wire ---------------------------------------------------------------
async def test_a_withholding_server_answers_not_found_to_everything_it_holds(tmp_path) -> None:
    """--byzantine withhold-checkpoints sets its TranscriptServer to serving=False: a validator
    asking it over the real p2p protocol gets nothing, though the store holds every opening,
    and its fetch ends in CheckpointsUnavailable (the block is then not imported:
    tests/node/test_pol_nodes.py; the whole scenario live: test_byzantine_devnet.py)."""
    import asyncio

    from netkit import start_node

    from chain.errors import CheckpointsUnavailable
    from chain.proofs import compute_openings, compute_result
    from chain.storage import Database
    from chain.transcripts import TranscriptStore
    from node.network.transcripts import NetworkSource, TranscriptServer, TranscriptStats

    job = _job(steps=16, segment_len=4)
    outcome = mr.run_job(job)
    block = b"\xab" * 32
    db = Database(tmp_path / "db")
    store = TranscriptStore(db)
    with db.write_batch() as batch:
        store.stage(batch, block, 0, compute_openings(outcome))
    server = TranscriptServer(store, TranscriptStats(), serving=byzantine.serves_checkpoints(parse_byzantine("withhold-checkpoints")))
    author, validator = await start_node(), await start_node()
    try:
        author.service.handlers.serve_transcript_request = server.serve
        await validator.service.dial(author.addr)
        source = NetworkSource(validator.service, asyncio.get_running_loop(), author.id, timeout=0.6, stats=TranscriptStats())
        wanted = ((0, False), (1, True), (2, False), (4, False))
        with pytest.raises(CheckpointsUnavailable, match=r"4 of 4 openings \(entries \[0, 1, 2, 4\]\)"):
            await asyncio.to_thread(source.fetch, block, compute_result(0, outcome), wanted)
        assert server.stats.openings_served == 0 and source.stats.openings_fetched == 0
        server.serving = byzantine.serves_checkpoints(None)  # an honest node serves the same store
        got = await asyncio.to_thread(source.fetch, block, compute_result(0, outcome), wanted)
        assert sorted(got) == [0, 1, 2, 4] and server.stats.openings_served == 4
    finally:
        await author.service.stop()
        await validator.service.stop()
        db.close()


def test_an_honest_node_reports_a_double_vote_and_it_is_slashed(tmp_path) -> None:
    """A finality double vote the collector caught (VoteEquivocationEvidence) goes on chain as
    pol.report_vote_equivocation signed by the node's key, once; the runtime slashes the voter."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "consensus"))
    from consensuskit import ALICE, BOB, CHARLIE, open_local

    from chain import calls
    from chain.pallets import balances
    from chain.votes import Checkpoint, Vote, sign_vote
    from consensus.finality import SET_ID, VoteEquivocationEvidence
    from node.offences import EquivocationReporter

    chain = open_local(tmp_path / "chain")
    try:
        one = chain.build_block([], BOB, slot=1).block
        genesis = Checkpoint(chain.genesis_hash, 0, 0)
        first = sign_vote(BOB, chain.genesis_hash, Vote(SET_ID, genesis, Checkpoint(one.hash(), 1, 5)))
        second = sign_vote(BOB, chain.genesis_hash, Vote(SET_ID, genesis, Checkpoint(chain.genesis_hash, 0, 5)))
        evidence = VoteEquivocationEvidence(first, second, "double_vote")
        submitted: list[bytes] = []
        assert EquivocationReporter(chain, BOB, submitted.append, lambda: ()).on_vote_equivocation(evidence) is None
        reporter = EquivocationReporter(chain, CHARLIE, submitted.append, lambda: ())
        xt = reporter.on_vote_equivocation(evidence)
        assert xt is not None and isinstance(xt.call, calls.ReportVoteEquivocation) and submitted == [xt.encode()]
        assert reporter.on_vote_equivocation(evidence) is None  # once
        bond = balances.get_account(chain.state.overlay(), BOB.public).staked
        built = chain.build_block([xt], CHARLIE, slot=2)
        assert built.receipts[0].success, built.receipts[0].error
        assert balances.get_account(chain.state.overlay(), BOB.public).staked < bond
        assert EquivocationReporter(chain, ALICE, submitted.append, lambda: ()).on_vote_equivocation(evidence) is None
    finally:
        chain.db.close()


def _charlie():  # type: ignore[no-untyped-def]
    """Charlie validating the `local` chain (500 ms slots), running on this event loop."""
    sys.path.insert(0, str(Path(__file__).parent))
    from netkit import FAST, running

    from genesis.spec import load_chain_spec, with_slot_duration
    from node.service import NodeConfig, NodeService

    spec = with_slot_duration(load_chain_spec("local"), 500)
    return running(NodeService(NodeConfig(chain="local", tmp=True, author="//Charlie", network=FAST), spec))


def _vote_reports(node) -> list[bytes]:  # type: ignore[no-untyped-def]
    """The signers of the pol.report_vote_equivocation extrinsics in ``node``'s pool."""
    from chain import calls

    return [xt.signer for xt in node.pool.pending() if isinstance(xt.call, calls.ReportVoteEquivocation)]


async def test_a_double_vote_from_a_peer_is_reported_by_the_node() -> None:
    """The service's wiring of the test above: a double vote a peer sends (NodeService.add_vote)
    raises VoteEquivocation, a kind of InvalidVote; its report went unsent while the InvalidVote
    clause came first (an outside tester's finding: the voter was never slashed)."""
    from chain.crypto import dev_keypair
    from consensus.errors import VoteEquivocation
    from consensus.finality import SET_ID, Checkpoint, Vote, sign_vote

    async with _charlie() as charlie:
        from netkit import wait_for

        chain = charlie.chain
        await wait_for(lambda: chain.best_number >= 2, 60)
        dave, genesis = dev_keypair("Dave"), chain.genesis_hash
        round_number = charlie._current_round()
        source = Checkpoint(genesis, 0, 0)
        first, second = (
            sign_vote(dave, genesis, Vote(SET_ID, source, Checkpoint(chain.get_hash(n), n, round_number))) for n in (1, 2)
        )
        await charlie.add_vote(first)
        with pytest.raises(VoteEquivocation):
            await charlie.add_vote(second)
        assert _vote_reports(charlie) == [dev_keypair("Charlie").public]


async def test_a_double_vote_inside_a_justification_is_reported_by_the_node() -> None:
    """A validator's second vote of a round that reaches the node only inside a finality
    justification: the block is finalized, and the double vote is reported as well (the votes
    of a justification were added to the collector under contextlib.suppress(InvalidVote),
    which swallowed the VoteEquivocation)."""
    from chain.crypto import dev_keypair
    from consensus.finality import SET_ID, Checkpoint, Justification, Vote, sign_vote

    async with _charlie() as charlie:
        from netkit import wait_for

        chain = charlie.chain
        await wait_for(lambda: chain.best_number >= 8, 60)
        genesis = chain.genesis_hash
        now = charlie._current_round()
        block = {n: Checkpoint(chain.get_hash(n), n, now) for n in (2, 3, 4)}  # type: ignore[arg-type]
        # Dave votes genesis -> #4 in this round; then a finality proof of #2 (the link from #2 in
        # the round before to #3 in this one) carries his vote for #3 in the same round.
        await charlie.add_vote(sign_vote(dev_keypair("Dave"), genesis, Vote(SET_ID, Checkpoint(genesis, 0, 0), block[4])))
        source = Checkpoint(block[2].block_hash, 2, now - 1)
        votes = tuple(sign_vote(dev_keypair(name), genesis, Vote(SET_ID, source, block[3])) for name in ("Alice", "Bob", "Dave"))
        ancestry = (chain.get_header(block[3].block_hash),)
        assert await charlie.import_justification(Justification(block[2].block_hash, 2, SET_ID, now, source, votes, ancestry))
        assert chain.finalized_number >= 2
        assert _vote_reports(charlie) == [dev_keypair("Charlie").public]


def test_the_empty_sibling_at_an_era_start_runs_the_runtimes_per_block_hook(tmp_path) -> None:
    """At an era start a queued validator leaves the set before the first extrinsic: an empty
    block there changes state, and the sibling's state root must say so (else importers refuse
    it with a state root mismatch)."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "consensus"))
    from consensuskit import BOB, CHARLIE, open_local, slot_owner

    from chain.pallets import staking
    from node.offences import EquivocationReporter

    author, honest = open_local(tmp_path / "author"), open_local(tmp_path / "honest")
    try:
        first = author.build_block([byzantine.equivocation_remark(author, BOB, [], 1)], BOB, slot=1).block
        second = byzantine.build_empty_sibling(author, first, BOB)
        for block in (first, second):
            honest.import_block(block)
        submitted: list[bytes] = []
        report = EquivocationReporter(honest, CHARLIE, submitted.append, lambda: ()).on_block(second.header)
        honest.build_block([report], CHARLIE, slot=2)
        assert staking.PENDING_REMOVAL.get(honest.state.overlay()) == (BOB.public,)
        era = honest.config.era_length
        slot = 2
        while honest.best_number < era - 1:
            slot += 1
            if slot_owner(slot) is not BOB:
                honest.build_block([], slot_owner(slot), slot=slot)
        slot += 1
        while slot_owner(slot) is BOB:
            slot += 1
        owner = slot_owner(slot)
        start = honest.build_block([byzantine.equivocation_remark(honest, owner, [], slot)], owner, slot=slot).block
        assert start.header.number % era == 0
        parent_root = honest.get_header(start.header.parent_hash).state_root
        sibling = byzantine.build_empty_sibling(honest, start, owner)
        assert sibling.header.state_root != parent_root  # Bob left the set in it
        honest.import_block(sibling)
        assert BOB.public not in staking.get_validators(honest.state_at(sibling.hash()))
    finally:
        author.db.close()
        honest.db.close()


# --- the node wiring -----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("mode", "serving", "forging"),
    [(None, True, False), ("forge-training=0.25", True, True), ("withhold-checkpoints", False, False), ("equivocate", True, False)],
)
def test_the_node_service_wires_each_mode(mode: str | None, serving: bool, forging: bool) -> None:
    """NodeConfig.byzantine reaches the chain's trainer (forge-training) and the transcript
    server (withhold-checkpoints); an honest node trains with ml_runtime.run_job and serves."""
    from genesis.spec import load_chain_spec
    from node.network.service import NetworkConfig
    from node.service import NodeConfig, NodeService

    config = NodeConfig(
        chain="local", tmp=True, author="//Bob", network=NetworkConfig(listen_addrs=()),
        byzantine=None if mode is None else parse_byzantine(mode),
    )
    service = NodeService(config, load_chain_spec("local"))
    try:
        assert service.link is not None and service.link.transcripts.serving is serving
        assert (service.chain.trainer is not mr.run_job) is forging
        job = _job()
        outcome = service.chain.trainer(job)
        assert (outcome.transcript.root != mr.run_job(job).transcript.root) is forging
    finally:
        service.close()

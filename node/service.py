"""The node service: database, chain, pool, block authoring and the RPC server, wired together.

Everything runs on one asyncio loop except what could hold it: block building and import run
in a worker thread (training can take seconds), and so do finality's imports, fraud-proof
re-runs, the slashing-protection record's writes (node.voter_record.RecordWriter) and RPC's
large reads (rpc.reads), while the loop keeps serving peers and RPC: the kernels release the
GIL, and a short GIL switch interval (:data:`LOOP_SWITCH_INTERVAL`) bounds how long the loop
waits while the worker runs Python (``python -m benches.health`` measures both). The pool is
only ever touched on the loop thread: the builder gets a snapshot of the ready extrinsics, and
the pool hears of the block (``TransactionPool.maintain``) once the worker is done. In between, a
submission is validated against the state the worker already advanced; the pool never lets
that move a sender's nonce (see ``chain.pool``), so the block's extrinsics are pruned as
included and their watchers see ``inBlock``, not ``invalid``. While the worker builds, the pool
may also replace or evict one of the snapshot's extrinsics: the watcher's final status for a
snapshot extrinsic waits until the block is done, and is dropped if the block included it. A stop
(SIGINT/SIGTERM) lets the block in progress finish and be written, then closes the database,
so the database always ends at a whole block.

Finality (consensus.finality, Casper FFG) runs on the loop thread under the same lock as
block work: a validator signs one vote per round (the Aura slot; an instant-seal node's best
slot when it runs ahead of the clock), as soon as it has a best block of the round, or in
the middle of the round if none came, from the highest justified checkpoint it knows (its
source, persisted with the last round it voted in) to its best block. Its own votes and its
peers' go into one collector; the checkpoints they justify steer the fork choice (a reorg
if the best block does not contain the highest), and when a justified checkpoint has a
supermajority link to the next round, the justification finalizes it (a sole validator's
justified checkpoint is final at once), is stored with it and gossiped, the pool hears of
any reorganisation, and ``{"finalized": …}`` watchers and finalized-head subscribers hear
of every newly final block in order. Blocks from peers are imported on any stored parent:
the fork choice picks the best block, and a reorganisation puts the retracted blocks'
extrinsics back into the pool (consensus.block_import.update_pool) and tells their watchers
``{"retracted": …}``, then ``{"inBlock": …}`` for the enacted blocks'. Each block this
validator authors also notes the votes it has seen on chain (``rewards.note_votes``, chosen
by consensus.vote_notes), so that the voters are paid.

What a validator signs is recorded first (node.voter_record: its source, the last round it
voted in, the last slot it sealed a block in; written on the record's own thread, in order,
while the loop serves the peers: node.voter_record.RecordWriter); a record that cannot be
written means the vote or block is not made (one ERROR; the next round tries again). A restarted validator signs
neither in the round nor in the slot it starts in. A vote or block of its own key that it did
not make (another node runs the key: an operator's hot standby) stops it signing until it is
restarted, with one ERROR naming the key and the round or slot; ``--doppelganger-rounds N``
makes it listen N rounds for one before it first signs (Lighthouse's doppelganger
protection, https://lighthouse-book.sigmaprime.io/advanced_doppelganger.html). Its own votes
from before this run, seen in gossip, a justification or a block's note_votes (a base path
restored from an old backup), raise its record instead, so that no later vote surrounds them;
and it does not vote while its best block is minutes behind the round (catching up: the
blocks it has yet to import may note such votes).

Proof-of-learning (issue 9): every block from a peer is checked on import by the node's
verifier, ``--pol sampled`` (consensus.pol.SampledVerifier: ``pol_samples`` segments per job,
chosen with this node's secret, node.pol_keystore) or ``--pol full`` (the auditor: the same
verifier sampling every segment). The checkpoints come from the peers (node.network.transcripts).
A verifier that finds a fault raises FraudFound: the node stores the proof as evidence
(``pol/`` + block hash + extrinsic index), gossips it, and, if it has an author key, submits
``pol.report_fraud`` signed with it to its own pool, so the author's bond is slashed on
chain. A fraud proof from a peer is checked against the best state and, if valid,
invalidates the block and its descendants here too (``Blockchain.invalidate``), and is
reported on chain by this node too if it has an author key and the offence is not punished
yet in its best state (the detector may be a key-less auditor; of several reports racing into
one block, the first included earns the reporter's share, and the author leaves the others
out, undone: ``pol.STALE_REPORT_ERRORS``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import shutil
import struct
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Callable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from msgspec.structs import replace as replace_struct

from chain import calls
from chain.block import Block
from chain.blockchain import Blockchain, ImportedBlock, TreeRoute
from chain.codec import CODEC_VERSION, encode
from chain.crypto import Keypair, blake2_256, ss58_encode, verify_signature
from chain.errors import (
    ChainError,
    CheckpointsUnavailable,
    FinalityConflict,
    FraudFound,
    InvalidFraudProof,
    InvalidSignature,
    InvalidTransaction,
    MissingTrieNode,
    StorageError,
    UnknownStateRoot,
)
from chain.extrinsic import Extrinsic, decode_extrinsic, sign_extrinsic
from chain.fraud import (
    FraudProof,
    FraudProofHead,
    compute_max_fraud_proof_size,
    decode_fraud_proof,
    read_fraud_proof_head,
    read_fraud_proof_header,
    verify_fraud_proof,
    verify_sealed_extrinsic,
)
from chain.header import Header, verify_seal
from chain.pallets.pol import (
    STALE_REPORT_ERRORS,
    is_block_here,
    is_fraud_proven,
    is_punished,
)
from chain.pallets.staking import PENDING_REMOVAL, get_validators, is_disabled
from chain.pool import TransactionPool, Validity, compute_next_nonce
from chain.proofs import (
    CheckpointSource,
    Opening,
    TrainingClaim,
    TranscriptVerifier,
)
from chain.pruning import LivePrune
from chain.runtime import Receipt
from chain.storage import Database
from consensus.aura import Aura, compute_slot, compute_slot_author
from consensus.block_import import ConsensusRules, find_resubmissions
from consensus.errors import InvalidHeader, InvalidJustification, InvalidVote, VoteEquivocation
from consensus.finality import (
    Justification,
    SignedVote,
    VoteCollector,
    VoteEquivocationEvidence,
    VoterState,
    checkpoint_order,
    compute_vote_message,
    finalize_verified,
    finalized_checkpoint,
    follow_justified,
    get_voters,
    justified_checkpoint,
    load_voter_state,
    make_vote,
    proves_finality,
    verify_justification,
)
from consensus.pol import EVERY_SEGMENT, SampledVerifier
from consensus.vote_notes import make_note_votes
from genesis.spec import ChainSpec
from node.byzantine import (
    Byzantine,
    build_empty_sibling,
    equivocation_remark,
    serves_checkpoints,
    trainer_for,
)
from node.logfilter import PROGRESS_LOGGER
from node.metrics import NodeMetrics
from node.network.identity import NodeKey
from node.network.messages import ROLE_AUTHORITY, ROLE_FULL
from node.network.service import ChainStatus, NetworkConfig, NetworkService
from node.network.sync import NodeLink
from node.network.transcripts import DEFAULT_FETCH_TIMEOUT, TranscriptStats
from node.offences import EquivocationReporter
from node.pol_keystore import compute_secret_path, load_or_generate_secret
from node.voter_record import (
    RecordWriter,
    VoterRecordError,
    adopt_chain_records,
    compute_record_path,
    load_record,
)
from rpc.server import DEFAULT_MAX_SUBSCRIPTIONS

log = logging.getLogger("polchain")
progress = logging.getLogger(PROGRESS_LOGGER)  # a line per block, never collapsed (node.logfilter)

WATCH_QUEUE = 64
SIGNATURE_CACHE = 16384
# Retracted extrinsics put back in the pool a loop turn after a reorg (NodeService._update_pool):
# 32 us each without their signatures here, about 8 ms a turn.
RESUBMIT_PER_TURN = 256
# Justifications from peers kept until their target block arrives (each up to 1 MiB).
MAX_PENDING_JUSTIFICATIONS = 4
# GIL switch interval while serving (CPython's default is 5 ms). The numba kernels release
# the GIL, but building a block also runs Python (the batch PRF: ~80,000 blake2b calls for a
# maximum-weight job, hashing, storage). Each time the loop thread wakes (a socket read, a
# write) it waits up to one interval for the GIL, so at 5 ms a burst of callers queues up:
# benches.health measured a system_health p99 of ~40 ms during maximum-weight blocks at 5 ms,
# ~5 ms at 0.5 ms, with no change in build time.
LOOP_SWITCH_INTERVAL = 0.0005
FRAUD_EVIDENCE_PREFIX = b"pol/"
# This run's own votes remembered, to tell them from another signer's when they come back
# (gossip, justifications, note_votes): a round's vote is ~200 bytes.
MAX_SIGNED_VOTES = 4096
# A block this far ahead of the local clock is not clock skew (NodeService._check_far_future).
FAR_FUTURE_MS = 3_600_000
MAX_FAR_FUTURE_AUTHORS = 64
# A validator whose best block is this far behind the round does not vote (NodeService._catching_up).
CATCH_UP_MS = 60_000
POL_MODES = ("sampled", "full")
# The author's slot timer woken this many slots late means the node was stopped: it skips that
# slot rather than seal on a best block its peers have long built on (NodeService._author_slot).
STALL_SLOTS = 2
# Online state pruning runs at most once per this many finalized blocks (fewer if --state-pruning
# keeps fewer states): each run marks every kept state's nodes and reads the whole TRIE column.
PRUNE_EVERY = 32
# ... and takes at most this share of the wall clock: after a run of s seconds the next one
# waits s * (1 / PRUNE_DUTY - 1). A node syncing at 50 blocks a second started a run every
# 0.6 s, back to back, and spent 37-45% of its time pruning (an outside tester's finding,
# 2026-11-30); meanwhile more states than keep + PRUNE_EVERY stay, until the runs catch up.
PRUNE_DUTY = 0.1


def _log_failure(message: str, exc: Exception) -> None:
    """A failed slot, round or pruning run, which the loop survives. A database error (a full
    disk, a damaged table) is one line: its message names the database and the cause, and the
    next slot logs it again while it lasts, so a traceback each time only buries it. Anything
    else is a bug and keeps its traceback."""
    if isinstance(exc, StorageError):
        log.error("%s: %s", message, exc)
    else:
        log.error(message, exc_info=exc)


def _describe_duration(ms: int) -> str:
    hours = ms / 3_600_000
    if hours < 48:
        return f"{hours:.0f} hours"
    if hours < 2 * 8766:
        return f"{hours / 24:.0f} days"
    return f"{hours / 8766:.0f} years"


def compute_fraud_evidence_key(block_hash: bytes, extrinsic_index: int) -> bytes:
    return FRAUD_EVIDENCE_PREFIX + block_hash + struct.pack(">I", extrinsic_index)


class NodeVerifier:
    """The node's TranscriptVerifier: the one ``--pol`` chose, timed for the metrics.

    ``inner`` is set once the chain is open (a sampling verifier takes ``pol_samples`` from
    the runtime config in the chain's state). The time covers fetching the openings too:
    that is what a validator spends before it can vote."""

    def __init__(self, observe: Callable[[float], None]) -> None:
        self.inner: TranscriptVerifier | None = None
        self.observe = observe

    def verify_block(
        self, block: Block, block_hash: bytes, claims: Sequence[TrainingClaim], source: CheckpointSource
    ) -> list[tuple[int, Opening]]:
        assert self.inner is not None, "NodeVerifier.inner is set when the node starts"
        if not claims:
            return self.inner.verify_block(block, block_hash, claims, source)
        started = time.perf_counter()
        try:
            return self.inner.verify_block(block, block_hash, claims, source)
        finally:
            self.observe(time.perf_counter() - started)


@dataclass(frozen=True, slots=True)
class NodeConfig:
    """What the CLI decided: chain, paths, authoring and RPC settings."""

    chain: str = "dev"
    base_path: Path | None = None
    tmp: bool = False
    name: str = "polchain-node"
    author: str | None = None  # secret URI of the authoring key (//Alice for --dev)
    instant_seal: bool = False
    rpc_host: str = "127.0.0.1"
    rpc_port: int = 9944
    rpc_methods: str = "auto"
    rpc_cors: tuple[str, ...] | str | None = None
    rpc_max_connections: int = 100
    rpc_max_request_size_mb: int = 15
    rpc_max_response_size_mb: int = 15
    rpc_max_subscriptions: int = 1024  # per connection
    rpc_max_node_subscriptions: int = DEFAULT_MAX_SUBSCRIPTIONS  # all connections together
    prometheus_host: str = "127.0.0.1"
    prometheus_port: int | None = None  # None: no metrics server
    prometheus_required: bool = False  # the port was asked for: failing to bind is an error
    network: NetworkConfig | None = None  # None: no networking (a node alone)
    node_key: str | None = None  # --node-key (hex)
    node_key_file: Path | None = None
    byzantine: Byzantine | None = None  # --byzantine: misbehave on purpose (node/byzantine.py)
    pol: str = "sampled"  # --pol: "sampled" (SampledVerifier) or "full" (the auditor: every segment)
    pol_fetch_timeout: float = DEFAULT_FETCH_TIMEOUT  # --pol-fetch-timeout, seconds
    signature_threads: int = 1  # --signature-threads (chain.signatures; the CLI's default: one a core)
    doppelganger_rounds: int = 0  # --doppelganger-rounds: rounds listening for this key's signatures before signing
    state_pruning: int | None = None  # --state-pruning: final states kept below the finalized block (None: archive)
    checkpoint: tuple[int, bytes] | None = None  # --checkpoint N:0xHASH (Blockchain's checkpoint)
    extra: dict[str, Any] = field(default_factory=dict)



def _pruned_while_judged(header: Header) -> InvalidFraudProof:
    return InvalidFraudProof("unknown_job", f"block #{header.number}'s parent state was pruned here while the proof was judged")

class NodeService:
    """One node: call :meth:`run` and stop it with :meth:`request_stop`."""

    def __init__(self, config: NodeConfig, spec: ChainSpec, *, clock: Callable[[], float] = time.time) -> None:
        if config.pol not in POL_MODES:
            raise ValueError(f"--pol {config.pol!r}: expected one of {', '.join(POL_MODES)}")
        self.config = config
        self.spec = spec
        #: Where the node reads the time (seconds since the epoch) for its slots and rounds,
        #: Aura's header check included: one seam, so a test can skew or step it.
        self.clock = clock
        self._tmpdir: str | None = None
        base = config.base_path
        if config.tmp or base is None:
            self._tmpdir = tempfile.mkdtemp(prefix="polchain-")
            base = Path(self._tmpdir)
        chain_dir = Path(base) / "chains" / spec.id
        self.db_path = chain_dir / "db"
        try:
            self.db_path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:  # named by its flag: "[Errno 20] Not a directory: '/dev/null/chains/dev'" before (D6)
            raise OSError(f"--base-path {base}: cannot create {chain_dir}: {exc.strerror}") from None
        # Read before the database opens, so a bad secret file stops the node before anything else.
        pol_secret = load_or_generate_secret(compute_secret_path(chain_dir))
        self._voter_record = compute_record_path(chain_dir)
        own_record = load_record(self._voter_record)
        self._records = RecordWriter(self._voter_record)  # written off the loop (node.voter_record)
        self.metrics = NodeMetrics(self)
        self.pol_stats = TranscriptStats()
        self.pol_fetch_timeout = config.pol_fetch_timeout
        self.verifier = NodeVerifier(self.metrics.pol_verify_time.observe)
        self.db = Database(self.db_path)
        self.chain = Blockchain(
            self.db, chain_id=spec.id, build_genesis=spec.apply_genesis, verifier=self.verifier,
            trainer=trainer_for(config.byzantine),  # ml_runtime.run_job unless --byzantine forge-training
            signature_threads=config.signature_threads, checkpoint=config.checkpoint,
        )
        # The slot duration is the chain's, read from its state as every runtime constant is
        # (chain.config; Substrate's node asks the runtime, AuraApi::slot_duration), so every
        # node of a chain cuts time into the same slots. Genesis fixed it (democracy refuses a
        # change), so the best state's is every block's. Aura and the rounds, the authoring and
        # the catching-up rule all use this one value.
        self.slot_ms = self.chain.config.slot_duration_ms
        self.chain.rules = rules = ConsensusRules(Aura(self.slot_ms, clock=lambda: self.clock()))
        try:  # a record of another chain stops the node before it starts (node.voter_record)
            stored_voter = adopt_chain_records(chain_dir, self.chain.genesis_hash, own_record)
        except VoterRecordError:
            self.db.close()
            raise
        # The auditor samples every segment: its faults are fraud proofs too (consensus.pol).
        self.verifier.inner = (
            SampledVerifier(pol_secret, samples=EVERY_SEGMENT) if config.pol == "full" else SampledVerifier(
                pol_secret, samples_for=lambda block: self.chain.config_at(block.header.parent_hash).pol_samples
            )
        )
        del pol_secret  # kept by the verifier only; never logged nor served
        self.pool = TransactionPool(self._validate_for_pool, block_number=self.chain.best_number)
        self.pool.add_listener(self._on_pool_status)
        self.author = Keypair.from_uri(config.author) if config.author else None
        self._stop = asyncio.Event()
        self.exit_code = 0  # 1 once the database refused a write (_stop_for_write_error)
        self._work = asyncio.Event()
        self._lock = asyncio.Lock()
        self._fraud_check = asyncio.Lock()  # one fraud proof re-run at a time, off self._lock
        # Online state pruning (--state-pruning): the run under way, and the finalized number
        # the last one started at (see _maybe_prune).
        self._pruning: asyncio.Task[None] | None = None
        self._pruned_at = self.chain.finalized_number
        self._prune_not_before = 0.0  # time.monotonic() before which no run starts (PRUNE_DUTY)
        self._head_watchers: set[asyncio.Queue[Header]] = set()
        self._final_watchers: set[asyncio.Queue[Header]] = set()
        self._xt_watchers: dict[bytes, set[asyncio.Queue[Any]]] = {}
        # The block being built: its candidates' hashes -> a final status the pool sent
        # meanwhile (see _on_pool_status), or None.
        self._in_flight: dict[bytes, Any] = {}
        self._awaiting_checkpoint = False  # the "not authoring the checkpoint's block" warning given
        self._signature_ok: dict[bytes, None] = {}  # insertion-ordered: the oldest is evicted first
        self._import_listeners: list[Callable[[ImportedBlock], None]] = []
        # Aura equivocations this node has evidence of go on chain (node/offences.py).
        self.equivocations = EquivocationReporter(self.chain, self.author, self.submit, self.pool.pending)
        self._import_listeners.append(self._report_equivocation)
        # Finality (consensus.finality): the votes of the recent rounds, the last round this
        # node voted in, and justifications from peers whose target is not imported yet.
        self.rules = rules
        self.collector = VoteCollector(self.chain)
        # The highest justified checkpoint and the last round voted in, persisted beside the
        # keys (node.voter_record): a restart, even on a purged database, must not lower the
        # source (a surround vote) or vote twice in a round (a double vote). As a second
        # guard, a restarted validator does not vote in the round it starts in either. A sole
        # validator has no one to equivocate to, and its first block should be final at once.
        self._voter = replace_struct(load_voter_state(self.chain, stored_voter), genesis_hash=self.chain.genesis_hash)
        if stored_voter is not None and stored_voter != own_record:
            self._raise_record(self._voter)  # stamped with the genesis, or adopted from another spec id's record
        self.collector.note_justified(self._voter.justified)
        start_round = self._current_round() if len(get_voters(self.chain)) > 1 else -1
        self._voted_round = max(self._voter.voted_round, start_round)
        self._authored_slot = max(self._voter.authored_slot, start_round)  # the same rule for blocks
        self.rules.justified = self._voter.justified.block_hash
        # Doppelganger detection (_check_own_vote, _check_own_block): whatever this key signed
        # before this run is in a round or slot up to these; a signature of this key above them
        # that this run did not make is another node's.
        self._own_since_round = self._voted_round
        self._own_since_slot = self._authored_slot
        self._signed_votes: dict[int, SignedVote] = {}  # this run's votes by round (the newest MAX_SIGNED_VOTES)
        self._proof_sent_round = 0  # the last round this node sent the proof of its highest justified checkpoint
        self._doppelganger: str | None = None  # what showed another signer of this key: signing stopped
        self._far_future_authors: dict[bytes, None] = {}  # named once each (_check_far_future)
        self._ahead_voters: dict[bytes, None] = {}  # named once each (_note_vote_ahead)
        self._catching_up_logged = False
        self._not_sealed_here: tuple[bytes | None, Header] = (None, self.chain.best_header)  # _newest_not_sealed_here's last walk
        self._listen_until = self._clock_round() + config.doppelganger_rounds if config.doppelganger_rounds > 0 else -1
        if self.author is not None and self._listen_until >= 0:
            log.info(
                "Doppelganger protection: listening for votes and blocks of %s until round %d before signing",
                ss58_encode(self.author.public), self._listen_until,
            )
        self._pending_justifications: dict[bytes, Justification] = {}
        # The highest proof of justification whose block is not imported yet: one slot, that a
        # lower proof cannot take (four lower ones evicted a higher one from the table above).
        self._pending_proof: Justification | None = None
        self.network: NetworkService | None = None
        self.link: NodeLink | None = None
        if config.network is not None:
            self._setup_network(config.network, Path(base) / "chains" / spec.id / "network")

    def _setup_network(self, net: NetworkConfig, network_dir: Path) -> None:
        """The p2p service and its link to this node (node/network/sync.py holds the policy)."""
        if self.config.node_key is not None:
            key = NodeKey.from_hex(self.config.node_key)
        elif self.config.node_key_file is not None:
            key = NodeKey.from_file(self.config.node_key_file)
        else:
            key = NodeKey.load_or_generate(network_dir)
        roles = ROLE_AUTHORITY if self.author is not None else ROLE_FULL
        net = replace(net, roles=roles)
        self.network = NetworkService(
            key, net, genesis_hash=self.chain.genesis_hash, chain_status=self._link_status
        )
        self.link = NodeLink(self, self.network)
        self.link.transcripts.serving = serves_checkpoints(self.config.byzantine)  # withhold-checkpoints: none
        self._import_listeners.append(self.link.on_imported)

    def _link_status(self) -> ChainStatus:
        assert self.link is not None
        return self.link.chain_status()

    # --- the pool's view of validity -----------------------------------------------------------
    def _validate_for_pool(self, xt: Extrinsic) -> Validity:
        runtime, state, number = self.chain.runtime, self.chain.state.overlay(), self.chain.best_number + 1
        # A call that would fail at once, paying little (a TRAIN of a segment length of 0, a
        # reveal in a round it has no update in) is refused with the reason the block would
        # give, before its signature is checked (chain.runtime.Runtime.verify_admissible).
        runtime.verify_admissible(state, xt, number)
        # A hash fixes the bytes and so the signature's validity on this chain: check it once,
        # not again at every revalidation after a block.
        raw = xt.encode()
        xt_hash = blake2_256(raw)
        checked = xt_hash in self._signature_ok
        v = runtime.verify_extrinsic(state, xt, len(raw), number, check_signature=not checked, allow_future=True)
        if not checked:
            self._signature_ok[xt_hash] = None
            if len(self._signature_ok) > SIGNATURE_CACHE:
                self._signature_ok.pop(next(iter(self._signature_ok)))
        # The fee, the call's spend and the balance: the pool counts a sender's extrinsics
        # together, so that one balance does not back many it cannot pay (chain.pool, "overdraft").
        spend = runtime.compute_spend(state, xt, number)
        # A TRAIN is rationed: a block takes MAX_TRAIN_CALLS of them, and the pool four blocks' worth.
        return Validity(
            v.priority, v.account_nonce, 64, fee=v.fee, spend=spend, balance=v.free, rationed=type(xt.call) is calls.Train
        )

    def signature_verified(self, xt_hash: bytes) -> None:
        """Note that the extrinsic ``xt_hash`` has a good signature (the network link checks
        gossiped ones in a thread), so the pool's validation does not check it again."""
        self._signature_ok[xt_hash] = None
        if len(self._signature_ok) > SIGNATURE_CACHE:
            self._signature_ok.pop(next(iter(self._signature_ok)))

    def _on_pool_status(self, xt_hash: bytes, status: str, data: bytes | None) -> None:
        final: Any = None
        if status == "usurped" and data is not None:
            final = {"usurped": "0x" + data.hex()}
        elif status in ("dropped", "invalid"):
            final = status
        if final is None:
            self._notify(xt_hash, status, final=False)
        elif xt_hash in self._in_flight:
            # The worker is building a block from a snapshot that holds this extrinsic: the
            # pool may replace or evict it meanwhile, yet the block may include it. Its watcher
            # learns which once the block is done (_settle_in_flight).
            self._in_flight[xt_hash] = final
        else:
            self._notify(xt_hash, final, final=True)

    def _settle_in_flight(self, included: set[bytes]) -> None:
        """After a build: send the held final statuses of the candidates the block left out."""
        held, self._in_flight = self._in_flight, {}
        for xt_hash, final in held.items():
            if final is not None and xt_hash not in included:
                self._notify(xt_hash, final, final=True)

    # --- submission and watching ---------------------------------------------------------------
    def submit(self, raw: bytes) -> bytes:
        """Put an extrinsic in the pool; raises the pool's or the runtime's error."""
        submitted = self.pool.submit(raw)
        self._work.set()
        return submitted.hash

    async def watch(self, raw: bytes) -> AsyncIterator[Any]:
        """Submit and yield Substrate TransactionStatus values until a final one."""
        queue: asyncio.Queue[Any] = asyncio.Queue(WATCH_QUEUE)
        xt_hash = decode_extrinsic(raw).hash()
        self._xt_watchers.setdefault(xt_hash, set()).add(queue)
        try:
            submitted = self.pool.submit(raw)
            self._work.set()
            yield submitted.status
            while True:
                status, final = await queue.get()
                if status in ("ready", "future") and status == submitted.status:
                    continue
                yield status
                if final:
                    return
        finally:
            watchers = self._xt_watchers.get(xt_hash)
            if watchers is not None:
                watchers.discard(queue)
                if not watchers:
                    del self._xt_watchers[xt_hash]

    def _notify_route(
        self, retracted: Sequence[bytes], enacted: Sequence[bytes], known: tuple[bytes, Sequence[bytes]] | None = None
    ) -> None:
        """Tell extrinsic watchers of a best-chain change: ``{"retracted": block}`` for each
        extrinsic of a block that left the best chain (Substrate's
        ``TransactionStatus::Retracted``; the pool takes it back), then ``{"inBlock": block}``
        for each of a block that joined it. ``known``: a block's hash and its extrinsics' hashes
        at hand (its receipts'), not read and hashed again: with one watcher, a block of 34,950
        transfers was re-encoded and hashed on the loop, 45-77 ms (retest51's F4)."""
        if not self._xt_watchers:
            return
        for status, hashes in (("retracted", retracted), ("inBlock", enacted)):
            for block_hash in hashes:
                if known is not None and block_hash == known[0]:
                    included: Sequence[bytes] = known[1]
                else:
                    included = [xt.hash() for xt in self.chain.get_block(block_hash).body.extrinsics]
                if len(self._xt_watchers) < len(included):  # (the fewer looked up in the other)
                    inside = set(included)
                    watched = [xt_hash for xt_hash in self._xt_watchers if xt_hash in inside]
                else:
                    watched = [xt_hash for xt_hash in included if xt_hash in self._xt_watchers]
                for xt_hash in watched:
                    self._notify(xt_hash, {status: "0x" + block_hash.hex()}, final=False)

    def _notify(self, xt_hash: bytes, status: Any, *, final: bool) -> None:
        for queue in self._xt_watchers.get(xt_hash, ()):
            with contextlib.suppress(asyncio.QueueFull):
                queue.put_nowait((status, final))

    def table_sizes(self) -> dict[str, int]:
        """Entries of each in-memory table that peers or RPC callers can make grow, by name
        (node.metrics exports them as ``polchain_table_entries{table=...}``; benches/churn.py
        watches them under churn)."""
        pool = self.pool.status()
        sizes = {
            "pool_transactions": pool.ready + pool.future,
            "pool_banned": pool.banned,
            "xt_watchers": sum(len(w) for w in self._xt_watchers.values()),
            "head_watchers": len(self._head_watchers) + len(self._final_watchers),
            "signature_cache": len(self._signature_ok),
            "pending_justifications": len(self._pending_justifications) + (self._pending_proof is not None),
            "recent_votes": sum(1 for _ in self.collector.recent_votes()),
        }
        if self.network is not None:
            sizes.update(self.network.table_sizes())
        if self.link is not None:
            sizes.update(self.link.table_sizes())
        return sizes

    async def heads(self, *, finalized: bool) -> AsyncIterator[Header]:
        """The current (best or finalized) head, then each new one."""
        queue: asyncio.Queue[Header] = asyncio.Queue(WATCH_QUEUE)
        watchers = self._final_watchers if finalized else self._head_watchers
        watchers.add(queue)
        try:
            yield self.chain.get_header(self.chain.finalized_hash if finalized else self.chain.best_hash)
            while True:
                yield await queue.get()
        finally:
            watchers.discard(queue)

    def _publish(self, watchers: set[asyncio.Queue[Header]], header: Header) -> None:
        for queue in list(watchers):
            with contextlib.suppress(asyncio.QueueFull):
                queue.put_nowait(header)

    # --- authoring -------------------------------------------------------------------------------
    async def author_block(self) -> ImportedBlock | None:
        """Build one block from the pool now (serialised with any other block work)."""
        if self.author is None:
            return None
        async with self._lock:
            now = int(self.clock() * 1000) // self.slot_ms
            earliest = max(self.chain.best_header.slot + 1, now, self._authored_slot + 1)
            # Without --instant-seal, the slot the clock is in, as Substrate's Aura claims
            # (sc-consensus-slots), never one after it: the slot after a best block sealed early
            # (a fast clock, within the future slots import tolerates) made its owner seal
            # early too, and the chain ran slots ahead of the wall clock for as long as the
            # fast node ran (an outside tester's finding, round 13).
            slot = self._next_own_slot(earliest) if self.config.instant_seal or earliest == now else None
            if slot is None or self._signing_paused():
                return None
            checkpoint = self.chain.checkpoint
            if checkpoint is not None and self.chain.best_number + 1 == checkpoint[0]:
                # That block is imported, not authored (Blockchain.build_block); said once.
                if not self._awaiting_checkpoint:
                    self._awaiting_checkpoint = True
                    log.warning("Not authoring block #%d: it is the checkpoint 0x%s, awaited from peers", checkpoint[0], checkpoint[1].hex())
                return None
            # Recorded before the block is built (a crash after must not let this key seal
            # another block in the slot: node.voter_record). A sole validator has no one to
            # equivocate to, and its database refuses a second block in a slot.
            self._authored_slot = slot
            if len(get_voters(self.chain)) > 1 and not await self._record(
                replace_struct(self._voter, authored_slot=slot), f"Not authoring in slot {slot}"
            ):
                return None
            ready = list(self.pool.ready_with_hashes())
            candidates = [xt for _, xt in ready]
            if self.config.byzantine is not None and self.config.byzantine.equivocates:
                candidates.append(equivocation_remark(self.chain, self.author, candidates, slot))
            note = make_note_votes(self.chain, self.author, candidates, self.collector.recent_votes())
            if note is not None:  # the finality votes seen, so that their voters are paid
                candidates.append(note)
            invalid: list[tuple[bytes, InvalidTransaction]] = []
            started = time.perf_counter()
            self._in_flight = dict.fromkeys((xt_hash for xt_hash, _ in ready), None)
            included: set[bytes] = set()
            try:
                imported = await asyncio.to_thread(
                    self.chain.build_block, candidates, self.author, slot,
                    on_invalid=lambda h, e: invalid.append((h, e)), leave_out=STALE_REPORT_ERRORS,
                )
                included = {receipt.hash for receipt in imported.receipts}
            finally:
                self._settle_in_flight(included)
            elapsed = time.perf_counter() - started
            for xt_hash, exc in invalid:
                if exc.reason != "future":
                    self.pool.report_invalid(xt_hash)
            if self.config.byzantine is not None and imported.block.body.results:
                log.warning(
                    "byzantine (%s): authored block #%d 0x%s with %d training result(s)", self.config.byzantine,
                    imported.block.header.number, imported.block.hash().hex(), len(imported.block.body.results),
                )
            await self._after_import(imported, elapsed, authored=True)
            if self.config.byzantine is not None and self.config.byzantine.equivocates:
                await self._equivocate(imported)
            return imported

    async def _equivocate(self, imported: ImportedBlock) -> None:
        """--byzantine equivocate (lock held): seal a second, empty block in the same slot on
        the same parent, import it and announce it like the first (node/byzantine.py)."""
        assert self.author is not None
        sibling = build_empty_sibling(self.chain, imported.block, self.author)
        if sibling.hash() == imported.block.hash():
            log.warning("byzantine: no second block in slot %d: the first is empty too", sibling.header.slot)
            return
        started = time.perf_counter()
        second = await asyncio.to_thread(self.chain.import_block, sibling)
        log.warning(
            "byzantine: sealed a second block #%d (0x%s…) in slot %d (equivocation)",
            sibling.header.number, sibling.hash().hex()[:12], sibling.header.slot,
        )
        await self._after_import(second, time.perf_counter() - started, authored=True)

    def _report_equivocation(self, imported: ImportedBlock) -> None:
        try:
            self.equivocations.on_block(imported.block.header)
        except ChainError as exc:  # the pool refused it (the fee, say): the evidence stays stored
            log.warning("could not submit pol.report_equivocation: %s", exc)

    async def _after_import(self, imported: ImportedBlock, elapsed: float, *, authored: bool = False) -> None:
        self.metrics.on_block(imported, elapsed, authored=authored)
        block = imported.block
        block_hash = block.hash()
        included = [receipt.hash for receipt in imported.receipts]  # the extrinsics' hashes, in order
        # One step on the loop thread: prune the block's extrinsics by hash, then revalidate the
        # rest against the post-block state. Submissions that arrived while the worker thread
        # wrote the block were validated against that state already; the pool left their
        # senders' older extrinsics in place for this step to recognise as included.
        if imported.retracted:
            # A reorganisation: the retracted blocks' extrinsics go back to the pool if still
            # valid, the enacted blocks' are pruned (_update_pool).
            await self._update_pool(imported.retracted, imported.enacted)
        elif imported.is_best:
            self.pool.maintain(block.header.number, included)
        progress.info(
            "Imported #%d (0x%s…) extrinsics=%d training_steps=%d in %.0f ms%s",
            block.header.number, block_hash.hex()[:12], len(included), imported.training_steps, elapsed * 1000,
            f" (reorg: {len(imported.retracted)} retracted)" if imported.retracted else "" if imported.is_best else " (side branch)",
        )
        if imported.is_best:
            self._notify_route(imported.retracted, imported.enacted, (block_hash, included))
            self._publish(self._head_watchers, block.header)
        for listener in self._import_listeners:
            listener(imported)
        if not authored:
            self._check_own_block(block, imported.receipts)
        # Finality: vote for a new best block of the current round at once (the round's
        # timer covers a round without one), then recount the kept votes (some may be for
        # this block) and retry a justification that waited for it.
        if imported.is_best and block.header.slot >= self._clock_round():
            await self._vote_if_due()
        justification = self._pending_justifications.pop(block_hash, None)
        if justification is not None:
            try:
                await self._finalize(justification)
            except InvalidJustification as exc:
                log.info("a justification for #%d did not verify: %s", block.header.number, exc)
        proof = self._pending_proof
        if proof is not None and proof.target_hash == block_hash:
            self._pending_proof = None
            try:
                await self._note_justified(proof)
            except InvalidJustification as exc:
                log.info("a proof of justification for #%d did not verify: %s", block.header.number, exc)
        await self._finalize_collected(self.collector.check())

    # --- finality --------------------------------------------------------------------------------
    def _clock_round(self) -> int:
        return compute_slot(int(self.clock() * 1000), self.slot_ms)

    def _current_round(self) -> int:
        """The finality round: the Aura slot of the clock, or of the best block when an
        instant-seal node runs ahead of the clock (one slot a block)."""
        return max(self._clock_round(), self.chain.best_header.slot)

    async def _vote_if_due(self) -> None:
        """Sign and gossip this validator's vote for its best block, once per round (call
        with the lock held: it is held across the record's write too, so nothing else is
        signed before the record is on disk). Never two votes in one round: that is a vote
        equivocation."""
        if self.author is None:
            return
        round_number = self._current_round()
        if round_number <= self._voted_round or self.author.public not in get_voters(self.chain):
            return
        if self._signing_paused() or self._catching_up(round_number):
            return
        await self._follow_justified()
        source = self._voter.justified
        vote = make_vote(self.chain, self.author, round_number, source)
        if vote is None:
            if self.chain.has_block(source.block_hash):  # the best chain is on another branch for now
                log.debug("no vote in round %d: the best block does not descend from the source #%d", round_number, source.block_number)
            else:
                # A source this database lacks: a sync that reaches it ends this, but after
                # purge-chain and a relaunch of the whole network from genesis none ever will,
                # and the node waited for good, logging at DEBUG only (an outside tester's F5,
                # round 12). Every round: the log's repeat filter folds the repeats.
                log.warning(
                    "No finality vote: the slashing-protection record %s names source #%d 0x%s, which this database "
                    "does not hold. A sync that reaches it ends this; if the whole network was started again from "
                    "genesis (purge-chain on every node), move that record aside to vote on the new chain",
                    self._voter_record, source.block_number, source.block_hash.hex(),
                )
            return
        # Persisted before the vote leaves: a crash after it must not let this node vote again.
        # Not again in this round even if the record could not be written.
        self._voted_round = round_number
        if not await self._record(replace_struct(self._voter, justified=source, voted_round=round_number), f"Not voting in round {round_number}"):
            return
        self._signed_votes[round_number] = vote
        while len(self._signed_votes) > MAX_SIGNED_VOTES:  # older ones of this run count as before it
            self._own_since_round = max(self._own_since_round, self._signed_votes.pop(next(iter(self._signed_votes))).vote.round)
        if self.network is not None:
            self.network.broadcast_vote(encode(vote))
        await self._finalize_collected(self.collector.add(vote, round_number))

    async def add_vote(self, vote: SignedVote) -> None:
        """A vote from a peer: counted, and the block it completes finalized. InvalidVote
        (with its reason) if it does not count."""
        async with self._lock:
            try:
                self._check_own_vote(vote, "from a peer")
            except InvalidSignature as exc:
                raise InvalidVote("bad_signature", f"vote of {ss58_encode(vote.voter)}: {exc}") from None
            current = self._current_round()
            try:
                await self._finalize_collected(self.collector.add(vote, current))
                self._offer_justified(vote, current)
            except VoteEquivocation as exc:  # the collector stored both votes: report them on chain
                # (before InvalidVote, its base class, whose clause would otherwise take it)
                self._report_vote_equivocation(exc)
                raise
            except InvalidVote as exc:
                if exc.reason == "stale" and vote.vote.round > current:
                    self._note_vote_ahead(vote, current)
                raise

    def _report_vote_equivocation(self, exc: VoteEquivocation) -> None:
        """Submit pol.report_vote_equivocation for the two votes the collector caught."""
        if isinstance(exc.evidence, VoteEquivocationEvidence):
            try:
                self.equivocations.on_vote_equivocation(exc.evidence)
            except ChainError as refused:
                log.warning("could not submit pol.report_vote_equivocation: %s", refused)

    def awaits_block(self, block_hash: bytes) -> bool:
        """Whether a justification for ``block_hash``, not stored here, is kept until it arrives."""
        pending = self._pending_proof
        return block_hash in self._pending_justifications or (pending is not None and pending.target_hash == block_hash)

    async def import_justification(self, justification: Justification) -> bool:
        """A justification from a peer: verified, then its target finalized, or, for a proof
        of justification (consensus.finality.proves_finality), its target noted justified
        (:meth:`_note_justified`). False if it brings nothing (the target is final or justified
        already, or not imported yet: then it is kept and retried when the block arrives);
        InvalidJustification if it does not verify."""
        async with self._lock:
            # A justification holds each voter once (verify_justification refuses a second), so
            # only the first vote naming this key is checked: a peer's 1,024 votes in its name
            # must not cost 1,024 signature checks before the justification is refused.
            own = next((v for v in justification.votes if self.author is not None and v.voter == self.author.public), None)
            if own is not None:
                try:
                    self._check_own_vote(own, "in a justification")
                except InvalidSignature as exc:
                    raise InvalidJustification("bad_signature", f"vote of {ss58_encode(own.voter)}: {exc}") from None
            chain = self.chain
            final = proves_finality(chain, justification)
            if not final and self._knows_justified(justification):
                return False  # nothing new: not even a signature checked
            if final and chain.has_block(justification.target_hash) and chain.is_invalid(justification.target_hash):
                await self._lift_fraud_marks(justification)
            if not chain.has_block(justification.target_hash):
                if final and justification.target_hash in self._pending_justifications:
                    # One is kept, checked, for the same block: this one brings nothing. Checked,
                    # one proof's votes in each of their orders cost every signature of the set
                    # a message, uncharged (valid), on a node that is behind.
                    return False
                # Checked as far as it can be without the block before it is kept: unchecked,
                # a forgery took the place of the honest one waiting for the same block. Votes
                # of non-validators here may be of a set we have not reached: not blamed.
                try:
                    # Up to 1,024 signatures: on a thread, as every other check of them.
                    await asyncio.to_thread(verify_justification, chain, justification, target_known=False, final=final)
                except InvalidJustification as exc:
                    if exc.reason not in ("not_validator", "below_threshold"):
                        raise
                    log.info("a justification for the unknown block 0x%s… is not kept: %s", justification.target_hash.hex()[:12], exc)
                    return False
                if not final:
                    self._pending_proof = justification  # higher than any kept (_knows_justified)
                    return False
                self._pending_justifications[justification.target_hash] = justification
                while len(self._pending_justifications) > MAX_PENDING_JUSTIFICATIONS:
                    self._pending_justifications.pop(next(iter(self._pending_justifications)))
                return False
            if not final:
                return await self._note_justified(justification)
            if chain.is_descendant(chain.finalized_hash, justification.target_hash) and chain.get_justification(
                justification.target_hash
            ) is not None:
                # Final here already; the checkpoint its link justifies may still be above the
                # highest noted (the recovery a peer offers a node voting from an older source:
                # _offer_justified), so it is taken as a proof of justification (no signature
                # checked when it brings nothing).
                return await self._note_justified(justification)
            conflict = chain.find_checkpoint_conflict(justification.target_hash)
            if conflict is not None:  # (--checkpoint: its sender may be honest, and not yet shown wrong)
                log.info("a justification is not applied: %s", conflict)
                return False
            moved = await self._finalize(justification)
            await self._follow_justified()
            return moved

    async def _lift_fraud_marks(self, justification: Justification) -> None:
        """A finality proof of a block this node holds but marked invalid: a fraud proof came
        here after the rest of the network had finalized the block (or a descendant), while
        this node's finality lagged. Finality outranks the proof (import_block's docstring):
        once every check but the target's validity passes, signatures included
        (InvalidJustification otherwise), the marks go and the caller finalizes as usual; the
        fraud stays proven and reported. Every INVALID mark is a fraud's (Blockchain.invalidate
        is called for nothing else)."""
        cause = self.chain.compute_invalid_cause(justification.target_hash)
        if all(signed.voter == self.chain.get_header(cause).author for signed in justification.votes):
            return  # the forger's own vote (a sole validator's) is its own word, not a check (_proves_final)
        await asyncio.to_thread(verify_justification, self.chain, justification, target_known=False, final=True)
        cause = await asyncio.to_thread(self.chain.revoke_invalid, justification.target_hash)
        log.warning(
            "block #%d (0x%s…) and its descendants were proven forged here, but block #%d is final, which "
            "descends from it: following it (finality is never reverted; the fraud stays reported)",
            self.chain.get_header(cause).number, cause.hex()[:12], justification.target_number,
        )

    def _knows_justified(self, proof: Justification) -> bool:
        """Whether this node knows a justified checkpoint as high as the one ``proof`` claims,
        or keeps a proof as high for a block still to come (then the proof brings nothing: it
        is dropped before any signature is checked; one link's votes make many valid proofs,
        a lower target or another order of the votes, and each must not cost a check)."""
        claimed = justified_checkpoint(proof)
        highest = self.collector.highest_justified()
        if self._pending_proof is not None:  # (emptied before the proof kept in it is noted: _after_import)
            pending = justified_checkpoint(self._pending_proof)
            if checkpoint_order(claimed) <= checkpoint_order(pending):
                return True
        return self.collector.is_justified(claimed) or checkpoint_order(claimed) <= checkpoint_order(highest)

    async def _note_justified(self, proof: Justification) -> bool:
        """A proof of justification from a peer (lock held): verified on a thread (up to
        1,024 signatures), then its checkpoint noted justified and followed: the next vote
        goes from it. True if it raised the highest justified checkpoint."""
        if self._knows_justified(proof):
            return False
        await asyncio.to_thread(verify_justification, self.chain, proof, final=False)
        before = self.collector.highest_justified()
        self.collector.note_link(proof)
        await self._follow_justified()
        if self.collector.highest_justified() == before:
            return False  # e.g. its block is off the finalized chain here
        log.info(
            "The checkpoint #%d of round %d is justified (a peer sent the votes of its link): votes go from it",
            proof.target_number, proof.round,
        )
        return True

    def _offer_justified(self, vote: SignedVote, current: int) -> None:
        """A validator's vote that counted, from a source older than this node's highest
        justified checkpoint, a full round after that checkpoint's link: the validator missed
        the link's votes (consensus.finality.VoteCollector.justified_proof says how finality
        stopped for good without this), so send it the proof; at most once a round."""
        if self.network is None or current <= self._proof_sent_round:
            return
        proof = self.collector.justified_proof()
        if proof is None or vote.vote.round <= proof.round + 1:
            return
        source, highest = vote.vote.source, justified_checkpoint(proof)
        if checkpoint_order(source) >= checkpoint_order(highest):
            return
        self._proof_sent_round = current
        self.network.broadcast_justification(proof.encode())

    async def _finalize_collected(self, justification: Justification | None) -> None:
        """Finalize with a justification this node's collector put together, then follow
        the highest justified checkpoint."""
        if justification is not None:
            try:
                await self._finalize(justification)
            except InvalidJustification as exc:  # the collector's own checks make this unreachable
                log.error("a justification of round %d did not verify: %s", justification.round, exc)
        await self._follow_justified()

    async def _follow_justified(self) -> None:
        """Persist the highest justified checkpoint the collector knows (the next source),
        point the fork choice at it, and reorganise onto it if the best block lacks it (a
        synced write: on a thread, as :meth:`_finalize`'s, with the lock held).

        The source only rises (by round, then height), but for one case: the recorded one
        proven invalid since, the collector's checkpoint of the same round on the valid part
        replaces it (VoteCollector._lower_proof). Nothing valid descends from an invalid
        source, so every validator that had it voted never again and finality stopped for
        good (the reviewer's F1, review45); a source of the same round surrounds no vote
        signed before, whose sources are of that round at most."""
        justified = self.collector.highest_justified()
        self.rules.justified = justified.block_hash
        recorded = self._voter.justified
        if checkpoint_order(justified) > checkpoint_order(recorded) or (
            justified.round == recorded.round and self.chain.has_block(recorded.block_hash) and self.chain.is_invalid(recorded.block_hash)
        ):
            self._raise_record(replace_struct(self._voter, justified=justified))
        await self._after_reorg(await asyncio.to_thread(follow_justified, self.chain, justified.block_hash))

    # --- signing safety: the record, another signer of this key ------------------------------------
    async def _record(self, state: VoterState, refusal: str) -> bool:
        """Write ``state`` as this validator's record before signing what it records; False
        (with one ERROR line: ``refusal``, then why) if it cannot be written: the signature is
        then not made. Whatever was signed before stays recorded (the file is replaced whole
        or not at all), so once the disk recovers the next round or slot is signed as usual.
        The write (two fsyncs) runs on the record's own thread, after every write asked for
        before it, while the loop serves the peers and RPC; the caller holds the lock."""
        try:
            await self._records.write(state)
        except OSError as exc:
            log.error(
                "%s: the slashing protection record %s could not be written (%s); nothing is signed that it does not record",
                refusal, self._voter_record, exc.strerror or exc,
            )
            return False
        self._voter = state
        return True

    def _raise_record(self, state: VoterState) -> None:
        """Keep a higher source (or round) this validator learned without signing anything:
        in memory at once, on disk if it can be (the next vote's record writes it anyway),
        off the loop: queued on the record's thread, before any later write."""
        self._voter = state
        self._records.submit(state).add_done_callback(self._on_raise_written)

    def _on_raise_written(self, written: Future[None]) -> None:
        exc = written.exception()
        if isinstance(exc, OSError):
            log.warning("the slashing protection record %s could not be written (%s)", self._voter_record, exc.strerror or exc)
        elif exc is not None:
            log.error("the slashing protection record %s could not be written", self._voter_record, exc_info=exc)

    def _catching_up(self, round_number: int) -> bool:
        """True while the best block is far behind ``round_number``: more than two turns of
        every validator and at least :data:`CATCH_UP_MS`. Such a node is catching up (or
        restored from an old backup): the blocks it has yet to import may note votes it cast
        since its record was saved (:meth:`_check_own_vote`), and a vote from what it knows
        now would surround them. Ethereum's validator clients do not attest while their node
        syncs. Peers' claims of their best blocks are not used: a peer could claim any.
        Authoring does not wait for votes, so this cannot stall a live chain: its next block
        is recent. Genesis is exempt (nothing authored yet: nothing to have voted past).

        Blocks this node sealed in this run do not count as recent: sealed on the stale best,
        one made the node look caught up at once, and it voted from the old source in the
        same round (found when the restored validator's own slot came before its sync was
        done). What counts is the newest block of the best chain that another node made, unless
        no other node may make one: when every other validator is disabled or gone, this node
        authors alone, and waiting for another's block stalled finality for good (a reviewer's
        finding: Alice, the last enabled validator, stopped voting a minute after the others
        were reported)."""
        if self._authors_alone():
            return False
        best = self._newest_not_sealed_here()
        behind = round_number - best.slot
        if best.number == 0 or behind * self.slot_ms <= max(CATCH_UP_MS, 2 * len(get_voters(self.chain)) * self.slot_ms):
            self._catching_up_logged = False
            return False
        if not self._catching_up_logged:
            self._catching_up_logged = True
            log.info("Not voting in round %d: the best block #%d is %d slots behind it (catching up first)", round_number, best.number, behind)
        return True

    def _authors_alone(self) -> bool:
        """Whether this node's key is the best state's only validator not disabled."""
        if self.author is None:
            return False
        state = self.chain.state.overlay()
        disabled = PENDING_REMOVAL.get(state)  # (staking.is_disabled, read once for the set: called every round)
        return [v for v in get_validators(state) if v not in disabled] == [self.author.public]

    def _newest_not_sealed_here(self) -> Header:
        """The newest block of the best chain that this run did not seal (genesis at the
        latest). The blocks walked down are remembered by the best block they were walked
        from, so the next call walks only the blocks sealed since (the answer for a block never
        changes: the key and the slot this run began from are fixed): a validator sealing
        alone read every header it had sealed, each round."""
        block_hash, best = self.chain.best_hash, self.chain.best_header
        walked_from, found = self._not_sealed_here
        if self.author is not None:
            while best.number > 0 and best.author == self.author.public and best.slot > self._own_since_slot:
                if block_hash == walked_from:
                    best = found
                    break
                block_hash = best.parent_hash  # this run's own (another's would have stopped it)
                best = self.chain.get_header(block_hash)
        self._not_sealed_here = (self.chain.best_hash, best)
        return best

    def _signing_paused(self) -> bool:
        """True while this node must not sign: another signer of its key was seen (until a
        restart), or it still listens for one (``--doppelganger-rounds``)."""
        if self._doppelganger is not None:
            return True
        if self._listen_until >= 0:
            if self._clock_round() <= self._listen_until:
                return True
            self._listen_until = -1
            log.info("Doppelganger protection: no other signer of this key seen; signing from round %d", self._clock_round())
        return False

    def _on_doppelganger(self, what: str, where: str) -> None:
        """Another node signs with this validator's key: stop signing, say so once."""
        if self._doppelganger is not None:
            return
        assert self.author is not None
        self._doppelganger = what
        log.error(
            "Doppelganger: %s signed with this validator's key %s that this node did not make (%s): another node "
            "signs with this key; not signing votes or blocks until restarted. Stop one of them: every round both "
            "sign, the key may be slashed",
            what, ss58_encode(self.author.public), where,
        )

    def _check_own_vote(self, signed: SignedVote, where: str, *, checked: bool = False) -> None:
        """A vote of this validator's key seen here (gossip, a justification, a block's
        note_votes). One this run did not sign, in a round after those signed before it, is
        another signer's (:meth:`_on_doppelganger`). One from before this run (a restore from
        an old backup: the record is older than the key's votes) raises the record to it, so
        that no later vote surrounds it or repeats its round. Only a good signature counts:
        anyone can name this key in a vote, and one with a bad signature raises InvalidSignature
        (the caller refuses the vote for it, charged: checked here, it is not checked again,
        and a stale one, refused unblamed after this, cost a check each for nothing).
        ``checked``: the runtime verified its signature (a note_votes that succeeded in a block
        this node imported)."""
        if self.author is None or signed.voter != self.author.public:
            return
        vote = signed.vote
        if self._signed_votes.get(vote.round) == signed:
            return  # this run's own vote, come back
        if not checked:
            verify_signature(signed.voter, compute_vote_message(self.chain.genesis_hash, vote), signed.signature)
        if vote.round > self._own_since_round:
            self._on_doppelganger(f"a vote in round {vote.round}", where)
            return
        state = self._voter
        higher = checkpoint_order(vote.source) > checkpoint_order(state.justified)
        if higher or vote.round > state.voted_round:
            log.warning(
                "A vote of this validator in round %d from the checkpoint #%d of round %d (%s) is newer than its "
                "slashing protection record (restored from an old backup?): the record is raised to it",
                vote.round, vote.source.block_number, vote.source.round, where,
            )
            self._raise_record(replace_struct(
                state, justified=vote.source if higher else state.justified, voted_round=max(state.voted_round, vote.round)
            ))
            self._voted_round = max(self._voted_round, vote.round)

    def _check_far_future(self, block: Block) -> None:
        """A block deferred as ahead of this node's clock: if it is hours ahead, not seconds,
        say once per author why it will never come within reach. Every node of a chain has its
        slot duration (chain.config), so the cause left is a clock: the author's runs hours
        ahead, or this node's behind, and the sync retries such a block every slot for ever.
        The seal is checked first: a forged header must not make a node name an innocent
        validator, and its sender is charged for it (InvalidHeader "bad_seal")."""
        header = block.header
        ahead_ms = (header.slot - self._clock_round()) * self.slot_ms
        if ahead_ms < FAR_FUTURE_MS or header.author in self._far_future_authors or header.author not in get_voters(self.chain):
            return  # (anyone can seal with a key of their own: only validators are named, once each)
        try:
            verify_seal(self.chain.genesis_hash, header)
        except InvalidSignature as exc:
            # Checked, so no longer a deferral: a forged header hours ahead is a bad block, and
            # its sender is charged for it (it would otherwise cost a check at every retry).
            raise InvalidHeader("bad_seal", f"block #{header.number}: bad seal: {exc}") from None
        self._far_future_authors[header.author] = None
        while len(self._far_future_authors) > MAX_FAR_FUTURE_AUTHORS:
            self._far_future_authors.pop(next(iter(self._far_future_authors)))
        log.error(
            "Block #%d by %s is in slot %d, %d slots (%s) ahead of this node's clock: its author's clock or this node's "
            "is wrong (every node of a chain needs a synchronised clock); its blocks are not imported",
            header.number, ss58_encode(header.author), header.slot, ahead_ms // self.slot_ms, _describe_duration(ahead_ms),
        )

    def _note_vote_ahead(self, signed: SignedVote, current: int) -> None:
        """A validator's vote too far ahead of this node's round to be kept (the collector's
        MAX_FUTURE_ROUNDS): dropped without blame, as it may be this node's clock that is
        behind. A validator whose clock runs more than that ahead loses every vote, so it is
        named, once, with a good signature (a forged vote must not name an innocent one, and is
        refused with reason "bad_signature")."""
        if signed.voter in self._ahead_voters or signed.voter not in get_voters(self.chain):
            return
        try:
            verify_signature(signed.voter, compute_vote_message(self.chain.genesis_hash, signed.vote), signed.signature)
        except InvalidSignature as exc:
            # Checked, so refused as what it is: its sender is charged, as for any forged vote
            # (left "stale", a flood of them would cost a check each, uncharged).
            raise InvalidVote("bad_signature", f"vote of {ss58_encode(signed.voter)}: {exc}") from None
        self._ahead_voters[signed.voter] = None
        while len(self._ahead_voters) > MAX_FAR_FUTURE_AUTHORS:
            self._ahead_voters.pop(next(iter(self._ahead_voters)))
        ahead = signed.vote.round - current
        log.warning(
            "Votes of %s are %d rounds ahead of this node's clock (round %d, this node's %d): its clock or this node's "
            "is off by about %.0f s, and such votes are not counted",
            ss58_encode(signed.voter), ahead, signed.vote.round, current, ahead * self.slot_ms / 1000,
        )

    def _check_own_block(self, block: Block, receipts: Sequence[Receipt]) -> None:
        """A block from a peer: if sealed with this validator's key in a slot after those it
        sealed before this run (this run's own blocks are never imported from a peer), another
        node signs with the key. The votes its note_votes noted are checked for this key's
        too, those of the calls that succeeded only: the runtime verified their signatures.
        (A failed call's were checked here, one by one: a byzantine author's block of failed
        note_votes, 1,024 forged votes in one validator's name each, cost that validator a
        signature check each on its event loop.)"""
        if self.author is None:
            return
        header = block.header
        if header.author == self.author.public and header.slot > self._own_since_slot:
            self._on_doppelganger(f"a block in slot {header.slot}", f"block #{header.number} 0x{block.hash().hex()[:12]}…")
        extrinsics = block.body.extrinsics
        for receipt in receipts:
            call = extrinsics[receipt.index].call
            if receipt.success and isinstance(call, calls.NoteVotes):
                for signed in call.votes:
                    self._check_own_vote(signed, f"noted in block #{header.number}", checked=True)

    async def _update_pool(self, retracted: Sequence[bytes], enacted: Sequence[bytes]) -> None:
        """Put the retracted blocks' extrinsics back in the pool (if still valid on the new
        best chain), then prune the enacted blocks' and revalidate the rest
        (consensus.block_import.update_pool, in turns): RESUBMIT_PER_TURN a loop turn, their
        signatures not checked again (their blocks were imported, so they were). All at once,
        a reorg off a block of 20,000 transfers held the event loop 4.2 s, and a validator
        missed its slots (retest45's F5). In process, one block of 20,000 remarks: 1.8 s in
        one turn before, 0.64-0.70 s now, the longest turn 45-47 ms
        (/work/scratch/s43/reorgpool_node.py, not committed)."""
        extrinsics, included = find_resubmissions(self.pool, self.chain, retracted, enacted)
        for n, (xt_hash, raw) in enumerate(extrinsics):
            if n and not n % RESUBMIT_PER_TURN:
                await asyncio.sleep(0)
            if xt_hash in self.pool:
                continue
            self.signature_verified(xt_hash)
            try:
                self.pool.submit(raw)
            except ChainError as exc:
                log.debug("retracted extrinsic 0x%s not resubmitted: %s", xt_hash.hex(), exc)
        self.pool.maintain(self.chain.best_number, included)
        if extrinsics:
            self._work.set()

    async def _after_reorg(self, route: TreeRoute | None) -> None:
        if route is not None:
            await self._update_pool(route.retracted, route.enacted)
            self._notify_route(route.retracted, route.enacted)
            self._publish(self._head_watchers, self.chain.best_header)
            if self.network is not None:
                self.network.broadcast_block(self.chain.best_header)

    async def _finalize(self, justification: Justification) -> bool:
        """Verify and import ``justification`` (lock held), then tell the pool, the watchers
        and the peers. True if the finalized block moved.

        The import runs on a thread, as a block's does: it checks every vote's signature (a
        justification of 100 validators is 7 ms of ed25519) and writes the finalized pointer
        in a synced batch (an fsync, about 5 ms), and on the loop both held up every peer, RPC
        caller and the slot timer once a round (``python -m benches.looplag``)."""
        chain = self.chain
        old = chain.finalized_number
        await asyncio.to_thread(verify_justification, chain, justification)
        # What the link justifies is noted from the proof, not only from its votes, which the
        # collector may not count (a vote of one of them came first, a byzantine key's; or they
        # are older than the rounds it keeps): a node that finalized so voted from the link's
        # source round while the rest voted from its target's, and with a threshold of all three
        # no link formed again (retest43's N1). Before the finalized block moves: the set that
        # verified the link counts it (VoteCollector.note_link: review45's F3).
        self.collector.note_link(justification)
        route = await asyncio.to_thread(finalize_verified, chain, justification)
        await self._after_reorg(route)
        self.collector.note_justified(finalized_checkpoint(chain))  # (justified: its link finalized it)
        for signed in justification.votes:
            try:
                self.collector.add(signed, self._current_round())
            except VoteEquivocation as exc:  # a double vote seen only here is reported all the same
                self._report_vote_equivocation(exc)
            except InvalidVote:
                pass
        if self.network is not None:
            self.network.broadcast_justification(justification.encode())
        if chain.finalized_number <= old:
            return False
        progress.info(
            "Finalized #%d (0x%s…) by %d votes of round %d",
            chain.finalized_number, chain.finalized_hash.hex()[:12], len(justification.votes), justification.round,
        )
        self._maybe_prune()
        finalized: list[bytes] = []
        for number in range(old + 1, chain.finalized_number + 1):
            block_hash = chain.get_hash(number)
            assert block_hash is not None  # the finalized chain is the best chain's start
            finalized.append(block_hash)
            self._publish(self._final_watchers, chain.get_header(block_hash))
        # The watched extrinsics looked up where the best chain holds them, not every extrinsic
        # of every finalized block decoded, encoded and hashed on the loop, watched or not
        # (45-77 ms for a block of 34,950 transfers: found with retest51's F4).
        if self._xt_watchers:
            now_final = set(finalized)
            for xt_hash in list(self._xt_watchers):
                where = chain.get_extrinsic_location(xt_hash)
                if where is not None and where[0] in now_final:
                    self._notify(xt_hash, {"finalized": "0x" + where[0].hex()}, final=True)
        return True

    async def _finality_loop(self) -> None:
        """Vote in the middle of every round, if no block of the round made this node vote
        already (a missed slot, a late block)."""
        while not self._stop.is_set():
            now = self.clock() * 1000
            await self._wait_for(self._stop, (self.slot_ms - (now - self.slot_ms / 2) % self.slot_ms) / 1000)
            if self._stop.is_set():
                return
            async with self._lock:
                try:
                    await self._vote_if_due()
                except Exception as exc:  # as for authoring: a failed round must not end the loop
                    _log_failure("Finality voting failed in this round; trying again in the next", exc)

    async def import_block(
        self, block: Block, source: CheckpointSource | None = None, final_proof: Justification | None = None
    ) -> ImportedBlock | None:
        """Import a block from a peer onto any stored parent (fork choice decides whether it
        becomes best), serialised with authoring; None if it is stored already. BlockError if
        it is bad (UnknownParent: its parent is not stored; CheckpointsUnavailable: ``source``
        could not provide the openings the verifier asked for; FraudFound: its training is
        false, and the proof is stored, gossiped and reported before the error is raised);
        InvalidJustification if ``final_proof`` was needed and is forged.
        ``source``: where the verifier fetches checkpoints (None: this node's store).

        ``final_proof``: a finality proof of this block or of a descendant the caller linked
        to it by hashes (a synced range). Only when the training check cannot accept the
        block is it used (:meth:`_proves_final`): if it verifies, more than 2/3 of the
        validators (each of whom checked a sample of it before voting past it) made the
        block final, and finality is never reverted.

        - The openings cannot be had: the block is stored without its training checked here.
          Without this, only a block's author holds all its checkpoints, and a node that could
          not reach the author (gone, purged, or withholding from this node alone) never
          imported a final block, nor anything after it (an outside tester's finding: with 4
          validators, one withholding from one other stopped finality for good).
        - The check proves it forged (a forgery every validator's sample missed, found by an
          auditor or a resyncing validator whose sample hits it): the block is stored, and
          its fraud proof kept, gossiped and reported, not turned into an INVALID mark; a mark
          this node left before (its own check, or a peer's proof, while the block was not
          stored) gives way too. Before, such a node refused the final chain for good (an
          outside tester's finding, 2026-11-30: every auditor stopped at the first forgery
          that escaped the samples). The challenge window is the time a proof has to arrive;
          after it, the proof punishes the author but does not move the chain."""
        block_hash, parent_hash = block.hash(), block.header.parent_hash
        # Marks this node left (the block itself, not stored; or its stored parent, with the
        # branch above it) give way to a verified finality proof of the range.
        marked = []
        if final_proof is not None:  # (no reads for the common import, which carries none)
            if self.chain.is_invalid(block_hash) and not self.chain.has_block(block_hash):
                marked.append(block_hash)  # refused before it was stored
            if self.chain.has_block(parent_hash) and self.chain.is_invalid(parent_hash):
                marked.append(parent_hash)  # stored, then invalidated with its branch by a late proof
        if final_proof is not None and marked and await self._proves_final(block, final_proof):
            async with self._lock:
                for h in marked:
                    cause = self.chain.revoke_invalid(h)
                    log.warning(
                        "block #%d (0x%s…) was proven forged here, but block #%d is final, which it leads to: "
                        "importing it (finality is never reverted; the fraud stays reported)",
                        self.chain.get_header(cause).number if self.chain.has_block(cause) else block.header.number,
                        cause.hex()[:12], final_proof.target_number,
                    )
        # Execution and the cheap commitments run under the lock (they read the state a write
        # would change); the training check does not: it may wait up to --pol-fetch-timeout on
        # peers for openings (a withholding author's block makes it wait in full), and holding
        # the lock meanwhile would delay this node's own block and votes by as much.
        async with self._lock:
            if self.chain.has_block(block_hash):
                return None
            started = time.perf_counter()
            try:
                prepared = await asyncio.to_thread(self.chain.prepare_import, block)
            except InvalidHeader as exc:
                if exc.reason == "future_slot":
                    self._check_far_future(block)
                raise
        fraud: FraudFound | None = None
        try:
            openings = await asyncio.to_thread(self.chain.verify_training, prepared, source)
        except FraudFound as exc:
            forged: InvalidJustification | None = None
            try:
                final = await self._proves_final(block, final_proof)
            except InvalidJustification as refused:  # a forged proof came with it: the fraud is kept all the same
                final, forged = False, refused
            if not final:
                async with self._lock:
                    self._on_fraud_found(exc.proof, str(exc))
                if forged is not None:
                    raise forged from exc  # the caller charges whoever sent the proof
                raise
            fraud, openings = exc, []
        except CheckpointsUnavailable as unavailable:
            if final_proof is None or not await self._proves_final(block, final_proof):
                raise
            openings = []
            log.info(
                "block #%d (0x%s…) imported without its training checked here (%s): block #%d is final, "
                "which it leads to", block.header.number, prepared.block_hash.hex()[:12], unavailable,
                final_proof.target_number,
            )
        async with self._lock:
            if self.chain.has_block(prepared.block_hash):  # imported meanwhile (another announcement)
                return None
            imported = await asyncio.to_thread(self.chain.finish_import, prepared, openings)
            await self._after_import(imported, time.perf_counter() - started)
            if fraud is not None:  # stored first: a report names a block of our chain
                self._on_fraud_found(fraud.proof, str(fraud), final=True)
            return imported

    async def _proves_final(self, block: Block, final_proof: Justification | None) -> bool:
        """Whether ``final_proof`` (of ``block`` or of a descendant linked to it) proves it final:
        a finality link of more than 2/3 of the validator set, signatures verified on a thread
        (up to 1,024). False for none, for a link that finalizes nothing, for a sole validator's
        own vote (its own word for its training, not a check) and for a proof below the
        threshold or by unknown voters (perhaps a validator set this node has not reached);
        InvalidJustification for a forged one (the caller charges whoever sent it)."""
        if (
            final_proof is None
            or not proves_finality(self.chain, final_proof)
            or all(signed.voter == block.header.author for signed in final_proof.votes)
        ):
            return False
        try:  # its target is this block or a later one of the range: not imported yet
            await asyncio.to_thread(verify_justification, self.chain, final_proof, target_known=False, final=True)
        except InvalidJustification as exc:
            if exc.reason in ("not_validator", "below_threshold"):
                return False
            raise
        return True

    # --- online state pruning --------------------------------------------------------------------
    def _maybe_prune(self) -> None:
        """Start an online pruning run (chain.pruning.LivePrune) when finality has moved
        min(keep, PRUNE_EVERY) blocks (at least one) since the last one started, and none is
        under way. Called with the lock held: no block's batch is being written, which the
        run's snapshot needs. The run then marks and sweeps on a thread while blocks are
        imported; at most keep + PRUNE_EVERY final states are held below the finalized block,
        unless finality moves faster than runs at PRUNE_DUTY of the time can follow (a sync)."""
        keep = self.config.state_pruning
        if keep is None or self._stop.is_set() or (self._pruning is not None and not self._pruning.done()):
            # (Not once the node is stopping: the stop waits for the run under way, then for the
            # sync to end, and finality moved on meanwhile started a run the database was closed
            # under, a SIGSEGV in 3 of 36 stops of a syncing node: an outside tester's S1.)
            return
        if time.monotonic() < self._prune_not_before:
            return
        if self.chain.finalized_number - self._pruned_at < max(1, min(keep, PRUNE_EVERY)):
            return
        self._pruned_at = self.chain.finalized_number
        run = LivePrune(self.db, self.chain.state, keep)
        self._pruning = asyncio.create_task(self._prune(run))

    async def _prune(self, run: LivePrune) -> None:
        try:
            report = await asyncio.to_thread(run.run)
        except Exception as exc:  # the next run tries again; nothing is deleted that a kept state needs
            _log_failure("Online state pruning failed", exc)
            return
        self._prune_not_before = time.monotonic() + report.seconds * (1 / PRUNE_DUTY - 1)
        self.metrics.pruned_nodes.inc(report.nodes_deleted)
        # Progress, never collapsed by the log's repeat filter (node.logfilter): at short block
        # times it hid two runs of three, so the log could not say whether a run finished (an
        # outside tester's finding); runs are bounded by finality and PRUNE_DUTY, not by a peer.
        progress.info(
            "Pruned %d trie nodes and %d checkpoints in %.2f s: the states of blocks below #%d are gone (%d kept)",
            report.nodes_deleted, report.openings_deleted, report.seconds, report.lowest_kept, report.states_kept,
        )

    # --- proof-of-learning fraud ---------------------------------------------------------------
    def _on_fraud_found(self, proof: FraudProof, message: str, *, final: bool = False) -> None:
        """Our verifier proved a block's training false: keep the proof, tell the peers, and
        report it on chain (a fraud proof is the one thing the author cannot answer).
        ``final``: the block was imported under a finality proof (import_block), so it is
        not marked invalid."""
        block_hash = proof.block_hash()
        encoded = proof.encode()
        self.metrics.pol_frauds.inc()
        log.warning(
            "Fraud in block #%d (0x%s…) by %s%s: %s", proof.header.number, block_hash.hex()[:12],
            proof.header.author.hex()[:16], ", final" if final else "", message,
        )
        self.chain.put_evidence(compute_fraud_evidence_key(block_hash, proof.extrinsic_index), encoded)
        if not final:
            # Not stored, so marked only: a later copy of the block, or a child, is refused at once.
            self.chain.invalidate(block_hash, f"fraud: extrinsic #{proof.extrinsic_index}: {message}")
        if self.network is not None:
            self.network.broadcast_fraud_proof(encoded)
        self._report_fraud(encoded, block_hash, proof.header.author)

    def _report_fraud(self, encoded: bytes, block_hash: bytes, offender: bytes) -> None:
        """Submit ``pol.report_fraud(encoded)`` signed with the author key to our own pool
        (gossiped from there like any extrinsic); a node without a key only gossips, none
        reports its own fraud (SelfReport), and none reports an offender punished already (the runtime would refuse it as AlreadyPunished,
        keeping the fee), unless the block is one of our best chain's (a finalized block: a
        fraud in it is proven whoever its author, and voids a bounty claim resting on it)."""
        if self.author is None:
            return
        if offender == self.author.public:  # the runtime refuses it whatever the block (pol.SelfReport)
            log.info("Not reporting the fraud in block 0x%s…: it is this node's own", block_hash.hex()[:12])
            return
        state = self.chain.state.overlay()
        number = self.chain.get_header(block_hash).number if self.chain.has_block(block_hash) else None
        here = number is not None and is_block_here(state, number, block_hash)
        if is_punished(state, offender) and not here:
            log.info("Not reporting the fraud in block 0x%s…: its author is punished already", block_hash.hex()[:12])
            return
        try:
            nonce = compute_next_nonce(self.chain.state.overlay(), self.pool.pending(), self.author.public)
            xt = sign_extrinsic(
                self.author, calls.ReportFraud(encoded), nonce=nonce,
                genesis_hash=self.chain.genesis_hash, spec_version=self.chain.runtime.spec_version,
            )
            self.submit(xt.encode())
        except ChainError as exc:  # the pool's or the runtime's refusal (fee, duplicate...)
            log.warning("could not submit pol.report_fraud: %s", exc)
            return
        except Exception:  # best effort: the block is refused and the proof gossiped whatever happens here
            log.exception("could not submit pol.report_fraud")
            return
        log.info("Submitted pol.report_fraud for block 0x%s… (nonce %d)", block_hash.hex()[:12], nonce)

    def read_fraud_proof_job(self, payload: bytes) -> FraudProofHead:
        """The head of the fraud proof ``payload`` if the node can judge it and it is about a
        real block's real extrinsic whose fault is not proven here yet: InvalidFraudProof
        "oversize" or "malformed" if its opening or head is, "unknown_job" if its block's
        parent state is not here, "proven" if its block is invalid here already or the fault of
        that extrinsic proven, and the reasons of :func:`verify_sealed_extrinsic`. Judged on the
        parent's state, never on our best one: on another fork a model version or data set id
        may hold other data, and an honest block would look faulty (a framing).

        Each step reads only what the last one needs, and all come before the whole is hashed
        or the rest read (the network asks this first): the header, then the head. A proof whose
        job is unknown here, or whose fault is proven, costs its sender nothing within a budget
        (we may be behind; a relay may have made its own proof of the same fault:
        node.network.sync). Copies of a proven fault were each hashed and decoded, 1 MB of
        weights apiece, then dropped uncharged: 68% of a core from one address (an outside
        tester's AF2, retest36); false proofs about a real block, hashed and their rest
        parsed first, 14% (AF3)."""
        max_size = compute_max_fraud_proof_size(self.chain.config.max_model_params)
        header = read_fraud_proof_header(payload, max_size)
        if not self.chain.has_block(header.parent_hash):
            raise InvalidFraudProof("unknown_job", f"block #{header.number}'s parent is not stored here")
        if not self.chain.has_state(header.parent_hash):
            raise InvalidFraudProof("unknown_job", f"block #{header.number}'s parent state is pruned here")
        block_hash = header.hash()
        if self.chain.is_invalid(block_hash):
            raise InvalidFraudProof("proven", f"block #{header.number} is invalid here already")
        head = read_fraud_proof_head(payload, max_size)
        if self.chain.get_evidence(compute_fraud_evidence_key(block_hash, head.extrinsic_index)) is not None:
            raise InvalidFraudProof("proven", f"the fault of block #{header.number}'s extrinsic #{head.extrinsic_index} is proven here already")
        # A stored parent's state does not change, but online pruning (--state-pruning) may
        # take it meanwhile: then the job is unknown here, as for a state pruned before, not an
        # error that drops the proof unjudged.
        try:
            verify_sealed_extrinsic(
                self.chain.genesis_hash, self.chain.state_at(header.parent_hash), header,
                bytes((CODEC_VERSION,)) + bytes(head.extrinsic), head.extrinsic_path, head.extrinsic_index,
                head.extrinsic_count,
            )
        except (MissingTrieNode, UnknownStateRoot):
            if self.chain.has_state(header.parent_hash):
                raise  # a node missing from a state still held: the database is damaged
            raise _pruned_while_judged(header) from None
        return head

    async def import_fraud_proof(self, payload: bytes) -> bool:
        """A fraud proof from a peer: its head checked (:meth:`read_fraud_proof_job`), then the
        whole decoded and judged against the faulty block's parent state, and if it shows a
        fault, its block (and descendants) invalidated here. True if it was new and valid (to
        gossip on); False if another copy proved the same fault meanwhile; InvalidFraudProof
        (with its reason) if it does not decode or shows no fault."""
        max_size = compute_max_fraud_proof_size(self.chain.config.max_model_params)
        header = self.read_fraud_proof_job(payload).header
        state = self.chain.state_at(header.parent_hash)
        proof = decode_fraud_proof(payload, max_size)
        block_hash = proof.block_hash()
        key = compute_fraud_evidence_key(block_hash, proof.extrinsic_index)
        # Judged off the lock, as a block's training check is (import_block): the re-run is up
        # to a block's worth of training, and a false proof from a peer held up every import,
        # vote and authored block meanwhile. One at a time: proofs from many peers at once must
        # not take every core from authoring.
        async with self._fraud_check:
            started = time.perf_counter()
            try:
                await asyncio.to_thread(
                    verify_fraud_proof, self.chain.genesis_hash, state, self.chain.config_at(proof.header.parent_hash), proof
                )
            except (MissingTrieNode, UnknownStateRoot):
                if self.chain.has_state(header.parent_hash):
                    raise  # a node missing from a state still held: the database is damaged
                raise _pruned_while_judged(header) from None
            self.metrics.pol_verify_time.observe(time.perf_counter() - started)
        async with self._lock:
            if self.chain.get_evidence(key) is not None:
                return False  # the same fault, proven by another copy meanwhile
            self.chain.put_evidence(key, payload)
            self.metrics.pol_fraud_proofs.inc()
            log.warning(
                "Fraud proof from a peer: block #%d (0x%s…) by %s is invalid (extrinsic #%d)",
                proof.header.number, block_hash.hex()[:12], proof.header.author.hex()[:16], proof.extrinsic_index,
            )
            try:
                route = await asyncio.to_thread(
                    self.chain.invalidate, block_hash, f"fraud proof: extrinsic #{proof.extrinsic_index}"
                )
            except FinalityConflict as exc:
                # A proven fraud in a finalized block: a forgery every sample missed (the
                # challenge window only gives proofs time to arrive). It cannot be undone, only
                # reported (below): expected at the rates the README gives, so not an ERROR.
                log.warning("a valid fraud proof against a finalized block, which stays final; the fraud is reported: %s", exc)
            else:
                await self._after_reorg(route)
            # Reported on chain here too unless it is proven already: the detector may have no
            # author key (an auditor), and the first report included earns the reward. In a
            # block of our chain each forged TRAIN is proven apart (a bounty claim may rest on
            # any of them: chain.pallets.pol._verify_new_fraud).
            if not is_fraud_proven(self.chain.state.overlay(), proof):
                self._report_fraud(payload, block_hash, proof.header.author)
        return True

    def _next_own_slot(self, earliest: int) -> int | None:
        """The first slot from ``earliest`` that Aura gives to this node's key (None: never)."""
        validators = self._validators()
        if self.author is None or self.author.public not in validators:
            return None
        if is_disabled(self.chain.state.overlay(), self.author.public):
            return None  # punished for an offence: Aura refuses its blocks until it leaves the set
        if self.config.instant_seal:
            return next(s for s in range(earliest, earliest + len(validators)) if compute_slot_author(validators, s) == self.author.public)
        return earliest if compute_slot_author(validators, earliest) == self.author.public else None

    def _validators(self) -> tuple[bytes, ...]:
        return get_validators(self.chain.state.overlay())

    async def _authoring_loop(self) -> None:
        if self.author is None or self.author.public not in self._validators():
            log.info("Not authoring: no validator key of this chain")
            return
        while not self._stop.is_set():
            if self.config.instant_seal:
                await self._wait_for(self._work, None)
                self._work.clear()
                if self._stop.is_set():
                    return
                if self.pool.status().ready:
                    await self._author_slot()
                    if self.pool.status().ready:
                        self._work.set()
            else:
                now = self.clock() * 1000
                due = now + self.slot_ms - now % self.slot_ms  # the next slot's start, ms
                await self._wait_for(self._stop, (due - now) / 1000)
                if not self._stop.is_set():
                    await self._author_slot(due)

    async def _author_slot(self, due_ms: float | None = None) -> None:
        """One slot's authoring, woken for the slot starting at ``due_ms`` (None: instant seal).
        A failure is logged and costs this slot only (Substrate's slot worker does the same):
        an exception must not end the loop and leave a node that runs, serves RPC and never
        authors again.

        Woken :data:`STALL_SLOTS` slots or more after it was due, the node was stopped (SIGSTOP,
        a VM paused, a machine asleep) and its best block is likely stale: it skips that slot,
        so that the blocks its peers sealed meanwhile arrive first. It sealed on its stale best
        at once on resuming, a wasted block and a reorg each time (an outside tester's F3, round
        13). Substrate's slot worker skips slots while major-syncing, judged by peers' claims;
        this judges by the node's own clock, which no peer can move, and costs one slot."""
        now = self.clock() * 1000
        if due_ms is not None and now - due_ms >= STALL_SLOTS * self.slot_ms:
            log.info("Not authoring in slot %d: woken %.1f s late (stopped?); syncing first", now // self.slot_ms, (now - due_ms) / 1000)
            return
        try:
            await self.author_block()
        except Exception as exc:
            self.metrics.authoring_failures.inc()
            _log_failure("Authoring failed in this slot; trying again in the next", exc)

    async def _wait_for(self, event: asyncio.Event, timeout: float | None) -> None:
        stop = asyncio.ensure_future(self._stop.wait())
        other = asyncio.ensure_future(event.wait())
        try:
            await asyncio.wait({stop, other}, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
        finally:
            stop.cancel()
            other.cancel()

    # --- lifecycle ---------------------------------------------------------------------------------
    def request_stop(self) -> None:
        self._stop.set()
        self._work.set()

    def _stop_for_write_error(self, error: StorageError) -> None:
        """Stop the node after the database refused a write (chain.storage.Database.write_error):
        LevelDB refuses every later one until it is reopened, so the node could never store a
        block again (an outside tester's F3, round 12: it authored nothing for good and its
        health endpoints answered 200). A restart reopens it; ``exit_code`` says it failed."""
        self.exit_code = 1
        log.critical(
            "Stopping: the database refused a write (%s). LevelDB refuses every later write until it is reopened: "
            "free the disk or fix the cause, then start the node again (nothing stored is lost: a block is one "
            "atomic write)", error,
        )
        self.request_stop()

    async def run(self, rpc_server: Any | None = None) -> None:
        """Serve until :meth:`request_stop`, or until the database refuses a write; then finish
        the block in progress and close. ``exit_code`` is 0 unless a write failed."""
        loop = asyncio.get_running_loop()

        def on_write_error(error: StorageError) -> None:  # on the writing thread, often a worker
            loop.call_soon_threadsafe(self._stop_for_write_error, error)

        self.chain.db.on_write_error = on_write_error  # (a write before the node runs raises to its caller)
        switch_interval = sys.getswitchinterval()
        sys.setswitchinterval(LOOP_SWITCH_INTERVAL)
        try:
            await self._serve(rpc_server)
        finally:
            sys.setswitchinterval(switch_interval)

    async def _serve(self, rpc_server: Any | None) -> None:
        try:
            if self.network is not None:
                await self.network.start()
                log.info("Local node identity is: %s", self.network.local_peer_id)
                for addr in self.network.listen_addresses:
                    log.info("Listening for new connections on %s", addr)
            if rpc_server is not None:
                await rpc_server.start()
                log.info("JSON-RPC on %s", rpc_server.url)
        except BaseException:
            # A failed start (a port taken, say) leaves nothing open behind it.
            if self.network is not None:
                await self.network.stop()
            self.close()
            raise
        author = asyncio.create_task(self._authoring_loop())
        finality = asyncio.create_task(self._finality_loop())
        lag_probe = asyncio.create_task(self.metrics.loop_lag.run(self._stop))  # node.metrics.LoopLagProbe
        try:
            await self._stop.wait()
        finally:
            await asyncio.gather(author, finality, lag_probe, return_exceptions=True)
            if self._pruning is not None:  # it reads a snapshot of the database closed below (none starts now: _maybe_prune)
                await asyncio.gather(self._pruning, return_exceptions=True)
            if self.network is not None:
                await self.network.stop()  # fails pending requests, so syncs end
            if self.link is not None:
                await self.link.stop()  # waits for an import in progress
            async with self._lock:  # the block in progress is written before the database closes
                if rpc_server is not None:
                    await rpc_server.stop()
                self.close()

    def close(self) -> None:
        self._records.close()  # the raised records queued still reach the disk
        self.db.close()
        if self._tmpdir is not None:
            shutil.rmtree(self._tmpdir, ignore_errors=True)
            self._tmpdir = None

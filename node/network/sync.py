"""The link between a node and its network: block announce and import, sync, gossip, finality.

Kept apart from both :mod:`node.service` and :mod:`node.network.service`: the service owns the
chain and the consensus rules, the network owns the connections, this module is the policy
between them.

Blocks and forks
- a block we author or import is announced to the peers that do not know it (during a sync,
  only the best block at its end);
- a block is imported whenever its parent is stored, on whatever branch: ``import_block``
  runs the fork choice (consensus.fork_choice) and reorganises if the new branch is better,
  and the service puts the retracted blocks' extrinsics back into the pool;
- a peer that announces, or connects with, a best block higher than ours is synced from by
  number (at most 64 blocks a request) from our best + 1. A block whose parent we do not have
  (the peer is on another branch) has its ancestry fetched from the same peer by hash,
  walking down, until it joins a stored block: at most :data:`MAX_FORK_DEPTH` blocks and
  :data:`MAX_BRANCH_BYTES`, and never below the finalized block (a branch that joins below it
  can never win). Each fetched block's header is checked as it comes, as an announced one is:
  sealed by a validator of our finalized state, or the peer is charged (WRONG_RESPONSE) and the
  walk ends. The walk holds the blocks until it joins; without the check a peer with a
  throwaway identity made a node hold 256 made-up blocks of up to 16 MiB for one announce
  (an outside tester's finding, round 4);
- an announced block at or below our best height that we do not have (a competing branch)
  is fetched the same way, so every node sees every branch and fork choice decides;
- an announced header is checked before it starts anything (it costs a sync: requests and
  the sync lock): one that claims more blocks than slots since our finalized block cannot be
  a chain and is ignored (no blame: a branch that conflicts with our finality can look so);
  one whose author is no validator of our finalized state is ignored, and one whose seal does
  not verify costs the peer BAD_ANNOUNCE. A validator set only ever shrinks (staking removes
  offenders; none is added after genesis), so every block above our finalized one is sealed by
  a validator of the finalized state. (Unknown authors used to pass, as "a set we have not
  reached", and a peer announced made-up blocks of no one's.) Syncs started by announcements are
  throttled per peer (:data:`SYNCS_PER_SECOND`, burst :data:`SYNC_BURST`);
- one sync imports at a time (the sync lock), but the lock is not held while a block
  request is awaited: a peer that answers just inside the request timeout, every time,
  delays only its own sync, not the other peers';
- a block that fails import (bad seal, wrong author, state root mismatch...) is a bad block:
  the peer is banned. Not blamed: a block from a slot too far ahead of our clock (clock skew:
  it is dropped and asked for again one slot later, as Substrate defers such blocks), an
  Aura equivocation (evidence is stored; an honest peer relays the copy it saw first), and a
  block on a branch that conflicts with our finalized block.

Finality
- votes and justifications are gossiped; the service counts votes (consensus.finality's
  collector, Casper FFG) and finalizes when more than 2/3 of the validators link a justified
  checkpoint to the next round. A vote that does not decode, has a bad signature or a
  backwards link, names its block under another number, or comes from a non-validator costs
  the sender reputation; a stale vote (a round long past) or a double or surround vote
  (which an honest relay can pass on before it sees the other vote) is dropped quietly;
- a justification is verified before it finalizes anything; one that does not verify costs
  the sender. One for a block not imported yet is kept until the block arrives, checked
  first as far as it can be without the block (consensus.finality.verify_justification with
  ``target_known=False``), so a forgery cannot take the place of the honest one. A range
  response carries each block's justification (``BlockData``), and a syncing node imports
  and checks each one, so a node syncing from genesis checks every justification on the way.

Proof-of-learning (issue 9)
- every block from a peer is imported with a :class:`~node.network.transcripts.NetworkSource`:
  the node's verifier fetches every checkpoint (consensus.pol) from the peer the block came from
  first, then the others. A block whose openings cannot be had within ``--pol-fetch-timeout``
  (``CheckpointsUnavailable``) is not imported: logged once per block, counted in
  ``polchain_pol_unavailable_total``, not the peer's fault (it may relay an author that
  withholds), and retried when the next announcement or sync round brings it again, from
  another peer at once, from the same peer after a cooldown (:data:`UNAVAILABLE_COOLDOWN`
  fetch timeouts, at least a slot: each try costs a fetch timeout's wait and its fetches). A block
  that is not imported is never built on nor voted for;
- a block whose check finds a fault (``FraudFound``) is not imported either; the node stores
  the proof, gossips it and reports it on chain (node.service). The relaying peer is not
  blamed: an honest peer whose own sample missed the forged segment imports and relays it;
- a gossiped fraud proof is size-bounded by the wire type, rate-limited per peer, decoded and
  checked against the faulty block's parent state (chain.fraud.verify_fraud_proof re-runs the one segment), and
  a valid one invalidates the block and its descendants here (``Blockchain.invalidate``, a
  reorganisation if we had built on it) and is gossiped on once; one that does not decode or
  shows no fault costs the sender BAD_FRAUD_PROOF, with the reason logged; one that cannot
  be judged yet (its block's parent is not here) is not marked seen, so a later copy is read,
  and costs nothing within a budget per address (:data:`UNJUDGED_PROOF_BURST`), BAD_FRAUD_PROOF beyond;
- transcript requests are served from the node's store (node.network.transcripts).

Transactions from peers go through the same pool path as RPC submissions; those the pool
accepts are gossiped on, and the network's seen-set keeps them from looping. Their signatures
are checked first, in a thread (ed25519 is the costly part, and libsodium releases the GIL),
and the node is told which verified so the pool does not check them again. A transaction that
does not decode, whose signature fails, or whose signer cannot pay the fee costs the peer a
little reputation (a peer must not get our signature checks for free; an honest peer checks
before it relays); one that is merely stale, in the future or already known does not (an
honest peer can send those). The network rate-limits them per peer before any of this.
"""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict
from collections.abc import Sequence
from typing import Any, Protocol

import msgspec

from chain.block import MAX_TRAIN_CALLS, Block
from chain.blockchain import Blockchain, ImportedBlock
from chain.codec import encode
from chain.config import MAX_BLOCK_LENGTH
from chain.crypto import blake2_256, ss58_encode
from chain.errors import (
    BlockError,
    ChainError,
    CheckpointsUnavailable,
    CodecError,
    FinalityConflict,
    FraudFound,
    InvalidBlockAncestry,
    InvalidFraudProof,
    InvalidSignature,
    InvalidTransaction,
    UnknownParent,
)
from chain.extrinsic import decode_extrinsic
from chain.fraud import FraudProofHead
from chain.header import Header, verify_seal
from chain.pallets.staking import get_validators, is_disabled
from chain.pool import TransactionPool
from chain.proofs import CheckpointSource
from consensus.block_import import ConsensusRules
from consensus.errors import (
    InvalidHeader,
    InvalidJustification,
    InvalidVote,
    VoteEquivocation,
)
from consensus.finality import Justification, SignedVote, decode_justification, decode_signed_vote
from node.metrics import NodeMetrics
from node.network.errors import RequestFailed
from node.network.identity import PeerId
from node.network.messages import (
    ASCENDING,
    DESCENDING,
    MAX_BLOCKS_PER_REQUEST,
    MAX_JUSTIFICATION_SIZE,
    BlockData,
    BlockRequest,
    ServedBlock,
    UnreadBlockData,
    compute_answered_extrinsics_root,
)
from node.network.peer import BoundedSet
from node.network.reputation import Misbehaviour
from node.network.service import (
    MAX_SERVED_HOSTS,
    ChainStatus,
    NetworkHandlers,
    NetworkService,
    PeerInfo,
)
from node.network.transcripts import KeptOpenings, NetworkSource, TranscriptServer, TranscriptStats
from rpc.connections import RateLimiter, take_allowance

log = logging.getLogger("polchain.sync")

#: How many ancestors of a block the node fetches by hash to join it to its block tree, and
#: how many bytes all branch walks under way hold at most (the sync lock is released while a
#: request is awaited, so several peers' walks run at once: a cap per walk let each of 40
#: identities hold its own, a reviewer's finding). A branch of full blocks stops sooner.
MAX_FORK_DEPTH = 256
MAX_BRANCH_BYTES = 512 * 1024 * 1024
#: Refusals of a gossiped extrinsic that an honest relay would not have passed on whatever
#: its best block: a signature that does not verify. Not "payment": a relay checks the fee
#: against its own best state, which is ahead of ours whenever we sync or are a block late,
#: and an account funded in a block we lack cannot pay here. Charging it let a user get a
#: lagging node to ban every honest peer that relayed 20 transactions of a new account, in
#: turn, leaving it the peers that did not relay (an outside tester's finding, round 4: an
#: eclipse aid for 25 fees). An unpayable transaction costs us its signature check, and a
#: peer's transactions are rate-limited (peer.PeerLimits.tx_per_second) before that.
CHARGED_REFUSALS = frozenset({"bad_proof"})
#: Refusals of a gossiped finality vote that an honest relay may pass on: a round past our
#: window (its clock or ours), a voter outside our finalized set, and one we caught
#: equivocating in that round (a relay that has not seen its other vote passes it on). The set
#: only shrinks (staking removes offenders; nothing adds one after genesis), so the second is a
#: validator removed in a block the relay has not finalized yet; a removed validator voting on
#: could get every lagging relay banned at 5 votes. All three are found before the signature
#: is checked, so dropping them unblamed costs a decode and a lookup, and votes are rate-limited.
#: Justifications make the same exception (NodeService.import_justification).
UNCHARGED_VOTE_REASONS = frozenset({"stale", "not_validator", "equivocator"})
#: Seconds the node gathers the extrinsics its pool accepts before it gossips them, in one
#: Transactions message a peer: RPC submissions arrive one event-loop turn apart, and sent one
#: message each, a burst of 8,192 in 2.3 s was over 2,000 frames a second, and a peer banned the
#: honest relay for flooding (an outside tester's G2, round 12). Substrate propagates its pool's
#: new transactions every 2.9 s; a few tens of milliseconds keeps the frames of a burst to a
#: few tens a second, at a delay no slot notices.
TX_GOSSIP_WINDOW = 0.05
#: Syncs a peer's announcements may start: a sync costs requests and holds the sync lock.
SYNCS_PER_SECOND = 4.0
SYNC_BURST = 8.0
#: Announced blocks kept per peer for its running sync to fetch (the newest kept).
MAX_PENDING_TARGETS = 8
# How far the peers' median best block may be above ours before the node says it is syncing
# (is_major_syncing): Substrate's MAJOR_SYNC_BLOCKS, in client/network/sync.
MAJOR_SYNC_BLOCKS = 5
#: Fraud-proof refusals that are not the sender's fault: the job's parent state is not here
#: yet (our own lag), or the fault is proven here already (a relay forwards the proof it
#: judged true, which may be another detector's encoding of a fault we proved: retest36's AF2).
UNJUDGED_FRAUD_REASONS = frozenset({"unknown_job", "proven"})
#: Fraud proofs of those reasons the peers of one address may send, a second and in a burst,
#: before each more is charged BAD_FRAUD_PROOF. An honest relay gossips a proof only once it
#: judged it true, once to each peer, so what a node that is behind can get from it is bounded
#: by the forged trainings in the blocks it lags (a block holds at most MAX_TRAIN_CALLS): twice a
#: block's worth at once, and one a second. Uncharged, one identity sent 1,500 proofs of 2.3 MB
#: about a block #1,000,000 in 60 s, a third of a core to receive and read their headers (an
#: outside tester's T3, round 15); with a budget per identity, a fresh identity after each ban
#: went on at 40% (its retest's AC1): the budget is its address's (NetworkService.peer_group),
#: and outlives its peers.
UNJUDGED_PROOFS_PER_SECOND = 1.0
UNJUDGED_PROOF_BURST = 2.0 * MAX_TRAIN_CALLS
#: Blocks whose unavailable openings were logged (each once, however often retried).
UNAVAILABLE_LOGGED = 1024
#: A block whose openings one peer could not provide is not asked of that peer again for
#: this many fetch timeouts (at least a slot): the import waits for the fetch (off the node's
#: block lock, but the block is not imported meanwhile), and a withholding author's every new
#: block would otherwise cost us that wait again.
UNAVAILABLE_COOLDOWN = 4


class SyncedNode(Protocol):
    """What the link needs from the node service."""

    chain: Blockchain
    pool: TransactionPool
    slot_ms: int
    metrics: NodeMetrics
    pol_stats: TranscriptStats
    pol_fetch_timeout: float

    def submit(self, raw: bytes) -> bytes: ...
    def signature_verified(self, xt_hash: bytes) -> None: ...
    async def import_block(
        self, block: Block, source: CheckpointSource | None = None, final_proof: Justification | None = None
    ) -> ImportedBlock | None: ...
    def read_fraud_proof_job(self, payload: bytes) -> FraudProofHead: ...
    async def import_fraud_proof(self, payload: bytes) -> bool: ...
    async def add_vote(self, vote: SignedVote) -> None: ...
    async def import_justification(self, justification: Justification) -> bool: ...
    def awaits_block(self, block_hash: bytes) -> bool: ...


class NodeLink:
    def __init__(self, node: SyncedNode, network: NetworkService) -> None:
        self.node = node
        self.network = network
        self._sync_lock = asyncio.Lock()
        self._syncing: set[PeerId] = set()
        self._targets: dict[PeerId, OrderedDict[bytes, Header]] = {}  # blocks a peer announced, to fetch in its sync
        self._tasks: set[asyncio.Task[Any]] = set()
        self._tx_outbox: list[bytes] = []
        self._sync_budget: dict[PeerId, RateLimiter] = {}  # per connected peer
        # Per sender's group (NetworkService.peer_group), kept after it leaves, the MAX_SERVED_HOSTS used last
        self._unjudged_budget: OrderedDict[object, RateLimiter] = OrderedDict()
        self._validators: tuple[bytes, tuple[bytes, ...]] = (b"", ())  # (finalized hash, its validator set)
        self._kept_openings = KeptOpenings()  # verified openings of fetches that fell short, for the next attempt
        self._branch_bytes = 0  # bytes the branch walks under way hold (MAX_BRANCH_BYTES)
        self._stopping = False
        self._unavailable: BoundedSet[bytes] = BoundedSet(UNAVAILABLE_LOGGED)
        self._cooldown: OrderedDict[tuple[bytes, PeerId], float] = OrderedDict()  # -> loop time it ends
        self.transcripts = TranscriptServer(node.chain.transcripts, node.pol_stats)
        network.handlers = NetworkHandlers(
            on_block_announce=self._on_announce,
            on_transactions=self._on_transactions,
            serve_block_request=self._serve,
            on_vote=self._on_vote,
            on_justification=self._on_justification,
            on_peer_connected=self._on_peer_connected,
            on_peer_disconnected=self._on_peer_disconnected,
            serve_transcript_request=self.transcripts.serve,
            admit_fraud_proof=self._admit_fraud_proof,
            on_fraud_proof=self._on_fraud_proof,
        )
        node.pool.add_listener(self._on_pool_status)

    def table_sizes(self) -> dict[str, int]:
        """Entries of each table that peers can make grow (metrics: polchain_table_entries)."""
        return {
            "sync_budgets": len(self._sync_budget),
            "unjudged_proof_budgets": len(self._unjudged_budget),
            "sync_targets": sum(len(t) for t in self._targets.values()),
            "syncing_peers": len(self._syncing),
            "unavailable_cooldowns": len(self._cooldown),
            "sync_tasks": len(self._tasks),
        }

    @property
    def is_syncing(self) -> bool:
        """Whether a sync from some peer is under way (one that claims a higher best block)."""
        return bool(self._syncing)

    @property
    def is_major_syncing(self) -> bool:
        """Whether the node is far behind its peers, as system_health's ``isSyncing`` and the
        readiness probe say: the median of the connected peers' best numbers is more than
        :data:`MAJOR_SYNC_BLOCKS` above our best. Substrate decides so too (polkadot-sdk's
        chain sync, ``median_seen`` and ``status``; it took the highest claim before), except
        that of an even count we take the lower middle, so one liar among two peers does not
        decide. Any sync under way counted before: a peer that claimed a higher best in its
        Status and left before the request timed out, uncharged, came back and kept a node
        "syncing", its readiness probe failing 59 times in 60 (an outside tester's R4, round 15)."""
        bests = sorted(peer.best_number for peer in self.network.peers())
        return bool(bests) and bests[(len(bests) - 1) // 2] - self.node.chain.best_number > MAJOR_SYNC_BLOCKS

    def chain_status(self) -> ChainStatus:
        chain = self.node.chain
        finalized = chain.get_header(chain.finalized_hash)
        return ChainStatus(chain.best_number, chain.best_hash, finalized.number, chain.finalized_hash)

    def on_imported(self, imported: ImportedBlock) -> None:
        # While a sync runs, only its last block is announced (after the sync): peers do not
        # need every block of a catch-up, and a burst of announcements could fill their queues.
        if not self._sync_lock.locked():
            self.network.broadcast_block(imported.block.header)

    def _on_pool_status(self, xt_hash: bytes, status: str, data: bytes | None) -> None:
        # Coalesced: everything the pool accepts within TX_GOSSIP_WINDOW (a burst of RPC
        # submissions, a peer's batch) goes out as one Transactions message per peer, so a
        # burst cannot fill a peer's send queue, or pass its frame limit, one message per extrinsic.
        if status not in ("ready", "future"):
            return
        raw = self.node.pool.get_data(xt_hash)
        if raw is None:
            return
        if not self._tx_outbox:
            try:
                asyncio.get_running_loop().call_later(TX_GOSSIP_WINDOW, self._flush_transactions)
            except RuntimeError:  # no loop (a synchronous caller): send now
                self.network.broadcast_transactions((raw,))
                return
        self._tx_outbox.append(raw)

    def _flush_transactions(self) -> None:
        outbox, self._tx_outbox = self._tx_outbox, []
        self.network.broadcast_transactions(outbox)

    async def stop(self) -> None:
        """Wait for syncs to end (call after the network stopped, so their requests fail).

        Not cancelled: a cancelled import would release the node's lock while its thread still
        writes, and the node closes the database under that lock."""
        self._stopping = True
        await asyncio.gather(*self._tasks, return_exceptions=True)

    # --- from the network ---------------------------------------------------------------------
    async def _on_transactions(self, peer: PeerId, raws: Sequence[bytes]) -> None:
        chain = self.node.chain
        problems = await asyncio.to_thread(_check_signatures, raws, chain.genesis_hash, chain.runtime.spec_version)
        for raw, problem in zip(raws, problems, strict=True):
            if problem is not None:
                self.network.report_peer(peer, Misbehaviour.BAD_TRANSACTION, problem)
                continue
            self.node.signature_verified(blake2_256(raw))
            try:
                self.node.submit(raw)
            except InvalidTransaction as exc:
                if exc.reason in CHARGED_REFUSALS:
                    self.network.report_peer(peer, Misbehaviour.BAD_TRANSACTION, f"{exc.reason}: {exc}")
            except ChainError:
                pass  # duplicate, banned, pool full...: not the peer's fault
            else:
                self.network.note_useful(peer, "transaction")

    async def _on_vote(self, peer: PeerId, payload: bytes) -> bool | None:
        try:
            await self.node.add_vote(decode_signed_vote(payload))
        except VoteEquivocation as exc:
            log.info("vote from %s not counted: %s", peer, exc)
            return None
        except InvalidVote as exc:
            if exc.reason in UNCHARGED_VOTE_REASONS:
                log.debug("vote from %s not counted: %s", peer, exc)
                return None
            self.network.report_peer(peer, Misbehaviour.BAD_VOTE, f"vote {exc.reason}: {exc}")
            return None
        return True

    async def _on_justification(self, peer: PeerId, payload: bytes) -> bool | None:
        try:
            justification = decode_justification(payload)
            imported = await self.node.import_justification(justification)
        except InvalidJustification as exc:
            self.network.report_peer(peer, Misbehaviour.BAD_VOTE, f"justification {exc.reason}: {exc}")
            return None
        if self.node.awaits_block(justification.target_hash):
            # Kept by the node until the block arrives. One it did not keep (of non-validators,
            # below the threshold) starts nothing: a peer restarted its sync with such
            # justifications, uncharged, and kept the node "syncing" (round 15's N5).
            self._start_sync(peer)
        return True if imported else None

    def _admit_fraud_proof(self, peer: PeerId, payload: bytes) -> bool:
        """Whether the network goes on with a gossiped fraud proof (hashes it, marks it seen,
        has :meth:`_on_fraud_proof` judge it): not if its head is malformed or names a job the
        node cannot judge, each settled here from the head alone. Hashed first, a proof of 2.3
        MB cost 2.6 ms more than its head, and from identities rotated as fast as an address's
        handshake allowance, each banned at its second charged proof, the node spent 27% of a
        core (retest34's AD1)."""
        try:
            self.node.read_fraud_proof_job(payload)
        except InvalidFraudProof as exc:
            self._refuse_fraud_proof(peer, exc)
            return False
        return True

    async def _on_fraud_proof(self, peer: PeerId, payload: bytes) -> bool | None:
        """A gossiped fraud proof: True (gossip it on) if it is valid and new here; False if it
        is false, its sender charged here with the reason (the network then charges any copy
        of it unread); None if not judged."""
        try:
            return await self.node.import_fraud_proof(payload) or None
        except InvalidFraudProof as exc:
            # "unknown_job" here: its parent state was pruned since it was admitted, for good (a
            # copy that comes later could not be judged either, so it stays marked seen).
            return False if self._refuse_fraud_proof(peer, exc) else None

    def _refuse_fraud_proof(self, peer: PeerId, exc: InvalidFraudProof) -> bool:
        """Charge ``peer`` for a proof refused with ``exc``, or not, within its address's
        budget, if the refusal is not its fault (UNJUDGED_FRAUD_REASONS); whether it is false."""
        if exc.reason not in UNJUDGED_FRAUD_REASONS:
            self.network.report_peer(peer, Misbehaviour.BAD_FRAUD_PROOF, f"{exc.reason}: {exc}")
            return True
        # Not charged within a budget: a node that is behind gets true proofs it cannot judge
        # from every honest relay, up to one a forged TRAIN of a block (64), and a charge of 50
        # each had it ban them (the second retest of round 15, Q3).
        group = self.network.peer_group(peer)
        if group is None:
            return False  # gone meanwhile (banned, perhaps): nothing to charge
        budget = take_allowance(
            self._unjudged_budget, group, lambda: RateLimiter(UNJUDGED_PROOFS_PER_SECOND, UNJUDGED_PROOF_BURST), MAX_SERVED_HOSTS
        )
        if budget.take():
            log.info("fraud proof from %s not checked here: %s: %s", peer, exc.reason, exc)
        else:
            self.network.report_peer(
                peer, Misbehaviour.BAD_FRAUD_PROOF,
                f"{exc.reason}: more than {UNJUDGED_PROOF_BURST:g} proofs we cannot judge, faster than "
                f"{UNJUDGED_PROOFS_PER_SECOND:g} a second: {exc}",
            )
        return False

    async def _on_announce(self, peer: PeerId, header: Header) -> None:
        chain = self.node.chain
        if chain.has_block(header.hash()) or header.number <= chain.finalized_number:
            return
        if chain.is_invalid(header.hash()) or chain.is_invalid(header.parent_hash):
            log.debug("announce of block #%d from %s ignored: it is, or builds on, a block proven invalid", header.number, peer)
            return
        problem, blame = self._announce_problem(header)
        if problem is not None:
            if blame:
                self.network.report_peer(peer, Misbehaviour.BAD_ANNOUNCE, problem)
            else:
                log.info("announce of block #%d from %s ignored: %s", header.number, peer, problem)
            return
        if self.network.peer(peer) is None:
            # Queued before the peer was dropped, handled after _on_peer_disconnected: a budget
            # made now would never be removed (one per banned identity), and a sync would
            # find no one to ask.
            return
        budget = self._sync_budget.setdefault(peer, RateLimiter(SYNCS_PER_SECOND, SYNC_BURST))
        if not budget.take():
            log.debug("announce of block #%d from %s: sync throttled", header.number, peer)
            return
        # The header is kept as a target even above our best: the catch-up by number follows
        # the peer's best chain only, and a block announced during a sync may be a sibling of
        # one it fetches (an equivocation: found by CI, the evidence was never seen).
        self._start_sync(peer, header)

    def _announce_problem(self, header: Header) -> tuple[str | None, bool]:
        """Why an announced header cannot be worth a sync (None if it may be), and whether
        the announcer is to blame (a bad seal in a known validator's name; see the module
        docstring)."""
        chain = self.node.chain
        finalized = chain.finalized_header
        # Each block's slot is above its parent's, so a descendant of the finalized block is
        # at most as many blocks above it as slots.
        if header.slot < finalized.slot or header.number - finalized.number > header.slot - finalized.slot:
            return (
                f"block #{header.number} in slot {header.slot} is above what the slots since our "
                f"finalized block #{finalized.number} (slot {finalized.slot}) allow"
            ), False
        # Nor one that import would refuse as ahead of our clock now (clock skew, not blamed):
        # the bound above let a byzantine validator's fork be as many blocks deep as its tip is
        # slots ahead, and one 250 slots ahead, announced by 30 peers, made the node walk 256
        # blocks down for each announce (131% of a core, retest42's F6). So a branch to walk is
        # no deeper than the slots from our finalized block to now.
        rules = chain.rules
        if isinstance(rules, ConsensusRules) and rules.aura.is_ahead(header.slot):
            aura = rules.aura
            return (
                f"block #{header.number} in slot {header.slot} is more than {aura.max_future_slots} slots after our "
                f"clock's slot {aura.current_slot()}"
            ), False
        problem = self._seal_problem(header)
        if problem is not None:
            return f"block #{header.number} announced {problem}", header.author in self._final_validators()
        # (The two refusals below come after the seal's check, which blames a forged header: before
        # it, a peer's forged headers naming a removed validator cost storage reads, uncharged.)
        # A third block of one author's slot: its equivocation is proven by the two stored (the
        # evidence), and a byzantine validator re-sealed full blocks 20 times a slot on an old
        # parent, each imported here in 2-4 s: 35-42% of honest slots were missed (retest45's
        # F0). Not refused: one is imported as the parent of a block that builds on it
        # (_fetch_branch), so nodes that saw other siblings first still follow the chain.
        sealed = chain.get_slot_blocks(header.slot, header.author)
        if len(sealed) >= 2 and header.hash() not in sealed:
            return (
                f"block #{header.number} is a third block of slot {header.slot} by {ss58_encode(header.author)}, whose "
                f"equivocation is proven here: imported only as the parent of a block that builds on it"
            ), False
        # And a block by a validator our best chain has disabled or removed for an offence: on
        # our best chain its import would refuse it; on a side branch, the same byzantine
        # validator, slashed, kept building one full block a slot on its old parent, each
        # imported here (14-19% of a core, 0.7 MB/s of disk while finality was stalled,
        # retest45's F0). Fetched as the parent of a block that builds on it, too.
        best = chain.state.overlay()
        if is_disabled(best, header.author) or header.author not in get_validators(best):
            return (
                f"block #{header.number} by {ss58_encode(header.author)}, disabled or removed for an offence on our "
                f"best chain: imported only as the parent of a block that builds on it"
            ), False
        return None, False

    def _seal_problem(self, header: Header, parent: Header | None = None) -> str | None:
        """Why ``header`` cannot be a block above our finalized one by its seal (None if it
        may be): its author is no validator of the finalized state (the module docstring: the
        set only shrinks), or, given its ``parent`` whose state we hold, of that state (the set
        its import checks: a branch that conflicts with our finality may hold a validator we
        have removed since), or its seal does not verify."""
        chain = self.node.chain
        if parent is not None and chain.has_state(parent.hash()):
            validators, of = get_validators(chain.state_at(parent.hash())), f"its parent #{parent.number}"
        else:
            validators, of = self._final_validators(), f"our finalized block #{chain.finalized_number}"
        if header.author not in validators:
            return f"by {header.author.hex()[:16]}…, no validator of {of}"
        try:
            verify_seal(self.node.chain.genesis_hash, header)
        except InvalidSignature as exc:
            return f"with a bad seal: {exc}"
        return None

    def _vet(self, blocks: Sequence[UnreadBlockData]) -> tuple[str, Misbehaviour | None] | None:
        """Why an answer to a block request cannot be blocks above our finalized one, and what
        that costs its sender (None if it may be), by its headers, before any body is hashed
        or decoded (NetworkService.request_blocks' ``vet``):
        - a block we hold must come as we hold it, byte for byte, header and body: its body is
          then the one we decoded once already (it is not imported again);
        - a block we lack must be no longer than any chain's blocks may be (chain.config
          .MAX_BLOCK_LENGTH), above our finalized block by its slot and number (as an announced
          one, without blame: the cost None), and sealed by a validator of our finalized state (the module
          docstring: the set only shrinks); one whose parent we hold, numbered the parent's + 1,
          no longer than the parent's state allows and sealed by a validator of the parent's
          state (:meth:`_parent_problem`).
        One that extends a block we hold and fails is a bad block, as its import would find (a
        ban). Any other failure is a wrong answer, as a branch walk's fetch has been since
        round 4 (a block whose parent is not here is held to our finalized validators, which
        an honest branch that conflicts with our finality can fail). A body is checked against
        its header as its block joins our chain (:meth:`_joining_problem`): only then is there
        a parent state to bound what the check hashes.

        A peer answered our request with a made-up block whose parent it then did not serve,
        uncharged, and came back to do it again (the retest of round 15's R1); charged, it came
        back with a fresh identity each time, and 16 MiB of results were decoded before the
        block's seal was looked at (Q1); checked for a range's first block only, 64 made-up
        blocks on our genesis had every body decoded before the first was refused (T1); and
        blocks we held, skipped here, came with stuffed bodies that were decoded, uncharged,
        every slot (U1). Bounded by the protocol's 8 MiB only, a body of 76,222 minimal
        extrinsics on a held parent cost 89 ms to hash (X1, W2)."""
        chain = self.node.chain
        finalized = chain.finalized_header
        for data in blocks:
            header = data.block.header
            block_hash = header.hash()
            if chain.has_block(block_hash):
                if chain.get_block_bytes(block_hash) != encode(data.block):
                    return f"block #{header.number} is one we hold, with another body", Misbehaviour.WRONG_RESPONSE
                continue
            size = data.block.encoded_size()
            if size > MAX_BLOCK_LENGTH:
                return (
                    f"block #{header.number} is {size:,} bytes, over the {MAX_BLOCK_LENGTH:,} any chain's blocks may be",
                    Misbehaviour.WRONG_RESPONSE,
                )
            if header.slot <= finalized.slot or header.number - finalized.number > header.slot - finalized.slot:
                # Never a block we could import (it is not above our finalized block), whoever
                # sealed it: no blame, as for an announcement (a branch that conflicts with our
                # finality can look so), but no body read. A dev chain's blocks sealed in an
                # earlier run of the same genesis, with stuffed bodies, had them decoded (V1).
                return (
                    f"block #{header.number} in slot {header.slot} cannot be above our finalized block "
                    f"#{finalized.number} (slot {finalized.slot})", None,
                )
            if not chain.has_block(header.parent_hash):
                seal = self._seal_problem(header)
                if seal is not None:
                    return f"block #{header.number}, whose parent is not here, sealed {seal}", Misbehaviour.WRONG_RESPONSE
                continue  # its body is checked once its parent is here (_joining_problem)
            problem = self._parent_problem(data)
            if problem is not None:
                return f"block #{header.number} {problem}", Misbehaviour.BAD_BLOCK
        return None

    def _parent_problem(self, data: UnreadBlockData) -> str | None:
        """Why ``data``, whose parent we hold, cannot be that parent's child by its header and
        length (None if it may be): it is not numbered the parent's + 1, it is longer than the
        parent's state allows (Blockchain.compute_length_limit, counted as its import counts
        it: with the codec's version byte, Blockchain.verify_length), or it is not sealed by a
        validator of the parent's state (:meth:`_seal_problem`)."""
        chain = self.node.chain
        header = data.block.header
        parent = chain.get_header(header.parent_hash)
        if header.number != parent.number + 1:
            return f"does not follow its parent #{parent.number}"
        size, limit = data.block.encoded_size() + 1, chain.compute_length_limit(header.parent_hash)
        if size > limit:
            return f"is {size:,} bytes, over the {limit:,} its parent's state allows"
        seal = self._seal_problem(header, parent)
        return None if seal is None else f"sealed {seal}"

    def _joining_problem(self, data: UnreadBlockData) -> str | None:
        """Why ``data``, whose parent we now hold, cannot join our chain, from its header and
        its body's bytes (None if it may): :meth:`_parent_problem`, then :func:`_body_problem`.
        Run on each block as its parent joins, before its body is decoded, in a thread. A block
        whose parent came in the same answer, or in a later one (a branch walk), has no parent
        state to be measured against when its answer is vetted: hashed then, against the
        protocol's 8 MiB, a real header with a stuffed body on a real block cost each fresh
        identity 100 ms before its ban (an outside tester's Z2, round 15). Now its length is
        held to its parent's limit first, and its body hashed only if it fits."""
        problem = self._parent_problem(data) or _body_problem(data)
        return None if problem is None else f"block #{data.block.header.number} {problem}"

    def _final_validators(self) -> tuple[bytes, ...]:
        chain = self.node.chain
        at, validators = self._validators
        if at != chain.finalized_hash:
            validators = get_validators(chain.state_at(chain.finalized_hash))
            self._validators = (chain.finalized_hash, validators)
        return validators

    async def _on_peer_disconnected(self, peer: PeerId) -> None:
        self._sync_budget.pop(peer, None)

    async def _on_peer_connected(self, info: PeerInfo) -> None:
        if info.best_number > self.node.chain.best_number:
            self._start_sync(info.peer_id)

    async def _serve(self, peer: PeerId, req: BlockRequest) -> list[ServedBlock]:
        """Blocks by number (the best chain) or by hash: walking down from a hash follows
        parents on any branch; walking up from a hash needs it on the best chain.

        Read in a thread (up to 64 blocks of 5 MiB: not on the event loop), and only until
        the blocks read fill one message: the rest would be cut from the response anyway.
        Each block is served as its stored bytes (Blockchain.get_block_bytes): decoded and
        encoded again, a 16 MiB answer cost about 110 ms of CPU, and a peer may ask 20 a second."""
        return await asyncio.to_thread(self._read_blocks, req, self.network.config.max_message_size)

    def _read_blocks(self, req: BlockRequest, budget: int) -> list[ServedBlock]:
        chain = self.node.chain
        out: list[ServedBlock] = []

        def add(block_hash: bytes) -> bool:
            """Append; False once the blocks read pass ``budget`` bytes."""
            nonlocal budget
            raw = chain.get_block_bytes(block_hash)
            justification = chain.get_justification(block_hash)
            if justification is not None and len(justification) > MAX_JUSTIFICATION_SIZE:
                justification = None  # over the wire bound: the peer gets finality from votes instead
            out.append(ServedBlock(msgspec.Raw(raw), justification))
            budget -= len(raw) + len(justification or b"")
            return budget > 0

        if isinstance(req.start, bytes):
            if not chain.has_block(req.start) or chain.is_invalid(req.start):
                return []  # a block proven invalid (or a descendant) is not served: peers would import it
            number = chain.get_header(req.start).number
            if req.direction == DESCENDING:
                cursor: bytes | None = req.start
                while cursor is not None and len(out) < req.count:
                    if not add(cursor):
                        break
                    header = chain.get_header(cursor)
                    cursor = header.parent_hash if header.number > 0 else None
                return out
            if chain.get_hash(number) != req.start:
                return []  # not on our best chain: its children are not a range
        else:
            number = req.start
        step = 1 if req.direction == ASCENDING else -1
        while len(out) < req.count and number >= 0:
            block_hash = chain.get_hash(number)
            if block_hash is None or not add(block_hash):
                break
            number += step
        return out

    # --- sync -----------------------------------------------------------------------------------
    def _start_sync(self, peer: PeerId, target: Header | None = None) -> None:
        if self._stopping:
            return
        if target is not None:
            pending = self._targets.setdefault(peer, OrderedDict())
            pending[target.hash()] = target
            while len(pending) > MAX_PENDING_TARGETS:  # the oldest go: catch-up covers most
                pending.popitem(last=False)
        if peer in self._syncing:
            return
        self._syncing.add(peer)
        task = asyncio.create_task(self._sync_from(peer), name=f"sync-{peer.short()}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _sync_from(self, peer: PeerId) -> None:
        try:
            async with self._sync_lock:
                before = self.node.chain.best_hash
                try:
                    target = None
                    while True:  # catch up by number, then each announced block not yet had
                        await self._sync_locked(peer, target)
                        pending = self._targets.get(peer)
                        if not pending:
                            break
                        _, target = pending.popitem(last=False)
                finally:
                    if self.node.chain.best_hash != before:
                        self.network.broadcast_block(self.node.chain.best_header)
        except RequestFailed as exc:
            log.info("sync from %s stopped: %s", peer, exc)
        finally:
            self._syncing.discard(peer)
            self._targets.pop(peer, None)

    async def _sync_locked(self, peer: PeerId, target: Header | None) -> None:
        chain = self.node.chain
        from_number: int | None = None  # asking from there, not above our best block (_rejoins_from_finalized)
        if target is not None and not chain.has_block(target.hash()):
            joined = await self._fetch_branch(peer, target.hash(), target.number)
            if not joined:
                if joined is not None or not self._rejoins_from_finalized(peer, target):
                    return
                from_number = chain.finalized_number + 1
        while True:
            info = self.network.peer(peer)
            if info is None or info.best_number <= (chain.best_number if from_number is None else from_number - 1):
                return
            start = chain.best_number + 1 if from_number is None else from_number
            count = min(MAX_BLOCKS_PER_REQUEST, info.best_number - start + 1)
            blocks = await self._request_blocks(peer, start, count, ASCENDING)
            if not blocks:
                # It claimed (status or announce) a best block above ours, so it has a block at
                # every height up to it; none at all is a false claim.
                self.network.report_peer(
                    peer, Misbehaviour.BAD_ANNOUNCE, f"claims best #{info.best_number} but serves nothing from #{start}",
                )
                return
            final_proofs = _find_final_proofs(blocks)
            ahead: BlockData | None = None  # the next block, read for its signatures
            for i, unread in enumerate(blocks):
                data: UnreadBlockData | BlockData = unread if ahead is None else ahead
                ahead = None
                # The signature threads check the next block while this one is imported (a range
                # comes linked, request_blocks checks it; a failed import cancels what was
                # started), once this one joins our chain: the next is read then, not before a
                # branch walk that may never join (its bodies stay bytes: _fetch_branch).
                parent = unread.block.header.parent_hash
                if i + 1 < len(blocks) and chain.has_block(parent):
                    # Only a next block that fits the limit this one is held to (its own
                    # parent's state, the one that bounds it, is not here yet: a longer one is
                    # checked once this one joins, _joining_problem), and only with the body its
                    # header commits to: a stuffed body on a real header was decoded (Z2). One
                    # that is not is charged now, never an honest peer's whatever the parent,
                    # not hashed a second time as it joins (the retest's AA1).
                    following = blocks[i + 1]
                    if following.block.encoded_size() + 1 <= chain.compute_length_limit(parent):  # (as verify_length counts)
                        problem = await asyncio.to_thread(_body_problem, following)
                        if problem is not None:
                            self.network.report_peer(peer, Misbehaviour.BAD_BLOCK, f"block #{following.block.header.number} {problem}")
                            chain.start_signatures_ahead(None)
                            return
                        ahead = self.network.read_answered_block(peer, following)
                        await asyncio.to_thread(chain.start_signatures_ahead, ahead.block)
                imported = await self._import(peer, data, final_proofs[i])
                if not imported:
                    chain.start_signatures_ahead(None)
                    if imported is None and i == 0 and from_number is None and self._rejoins_from_finalized(peer, data.block.header):
                        from_number = chain.finalized_number + 1
                        break
                    return
            else:
                if from_number is not None:
                    from_number = blocks[-1].block.header.number + 1
                    if from_number > chain.best_number:
                        from_number = None  # its chain is ours again (or the longer): on from our best block
                elif chain.best_number < start:
                    return  # the blocks went to a side branch: nothing more to catch up from here

    def _rejoins_from_finalized(self, peer: PeerId, header: Header) -> bool:
        """Whether to ask ``peer``'s chain again from our finalized block up, by number, after
        its block ``header`` (the first of a range above our best block, or one it announced)
        did not join our chain within the MAX_FORK_DEPTH blocks a branch is walked down by hash:
        for a peer whose chain reaches above our finalized block. Its blocks from our finalized
        block up join our chain there, as a side branch, imported one range at a time as any
        sync's (nothing more held), and the fork choice then picks between the two.

        Forks that deep above the finalized block are a network split that outlasted 256 blocks
        (finality needs two thirds, so neither half finalized anything meanwhile): healed, each
        half's branch did not join the other's chain, every node said so at INFO, and the halves
        never joined again (an outside tester's finding, round 13), each announcement walking
        256 blocks down again for nothing. And a node with a checkpoint (--checkpoint) that
        synced a long-range fork first: it finalizes nothing below the checkpoint before it
        holds it (Blockchain.find_checkpoint_conflict), so that fork can be as deep as the
        chain (the retest of an outside tester's round 9)."""
        chain = self.node.chain
        info = self.network.peer(peer)
        if info is None or info.best_number <= chain.finalized_number:
            return False
        log.warning(
            "block #%d from %s does not join our chain within %d blocks of its tip: our chain may be a long fork "
            "(a network split healed, or a long-range fork below a checkpoint); asking %s's chain from our finalized "
            "block #%d up",
            header.number, peer, MAX_FORK_DEPTH, peer, chain.finalized_number,
        )
        return True

    async def _request_blocks(self, peer: PeerId, start: bytes | int, count: int, direction: int) -> list[UnreadBlockData]:
        """``request_blocks`` with the sync lock released while the answer is awaited (the
        caller holds it). A peer may answer at any time within the request timeout, every
        time, at no cost to its reputation: holding the lock meanwhile let one such peer keep
        every other peer's sync waiting, and the node behind the chain. When the lock is taken
        again the chain may have moved on: the blocks imported meanwhile are skipped
        (``_import``), and the catch-up goes on from the new best block."""
        self._sync_lock.release()
        try:
            return await self.network.request_unread_blocks(peer, start, count, direction, vet=self._vet)
        finally:
            await self._sync_lock.acquire()

    async def _import(
        self, peer: PeerId, data: UnreadBlockData | BlockData, final_proof: Justification | None = None
    ) -> bool | None:
        """Import one block from ``peer`` (its ancestry first if needed) and the justification
        with it; False ends the sync (the peer charged if it was at fault), and so does None,
        which says its ancestry did not join within MAX_FORK_DEPTH blocks (:meth:`_fetch_branch`).
        ``final_proof``: a finality proof of it or of a block its range links it to
        (:func:`_find_final_proofs`), for the node to use if the block's openings cannot be had
        (NodeService.import_block)."""
        chain = self.node.chain
        header = data.block.header
        if not chain.has_block(header.hash()):
            if not chain.has_block(header.parent_hash):
                joined = await self._fetch_branch(peer, header.parent_hash, header.number - 1, final_proof)
                if not joined:
                    return joined
            if not await self._import_block(peer, data, final_proof):
                return False
            self.network.note_useful(peer, "block")
        if data.justification is None:
            return True
        try:
            # The range's own proof of this block was decoded from these bytes already (_find_final_proofs).
            if final_proof is not None and final_proof.target_hash == header.hash():
                justification = final_proof
            else:
                justification = decode_justification(data.justification)
            if justification.target_hash != header.hash():
                raise InvalidJustification("malformed", f"the justification sent with #{header.number} is for another block")
            await self.node.import_justification(justification)
        except InvalidJustification as exc:
            self.network.report_peer(peer, Misbehaviour.WRONG_RESPONSE, f"justification {exc.reason}: {exc}")
            return False
        return True

    async def _import_block(
        self, peer: PeerId, unread: UnreadBlockData | BlockData, final_proof: Justification | None = None
    ) -> bool:
        """Import one block whose parent is here, its body decoded now if it was not yet (one
        that does not decode is garbage: RequestFailed, its sender charged): a block's body is
        read only once it joins our chain, so a made-up branch, or one sealed on another run
        of this genesis, costs no decode (an outside tester's V1, round 15), and first its
        header and body's bytes are checked against its parent (:meth:`_joining_problem`; a
        block read ahead was, against the limit of its parent's parent: _sync_locked)."""
        if isinstance(unread, BlockData):
            data = unread
        else:
            problem = await asyncio.to_thread(self._joining_problem, unread)
            if problem is not None:
                self.network.report_peer(peer, Misbehaviour.BAD_BLOCK, problem)
                return False
            data = self.network.read_answered_block(peer, unread)
        header = data.block.header
        loop = asyncio.get_running_loop()
        key = (header.hash(), peer)
        if self._cooldown.get(key, 0.0) > loop.time():  # also with a final proof: its check costs signatures
            log.debug("block #%d from %s: its openings were unavailable from it lately; not asked again yet", header.number, peer)
            return False
        source = NetworkSource(
            self.network, loop, peer, timeout=self.node.pol_fetch_timeout, stats=self.node.pol_stats, kept=self._kept_openings
        )
        try:
            await self.node.import_block(data.block, source, final_proof)
        except InvalidJustification as exc:  # the final proof the range carried is forged
            self.network.report_peer(peer, Misbehaviour.WRONG_RESPONSE, f"final proof of #{header.number}: {exc.reason}: {exc}")
            return False
        except CheckpointsUnavailable as exc:
            # Not the relay's fault (the author may withhold); the next announcement or sync
            # round asks again. Until then the block is not stored: nothing builds on it or
            # votes for it.
            self.node.metrics.pol_unavailable.inc()
            cooldown = max(self.node.slot_ms / 1000, UNAVAILABLE_COOLDOWN * self.node.pol_fetch_timeout)
            self._cooldown[key] = loop.time() + cooldown
            self._cooldown.move_to_end(key)
            while len(self._cooldown) > UNAVAILABLE_LOGGED:
                self._cooldown.popitem(last=False)
            if self._unavailable.add(header.hash()):
                log.warning("block #%d (0x%s…) from %s not imported: %s", header.number, header.hash().hex()[:12], peer, exc)
            return False
        except FraudFound as exc:
            log.warning("block #%d from %s rejected: %s", header.number, peer, exc)
            return False
        except InvalidBlockAncestry as exc:
            log.info("block #%d from %s not imported: %s", header.number, peer, exc)
            return False
        except InvalidHeader as exc:
            if exc.reason == "future_slot":
                # Clock skew between us and the author, not the peer's fault: ask again a slot later.
                log.info("block #%d from %s is ahead of our clock, retried in a slot: %s", header.number, peer, exc)
                asyncio.get_running_loop().call_later(self.node.slot_ms / 1000, self._start_sync, peer, header)
                return False
            self.network.report_peer(peer, Misbehaviour.BAD_BLOCK, str(exc))
            return False
        except (FinalityConflict, UnknownParent) as exc:
            log.info("block #%d from %s not imported: %s", header.number, peer, exc)
            return False
        except BlockError as exc:
            self.network.report_peer(peer, Misbehaviour.BAD_BLOCK, str(exc))
            return False
        return True

    async def _fetch_branch(
        self, peer: PeerId, block_hash: bytes, number: int, final_proof: Justification | None = None
    ) -> bool | None:
        """Fetch ``block_hash`` and its ancestors we lack from ``peer`` (walking down by hash,
        at most :data:`MAX_FORK_DEPTH` blocks, never below our finalized block) and import them
        oldest first; False if the branch cannot be joined to our tree (no blame: the peer
        may be on a branch our finality excludes) or a block fails, None if it did not join
        within MAX_FORK_DEPTH blocks above our finalized block (:meth:`_rejoins_from_finalized`
        may then ask it by number). ``final_proof``: a
        finality proof of a block ``block_hash`` leads to (the child whose parent this fetch
        is for, or a descendant of it), for the branch's blocks that carry none of their own."""
        chain = self.node.chain
        fetched: list[UnreadBlockData] = []  # bodies still bytes until the branch joins
        held = 0  # bytes of ``fetched``, also in self._branch_bytes until this walk ends
        try:
            cursor, cursor_number = block_hash, number
            while not chain.has_block(cursor):
                if self._branch_bytes > MAX_BRANCH_BYTES:
                    log.info(
                        "block #%d from %s: the branches being fetched hold more than %d bytes before joining our chain: left",
                        number, peer, MAX_BRANCH_BYTES,
                    )
                    return False
                if cursor_number <= chain.finalized_number:
                    log.info(
                        "block #%d from %s does not join our chain above the finalized block #%d: left",
                        number, peer, chain.finalized_number,
                    )
                    return False
                room = MAX_FORK_DEPTH - len(fetched)
                if room <= 0:
                    return None  # (the caller may ask it by number: _rejoins_from_finalized says so)
                room = min(room, cursor_number - chain.finalized_number)
                blocks = await self._request_blocks(peer, cursor, min(MAX_BLOCKS_PER_REQUEST, room), DESCENDING)
                if not blocks:
                    log.info("%s does not serve block 0x%s: its branch is left to fork choice elsewhere", peer, cursor.hex()[:12])
                    return False
                # The sync lock was released while the answer was awaited: another sync may have
                # imported part of the branch meanwhile, the asked-for block itself included
                # (then nothing is kept from this answer, and the loop ends on the cursor).
                for data in blocks:
                    if chain.has_block(data.block.hash()):
                        break
                    size = data.block.encoded_size()  # what holding it costs
                    fetched.append(data)
                    held += size
                    self._branch_bytes += size
                if fetched:
                    last = fetched[-1].block.header
                    cursor, cursor_number = last.parent_hash, last.number - 1
            branch = fetched[::-1]  # oldest first, linked (each block's parent is the next one fetched)
            for data, own in zip(branch, _find_final_proofs(branch), strict=True):
                if not await self._import(peer, data, own or final_proof):
                    return False
        finally:
            self._branch_bytes -= held
        return True


def _body_problem(data: UnreadBlockData) -> str | None:
    """Why the body of ``data`` is not the one its header commits to (None if it is), from its
    extrinsics' bytes (messages.compute_answered_extrinsics_root), before it is decoded."""
    root = compute_answered_extrinsics_root(data.block)
    if root is None:
        return "with a body that is not an array of extrinsics"
    if root != data.block.header.extrinsics_root:
        return "with a body its header's extrinsics root does not commit to"
    return None


def _find_final_proofs(blocks: Sequence[UnreadBlockData]) -> list[Justification | None]:
    """For each block of a linked range (oldest first), the first finality proof the range
    carries at or after it: its own or a descendant's, decoded and naming the block it came
    with (one that does not is left for :meth:`NodeLink._import` to charge); None if none.
    Each is decoded once (a range of 64 blocks is not scanned 64 times)."""
    found: list[Justification | None] = [None] * len(blocks)
    proof: Justification | None = None
    for i in range(len(blocks) - 1, -1, -1):
        raw = blocks[i].justification
        if raw is not None:
            try:
                decoded = decode_justification(raw)
            except InvalidJustification:
                decoded = None
            if decoded is not None and decoded.target_hash == blocks[i].block.hash():
                proof = decoded
        found[i] = proof
    return found


def _check_signatures(raws: Sequence[bytes], genesis_hash: bytes, spec_version: int) -> list[str | None]:
    """For each encoded extrinsic: None if it decodes and its signature verifies, else why not.

    Run in a thread: decoding and ed25519 are the work a peer could otherwise make the event loop do."""
    out: list[str | None] = []
    for raw in raws:
        try:
            decode_extrinsic(raw).verify_signature(genesis_hash, spec_version)
        except CodecError as exc:
            out.append(str(exc))
        except InvalidTransaction as exc:
            out.append(f"{exc.reason}: {exc}")
        else:
            out.append(None)
    return out


__all__ = ["MAX_FORK_DEPTH", "NodeLink", "SyncedNode"]

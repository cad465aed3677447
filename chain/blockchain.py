"""A node's chain: its database, best state, and block building and import.

Importing reads like a table of contents (DESIGN.md §6): verify the header, apply the
extrinsics (which checks each training proof), compute the roots, compare each commitment
with its header field, then write the block as one atomic batch. A crash at any point leaves
the database at the previous whole block.

Forks are not handled yet: a block must extend the best block (single-author dev and local
chains never fork; the networking issue brings fork choice and per-block undo records).
"""

from __future__ import annotations

import gc
import itertools
import struct
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass

import msgspec

from chain.block import Block, Body, compute_extrinsics_root, decode_body, encode_body
from chain.codec import decode, encode
from chain.config import RUNTIME_CONFIG_KEY, RuntimeConfig, decode_runtime_config
from chain.crypto import Keypair, blake2_256, verify_signature
from chain.errors import BlockError, ChainError, CodecError, InvalidSignature, InvalidTransaction
from chain.extrinsic import Extrinsic, find_bad_signature
from chain.header import (
    ZERO_HASH,
    Header,
    PolCommitment,
    compute_pol_digest,
    compute_slot_digest,
    decode_header,
)
from chain.pallets.context import BlockInfo
from chain.pallets.staking import compute_slot_author, get_validators
from chain.proofs import FullReexecution, TranscriptVerifier, compute_proofs_root
from chain.runtime import Receipt, Runtime
from chain.state import Overlay, StateCommit, StateDB
from chain.storage import Column, Database, WriteBatch
from chain.trie import EMPTY_ROOT

META_BEST = b"best"
META_FINALIZED = b"finalized"
META_GENESIS = b"genesis"
META_CHAIN_ID = b"chain_id"


class _Receipts(msgspec.Struct, frozen=True, array_like=True):
    receipts: tuple[Receipt, ...]


class _Location(msgspec.Struct, frozen=True, array_like=True):
    block: bytes
    index: int


@dataclass(frozen=True, slots=True)
class ImportedBlock:
    """A block that became the best block, with what its extrinsics did."""

    block: Block
    receipts: tuple[Receipt, ...]
    training_steps: int


class Blockchain:
    """Owns the database; builds blocks (authoring) and imports them (validating)."""

    def __init__(
        self,
        db: Database,
        *,
        chain_id: str,
        build_genesis: Callable[[Overlay], None],
        verifier: TranscriptVerifier | None = None,
        signature_threads: int = 1,
    ) -> None:
        """Open ``db``, writing the genesis ``build_genesis`` describes if it is empty.

        A database that holds another chain is refused: another chain id, or a genesis
        (state or runtime config) other than the one ``build_genesis`` describes. The runtime
        config is read from state (genesis put it there), never taken from the caller.

        ``signature_threads`` > 1 checks a block's signatures in that many threads
        (libsodium releases the GIL); 1 keeps import on one core."""
        if signature_threads < 1:
            raise ChainError(f"signature_threads must be at least 1, got {signature_threads}")
        self.db = db
        self.signature_threads = signature_threads
        self._signature_pool: ThreadPoolExecutor | None = None
        self.state = StateDB(db)
        self.verifier: TranscriptVerifier = verifier or FullReexecution()
        stored_id = db.get(Column.META, META_CHAIN_ID)
        genesis, genesis_commit = self._compute_genesis(build_genesis)
        if stored_id is None:
            self.genesis_hash = self._write_genesis(chain_id, genesis, genesis_commit)
        elif stored_id.decode() != chain_id:
            raise ChainError(f"the database holds chain {stored_id.decode()!r}, not {chain_id!r}")
        else:
            self.genesis_hash = self._require_meta(META_GENESIS)
            self._verify_genesis(chain_id, genesis, genesis_commit)
        self.config = _decode_runtime_config(self.state.get(RUNTIME_CONFIG_KEY), "the best state")
        self.runtime = Runtime(self.genesis_hash, self.config)
        self.best_hash = self._require_meta(META_BEST)
        self.best_header = self.get_header(self.best_hash)
        self.finalized_hash = self._require_meta(META_FINALIZED)

    # --- reads -----------------------------------------------------------------------------
    def get_header(self, block_hash: bytes) -> Header:
        raw = self.db.get(Column.HEADER, block_hash)
        if raw is None:
            raise ChainError(f"unknown block {block_hash.hex()}")
        return decode_header(raw)

    def get_block(self, block_hash: bytes) -> Block:
        header = self.get_header(block_hash)
        raw = self.db.get(Column.BODY, block_hash)
        return Block(header, decode_body(raw) if raw is not None else Body())

    def get_hash(self, number: int) -> bytes | None:
        return self.db.get(Column.NUMBER, struct.pack(">I", number))

    def get_receipts(self, block_hash: bytes) -> tuple[Receipt, ...]:
        raw = self.db.get(Column.RECEIPT, block_hash)
        return decode(raw, _Receipts).receipts if raw is not None else ()

    def get_extrinsic_location(self, xt_hash: bytes) -> tuple[bytes, int] | None:
        """(block hash, index) of an included extrinsic, or None."""
        raw = self.db.get(Column.LOOKUP, xt_hash)
        if raw is None:
            return None
        loc = decode(raw, _Location)
        return loc.block, loc.index

    @property
    def best_number(self) -> int:
        return self.best_header.number

    # --- authoring ---------------------------------------------------------------------------
    def build_block(
        self,
        candidates: Iterable[Extrinsic],
        author: Keypair,
        slot: int,
        *,
        on_invalid: Callable[[bytes, InvalidTransaction], None] | None = None,
    ) -> ImportedBlock:
        """Fill a block from ``candidates`` up to the weight and length limits, seal and store it."""
        with _gc_paused():
            return self._build_block(candidates, author, slot, on_invalid)

    def _build_block(
        self,
        candidates: Iterable[Extrinsic],
        author: Keypair,
        slot: int,
        on_invalid: Callable[[bytes, InvalidTransaction], None] | None,
    ) -> ImportedBlock:
        parent = self.best_header
        if slot <= parent.slot and parent.number > 0:
            raise BlockError(f"slot {slot} is not after the parent's slot {parent.slot}")
        if author.public != compute_slot_author(get_validators(self.state.overlay()), slot):
            raise BlockError(f"slot {slot} does not belong to {author.address} (Aura round robin)")
        overlay = self.state.overlay()
        info = BlockInfo(parent.number + 1, self.best_hash, author.public, True, self.verifier)
        included: list[Extrinsic] = []
        included_raw: list[bytes] = []
        receipts: list[Receipt] = []
        weight = length = 0
        max_length, max_weight = self.runtime.max_extrinsic_length, self.config.max_block_weight
        for xt in candidates:
            raw = xt.encode()
            declared = self.runtime.compute_dispatch_info(overlay, xt)
            xt_length = len(raw) + declared.proof_length
            fits_alone = xt_length <= max_length and declared.weight <= max_weight
            if fits_alone and (length + xt_length > max_length or weight + declared.weight > max_weight):
                continue  # for a later block; one that fits no block is refused by apply_extrinsic
            try:
                receipt = self.runtime.apply_extrinsic(overlay, info, len(included), xt, blake2_256(raw), len(raw))
            except InvalidTransaction as exc:
                if on_invalid is not None:
                    on_invalid(blake2_256(raw), exc)
                continue
            included.append(xt)
            included_raw.append(raw)
            receipts.append(receipt)
            weight += declared.weight
            length += xt_length
        proofs = tuple(info.proofs[i] for i in sorted(info.proofs))
        commit = self.state.compute_commit(overlay)
        header = Header(
            self.best_hash, info.number, commit.root, compute_extrinsics_root(included_raw), slot, author.public,
            (compute_slot_digest(slot), compute_pol_digest(_commitment(proofs, info))),
        )
        header = msgspec.structs.replace(header, seal=author.sign(header.pre_hash()))
        block = Block(header, Body(tuple(included), proofs))
        self._write_block(block, commit, tuple(receipts))
        return ImportedBlock(block, tuple(receipts), info.training_steps)

    # --- import ------------------------------------------------------------------------------
    def import_block(self, block: Block) -> ImportedBlock:
        """Re-execute ``block`` and store it if every commitment matches; BlockError if not."""
        with _gc_paused():
            return self._import_block(block)

    def _import_block(self, block: Block) -> ImportedBlock:
        self.verify_length(block)
        self.verify_header(block.header)
        raws = [xt.encode() for xt in block.body.extrinsics]
        overlay, info, receipts = self.execute_body(block, raws)
        commit = self.state.compute_commit(overlay)
        header = block.header
        _verify_equal("state root", commit.root, header.state_root)
        _verify_equal("extrinsics root", compute_extrinsics_root(raws), header.extrinsics_root)
        _verify_equal("POL commitment", _commitment(block.body.proofs, info), header.get_pol_commitment())
        _verify_equal("training proofs used", set(info.used_proofs), set(info.proofs))
        self._write_block(block, commit, receipts)
        return ImportedBlock(block, receipts, info.training_steps)

    def verify_length(self, block: Block) -> None:
        """BlockError if the block's encoding (header, extrinsics, training proofs: every byte
        it carries) is over ``max_block_length``; checked before any other work."""
        length = len(block.encode())
        if length > self.config.max_block_length:
            raise BlockError(
                f"block #{block.header.number} is {length} bytes; the limit is {self.config.max_block_length}"
            )

    def verify_header(self, header: Header) -> None:
        """The header extends the best block, in a later slot, by a validator that sealed it."""
        if self.db.get(Column.HEADER, header.hash()) is not None:
            raise BlockError(f"block #{header.number} {header.hash().hex()} is already imported")
        if header.parent_hash != self.best_hash or header.number != self.best_number + 1:
            raise BlockError(
                f"block #{header.number} does not extend the best block #{self.best_number} {self.best_hash.hex()}"
            )
        if header.slot <= self.best_header.slot and self.best_number > 0:
            raise BlockError(f"block #{header.number} is in slot {header.slot}, not after its parent's {self.best_header.slot}")
        validators = get_validators(self.state.overlay())
        if header.author not in validators:
            raise BlockError(f"block #{header.number} is authored by {header.author.hex()}, not a validator")
        if header.author != compute_slot_author(validators, header.slot):
            raise BlockError(f"block #{header.number}: slot {header.slot} belongs to another validator (Aura round robin)")
        try:
            verify_signature(header.author, header.pre_hash(), header.seal)
        except InvalidSignature as exc:
            raise BlockError(f"block #{header.number}: bad seal: {exc}") from None

    def execute_body(self, block: Block, raws: list[bytes]) -> tuple[Overlay, BlockInfo, tuple[Receipt, ...]]:
        """Apply every extrinsic of ``block`` (``raws``: their encodings) to a fresh overlay of the parent state."""
        header = block.header
        proofs = {p.extrinsic_index: p for p in block.body.proofs}
        if len(proofs) != len(block.body.proofs):
            raise BlockError(f"block #{header.number} carries two proofs for one extrinsic")
        info = BlockInfo(header.number, header.parent_hash, header.author, False, self.verifier, proofs)
        overlay = self.state.overlay()
        self.verify_signatures(block.body.extrinsics)
        receipts = []
        for index, (xt, raw) in enumerate(zip(block.body.extrinsics, raws, strict=True)):
            try:
                receipts.append(
                    self.runtime.apply_extrinsic(overlay, info, index, xt, blake2_256(raw), len(raw), check_signature=False)
                )
            except InvalidTransaction as exc:
                raise BlockError(f"block #{header.number}: extrinsic #{index} is invalid: {exc}") from None
        return overlay, info, tuple(receipts)

    def verify_signatures(self, extrinsics: tuple[Extrinsic, ...]) -> None:
        """BlockError naming the first extrinsic whose signature is bad, if any."""
        bad = self._find_bad_signature(extrinsics)
        if bad is None:
            return
        try:
            extrinsics[bad].verify_signature(self.genesis_hash, self.runtime.spec_version)
        except InvalidTransaction as exc:
            raise BlockError(f"extrinsic #{bad}: {exc}") from None

    def _find_bad_signature(self, extrinsics: tuple[Extrinsic, ...]) -> int | None:
        genesis, spec = self.genesis_hash, self.runtime.spec_version
        threads = min(self.signature_threads, len(extrinsics) // 64 or 1)  # small blocks: not worth a hand-off
        if threads == 1:
            return find_bad_signature(extrinsics, genesis, spec)
        if self._signature_pool is None:
            self._signature_pool = ThreadPoolExecutor(self.signature_threads - 1, thread_name_prefix="signatures")
        bounds = [len(extrinsics) * i // threads for i in range(threads + 1)]
        # This thread checks the first range itself while the pool checks the others; the
        # first bad index over all ranges is what a serial check would report.
        futures = [
            self._signature_pool.submit(find_bad_signature, extrinsics, genesis, spec, lo, hi)
            for lo, hi in itertools.pairwise(bounds[1:])
        ]
        found = [find_bad_signature(extrinsics, genesis, spec, 0, bounds[1])] + [f.result() for f in futures]
        return min((i for i in found if i is not None), default=None)

    # --- finality ----------------------------------------------------------------------------
    def set_finalized(self, block_hash: bytes) -> None:
        header = self.get_header(block_hash)
        if self.get_hash(header.number) != block_hash:
            raise ChainError(f"block {block_hash.hex()} is not on the best chain")
        with self.db.write_batch() as batch:
            batch.put(Column.META, META_FINALIZED, block_hash)
        self.finalized_hash = block_hash

    # --- writing -----------------------------------------------------------------------------
    def _write_block(self, block: Block, commit: StateCommit, receipts: tuple[Receipt, ...]) -> None:
        block_hash = block.hash()
        with self.db.write_batch() as batch:
            self._stage_block(batch, block, block_hash, receipts)
            self.state.stage_commit(batch, commit)
        self.state.advance(commit)
        self.best_hash, self.best_header = block_hash, block.header

    def _stage_block(self, batch: WriteBatch, block: Block, block_hash: bytes, receipts: tuple[Receipt, ...]) -> None:
        batch.put(Column.HEADER, block_hash, block.header.encode())
        batch.put(Column.BODY, block_hash, encode_body(block.body))
        batch.put(Column.NUMBER, struct.pack(">I", block.header.number), block_hash)
        batch.put(Column.RECEIPT, block_hash, encode(_Receipts(receipts)))
        # A block's receipts are its extrinsics' (index, hash) in order: reusing the hash saves
        # encoding and hashing every extrinsic once more.
        batch.put_many(Column.LOOKUP, ((r.hash, encode(_Location(block_hash, r.index))) for r in receipts))
        batch.put(Column.META, META_BEST, block_hash)

    def _compute_genesis(self, build_genesis: Callable[[Overlay], None]) -> tuple[Block, StateCommit]:
        """The genesis block ``build_genesis`` describes and its state, computed, not written."""
        overlay = self.state.overlay(at=EMPTY_ROOT)
        build_genesis(overlay)
        commit = self.state.compute_commit(overlay)
        header = Header(
            ZERO_HASH, 0, commit.root, compute_extrinsics_root([]), 0, ZERO_HASH,
            (compute_pol_digest(PolCommitment(compute_proofs_root([]), 0, 0)),),
        )
        return Block(header, Body()), commit

    def _verify_genesis(self, chain_id: str, genesis: Block, commit: StateCommit) -> None:
        """ChainError unless the stored genesis is ``genesis``, saying whether the runtime
        config or the rest of the genesis state differs."""
        if genesis.hash() == self.genesis_hash:
            return
        stored_root = self.get_header(self.genesis_hash).state_root
        stored = _decode_runtime_config(self.state.get(RUNTIME_CONFIG_KEY, at=stored_root), "the stored genesis state")
        wanted = _decode_runtime_config(commit.changes.get(RUNTIME_CONFIG_KEY), "the chain spec's genesis")
        differences = stored.compute_differences(wanted)
        if differences:
            raise ChainError(
                f"the database holds chain {chain_id!r} with another runtime config than the chain spec's: "
                f"{'; '.join(differences)} (purge the chain to start it with the new config)"
            )
        raise ChainError(
            f"the database holds chain {chain_id!r} with another genesis state than the chain spec's "
            f"(balances, validators, models or data sets): genesis 0x{self.genesis_hash.hex()} stored, "
            f"0x{genesis.hash().hex()} from the chain spec (purge the chain to start it anew)"
        )

    def _write_genesis(self, chain_id: str, block: Block, commit: StateCommit) -> bytes:
        genesis_hash = block.hash()
        with self.db.write_batch() as batch:
            self._stage_block(batch, block, genesis_hash, ())
            self.state.stage_commit(batch, commit)
            batch.put(Column.META, META_GENESIS, genesis_hash)
            batch.put(Column.META, META_FINALIZED, genesis_hash)
            batch.put(Column.META, META_CHAIN_ID, chain_id.encode())
        self.state.advance(commit)
        return genesis_hash

    def _require_meta(self, key: bytes) -> bytes:
        value = self.db.get(Column.META, key)
        if value is None:
            raise ChainError(f"the database has no {key.decode()} record: it is not a polchain database or is damaged")
        return value


@contextmanager
def _gc_paused() -> Iterator[None]:
    """Hold off the cyclic garbage collector while a block is executed.

    A block of transfers allocates tens of thousands of short-lived objects (events,
    receipts, account records), which trigger collections that walk long-lived objects, the
    trie's node cache included; reference counting frees these objects anyway, and the
    collector resumes after the block (measured: pausing it saves about a tenth of import).
    """
    if not gc.isenabled():
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


def _decode_runtime_config(raw: bytes | None, where: str) -> RuntimeConfig:
    if raw is None:
        raise ChainError(f"{where} has no runtime config under {RUNTIME_CONFIG_KEY!r}: a genesis older than this node?")
    try:
        return decode_runtime_config(raw)
    except CodecError as exc:
        raise ChainError(f"{where}: the runtime config under {RUNTIME_CONFIG_KEY!r} is malformed: {exc}") from None


def _commitment(proofs: Iterable, info: BlockInfo) -> PolCommitment:
    return PolCommitment(compute_proofs_root(list(proofs)), info.training_steps, info.work_units)


def _verify_equal(what: str, computed: object, claimed: object) -> None:
    if computed != claimed:
        raise BlockError(f"{what} mismatch: re-execution gives {_show(computed)}, the block claims {_show(claimed)}")


def _show(value: object) -> str:
    return "0x" + value.hex() if isinstance(value, bytes) else repr(value)

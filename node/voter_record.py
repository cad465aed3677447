"""A validator's slashing protection: ``<base>/chains/<id>/keystore/slashing_protection``.

Casper FFG slashes a validator for two votes in one round or for a vote that surrounds
another (consensus.finality). An honest validator avoids both by remembering the last round
it voted in and never lowering its source, the highest justified checkpoint it knows
(consensus.finality.VoterState). That memory is its slashing protection, and it must
outlive everything an operator does to the node short of losing the keys:

- It used to be a key of the chain database, so ``polchain purge-chain`` deleted it, and so
  did a new disk or a move to another machine. The restarted validator voted from genesis,
  or from the checkpoint its sync had reached, while the network was far past it: every
  such vote surrounded one it had cast before (tests/node/test_voter_record.py). It lives
  beside the keys now, in the keystore directory that ``purge-chain`` leaves alone; whoever
  moves a validator's keys moves this file with them (Ethereum clients keep the same record
  apart from their database for the same reason, and EIP-3076 defines its interchange).
- It is replaced whole on every change (node.durable_file.replace_file: a crash leaves the
  old record or the new, never part of one), and written before the vote or block it records
  leaves the node. It keeps the last slot the key sealed a block in too: a purge in the slot
  a validator had authored in let it seal a second block in that slot (an Aura equivocation)
  once the database that refused it was gone.
- It is written off the event loop (:class:`RecordWriter`): one write is an fsync of the file
  and one of its directory, about 5.6 ms median on the reference machine, and a validator
  writes it two or three times a round (its vote, a new source, its block), on the loop that
  serves every peer, RPC caller and the slot timer (``python -m benches.looplag``). The
  writes go to one thread, in the order asked, one at a time; the node awaits the write of
  a vote's or block's record before it signs anything else or lets it leave.
- A record that does not decode is refused with :class:`VoterRecordError`, never replaced
  silently: voting without it is what the record exists to prevent; the operator decides.
- It names the chain's genesis hash, for two operator mistakes the directory name cannot
  see (:func:`adopt_chain_records`). The directory is named by the chain spec's id, and the
  genesis does not depend on the id: a spec exported, renamed and started on the same base
  path is the same network with an empty record, so the validator voted from genesis again
  (surround votes) and in rounds it had voted in. Every record of the same genesis under
  another id is adopted now (its highest source, round and slot). The other way round, a
  spec of another genesis under the same id (after ``purge-chain``: the database's own
  genesis check has nothing to compare then) kept a source the new chain never has, and the
  validator stayed silent for ever: it is refused by name. Ethereum's slashing protection
  interchange (EIP-3076) keys its records the same way, by ``genesis_validators_root``.
"""

from __future__ import annotations

import asyncio
import logging
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

from msgspec.structs import replace

from chain.codec import decode, encode
from chain.errors import CodecError
from consensus.finality import VoterState
from node.durable_file import replace_file

log = logging.getLogger("polchain")

RECORD_FILE = "slashing_protection"
MAX_RECORD_BYTES = 1024  # a VoterState encodes in under 100 bytes


class VoterRecordError(Exception):
    """The slashing protection record exists and cannot be read."""


def compute_record_path(chain_dir: Path) -> Path:
    """``<chain_dir>/keystore/slashing_protection`` where ``chain_dir`` is ``<base>/chains/<id>``."""
    return Path(chain_dir) / "keystore" / RECORD_FILE


def load_record(path: Path) -> VoterState | None:
    """The record in ``path``; None if there is none. VoterRecordError if it is unusable."""
    try:
        with Path(path).open("rb") as file:
            data = file.read(MAX_RECORD_BYTES + 1)
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise VoterRecordError(f"cannot read the slashing protection record {path}: {exc.strerror}") from None
    try:
        if len(data) > MAX_RECORD_BYTES:
            raise CodecError(f"{len(data)} bytes or more, at most {MAX_RECORD_BYTES}")
        return decode(data, VoterState)
    except CodecError as exc:
        raise VoterRecordError(
            f"the slashing protection record {path} is damaged ({exc}): without it this validator could vote "
            "twice in a round or surround its own votes; restore it, or delete it only if this key has not voted "
            "on this chain"
        ) from None


def store_record(path: Path, state: VoterState) -> None:
    """Make ``state`` the record in ``path`` (the directory is created if need be)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    replace_file(path, encode(state))


class RecordWriter:
    """The writes of one record file, off the event loop: one thread takes them in the order
    they are asked for and writes one at a time, so a later state never lands before an
    earlier one and two writes never race on the temporary file and the rename.

    :meth:`write` is awaited by whoever must not go on before the state is durable (a vote
    or block leaves only after its record is on disk: the caller holds the node's lock
    across the await, so nothing else is signed meanwhile). :meth:`submit` is for a state
    that may be written late (a higher source learned without signing: the next vote's
    record holds it too); it is still written before any state asked for after it.
    OSError from the write comes out of the await, or of the future."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="voter-record")

    def submit(self, state: VoterState) -> Future[None]:
        """Queue ``state`` for writing; the future is done once it is on disk (or failed)."""
        return self._executor.submit(store_record, self.path, state)

    async def write(self, state: VoterState) -> None:
        """Write ``state``, after every state queued before it; return once it is on disk."""
        await asyncio.wrap_future(self.submit(state))

    def flush(self) -> None:
        """Block until every write queued so far is done (never call it on the event loop)."""
        self._executor.submit(lambda: None).result()

    def close(self) -> None:
        """Wait for the queued writes to finish; no more may be asked for."""
        self._executor.shutdown(wait=True)


def adopt_chain_records(chain_dir: Path, genesis_hash: bytes, own: VoterState | None) -> VoterState | None:
    """The record to go on from for the chain of ``genesis_hash`` in ``chain_dir``: ``own`` (the
    record in ``chain_dir``), raised to every record of the same genesis in a sibling
    ``<base>/chains/<other id>`` (module docstring), and stamped with the genesis hash.
    VoterRecordError if ``own`` is of another genesis. A sibling record that cannot be read is
    skipped with a warning: it may be of any chain."""
    chain_dir = Path(chain_dir)
    path = compute_record_path(chain_dir)
    if own is not None and own.genesis_hash not in (None, genesis_hash):
        raise VoterRecordError(
            f"the slashing protection record {path} is of another chain (genesis 0x{own.genesis_hash.hex()}, this "
            f"spec's is 0x{genesis_hash.hex()}): a spec of another genesis under the id {chain_dir.name!r}; keep the "
            "record while that chain runs (move it aside), or give this spec another id"
        )
    merged = own
    siblings = sorted(p for p in chain_dir.parent.iterdir() if p != chain_dir and p.is_dir()) if chain_dir.parent.is_dir() else []
    for other_dir in siblings:
        other_path = compute_record_path(other_dir)
        try:
            other = load_record(other_path)
        except VoterRecordError as exc:
            log.warning("%s (not adopted: it may be of this chain)", exc)
            continue
        if other is None or other.genesis_hash != genesis_hash:
            continue
        log.warning(
            "The slashing protection record %s is of this chain too (genesis 0x%s…, spec id %r): its source, "
            "rounds and slots are kept in %s", other_path, genesis_hash.hex()[:12], other_dir.name, path,
        )
        merged = other if merged is None else _merge(merged, other)
    return None if merged is None else replace(merged, genesis_hash=genesis_hash)


def _merge(a: VoterState, b: VoterState) -> VoterState:
    """What two records of one validator on one chain allow together: the higher source, the
    later round and slot (the caller stamps the genesis)."""
    justified = max((a.justified, b.justified), key=lambda c: (c.round, c.block_number))
    return VoterState(justified, max(a.voted_round, b.voted_round), max(a.authored_slot, b.authored_slot))

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
  old record or the new, never part of one), and written before the vote it records leaves
  the node.
- A record that does not decode is refused with :class:`VoterRecordError`, never replaced
  silently: voting without it is what the record exists to prevent; the operator decides.
"""

from __future__ import annotations

from pathlib import Path

from chain.codec import decode, encode
from chain.errors import CodecError
from consensus.finality import VoterState
from node.durable_file import replace_file

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

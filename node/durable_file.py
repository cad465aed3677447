"""Files a node writes that no crash may leave half-written.

A node keeps three files beside its database, each read at every start:

* the proof-of-learning secret (node.pol_keystore) and, without ``--node-key``, its network
  key (node.network.identity): written once, on the first start;
* a validator's slashing protection record (node.service: the finality source and the last
  round voted in, consensus.finality.VoterState): replaced every round. It lives outside the
  database so that ``polchain purge-chain`` keeps it (tests/node/test_voter_record.py).

The secrets were created under their final name with ``O_CREAT | O_EXCL`` and then written:
a SIGKILL or a power cut between the two left an empty (or, before the data reached the
disk, a zero-length) file, which every later start refuses as it must refuse any damaged
secret, so the node never started again until an operator deleted the file (found by
killing devnet validators and asking what a kill during a first start leaves;
tests/node/test_secret_files.py).

Here the bytes go to a temporary file in the same directory and are fsynced; only then does
the file get its final name, and the directory is fsynced so the name survives a power cut
too (the write-then-rename recipe: ``rename(2)`` replaces the target atomically). A secret
gets its name with ``link(2)`` instead, which fails if the name exists, as ``O_EXCL`` did:
two nodes racing on one base path still end with one secret, the loser reading the
winner's (POSIX ``link``: "If the link named by the path2 argument exists ... link() shall
fail [EEXIST]"). A kill can leave only the temporary file (``.<name>.<random>.tmp``), never
a damaged one; it is removed when the writer itself fails, and is never read.
"""

from __future__ import annotations

import contextlib
import os
import secrets
from pathlib import Path


def create_private_file(path: Path, data: bytes) -> bool:
    """Write ``data`` to a new file ``path`` with mode 0600, all or nothing: True if this call
    created it, False if ``path`` existed already (left untouched). OSError if it cannot be
    written. The parent directory must exist."""
    path = Path(path)
    temporary = _write_temporary(path, data)
    try:
        try:
            os.link(temporary, path)
        except FileExistsError:
            return False
        _sync_directory(path.parent)
        return True
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary)


def replace_file(path: Path, data: bytes) -> None:
    """Make ``data`` the content of ``path`` (mode 0600), all or nothing: a crash leaves the
    old content or the new. OSError if it cannot be written. The parent directory must exist."""
    path = Path(path)
    temporary = _write_temporary(path, data)
    try:
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary)
        raise
    _sync_directory(path.parent)


def _write_temporary(path: Path, data: bytes) -> Path:
    """``data`` in a new, fsynced temporary file beside ``path``; its name."""
    temporary = path.with_name(f".{path.name}.{secrets.token_hex(8)}.tmp")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    try:
        with os.fdopen(fd, "wb") as file:
            file.write(data)
            file.flush()
            os.fsync(file.fileno())
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary)
        raise
    return temporary


def _sync_directory(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)

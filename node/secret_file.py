"""Writing a node's secret file once, so that no crash can leave a part of it.

A node writes two secrets on its first start: the proof-of-learning secret
(node.pol_keystore) and, without ``--node-key``, its network key (node.network.identity).
Each was created under its final name with ``O_CREAT | O_EXCL`` and then written: a SIGKILL
or a power cut between the two left an empty (or, before the data reached the disk, a
zero-length) file, which every later start refuses as it must refuse any damaged secret,
so the node never started again until an operator deleted the file (found by killing
devnet validators and asking what a kill during a first start leaves;
tests/node/test_secret_files.py).

Here the bytes go to a temporary file in the same directory, are fsynced, and only then get
the final name with ``link(2)``, which fails if the name exists, as ``O_EXCL`` did: two
nodes racing on one base path still end with one secret, the loser reading the winner's.
The directory is fsynced after the link so the name survives a power cut too (the rename
recipe of ``rename(2)``'s atomicity, with ``link`` for its no-replace semantics; POSIX
``link``: "If the link named by the path2 argument exists ... link() shall fail [EEXIST]").
A kill can leave only the temporary file (``.<name>.<random>.tmp``), never a damaged secret;
it is removed when the writer itself fails, and is never read.
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
    temporary = path.with_name(f".{path.name}.{secrets.token_hex(8)}.tmp")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    try:
        with os.fdopen(fd, "wb") as file:
            file.write(data)
            file.flush()
            os.fsync(file.fileno())
        try:
            os.link(temporary, path)
        except FileExistsError:
            return False
        directory = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(directory)
        finally:
            os.close(directory)
        return True
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary)

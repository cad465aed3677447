"""The validator's proof-of-learning secret: ``<base>/chains/<id>/keystore/pol_secret``.

A sampling validator picks the segments it re-runs with a PRF keyed by this secret and the
block hash (consensus.pol.SampledVerifier), so an author cannot know, when it builds a
block, which of its segments will be checked: a secret it could read or guess would let it
forge exactly the segments nobody samples (issue 9, "Sampled verification on every import").
Hence:

- 32 bytes from the OS CSPRNG (``secrets.token_bytes``), written on first start with mode
  0600, all or nothing (node.durable_file: a kill during the first start cannot leave a
  damaged secret; two nodes racing on one base path end with one secret);
- a file that is not exactly 32 bytes, is not a regular file, or that the group or others may
  read or write is refused with :class:`PolSecretError` naming the problem, never repaired
  silently (a secret others could read is already spent; the operator decides);
- the secret is never logged and never served over RPC (no RPC method reads this module).

The layout follows Substrate's keystore directory (``<base>/chains/<id>/keystore``), next to
the network key in ``network/`` (node.network.identity).
"""

from __future__ import annotations

import os
import secrets
import stat
from pathlib import Path

from node.durable_file import create_private_file

SECRET_FILE = "pol_secret"
SECRET_LENGTH = 32


class PolSecretError(Exception):
    """The proof-of-learning secret file is unusable (wrong size, too open, unreadable)."""


def compute_secret_path(chain_dir: Path) -> Path:
    """``<chain_dir>/keystore/pol_secret`` where ``chain_dir`` is ``<base>/chains/<id>``."""
    return Path(chain_dir) / "keystore" / SECRET_FILE


def load_or_generate_secret(path: Path) -> bytes:
    """The 32-byte secret in ``path``, generated (mode 0600) if the file does not exist.

    Raises PolSecretError if the file exists and is not a private 32-byte regular file.
    """
    path = Path(path)
    if not path.exists() and not path.is_symlink():
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        _check_folders(path)  # before a secret is written into a folder others may write in
        secret = secrets.token_bytes(SECRET_LENGTH)
        try:
            created = create_private_file(path, secret)
        except OSError as exc:
            raise PolSecretError(f"cannot create the proof-of-learning secret {path}: {exc.strerror}") from None
        if not created:
            return load_secret(path)  # another process won the race: use its secret
        return secret
    return load_secret(path)


def _check_folders(path: Path) -> None:
    """PolSecretError unless the keystore holding ``path`` and the chain folder above it are
    this user's and no one else may write in them: whoever may write in the chain folder can
    rename the keystore away, secret and slashing-protection record with it (a reviewer's
    finding: a 0700 keystore under a 0777 chain folder was accepted)."""
    for folder in (path.parent, path.parent.parent):
        try:
            info = os.stat(folder)
        except OSError as exc:
            raise PolSecretError(f"cannot read the folder {folder}: {exc.strerror}") from None
        mode = stat.S_IMODE(info.st_mode)
        if mode & 0o022:
            raise PolSecretError(
                f"the folder {folder} has mode {mode:04o}: group or others may replace the keystore's files; chmod 700 it"
            )
        if info.st_uid != os.getuid():
            raise PolSecretError(f"the folder {folder} belongs to user {info.st_uid}, not to this node's ({os.getuid()})")


def load_secret(path: Path) -> bytes:
    """The secret in an existing ``path``; PolSecretError with the specific problem, among
    them a keystore folder others may write in: whoever can replace the files there can
    replace the secret, or delete the slashing-protection record beside it and make the
    validator sign twice (an outside tester's finding: a keystore of mode 0777 drew no word)."""
    _check_folders(Path(path))
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    except OSError as exc:
        raise PolSecretError(f"cannot open the proof-of-learning secret {path}: {exc.strerror}") from None
    info = os.fstat(fd)
    if not stat.S_ISREG(info.st_mode):
        os.close(fd)
        raise PolSecretError(f"the proof-of-learning secret {path} is not a regular file")
    with os.fdopen(fd, "rb") as f:
        mode = stat.S_IMODE(info.st_mode)
        if mode & 0o077:
            raise PolSecretError(
                f"the proof-of-learning secret {path} has mode {mode:04o}: group or others may access it; "
                "it must be 0600 (chmod 600 it only if no one else can have read it, else delete it to make a new one)"
            )
        data = f.read(SECRET_LENGTH + 1)
    if len(data) != SECRET_LENGTH:
        raise PolSecretError(
            f"the proof-of-learning secret {path} holds {len(data) if len(data) <= SECRET_LENGTH else 'more than 32'} bytes, "
            f"expected exactly {SECRET_LENGTH}"
        )
    return data

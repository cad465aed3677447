"""A node killed during its first start must still start afterwards.

On first start a node writes two secrets under its base path: the proof-of-learning secret
(node.pol_keystore) and, without --node-key, its network key (node.network.identity). Both
were created under their final name with O_EXCL and only then written, so a SIGKILL between
the two steps left an empty file, and every later start refused it ("holds 0 bytes", "not a
node key") until an operator deleted it by hand. Here a real child process is SIGKILLed at
that moment (when it opens the just-created file to write the bytes; a crash before the
write reaches the disk leaves the same thing), and the next start must work.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from node.network.identity import KEY_FILE_NAME, NodeKey
from node.pol_keystore import compute_secret_path, load_or_generate_secret

# Run in the child: SIGKILL itself the moment the secret's file is opened for writing.
KILLED_WHILE_WRITING = """
import os, signal, sys
from pathlib import Path
real_fdopen = os.fdopen
def fdopen(fd, mode="r", *args, **kwargs):
    if "w" in mode:
        os.kill(os.getpid(), signal.SIGKILL)
    return real_fdopen(fd, mode, *args, **kwargs)
os.fdopen = fdopen
target = Path(sys.argv[2])
if sys.argv[1] == "pol":
    from node.pol_keystore import load_or_generate_secret
    load_or_generate_secret(target)
else:
    from node.network.identity import NodeKey
    NodeKey.load_or_generate(target)
"""


def _kill_while_writing(kind: str, target: Path) -> None:
    child = subprocess.run([sys.executable, "-c", KILLED_WHILE_WRITING, kind, str(target)], capture_output=True, text=True)
    assert child.returncode == -signal.SIGKILL, child.stderr


@pytest.mark.parametrize("kind", ["pol", "node_key"])
def test_a_kill_while_a_secret_is_first_written_leaves_nothing_that_blocks_the_next_start(tmp_path, kind: str) -> None:
    if kind == "pol":
        path = compute_secret_path(tmp_path / "chains" / "local_testnet")
        _kill_while_writing(kind, path)
        secret = load_or_generate_secret(path)  # the next start makes it (was: PolSecretError, "holds 0 bytes")
        assert len(secret) == 32 and path.read_bytes() == secret and load_or_generate_secret(path) == secret
    else:
        network_dir = tmp_path / "chains" / "local_testnet" / "network"
        path = network_dir / KEY_FILE_NAME
        _kill_while_writing(kind, network_dir)
        key = NodeKey.load_or_generate(network_dir)  # was: InvalidNodeKey, an empty file is not a node key
        assert len(path.read_bytes()) == 32 and NodeKey.load_or_generate(network_dir).peer_id == key.peer_id
    assert oct(path.stat().st_mode & 0o777) == "0o600"
    # What the kill left is a temporary file beside it, never read (node.durable_file).
    others = [p.name for p in path.parent.iterdir() if p != path]
    assert all(name.startswith(f".{path.name}.") and name.endswith(".tmp") for name in others), others


@pytest.mark.parametrize("kind", ["pol", "node_key"])
def test_two_first_starts_racing_end_with_one_secret(tmp_path, kind: str) -> None:
    """Kept from the O_EXCL creation: the loser of the race reads the winner's secret."""
    if kind == "pol":
        path = compute_secret_path(tmp_path)
        script = f"from node.pol_keystore import load_or_generate_secret as f; import sys; sys.stdout.write(f({str(path)!r}).hex())"
    else:
        path = tmp_path / KEY_FILE_NAME
        script = f"from node.network.identity import NodeKey; import sys; sys.stdout.write(str(NodeKey.load_or_generate({str(tmp_path)!r}).peer_id))"
    env = dict(os.environ)
    children = [subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, env=env) for _ in range(4)]
    outputs = {child.communicate()[0] for child in children}
    assert len(outputs) == 1 and all(child.returncode == 0 for child in children)
    assert path.exists() and len(path.read_bytes()) == 32


# --- node.durable_file: all or nothing, never through a planted link ------------------------------


def test_create_private_file_says_whether_it_created_the_file_and_never_overwrites(tmp_path) -> None:
    from node.durable_file import create_private_file

    path = tmp_path / "secret"
    assert create_private_file(path, b"first") is True
    assert create_private_file(path, b"second") is False
    assert path.read_bytes() == b"first" and path.stat().st_mode & 0o777 == 0o600
    assert sorted(p.name for p in tmp_path.iterdir()) == ["secret"]  # no temporary left either way


def test_a_link_planted_at_the_temporary_name_is_neither_followed_nor_reused(tmp_path, monkeypatch) -> None:
    """The temporary is opened O_CREAT | O_EXCL | O_NOFOLLOW: whoever can write the keystore
    directory and guess the name cannot make the node write a record through a link."""
    import secrets

    from node import durable_file

    monkeypatch.setattr(secrets, "token_hex", lambda n=None: "fixed")
    victim = tmp_path / "victim"
    victim.write_bytes(b"untouched")
    (tmp_path / ".record.fixed.tmp").symlink_to(victim)
    with pytest.raises(FileExistsError):
        durable_file.replace_file(tmp_path / "record", b"data")
    assert victim.read_bytes() == b"untouched" and not (tmp_path / "record").exists()


def test_a_failed_write_leaves_no_temporary_and_the_old_content(tmp_path) -> None:
    from node.durable_file import replace_file

    path = tmp_path / "record"
    replace_file(path, b"old")
    with pytest.raises(TypeError):
        replace_file(path, "not bytes")  # type: ignore[arg-type]
    assert path.read_bytes() == b"old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["record"]

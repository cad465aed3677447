"""The validator's proof-of-learning secret: generated private, refused when not private or not 32 bytes."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from node.pol_keystore import PolSecretError, compute_secret_path, load_or_generate_secret


def test_generated_once_with_mode_0600_and_read_back(tmp_path) -> None:
    path = compute_secret_path(tmp_path / "chains" / "dev")
    assert path == tmp_path / "chains" / "dev" / "keystore" / "pol_secret"
    secret = load_or_generate_secret(path)
    assert len(secret) == 32 and path.read_bytes() == secret
    assert oct(path.stat().st_mode & 0o777) == "0o600"
    assert load_or_generate_secret(path) == secret
    assert load_or_generate_secret(compute_secret_path(tmp_path / "other")) != secret


@pytest.mark.parametrize(
    ("data", "mode", "reason"),
    [
        (b"\x01" * 31, 0o600, "holds 31 bytes, expected exactly 32"),
        (b"\x01" * 33, 0o600, "holds more than 32 bytes, expected exactly 32"),
        (b"", 0o600, "holds 0 bytes, expected exactly 32"),
        (b"\x01" * 32, 0o644, "has mode 0644: group or others may access it"),
        (b"\x01" * 32, 0o640, "has mode 0640: group or others may access it"),
        (b"\x01" * 32, 0o602, "has mode 0602: group or others may access it"),
    ],
)
def test_a_bad_secret_file_is_refused_and_left_as_it_is(tmp_path, data: bytes, mode: int, reason: str) -> None:
    path = compute_secret_path(tmp_path)
    path.parent.mkdir(parents=True)
    path.write_bytes(data)
    os.chmod(path, mode)
    with pytest.raises(PolSecretError, match=reason):
        load_or_generate_secret(path)
    assert path.read_bytes() == data and path.stat().st_mode & 0o777 == mode


def test_a_keystore_or_chain_folder_others_may_write_in_is_refused(tmp_path) -> None:
    """Whoever may write in the keystore may replace the secret or delete the slashing-protection
    record beside it (an outside tester's finding: mode 0777 drew no word); whoever may write
    in the chain folder above it may rename the keystore away (a reviewer's finding). Both are
    checked on every start, the first included, before a secret is written."""
    chain_dir = tmp_path / "chains" / "dev"
    path = compute_secret_path(chain_dir)
    secret = load_or_generate_secret(path)
    for folder in (path.parent, chain_dir):
        for mode in (0o777, 0o770, 0o702):
            os.chmod(folder, mode)
            with pytest.raises(PolSecretError, match=f"the folder {folder} has mode {mode:04o}: group or others may replace"):
                load_or_generate_secret(path)
        os.chmod(folder, 0o755)  # readable is not writable
    assert load_or_generate_secret(path) == secret
    fresh = compute_secret_path(tmp_path / "chains" / "other")
    fresh.parent.mkdir(parents=True)
    os.chmod(fresh.parent, 0o777)
    with pytest.raises(PolSecretError, match="has mode 0777"):
        load_or_generate_secret(fresh)  # the first start
    assert not fresh.exists()


def test_a_symlink_or_a_directory_is_refused(tmp_path) -> None:
    target = tmp_path / "elsewhere"
    target.write_bytes(b"\x02" * 32)
    os.chmod(target, 0o600)
    path = compute_secret_path(tmp_path)
    path.parent.mkdir(parents=True)
    path.symlink_to(target)
    with pytest.raises(PolSecretError, match="cannot open the proof-of-learning secret"):
        load_or_generate_secret(path)
    path.unlink()
    path.mkdir()
    with pytest.raises(PolSecretError, match="is not a regular file"):
        load_or_generate_secret(path)



def test_the_node_refuses_to_start_with_a_readable_secret(tmp_path) -> None:
    """A real ``polchain node`` process: a clear one-line error, exit status 1, file untouched."""
    path = compute_secret_path(tmp_path / "chains" / "dev")
    path.parent.mkdir(parents=True)
    path.write_bytes(b"\x03" * 32)
    os.chmod(path, 0o644)
    out = subprocess.run(
        [sys.executable, "-m", "node.cli", "node", "--chain", "dev", "--base-path", str(tmp_path),
         "--rpc-port", "0", "--no-prometheus", "--listen-addr", "/ip4/127.0.0.1/tcp/0"],
        capture_output=True, text=True, timeout=120,
    )
    assert out.returncode == 1, out.stderr
    assert f"Error: the proof-of-learning secret {path} has mode 0644: group or others may access it" in out.stderr
    assert path.read_bytes() == b"\x03" * 32
    assert not (tmp_path / "chains" / "dev" / "db").exists() or not any((tmp_path / "chains" / "dev" / "db").iterdir())


@pytest.mark.skipif(os.geteuid() != 0, reason="giving a folder to another user needs root")
def test_a_keystore_folder_of_another_user_is_refused(tmp_path) -> None:
    path = compute_secret_path(tmp_path / "chains" / "dev")
    load_or_generate_secret(path)
    os.chown(path.parent, 4321, -1)
    with pytest.raises(PolSecretError, match=f"the folder {path.parent} belongs to user 4321, not to this node's"):
        load_or_generate_secret(path)

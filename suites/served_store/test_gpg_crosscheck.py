"""Our OpenPGP packets checked by an independent implementation, GnuPG: it writes a key we read,
verifies a signature we make, and parses our public-key packet. Needs `gpg` (apt-get install
gnupg); without it these tests skip and say so."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from snapconform.served_store import openpgp

GPG = shutil.which("gpg")
pytestmark = pytest.mark.skipif(GPG is None, reason="gpg is not installed (apt-get install gnupg)")
USER_ID = "snapconform test <test@snapconform.invalid>"


class Gpg:
    def __init__(self, home: Path) -> None:
        self.home = home

    def run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        env = {**os.environ, "GNUPGHOME": str(self.home)}
        argv = [GPG or "gpg", "--batch", "--pinentry-mode", "loopback", "--passphrase", ""]
        done = subprocess.run(
            [*argv, *args], env=env, capture_output=True, text=True, timeout=120, check=False
        )
        if check and done.returncode != 0:
            raise AssertionError(f"gpg {' '.join(args)} failed: {done.stderr.strip()}")
        return done


@pytest.fixture(scope="module")
def gpg() -> Iterator[Gpg]:
    # A short path of its own: gpg-agent's socket lives in it.
    home = Path(tempfile.mkdtemp(prefix="sc-gpg-"))
    home.chmod(0o700)
    tool = Gpg(home)
    try:
        tool.run("--quick-gen-key", USER_ID, "rsa2048", "sign", "never")
        yield tool
    finally:
        # Stop the agent this gpg home started (by its home, not by name), then remove it.
        subprocess.run(
            ["gpgconf", "--kill", "gpg-agent"],
            env={**os.environ, "GNUPGHOME": str(home)},
            capture_output=True,
            check=False,
        )
        shutil.rmtree(home, ignore_errors=True)


@pytest.fixture(scope="module")
def gpg_key(gpg: Gpg) -> openpgp.SecretKey:
    return openpgp.parse_secret_key(gpg.run("--armor", "--export-secret-keys").stdout)


def gpg_fingerprint(gpg: Gpg) -> str:
    listing = gpg.run("--with-colons", "--list-secret-keys").stdout
    return next(line.split(":")[9] for line in listing.splitlines() if line.startswith("fpr:"))


def test_gpg_written_secret_key_is_read(gpg, gpg_key):
    """Our secret-key reader and public-key packet give the fingerprint gpg gives the key
    (its v4 fingerprint covers the packet body we build, at the key's own creation time)."""
    ours = openpgp.fingerprint_v4(gpg_key.private_key.public_key(), gpg_key.created)
    assert ours.hex().upper() == gpg_fingerprint(gpg)


def test_gpg_verifies_our_signature_and_rejects_changed_content(gpg, gpg_key, tmp_path):
    content = b"type: account\nauthority-id: testrootorg\naccount-id: someone"
    issuer = bytes.fromhex(gpg_fingerprint(gpg))[-8:]  # gpg finds its key by this
    packet = openpgp.sign(gpg_key.private_key, content, int(time.time()), issuer_key_id=issuer)
    (tmp_path / "content").write_bytes(content)
    (tmp_path / "changed").write_bytes(content + b"x")
    (tmp_path / "content.sig").write_bytes(packet)
    signature = str(tmp_path / "content.sig")
    good = gpg.run("--status-fd", "1", "--verify", signature, str(tmp_path / "content"))
    assert "[GNUPG:] GOODSIG" in good.stdout
    assert "[GNUPG:] VALIDSIG" in good.stdout
    bad = gpg.run("--status-fd", "1", "--verify", signature, str(tmp_path / "changed"), check=False)
    assert bad.returncode != 0
    assert "[GNUPG:] BADSIG" in bad.stdout


def test_gpg_parses_our_packets_as_snapd_makes_them(gpg, gpg_key, tmp_path):
    public = gpg_key.private_key.public_key()
    (tmp_path / "key.pkt").write_bytes(openpgp.public_key_packet(public))
    listing = gpg.run("--list-packets", str(tmp_path / "key.pkt")).stdout
    assert ":public key packet:" in listing
    assert "version 4, algo 1, created 1451606400" in listing  # snapd's fixed 2016-01-01
    (tmp_path / "sig.pkt").write_bytes(openpgp.sign(gpg_key.private_key, b"x", 1700000000))
    listing = gpg.run("--list-packets", str(tmp_path / "sig.pkt")).stdout
    assert ":signature packet: algo 1" in listing
    assert "version 4, created 1700000000, md5len 0, sigclass 0x00" in listing
    assert "digest algo 10" in listing
    assert "hashed subpkt 2 len 4 (sig created" in listing
    assert "subpkt 16" not in listing  # no issuer: snapd writes none

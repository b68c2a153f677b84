"""Assertions we sign with snapd's own test keys, judged by real snapd: the test-keys build
(`nspawn://RELEASE?snapd=testkeys`, RELEASE from --snapd-release, default bookworm) accepts
them with `snap ack`, and refuses a tampered one with its own message.

The keys are the ones the test-keys build read from its source into the cache dir; they are
never printed (the assertions are public: only their signatures come from the keys)."""

from __future__ import annotations

import shlex
from collections.abc import Iterator
from pathlib import Path

import pytest

from snapconform.conformance.session import HostSession
from snapconform.hosts.base import HostUnavailable
from snapconform.served_store import assertions, openpgp
from snapconform.served_store.assertions import Signer, TestKeys

pytestmark = pytest.mark.conformance

REMOTE_DIR = "/var/tmp/snapconform/assertions"
# store.md §3 (and snapd's asserts/systestkeys/trusted.go): the ids of the test keys.
STORE_KEY_ID = "XCIC_Wvj9_hiAt0b10sDon74oGr3a6xGODkMZqrj63ZzNYUD5N87-ojjPoeN7f1Y"
ROOT_KEY_ID = "hIedp1AvrWlcDI4uS_qjoFLzjKl5enu4G2FYJpgB3Pj-tUzGlTQBxMBsBmi-tnJR"


# What `snap ack` prints (cmd/snap "cannot assert: %v", the daemon's "assert failed: %v", the
# asserts batch's "cannot accept some assertions:" with one " - " line per error, x/crypto's
# "openpgp: invalid signature: "; observed on 2.57.6).
def signature_refused(reason: str) -> str:
    return (
        "error: cannot assert: assert failed: cannot accept some assertions:\n"
        f" - failed signature verification: openpgp: invalid signature: {reason}"
    )


def prerequisite_missing(ref: str) -> str:
    return f"error: cannot assert: assert failed: cannot resolve prerequisite assertion: {ref}"


@pytest.fixture(scope="module")
def release(pytestconfig: pytest.Config) -> str:
    return pytestconfig.getoption("--snapd-release") or "bookworm"


@pytest.fixture(scope="module")
def store_session(release: str, artifacts_dir: Path) -> Iterator[HostSession]:
    """The store tier's host: the release's test-keys snapd (built first when missing)."""
    session = HostSession(f"nspawn://{release}?snapd=testkeys", artifacts=artifacts_dir / "store")
    try:
        session.start()
    except HostUnavailable as exc:
        pytest.skip(f"no store-tier host to drive: {exc}")
    try:
        yield session
    finally:
        session.stop()


@pytest.fixture(scope="module")
def test_keys(store_session: HostSession, release: str) -> TestKeys:
    from snapconform.images.snapd_build import testkeys_dir

    keys_dir = testkeys_dir(release, store_session.cache_dir)
    assert keys_dir is not None, f"the {release} store-tier host started without a finished build"
    return TestKeys.load(keys_dir)


class Acker:
    """Puts an assertion on the host and runs `snap ack` on it."""

    def __init__(self, session: HostSession, local_dir: Path) -> None:
        self.session = session
        self.local_dir = local_dir
        self.count = 0

    def ack(self, assertion: bytes) -> tuple[int, str]:
        self.count += 1
        local = self.local_dir / f"assertion-{self.count}"
        local.write_bytes(assertion)
        remote = f"{REMOTE_DIR}/{local.name}"
        self.session.host.put_file(local, remote)
        assert self.session.shell is not None
        result = self.session.shell.run(f"snap ack {shlex.quote(remote)}", timeout=60)
        return result.exit_code, result.output.strip()

    def known(self, kind: str, **keys: str) -> str:
        """What snapd's database holds (`snap known`), empty when nothing matches."""
        args = " ".join(shlex.quote(f"{name.replace('_', '-')}={v}") for name, v in keys.items())
        assert self.session.shell is not None
        result = self.session.shell.run(f"snap known {shlex.quote(kind)} {args}", timeout=60)
        assert result.exit_code == 0, result.output
        return result.output


@pytest.fixture
def acker(store_session: HostSession, test_keys: TestKeys, tmp_path: Path) -> Acker:
    """Acks with the store key's account-key already known to snapd (re-acking it is a no-op)."""
    acker = Acker(store_session, tmp_path)
    exit_code, output = acker.ack(assertions.account_key(test_keys.root, test_keys.store))
    assert (exit_code, output) == (0, "")
    return acker


def test_the_real_test_keys_have_the_ids_in_store_md(test_keys):
    assert test_keys.store.key_id == STORE_KEY_ID
    assert test_keys.root.key_id == ROOT_KEY_ID
    assert test_keys.store.private_key.key_size == test_keys.root.private_key.key_size == 4096


def test_host_runs_the_test_keys_build(store_session):
    assert store_session.describe()["snapd_build"].startswith("testkeys ")


def test_snap_ack_accepts_the_store_key_and_what_it_signs(acker, test_keys, names):
    known = acker.known("account-key", public_key_sha3_384=STORE_KEY_ID)
    assert f"public-key-sha3-384: {STORE_KEY_ID}" in known
    assert "name: test-store" in known

    name = names.fresh()
    snap_id = assertions.snap_id_for(name)
    declaration = assertions.snap_declaration(test_keys.store, snap_id=snap_id, snap_name=name)
    assert acker.ack(declaration) == (0, "")
    held = acker.known("snap-declaration", series="16", snap_id=snap_id)
    assert assertions.parse(held.encode()).headers == assertions.parse(declaration).headers

    revision = assertions.snap_revision(
        test_keys.store,
        snap_sha3_384=assertions.sha3_384_b64url(name.encode()),
        snap_size=4096,
        snap_revision=1,
        snap_id=snap_id,
    )
    assert acker.ack(revision) == (0, "")
    assert f"snap-id: {snap_id}" in acker.known("snap-revision", snap_id=snap_id)

    account_id = name.replace("-", "")
    account = assertions.account(test_keys.root, account_id=account_id, display_name=name)
    assert acker.ack(account) == (0, "")
    assert f"account-id: {account_id}" in acker.known("account", account_id=account_id)


@pytest.mark.parametrize("header", ["snap-name", "timestamp"])
def test_snap_ack_refuses_a_tampered_declaration(acker, test_keys, names, header):
    name = names.fresh()
    snap_id = assertions.snap_id_for(name)
    signed = assertions.snap_declaration(test_keys.store, snap_id=snap_id, snap_name=name)
    value = {"snap-name": name + "x", "timestamp": "2030-01-01T00:00:00Z"}[header]
    tampered = assertions.tamper(signed, header, value)
    reason = _reason(tampered, test_keys.store)  # usually the hash tag; 1 in 65536 RSA
    assert acker.ack(tampered) == (1, signature_refused(reason))
    assert acker.known("snap-declaration", series="16", snap_id=snap_id) == ""


def test_snap_ack_refuses_a_tampered_revision(acker, test_keys, names):
    name = names.fresh()
    snap_id = assertions.snap_id_for(name)
    declaration = assertions.snap_declaration(test_keys.store, snap_id=snap_id, snap_name=name)
    assert acker.ack(declaration) == (0, "")
    digest = assertions.sha3_384_b64url(name.encode())
    signed = assertions.snap_revision(
        test_keys.store, snap_sha3_384=digest, snap_size=10, snap_revision=1, snap_id=snap_id
    )
    tampered = assertions.tamper(signed, "snap-size", "11")
    reason = _reason(tampered, test_keys.store)
    assert acker.ack(tampered) == (1, signature_refused(reason))
    assert acker.known("snap-revision", snap_sha3_384=digest) == ""


def test_snap_ack_refuses_another_key_under_the_store_keys_id(acker, test_keys, names):
    """The content hashes the same, so the hash tag matches and RSA refuses it."""
    stranger = Signer.generate()
    forged = Signer(
        private_key=stranger.private_key,
        key_id=test_keys.store.key_id,
        public_key_encoded=test_keys.store.public_key_encoded,
    )
    name = names.fresh()
    snap_id = assertions.snap_id_for(name)
    signed = assertions.snap_declaration(forged, snap_id=snap_id, snap_name=name)
    expected = signature_refused(openpgp.RSA_FAILURE)
    assert acker.ack(signed) == (1, expected)


def test_snap_ack_refuses_a_key_snapd_does_not_know(acker, names):
    stranger = Signer.generate()
    name = names.fresh()
    signed = assertions.snap_declaration(
        stranger, snap_id=assertions.snap_id_for(name), snap_name=name
    )
    expected = prerequisite_missing(f"account-key ({stranger.key_id})")
    assert acker.ack(signed) == (1, expected)


def _reason(tampered: bytes, signer: Signer) -> str:
    with pytest.raises(openpgp.SignatureInvalid) as caught:
        assertions.verify(tampered, signer)
    return caught.value.reason

"""Assertions in snapd's text form, signed as snapd signs them (asserts/asserts.go
assembleAndSign, asserts/crypto.go), with generated keys. Signatures are checked by a verifier
written here from RFC 4880 §5.2.4 (hashed data = content, the signature packet's hashed part,
then the v4 trailer), not by the code under test."""

from __future__ import annotations

import base64
import hashlib
import re
from datetime import UTC, datetime
from pathlib import Path

import pytest
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa, utils
from secret_key_writer import armored_secret_key

from snapconform.served_store import assertions, openpgp
from snapconform.served_store.assertions import (
    AUTHORITY,
    AssertionBuildError,
    Signer,
    TestKeys,
    TestKeysError,
)

WHEN = datetime(2024, 5, 1, 12, 0, 0, tzinfo=UTC)
SNAP_SHA3 = assertions.sha3_384_b64url(b"a snap file")


class Unverified(Exception):
    pass


def independent_verify(public_key: rsa.RSAPublicKey, assertion: bytes) -> int:
    """Checks `assertion`'s signature; returns its creation time. Raises Unverified."""
    body_and_sig = assertion[:-1] if assertion.endswith(b"\n") else assertion
    split = body_and_sig.rindex(b"\n\n")
    content, encoded = body_and_sig[:split], body_and_sig[split + 2 :]
    raw = base64.b64decode(b"".join(encoded.split()))
    assert raw[0] == 1, "snapd's encoding version"
    packet = raw[1:]
    assert packet[0] == 0xC2, "a new-format signature packet"
    if packet[1] < 192:
        body = packet[2:]
        assert len(body) == packet[1]
    else:
        body = packet[3:]
        assert len(body) == ((packet[1] - 192) << 8) + packet[2] + 192
    version, sig_type, algorithm, hash_algorithm = body[:4]
    assert (version, sig_type, algorithm, hash_algorithm) == (4, 0, 1, 10)
    hashed_length = int.from_bytes(body[4:6], "big")
    hashed_part = body[: 6 + hashed_length]
    subpackets = body[6 : 6 + hashed_length]
    assert subpackets[:2] == bytes([5, 2]), "a hashed creation-time subpacket"
    created = int.from_bytes(subpackets[2:6], "big")
    rest = body[6 + hashed_length :]
    unhashed_length = int.from_bytes(rest[:2], "big")
    rest = rest[2 + unhashed_length :]
    tag, mpi = rest[:2], rest[2:]
    bits = int.from_bytes(mpi[:2], "big")
    value = mpi[2:]
    assert len(value) == (bits + 7) // 8
    digest = hashlib.sha512(
        content + hashed_part + b"\x04\xff" + len(hashed_part).to_bytes(4, "big")
    ).digest()
    if digest[:2] != tag:
        raise Unverified("hash tag")
    signature = value.rjust(public_key.key_size // 8, b"\x00")
    try:
        public_key.verify(signature, digest, padding.PKCS1v15(), utils.Prehashed(hashes.SHA512()))
    except InvalidSignature:
        raise Unverified("rsa") from None
    return created


@pytest.fixture(scope="module")
def store() -> Signer:
    return Signer.generate()


@pytest.fixture(scope="module")
def root() -> Signer:
    return Signer.generate()


@pytest.fixture(scope="module")
def big_store() -> Signer:
    return Signer.generate(bits=4096)


def declaration(store: Signer) -> bytes:
    return assertions.snap_declaration(
        store, snap_id=assertions.snap_id_for("sc-one"), snap_name="sc-one", timestamp=WHEN
    )


def revision(store: Signer) -> bytes:
    return assertions.snap_revision(
        store,
        snap_sha3_384=SNAP_SHA3,
        snap_size=4096,
        snap_revision=7,
        snap_id=assertions.snap_id_for("sc-one"),
        timestamp=WHEN,
    )


def header_names(assertion: bytes) -> list[str]:
    head = assertion.split(b"\n\n", 1)[0].decode()
    return [line.split(":", 1)[0] for line in head.split("\n") if not line.startswith(" ")]


# -- signatures ------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "build", [declaration, revision], ids=["snap-declaration", "snap-revision"]
)
def test_signature_verifies(store, build):
    signed = build(store)
    created = independent_verify(store.public_key, signed)
    assert abs(created - datetime.now(UTC).timestamp()) < 60
    assertions.verify(signed, store)


def test_account_key_signed_by_root_verifies(store, root):
    signed = assertions.account_key(root, store)
    independent_verify(root.public_key, signed)
    with pytest.raises(Unverified):
        independent_verify(store.public_key, signed)


@pytest.mark.parametrize(
    "header",
    [
        "type",
        "authority-id",
        "series",
        "snap-id",
        "publisher-id",
        "snap-name",
        "timestamp",
        "sign-key-sha3-384",
    ],
)
def test_changing_one_header_breaks_the_signature(store, header):
    signed = declaration(store)
    value = assertions.parse(signed).headers[header]
    tampered = assertions.tamper(signed, header, value + "x")
    assert tampered != signed
    with pytest.raises(Unverified):
        independent_verify(store.public_key, tampered)
    with pytest.raises(openpgp.SignatureInvalid) as caught:
        assertions.verify(tampered, store)
    assert caught.value.reason in (openpgp.HASH_TAG_MISMATCH, openpgp.RSA_FAILURE)


def test_changing_the_body_breaks_the_signature(store, root):
    signed = assertions.account_key(root, store)
    start = signed.index(b"\n\n") + 2 + 10  # a character inside the body
    replacement = b"A" if signed[start : start + 1] != b"A" else b"B"
    flipped = signed[:start] + replacement + signed[start + 1 :]
    with pytest.raises(Unverified):
        independent_verify(root.public_key, flipped)


def test_tamper_changes_that_header_only_and_keeps_the_signature(store):
    signed = declaration(store)
    tampered = assertions.tamper(signed, "snap-name", "sc-other")
    before, after = assertions.parse(signed), assertions.parse(tampered)
    assert after.headers == {**before.headers, "snap-name": "sc-other"}
    assert after.header_order == before.header_order
    assert after.signature == before.signature


def test_tamper_of_a_missing_header_is_refused(store):
    with pytest.raises(AssertionBuildError, match="no one-line 'nope' header"):
        assertions.tamper(declaration(store), "nope", "x")


def test_verify_reports_the_reason_snapd_checks_first(store):
    """snapd compares the left 16 bits before RSA: a changed content fails there (unless its
    hash happens to share those bits), a changed signature value fails at RSA."""
    signed = declaration(store)
    parsed = assertions.parse(signed)
    sig = openpgp.parse_signature(parsed.signature)
    for suffix in range(50):
        tampered = assertions.tamper(signed, "snap-name", f"sc-{suffix}")
        content = assertions.parse(tampered).content
        trailer = b"\x04\xff" + len(sig.hashed_part).to_bytes(4, "big")
        same_tag = hashlib.sha512(content + sig.hashed_part + trailer).digest()[:2] == sig.hash_tag
        with pytest.raises(openpgp.SignatureInvalid) as caught:
            assertions.verify(tampered, store)
        expected = openpgp.RSA_FAILURE if same_tag else openpgp.HASH_TAG_MISMATCH
        assert caught.value.reason == expected
    packet = bytearray(parsed.signature)
    packet[-1] ^= 1  # the signature value's last byte
    with pytest.raises(openpgp.SignatureInvalid) as caught:
        openpgp.verify(store.public_key, parsed.content, bytes(packet))
    assert caught.value.reason == openpgp.RSA_FAILURE


# -- the text form ---------------------------------------------------------------------------
def test_snap_declaration_text(store):
    signed = declaration(store)
    head, _, _ = signed.partition(b"\n\n")
    assert head.decode().split("\n") == [
        "type: snap-declaration",
        "authority-id: testrootorg",
        "series: 16",
        f"snap-id: {assertions.snap_id_for('sc-one')}",
        "publisher-id: testrootorg",
        "snap-name: sc-one",
        "timestamp: 2024-05-01T12:00:00Z",
        f"sign-key-sha3-384: {store.key_id}",
    ]


def test_snap_revision_text(store):
    head = revision(store).partition(b"\n\n")[0].decode().split("\n")
    assert head == [
        "type: snap-revision",
        "authority-id: testrootorg",
        f"snap-sha3-384: {SNAP_SHA3}",
        "developer-id: testrootorg",
        f"snap-id: {assertions.snap_id_for('sc-one')}",
        "snap-revision: 7",
        "snap-size: 4096",
        "timestamp: 2024-05-01T12:00:00Z",
        f"sign-key-sha3-384: {store.key_id}",
    ]


def test_account_key_has_the_header_order_of_snapds_own(root, big_store):
    """systestkeys/trusted.go's test-store account-key: the same headers in the same order,
    and with a 4096-bit key the same body length (717)."""
    signed = assertions.account_key(root, big_store)
    assert header_names(signed) == [
        "type",
        "authority-id",
        "public-key-sha3-384",
        "account-id",
        "name",
        "since",
        "body-length",
        "sign-key-sha3-384",
    ]
    parsed = assertions.parse(signed)
    assert parsed.headers["name"] == "test-store"
    assert parsed.headers["since"] == "2016-08-11T16:42:22Z"
    assert parsed.headers["public-key-sha3-384"] == big_store.key_id
    assert parsed.headers["sign-key-sha3-384"] == root.key_id
    assert parsed.headers["body-length"] == "717"
    assert parsed.body == big_store.public_key_encoded.encode()


def test_body_length_and_blank_lines(root, store):
    signed = assertions.account_key(root, store)
    parsed = assertions.parse(signed)
    assert int(parsed.headers["body-length"]) == len(parsed.body)
    head = signed.split(b"\n\n")[0]
    assert signed == head + b"\n\n" + parsed.body + b"\n\n" + signed.split(b"\n\n")[2]
    assert signed.endswith(b"\n") and not signed.endswith(b"\n\n")
    # No body: no body-length, no blank line inside the content.
    no_body = declaration(store)
    assert "body-length" not in assertions.parse(no_body).headers
    assert no_body.count(b"\n\n") == 1


def test_signature_lines_are_76_columns(store):
    signed = declaration(store)
    lines = signed.rstrip(b"\n").split(b"\n\n")[-1].split(b"\n")
    assert len(lines) > 1
    assert all(len(line) == 76 for line in lines[:-1]) and 0 < len(lines[-1]) <= 76
    assert all(re.fullmatch(rb"[A-Za-z0-9+/=]+", line) for line in lines)


def test_header_order_rules(store):
    signed = assertions.sign(
        {
            "type": "snap-revision",
            "zeta": "last",
            "alpha": "first",
            "revision": "3",
            "format": "1",
            "signatory-id": "someone",
            "snap-sha3-384": SNAP_SHA3,
            "provenance": "delegated",
        },
        b"a body",
        store,
        authority="authority",
    )
    assert header_names(signed) == [
        "type",
        "format",
        "authority-id",
        "signatory-id",
        "revision",
        "snap-sha3-384",
        "provenance",
        "alpha",
        "zeta",
        "body-length",
        "sign-key-sha3-384",
    ]


def test_defaults_are_left_out(store):
    signed = assertions.sign(
        {
            "type": "snap-revision",
            "snap-sha3-384": SNAP_SHA3,
            "provenance": "global-upload",
            "revision": "0",
            "format": "0",
            "signatory-id": AUTHORITY,
        },
        None,
        store,
    )
    assert header_names(signed) == [
        "type",
        "authority-id",
        "snap-sha3-384",
        "sign-key-sha3-384",
    ]


def test_multiline_header_values_are_indented(store):
    signed = assertions.sign(
        {"type": "account", "account-id": "x", "note": "one\ntwo"}, None, store
    )
    assert b"\nnote:\n    one\n    two\n" in signed
    assert assertions.parse(signed).headers["note"] == "one\ntwo"


@pytest.mark.parametrize(
    ("headers", "body", "message"),
    [
        ({"type": "model"}, None, "cannot sign assertion type 'model'"),
        ({"type": "snap-declaration", "series": "16"}, None, "primary key 'snap-id' is missing"),
        ({"type": "account", "account-id": "a/b"}, None, "contains '/'"),
        ({"type": "account", "account-id": "a", "Bad": "x"}, None, "header name 'Bad'"),
        ({"type": "account", "account-id": "a", "body-length": "1"}, None, "set by the signer"),
        ({"type": "account", "account-id": "a", "revision": "x"}, None, "is not a number"),
        ({"type": "account", "account-id": "a"}, b"\xff", "body is not UTF-8"),
    ],
    ids=["type", "primary-key", "slash", "name", "body-length", "revision", "utf8"],
)
def test_sign_refuses_what_snapd_would(store, headers, body, message):
    with pytest.raises(AssertionBuildError, match=re.escape(message)):
        assertions.sign(headers, body, store)


def test_account(root):
    signed = assertions.account(
        root, account_id="acct1", display_name="Acct One", username="acct1", timestamp=WHEN
    )
    assert header_names(signed) == [
        "type",
        "authority-id",
        "account-id",
        "display-name",
        "timestamp",
        "username",
        "validation",
        "sign-key-sha3-384",
    ]
    independent_verify(root.public_key, signed)


# -- values ----------------------------------------------------------------------------------
def test_sha3_384_b64url():
    digest = hashlib.sha3_384(b"data").digest()
    encoded = assertions.sha3_384_b64url(b"data")
    assert "=" not in encoded and len(encoded) == 64
    assert base64.urlsafe_b64decode(encoded + "==") == digest
    assert assertions.sha3_384_b64url_from_hex(digest.hex()) == encoded
    with pytest.raises(AssertionBuildError):
        assertions.sha3_384_b64url_from_hex("abcd")


def test_snap_id_for_is_deterministic_32_alphanumerics():
    ids = {assertions.snap_id_for(f"sc-{i}") for i in range(200)}
    assert len(ids) == 200
    assert all(re.fullmatch(r"[A-Za-z0-9]{32}", snap_id) for snap_id in ids)
    assert assertions.snap_id_for("sc-1") == assertions.snap_id_for("sc-1")


def test_timestamps_need_a_timezone(store):
    with pytest.raises(AssertionBuildError, match="timezone"):
        assertions.snap_declaration(
            store, snap_id="x", snap_name="x", timestamp=datetime(2024, 1, 1)
        )


# -- keys ------------------------------------------------------------------------------------
def test_signer_repr_shows_no_key_material(store):
    assert repr(store) == f"Signer(key_id={store.key_id!r}, bits=2048)"
    assert store.public_key_b64 == store.public_key_encoded


def test_signer_from_armored_is_the_same_key(store):
    again = Signer.from_armored(armored_secret_key(store.private_key))
    assert again.key_id == store.key_id
    assert again.public_key_encoded == store.public_key_encoded


def test_test_keys_load_names_the_file_and_never_its_content(tmp_path: Path, store):
    with pytest.raises(TestKeysError) as caught:
        TestKeys.load(tmp_path)
    assert str(caught.value) == (
        f"cannot read the test store key {tmp_path / 'store.key'}: No such file or directory"
    )
    armored = armored_secret_key(store.private_key)
    (tmp_path / "store.key").write_text(armored)
    with pytest.raises(TestKeysError) as caught:
        TestKeys.load(tmp_path)
    message = str(caught.value)
    assert message == (
        f"{tmp_path / 'store.key'} has key id {store.key_id}, but snapd's test store key is "
        f"{assertions.TEST_STORE_KEY_ID}"
    )
    (tmp_path / "store.key").write_text(armored.replace("=", "-"))
    with pytest.raises(TestKeysError) as caught:
        TestKeys.load(tmp_path)
    assert not any(line in str(caught.value) for line in armored.split("\n") if len(line) > 20)

"""The OpenPGP pieces snapd's assertions are made of: armor, the secret-key packet, the public-key
packet and key id as snapd derives them (asserts/crypto.go), and the signature packet. Keys are
generated here; the armored ones are written by the tests' own encoder (secret_key_writer)."""

from __future__ import annotations

import base64
import hashlib
import re

import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from secret_key_writer import armored_secret_key, mpi

from snapconform.served_store import openpgp

LONG_BASE64 = re.compile(r"[A-Za-z0-9+/]{24,}")


@pytest.fixture(scope="module")
def key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def test_crc24_matches_the_openpgp_check_value():
    # CRC-24/OPENPGP's catalogued check value over "123456789", and its initial value.
    assert openpgp.crc24(b"123456789") == 0x21CF02
    assert openpgp.crc24(b"") == 0xB704CE


@pytest.mark.parametrize("new_format", [False, True], ids=["old-format", "new-format"])
def test_armored_secret_key_is_read_into_the_same_rsa_key(key, new_format):
    parsed = openpgp.parse_secret_key(armored_secret_key(key, created=12345, new_format=new_format))
    assert parsed.created == 12345
    assert parsed.private_key.private_numbers() == key.private_numbers()


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"bad_crc": True}, "fails its CRC24 checksum"),
        ({"bad_checksum": True}, "secret-key packet fails its checksum"),
        ({"s2k_usage": 254}, "secret key is encrypted (s2k usage 254)"),
        ({"algorithm": 17}, "public-key algorithm 17 is not RSA (1)"),
    ],
    ids=["crc24", "checksum", "encrypted", "not-rsa"],
)
def test_bad_keys_get_one_line_without_key_material(key, options, message):
    with pytest.raises(openpgp.OpenPGPError) as caught:
        openpgp.parse_secret_key(armored_secret_key(key, **options))
    text = str(caught.value)
    assert message in text
    assert "\n" not in text
    assert not LONG_BASE64.search(text)


@pytest.mark.parametrize(
    "text",
    [
        "",
        "hello",
        "-----BEGIN PGP PRIVATE KEY BLOCK-----\n\nAAAA\n",
        "-----BEGIN PGP PRIVATE KEY BLOCK-----\n\n!!!!\n-----END PGP PRIVATE KEY BLOCK-----\n",
        "-----BEGIN PGP PUBLIC KEY BLOCK-----\n\nxA==\n-----END PGP PUBLIC KEY BLOCK-----\n",
    ],
    ids=["empty", "not-armor", "no-end", "not-base64", "no-secret-key"],
)
def test_not_an_armored_secret_key_is_refused(text):
    with pytest.raises(openpgp.OpenPGPError):
        openpgp.parse_secret_key(text)


def test_secret_key_repr_shows_no_key_material(key):
    parsed = openpgp.parse_secret_key(armored_secret_key(key))
    assert repr(parsed) == "SecretKey(bits=2048, created=1)"


def test_public_key_packet_is_v4_rsa_created_2016_01_01(key):
    data = openpgp.public_key_packet(key.public_key())
    numbers = key.public_key().public_numbers()
    assert data[0] == 0xC6  # new format, tag 6
    length = ((data[1] - 192) << 8) + data[2] + 192  # two-octet length: a 2048-bit body > 191
    body = data[3:]
    assert length == len(body)
    assert body[0] == 4
    assert int.from_bytes(body[1:5], "big") == 1451606400  # 2016-01-01T00:00:00Z
    assert body[5] == 1
    assert body[6:] == mpi(numbers.n) + mpi(numbers.e)


def test_key_id_is_base64url_sha3_384_of_version_and_packet(key):
    key_id = openpgp.key_id(key.public_key())
    assert re.fullmatch(r"[A-Za-z0-9_-]{64}", key_id)
    digest = hashlib.sha3_384(b"\x01" + openpgp.public_key_packet(key.public_key())).digest()
    assert base64.urlsafe_b64decode(key_id + "==") == digest


def test_key_id_ignores_the_armored_creation_time(key):
    early = openpgp.parse_secret_key(armored_secret_key(key, created=1))
    late = openpgp.parse_secret_key(armored_secret_key(key, created=1700000000))
    assert openpgp.key_id(early.private_key.public_key()) == openpgp.key_id(
        late.private_key.public_key()
    )


def test_encoded_key_is_76_column_base64_of_version_and_packet(key):
    packet = openpgp.public_key_packet(key.public_key())
    encoded = openpgp.encode_v1(packet)
    lines = encoded.split("\n")
    assert all(len(line) == 76 for line in lines[:-1]) and 0 < len(lines[-1]) <= 76
    assert base64.b64decode("".join(lines)) == b"\x01" + packet
    assert openpgp.decode_v1(encoded) == packet


def test_signature_packet_layout(key):
    packet = openpgp.sign(key, b"content", created=1700000000)
    assert packet[0] == 0xC2  # new format, tag 2
    sig = openpgp.parse_signature(packet)
    assert (sig.sig_type, sig.pubkey_algo, sig.hash_algo) == (0x00, 1, 10)
    assert sig.hashed_subpackets == ((2, (1700000000).to_bytes(4, "big")),)
    assert sig.unhashed_subpackets == ()
    assert sig.created == 1700000000


def test_signature_verifies_and_reports_snapds_reasons(key):
    packet = openpgp.sign(key, b"content", created=1700000000)
    assert openpgp.verify(key.public_key(), b"content", packet).created == 1700000000
    # Content whose hash differs in the left 16 bits: the first check snapd makes.
    other = next(
        candidate
        for candidate in (f"content {i}".encode() for i in range(100))
        if _tag(candidate, packet) != openpgp.parse_signature(packet).hash_tag
    )
    with pytest.raises(openpgp.SignatureInvalid) as caught:
        openpgp.verify(key.public_key(), other, packet)
    assert caught.value.reason == openpgp.HASH_TAG_MISMATCH
    assert str(caught.value) == "openpgp: invalid signature: hash tag doesn't match"
    # Same content, another key: the hash tag matches, RSA does not.
    stranger = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    with pytest.raises(openpgp.SignatureInvalid) as caught:
        openpgp.verify(stranger.public_key(), b"content", packet)
    assert caught.value.reason == openpgp.RSA_FAILURE


def _tag(content: bytes, packet: bytes) -> bytes:
    sig = openpgp.parse_signature(packet)
    trailer = b"\x04\xff" + len(sig.hashed_part).to_bytes(4, "big")
    return hashlib.sha512(content + sig.hashed_part + trailer).digest()[:2]


def test_issuer_subpacket_is_unhashed_when_asked_for(key):
    packet = openpgp.sign(key, b"content", created=5, issuer_key_id=b"12345678")
    sig = openpgp.parse_signature(packet)
    assert sig.unhashed_subpackets == ((16, b"12345678"),)
    openpgp.verify(key.public_key(), b"content", packet)

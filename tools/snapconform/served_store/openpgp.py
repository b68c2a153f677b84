"""The OpenPGP v4 packets (RFC 4880) snapd's assertions are built from: an armored, unencrypted
RSA secret key read into a `cryptography` key; the public-key packet and key id snapd derives
from it; the signature packet over an assertion's content, and its check.

Facts from snapd's asserts/crypto.go (2.57.6 and HEAD): snapd rebuilds every RSA public key's
packet with the creation time fixed at 2016-01-01T00:00:00Z (whatever the armored key says);
a key's id is base64url, unpadded, of sha3-384(0x01 || that whole packet, header included);
keys and signatures travel as base64 of 0x01 || packet in lines of 76. Its signatures are v4,
type 0x00 (binary), RSA, SHA-512, with one hashed subpacket (the creation time) and no
unhashed ones; its verifier (golang.org/x/crypto/openpgp/packet) needs the creation time in the
hashed area, compares the hash's left 16 bits first ("hash tag doesn't match") and then checks
RSA PKCS#1 v1.5 ("RSA verification failure").

Nothing here puts key material into a message or a repr.
"""

from __future__ import annotations

import base64
import hashlib
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa, utils

# snapd's v1FixedTimestamp: the creation time of every public-key packet it derives.
FIXED_KEY_CREATION = int(datetime(2016, 1, 1, tzinfo=UTC).timestamp())

ENCODING_VERSION = 0x01  # snapd's prefix byte for encoded keys and signatures
LINE_LENGTH = 76  # snapd's line length for base64 in assertions

TAG_SIGNATURE = 2
TAG_SECRET_KEY = 5
TAG_PUBLIC_KEY = 6
ALGO_RSA = 1
HASH_SHA512 = 10
SIGNATURE_BINARY = 0x00
SUBPACKET_CREATION_TIME = 2
SUBPACKET_ISSUER = 16

# The left-16-bits and RSA failures, as golang.org/x/crypto/openpgp words them (snapd prints
# them after "openpgp: invalid signature: ").
HASH_TAG_MISMATCH = "hash tag doesn't match"
RSA_FAILURE = "RSA verification failure"

_ARMOR_BEGIN = re.compile(r"^-----BEGIN PGP ([A-Z ]+)-----$")


class OpenPGPError(ValueError):
    """Input that is not the OpenPGP we read; one line, never any key material."""


class SignatureInvalid(OpenPGPError):
    """A signature that does not verify; `reason` is worded as snapd's verifier words it."""

    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(f"openpgp: invalid signature: {reason}")


# -- armor -----------------------------------------------------------------------------------
def crc24(data: bytes) -> int:
    """RFC 4880 §6.1's CRC-24 of the armored data."""
    crc = 0xB704CE
    for byte in data:
        crc ^= byte << 16
        for _ in range(8):
            crc <<= 1
            if crc & 0x1000000:
                crc ^= 0x1864CFB
    return crc & 0xFFFFFF


def dearmor(text: str) -> tuple[str, bytes]:
    """The armor's label (e.g. "PRIVATE KEY BLOCK") and its data, checked against its CRC24."""
    lines = [line.strip() for line in text.strip().splitlines()]
    if not lines or not (begin := _ARMOR_BEGIN.match(lines[0])):
        raise OpenPGPError("not an ASCII-armored OpenPGP block (no -----BEGIN PGP ...----- line)")
    label = begin.group(1)
    end_line = f"-----END PGP {label}-----"
    if end_line not in lines:
        raise OpenPGPError(f"armored block {label!r} has no {end_line} line")
    inner = lines[1 : lines.index(end_line)]
    # Armor headers ("Version: ...") run up to the first blank line, when there are any.
    if "" in inner:
        inner = inner[inner.index("") + 1 :]
    elif inner and ": " in inner[0]:
        raise OpenPGPError(f"armored block {label!r} has headers but no blank line after them")
    checksum: int | None = None
    if inner and inner[-1].startswith("="):
        try:
            checksum = int.from_bytes(base64.b64decode(inner[-1][1:], validate=True), "big")
        except ValueError:
            raise OpenPGPError(f"armored block {label!r} has an unreadable checksum line") from None
        inner = inner[:-1]
    try:
        data = base64.b64decode("".join(inner), validate=True)
    except ValueError:
        raise OpenPGPError(f"armored block {label!r} is not valid base64") from None
    if checksum is not None and crc24(data) != checksum:
        raise OpenPGPError(f"armored block {label!r} fails its CRC24 checksum")
    return label, data


# -- packets ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class Packet:
    tag: int
    body: bytes = field(repr=False)


def read_packets(data: bytes) -> Iterator[Packet]:
    """Each packet in `data`, old-format or new-format headers (RFC 4880 §4.2)."""
    offset = 0
    while offset < len(data):
        first = data[offset]
        if not first & 0x80:
            raise OpenPGPError(f"byte {offset} does not start an OpenPGP packet")
        if first & 0x40:  # new format
            tag = first & 0x3F
            length, offset = _new_format_length(data, offset + 1)
        else:
            tag = (first >> 2) & 0x0F
            kind = first & 0x03
            if kind == 3:  # indeterminate: the rest of the data
                length, offset = len(data) - offset - 1, offset + 1
            else:
                size = (1, 2, 4)[kind]
                length = int.from_bytes(data[offset + 1 : offset + 1 + size], "big")
                offset += 1 + size
        if offset + length > len(data):
            raise OpenPGPError(f"OpenPGP packet (tag {tag}) is truncated")
        yield Packet(tag, data[offset : offset + length])
        offset += length


def _new_format_length(data: bytes, offset: int) -> tuple[int, int]:
    if offset >= len(data):
        raise OpenPGPError("OpenPGP packet header is truncated")
    first = data[offset]
    if first < 192:
        return first, offset + 1
    if first < 224:
        if offset + 1 >= len(data):
            raise OpenPGPError("OpenPGP packet header is truncated")
        return ((first - 192) << 8) + data[offset + 1] + 192, offset + 2
    if first == 255:
        return int.from_bytes(data[offset + 1 : offset + 5], "big"), offset + 5
    raise OpenPGPError("OpenPGP partial body lengths are not supported")


def packet(tag: int, body: bytes) -> bytes:
    """A new-format packet, its length encoded as Go's openpgp package encodes it."""
    length = len(body)
    if length < 192:
        header = bytes([length])
    elif length < 8384:
        header = bytes([192 + ((length - 192) >> 8), (length - 192) & 0xFF])
    else:
        header = b"\xff" + length.to_bytes(4, "big")
    return bytes([0xC0 | tag]) + header + body


def encode_mpi(value: int) -> bytes:
    """An OpenPGP multiprecision integer: its bit count, then its big-endian bytes."""
    bits = value.bit_length()
    return bits.to_bytes(2, "big") + value.to_bytes((bits + 7) // 8, "big")


def read_mpi(data: bytes, offset: int) -> tuple[int, int]:
    if offset + 2 > len(data):
        raise OpenPGPError("OpenPGP integer is truncated")
    size = (int.from_bytes(data[offset : offset + 2], "big") + 7) // 8
    end = offset + 2 + size
    if end > len(data):
        raise OpenPGPError("OpenPGP integer is truncated")
    return int.from_bytes(data[offset + 2 : end], "big"), end


# -- keys ------------------------------------------------------------------------------------
@dataclass(frozen=True, repr=False)
class SecretKey:
    """An RSA secret key read from an armored block; `created` is the armored key's own time
    (snapd ignores it: see FIXED_KEY_CREATION)."""

    private_key: rsa.RSAPrivateKey
    created: int

    def __repr__(self) -> str:
        return f"SecretKey(bits={self.private_key.key_size}, created={self.created})"


def parse_secret_key(armored: str) -> SecretKey:
    """The first secret-key packet (tag 5) of an armored, unencrypted v4 RSA key."""
    _, data = dearmor(armored)
    for item in read_packets(data):
        if item.tag == TAG_SECRET_KEY:
            return _secret_key_from_body(item.body)
    raise OpenPGPError("armored block holds no secret-key packet (tag 5)")


def _secret_key_from_body(body: bytes) -> SecretKey:
    if len(body) < 6:
        raise OpenPGPError("secret-key packet is truncated")
    if body[0] != 4:
        raise OpenPGPError(f"secret-key packet version {body[0]} is not 4")
    created = int.from_bytes(body[1:5], "big")
    if body[5] != ALGO_RSA:
        raise OpenPGPError(f"secret key's public-key algorithm {body[5]} is not RSA (1)")
    n, offset = read_mpi(body, 6)
    e, offset = read_mpi(body, offset)
    if offset >= len(body):
        raise OpenPGPError("secret-key packet is truncated")
    s2k_usage = body[offset]
    if s2k_usage != 0:
        raise OpenPGPError(
            f"secret key is encrypted (s2k usage {s2k_usage}); only unencrypted keys are read"
        )
    secret_start = offset + 1
    d, offset = read_mpi(body, secret_start)
    p, offset = read_mpi(body, offset)
    q, offset = read_mpi(body, offset)
    _u, offset = read_mpi(body, offset)  # p^-1 mod q: cryptography wants q^-1 mod p instead
    if offset + 2 > len(body):
        raise OpenPGPError("secret-key packet has no checksum")
    if sum(body[secret_start:offset]) & 0xFFFF != int.from_bytes(body[offset : offset + 2], "big"):
        raise OpenPGPError("secret-key packet fails its checksum")
    if p * q != n:
        raise OpenPGPError("secret key's primes do not multiply to its modulus")
    numbers = rsa.RSAPrivateNumbers(
        p=p,
        q=q,
        d=d,
        dmp1=rsa.rsa_crt_dmp1(d, p),
        dmq1=rsa.rsa_crt_dmq1(d, q),
        iqmp=rsa.rsa_crt_iqmp(p, q),
        public_numbers=rsa.RSAPublicNumbers(e, n),
    )
    try:
        private_key = numbers.private_key()
    except ValueError:
        raise OpenPGPError("secret key's numbers do not form a valid RSA key") from None
    return SecretKey(private_key, created)


def public_key_body(public_key: rsa.RSAPublicKey, created: int = FIXED_KEY_CREATION) -> bytes:
    numbers = public_key.public_numbers()
    return (
        bytes([4])
        + created.to_bytes(4, "big")
        + bytes([ALGO_RSA])
        + encode_mpi(numbers.n)
        + encode_mpi(numbers.e)
    )


def public_key_packet(public_key: rsa.RSAPublicKey, created: int = FIXED_KEY_CREATION) -> bytes:
    """The v4 public-key packet (tag 6) snapd derives from an RSA key."""
    return packet(TAG_PUBLIC_KEY, public_key_body(public_key, created))


def b64url(digest: bytes) -> str:
    """snapd's digest encoding in headers: base64url without padding."""
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def key_id(public_key: rsa.RSAPublicKey) -> str:
    """snapd's key id: base64url(sha3-384(0x01 || public-key packet)), unpadded."""
    digest = hashlib.sha3_384(bytes([ENCODING_VERSION]) + public_key_packet(public_key)).digest()
    return b64url(digest)


def fingerprint_v4(public_key: rsa.RSAPublicKey, created: int) -> bytes:
    """RFC 4880 §12.2's v4 fingerprint (gpg's key identity; snapd does not use it)."""
    body = public_key_body(public_key, created)
    return hashlib.sha1(b"\x99" + len(body).to_bytes(2, "big") + body).digest()  # noqa: S324


def encode_v1(data: bytes) -> str:
    """base64 of 0x01 || data, in lines of 76 (no final newline), as snapd encodes keys and
    signatures."""
    flat = base64.b64encode(bytes([ENCODING_VERSION]) + data).decode("ascii")
    return "\n".join(flat[i : i + LINE_LENGTH] for i in range(0, len(flat), LINE_LENGTH))


def decode_v1(text: str | bytes) -> bytes:
    """The packet inside snapd's encoding (the inverse of `encode_v1`)."""
    try:
        raw = base64.b64decode(b"".join(_as_bytes(text).split()), validate=True)
    except ValueError:
        raise OpenPGPError("encoded key or signature is not valid base64") from None
    if not raw:
        raise OpenPGPError("encoded key or signature is empty")
    if raw[0] != ENCODING_VERSION:
        raise OpenPGPError(f"unsupported encoding version {raw[0]} (snapd writes 1)")
    return raw[1:]


def _as_bytes(text: str | bytes) -> bytes:
    return text.encode("ascii") if isinstance(text, str) else text


# -- signatures ------------------------------------------------------------------------------
def _subpacket(kind: int, data: bytes) -> bytes:
    length = len(data) + 1
    if length >= 192:
        raise OpenPGPError("signature subpacket too long")
    return bytes([length, kind]) + data


def sign(
    private_key: rsa.RSAPrivateKey,
    content: bytes,
    created: int,
    issuer_key_id: bytes | None = None,
) -> bytes:
    """A v4 signature packet over `content` as snapd makes one (binary, RSA, SHA-512, the
    creation time hashed). `issuer_key_id` (8 bytes) adds an unhashed issuer subpacket: snapd
    neither writes nor needs one; gpg needs it to find the key when we cross-check with it."""
    hashed = _subpacket(SUBPACKET_CREATION_TIME, created.to_bytes(4, "big"))
    hashed_part = (
        bytes([4, SIGNATURE_BINARY, ALGO_RSA, HASH_SHA512])
        + len(hashed).to_bytes(2, "big")
        + hashed
    )
    digest = hashlib.sha512(content + hashed_part + _trailer(hashed_part)).digest()
    signature = private_key.sign(digest, padding.PKCS1v15(), utils.Prehashed(hashes.SHA512()))
    unhashed = b""
    if issuer_key_id is not None:
        if len(issuer_key_id) != 8:
            raise OpenPGPError("an issuer key id is 8 bytes")
        unhashed = _subpacket(SUBPACKET_ISSUER, issuer_key_id)
    body = (
        hashed_part
        + len(unhashed).to_bytes(2, "big")
        + unhashed
        + digest[:2]
        + encode_mpi(int.from_bytes(signature, "big"))
    )
    return packet(TAG_SIGNATURE, body)


def _trailer(hashed_part: bytes) -> bytes:
    return b"\x04\xff" + len(hashed_part).to_bytes(4, "big")


@dataclass(frozen=True)
class Signature:
    """A parsed v4 signature packet."""

    sig_type: int
    pubkey_algo: int
    hash_algo: int
    hashed_part: bytes = field(repr=False)  # version .. end of the hashed subpackets
    hashed_subpackets: tuple[tuple[int, bytes], ...]
    unhashed_subpackets: tuple[tuple[int, bytes], ...]
    hash_tag: bytes
    value: int = field(repr=False)

    @property
    def created(self) -> int | None:
        for kind, data in self.hashed_subpackets:
            if kind == SUBPACKET_CREATION_TIME and len(data) == 4:
                return int.from_bytes(data, "big")
        return None


def parse_signature(data: bytes) -> Signature:
    """The one v4 signature packet in `data` (a whole packet, header included)."""
    packets = list(read_packets(data))
    if len(packets) != 1 or packets[0].tag != TAG_SIGNATURE:
        raise OpenPGPError("expected exactly one signature packet (tag 2)")
    body = packets[0].body
    if len(body) < 6 or body[0] != 4:
        raise OpenPGPError("not a v4 signature packet")
    hashed_end = 6 + int.from_bytes(body[4:6], "big")
    if hashed_end + 2 > len(body):
        raise OpenPGPError("signature packet is truncated")
    unhashed_end = hashed_end + 2 + int.from_bytes(body[hashed_end : hashed_end + 2], "big")
    if unhashed_end + 2 > len(body):
        raise OpenPGPError("signature packet is truncated")
    value, end = read_mpi(body, unhashed_end + 2)
    if end != len(body):
        raise OpenPGPError("signature packet has trailing data")
    return Signature(
        sig_type=body[1],
        pubkey_algo=body[2],
        hash_algo=body[3],
        hashed_part=body[:hashed_end],
        hashed_subpackets=_read_subpackets(body[6:hashed_end]),
        unhashed_subpackets=_read_subpackets(body[hashed_end + 2 : unhashed_end]),
        hash_tag=body[unhashed_end : unhashed_end + 2],
        value=value,
    )


def _read_subpackets(data: bytes) -> tuple[tuple[int, bytes], ...]:
    found = []
    offset = 0
    while offset < len(data):
        length, offset = _subpacket_length(data, offset)
        if length == 0 or offset + length > len(data):
            raise OpenPGPError("signature subpacket is truncated")
        found.append((data[offset] & 0x7F, data[offset + 1 : offset + length]))
        offset += length
    return tuple(found)


def _subpacket_length(data: bytes, offset: int) -> tuple[int, int]:
    first = data[offset]
    if first < 192:
        return first, offset + 1
    if first < 255:
        return ((first - 192) << 8) + data[offset + 1] + 192, offset + 2
    return int.from_bytes(data[offset + 1 : offset + 5], "big"), offset + 5


def verify(public_key: rsa.RSAPublicKey, content: bytes, signature_packet: bytes) -> Signature:
    """Check `signature_packet` over `content` in the order snapd's verifier does; raises
    `SignatureInvalid` with its reason, returns the parsed signature."""
    sig = parse_signature(signature_packet)
    if sig.hash_algo != HASH_SHA512:
        raise OpenPGPError(f"signature hash algorithm {sig.hash_algo} is not SHA-512 (10)")
    if sig.created is None:
        raise OpenPGPError("no creation time in signature")
    digest = hashlib.sha512(content + sig.hashed_part + _trailer(sig.hashed_part)).digest()
    if digest[:2] != sig.hash_tag:
        raise SignatureInvalid(HASH_TAG_MISMATCH)
    if sig.pubkey_algo != ALGO_RSA:
        raise OpenPGPError(f"signature public-key algorithm {sig.pubkey_algo} is not RSA (1)")
    size = (public_key.key_size + 7) // 8
    try:
        public_key.verify(
            sig.value.to_bytes(size, "big"),
            digest,
            padding.PKCS1v15(),
            utils.Prehashed(hashes.SHA512()),
        )
    except (InvalidSignature, OverflowError):  # overflow: a value wider than the key
        raise SignatureInvalid(RSA_FAILURE) from None
    return sig

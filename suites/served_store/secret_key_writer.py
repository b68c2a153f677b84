"""An armored OpenPGP v4 RSA secret key written from RFC 4880 by the tests themselves (not by the
code under test), in the form gpg v1 wrote snapd's test keys, with switches for broken ones."""

from __future__ import annotations

import base64

from cryptography.hazmat.primitives.asymmetric import rsa


def crc24(data: bytes) -> int:
    """RFC 4880 §6.1, written out again here."""
    crc = 0xB704CE
    for byte in data:
        crc ^= byte << 16
        for _ in range(8):
            crc <<= 1
            if crc & 0x1000000:
                crc ^= 0x1864CFB
    return crc & 0xFFFFFF


def mpi(value: int) -> bytes:
    size = value.bit_length()
    return size.to_bytes(2, "big") + value.to_bytes((size + 7) // 8, "big")


def armored_secret_key(
    key: rsa.RSAPrivateKey,
    created: int = 1,
    *,
    s2k_usage: int = 0,
    algorithm: int = 1,
    new_format: bool = False,
    bad_crc: bool = False,
    bad_checksum: bool = False,
) -> str:
    """An armored v4 secret key as gpg v1 wrote snapd's test keys (old-format header)."""
    numbers = key.private_numbers()
    public = numbers.public_numbers
    secret = mpi(numbers.d) + mpi(numbers.p) + mpi(numbers.q)
    secret += mpi(pow(numbers.p, -1, numbers.q))  # RFC 4880's u = p^-1 mod q
    checksum = (sum(secret) + (1 if bad_checksum else 0)) & 0xFFFF
    body = bytes([4]) + created.to_bytes(4, "big") + bytes([algorithm])
    body += mpi(public.n) + mpi(public.e) + bytes([s2k_usage]) + secret
    body += checksum.to_bytes(2, "big")
    if new_format:
        assert 192 <= len(body) < 8384
        length = len(body) - 192
        data = bytes([0xC5, 192 + (length >> 8), length & 0xFF]) + body
    else:
        data = bytes([0x95]) + len(body).to_bytes(2, "big") + body
    crc = crc24(data) ^ (1 if bad_crc else 0)
    text = base64.b64encode(data).decode()
    lines = [text[i : i + 64] for i in range(0, len(text), 64)]
    crc_line = "=" + base64.b64encode(crc.to_bytes(3, "big")).decode()
    return "\n".join(
        [
            "-----BEGIN PGP PRIVATE KEY BLOCK-----",
            "Version: GnuPG v1",
            "",
            *lines,
            crc_line,
            "-----END PGP PRIVATE KEY BLOCK-----",
            "",
        ]
    )

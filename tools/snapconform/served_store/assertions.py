"""snapd's assertions in their text form, signed with the test keys a test-keys snapd trusts.

The text form (snapd's asserts/asserts.go assembleAndSign): `type: T`, then `format` (if > 0),
`authority-id`, `signatory-id` (if it differs), `revision` (if > 0), the type's primary keys in
the type's order (an optional one left out when it has its default), the other headers sorted,
`body-length` (if there is a body), `sign-key-sha3-384`; a blank line and the body, if any;
that is the signed content. Then a blank line, the signature (see `openpgp`) and a newline.

What snapd checks (asserts/*.go of 2.57.6): snap-declaration needs snap-name, publisher-id
(an account snapd has) and timestamp; snap-revision needs snap-sha3-384 (base64url of the
file's sha3-384), snap-id, snap-size, snap-revision, developer-id (an account snapd has) and
timestamp, a snap-declaration for its snap-id, and a directly trusted authority; account-key
needs account-id, since (until optional), a name matching its pattern, and a body whose key id
is public-key-sha3-384; account needs display-name, validation and timestamp. An assertion's
timestamp must lie within its signing key's since/until. The test-keys snapd already trusts
the `testrootorg` account and its root key; the store key's account-key must be served.
"""

from __future__ import annotations

import hashlib
import re
import string
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric import rsa

from snapconform.served_store import openpgp

AUTHORITY = "testrootorg"  # the test root account a test-keys snapd trusts (systestkeys)
SERIES = "16"

# Key ids of snapd's test keys (asserts/systestkeys/trusted.go TestStoreKeyID, TestRootKeyID).
TEST_STORE_KEY_ID = "XCIC_Wvj9_hiAt0b10sDon74oGr3a6xGODkMZqrj63ZzNYUD5N87-ojjPoeN7f1Y"
TEST_ROOT_KEY_ID = "hIedp1AvrWlcDI4uS_qjoFLzjKl5enu4G2FYJpgB3Pj-tUzGlTQBxMBsBmi-tnJR"
# The test store key's own account-key (systestkeys encodedTestStoreAccountKey): its name and
# since, which our account-key repeats (snapd refuses two keys of one account under one name).
TEST_STORE_KEY_NAME = "test-store"
TEST_STORE_KEY_SINCE = datetime(2016, 8, 11, 16, 42, 22, tzinfo=UTC)

# Primary keys per type, in the type's order; an optional key's default is left out of the text.
PRIMARY_KEYS: dict[str, tuple[str, ...]] = {
    "account": ("account-id",),
    "account-key": ("public-key-sha3-384",),
    "snap-declaration": ("series", "snap-id"),
    "snap-revision": ("snap-sha3-384", "provenance"),
}
PRIMARY_KEY_DEFAULTS: dict[str, dict[str, str]] = {
    "snap-revision": {"provenance": "global-upload"},
}

_HEADER_NAME = re.compile(r"^[a-z](?:-?[a-z0-9])*$")  # snapd's headerNameValidity
_FIRST_HEADERS = ("type", "format", "authority-id", "signatory-id", "revision")
_LAST_HEADERS = ("body-length", "sign-key-sha3-384")
_SNAP_ID_ALPHABET = string.ascii_letters + string.digits
SNAP_ID_LENGTH = 32


class AssertionBuildError(ValueError):
    """An assertion we cannot build or change; one line, never key material."""


class TestKeysError(RuntimeError):
    """The test keys cannot be read; names the file, never its content."""

    __test__ = False  # not a pytest class


@dataclass(frozen=True, repr=False, eq=False)
class Signer:
    """An RSA key signing as snapd does; its id and encoded public key as snapd derives them."""

    private_key: rsa.RSAPrivateKey
    key_id: str
    public_key_encoded: str  # an account-key body: base64 of 0x01 || public-key packet

    @classmethod
    def from_private_key(cls, private_key: rsa.RSAPrivateKey) -> Signer:
        public = private_key.public_key()
        return cls(
            private_key=private_key,
            key_id=openpgp.key_id(public),
            public_key_encoded=openpgp.encode_v1(openpgp.public_key_packet(public)),
        )

    @classmethod
    def from_armored(cls, text: str) -> Signer:
        """From an armored, unencrypted OpenPGP RSA secret key (snapd's trusted.go form)."""
        return cls.from_private_key(openpgp.parse_secret_key(text).private_key)

    @classmethod
    def generate(cls, bits: int = 2048) -> Signer:
        """A fresh key, for offline tests (snapd's own keys are 4096 bits; its verifier takes
        any size)."""
        return cls.from_private_key(rsa.generate_private_key(public_exponent=65537, key_size=bits))

    @property
    def public_key(self) -> rsa.RSAPublicKey:
        return self.private_key.public_key()

    @property
    def public_key_b64(self) -> str:
        """The name CONTRACTS.md gives `public_key_encoded`."""
        return self.public_key_encoded

    def __repr__(self) -> str:
        return f"Signer(key_id={self.key_id!r}, bits={self.private_key.key_size})"


@dataclass(frozen=True, repr=False)
class TestKeys:
    """snapd's test store and root keys, as a test-keys build's cache holds them."""

    __test__ = False  # not a pytest class

    store: Signer
    root: Signer

    @classmethod
    def load(cls, keys_dir: Path) -> TestKeys:
        """Reads `store.key` and `root.key` (armored) from `keys_dir`; checks their ids are the
        ids snapd's test keys have."""
        store = _load_signer(keys_dir / "store.key", "store", TEST_STORE_KEY_ID)
        root = _load_signer(keys_dir / "root.key", "root", TEST_ROOT_KEY_ID)
        return cls(store=store, root=root)

    def __repr__(self) -> str:
        return f"TestKeys(store={self.store.key_id!r}, root={self.root.key_id!r})"


def _load_signer(path: Path, role: str, expected_id: str) -> Signer:
    try:
        text = path.read_text(encoding="ascii")
    except UnicodeDecodeError:
        raise TestKeysError(f"cannot read the test {role} key {path}: not ASCII text") from None
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        raise TestKeysError(f"cannot read the test {role} key {path}: {reason}") from None
    try:
        signer = Signer.from_armored(text)
    except openpgp.OpenPGPError as exc:
        raise TestKeysError(f"cannot read the test {role} key {path}: {exc}") from None
    if signer.key_id != expected_id:
        raise TestKeysError(
            f"{path} has key id {signer.key_id}, but snapd's test {role} key is {expected_id}"
        )
    return signer


# -- the text form ---------------------------------------------------------------------------
def sign(
    headers: Mapping[str, str],
    body: bytes | None,
    signer: Signer,
    *,
    authority: str = AUTHORITY,
    signed_at: int | None = None,
) -> bytes:
    """The assertion's text form signed by `signer`: `headers` must hold `type` and the type's
    primary keys; `authority-id`, `body-length` and `sign-key-sha3-384` are set here.
    `signed_at` (unix seconds, default now) is the signature's creation time."""
    final = dict(headers)
    kind = final.get("type")
    if kind not in PRIMARY_KEYS:
        known = ", ".join(sorted(PRIMARY_KEYS))
        raise AssertionBuildError(f"cannot sign assertion type {kind!r}: not one of {known}")
    for name, value in final.items():
        if not _HEADER_NAME.match(name):
            raise AssertionBuildError(f"cannot sign {kind}: header name {name!r} is not valid")
        if not isinstance(value, str):
            raise AssertionBuildError(f"cannot sign {kind}: header {name!r} is not a string")
    for name in _LAST_HEADERS:
        if name in final:
            raise AssertionBuildError(f"cannot sign {kind}: header {name!r} is set by the signer")
    body = body or b""
    try:
        body.decode("utf-8")
    except UnicodeDecodeError:
        raise AssertionBuildError(f"cannot sign {kind}: the body is not UTF-8") from None
    final["authority-id"] = authority
    if final.get("signatory-id") == authority:
        del final["signatory-id"]
    for name in ("format", "revision"):
        if name in final and not final[name].isdigit():
            raise AssertionBuildError(f"cannot sign {kind}: {name} {final[name]!r} is not a number")
        if name in final and int(final[name]) == 0:
            del final[name]

    order = [name for name in _FIRST_HEADERS if name in final]
    defaults = PRIMARY_KEY_DEFAULTS.get(kind, {})
    for name in PRIMARY_KEYS[kind]:
        value = final.get(name)
        if value is None and name in defaults:
            continue
        if not value:
            raise AssertionBuildError(f"cannot sign {kind}: primary key {name!r} is missing")
        if "/" in value:
            raise AssertionBuildError(f"cannot sign {kind}: primary key {name!r} contains '/'")
        if value == defaults.get(name):
            del final[name]
            continue
        order.append(name)
    order += sorted(name for name in final if name not in order)
    if body:
        final["body-length"] = str(len(body))
        order.append("body-length")
    final["sign-key-sha3-384"] = signer.key_id
    order.append("sign-key-sha3-384")

    content = "\n".join(_header_line(name, final[name]) for name in order).encode("utf-8")
    if body:
        content += b"\n\n" + body
    created = int(time.time()) if signed_at is None else signed_at
    signature = openpgp.sign(signer.private_key, content, created)
    return content + b"\n\n" + openpgp.encode_v1(signature).encode("ascii") + b"\n"


def _header_line(name: str, value: str) -> str:
    if "\n" in value:  # snapd indents a multi-line value by four spaces
        return f"{name}:\n    " + value.replace("\n", "\n    ")
    return f"{name}: {value}"


@dataclass(frozen=True)
class Parsed:
    """An assertion split as snapd splits it: the signed content, headers, body, signature."""

    content: bytes
    headers: dict[str, str]
    header_order: tuple[str, ...]
    body: bytes
    signature: bytes  # the OpenPGP signature packet


def parse(assertion: bytes) -> Parsed:
    """Split the text form (simple and multi-line string headers only) like snapd's Decode."""
    trimmed = assertion[:-1] if assertion.endswith(b"\n") else assertion
    split = trimmed.rfind(b"\n\n")
    if split < 0:
        raise AssertionBuildError("not an assertion: no blank line before the signature")
    content, encoded_signature = trimmed[:split], trimmed[split + 2 :]
    head, _, body = content.partition(b"\n\n")
    headers: dict[str, str] = {}
    order: list[str] = []
    lines = head.decode("utf-8").split("\n")
    index = 0
    while index < len(lines):
        name, sep, value = lines[index].partition(":")
        if not sep or not _HEADER_NAME.match(name):
            raise AssertionBuildError(f"not an assertion header line: {lines[index][:60]!r}")
        index += 1
        if value == "":
            continuation = []
            while index < len(lines) and lines[index].startswith("    "):
                continuation.append(lines[index][4:])
                index += 1
            value = "\n".join(continuation)
        elif value.startswith(" "):
            value = value[1:]
        headers[name] = value
        order.append(name)
    return Parsed(
        content=content,
        headers=headers,
        header_order=tuple(order),
        body=body,
        signature=openpgp.decode_v1(encoded_signature),
    )


def verify(assertion: bytes, signer: Signer) -> None:
    """Raises `openpgp.SignatureInvalid` (snapd's reason) unless `signer` signed `assertion`."""
    parsed = parse(assertion)
    openpgp.verify(signer.public_key, parsed.content, parsed.signature)


def tamper(assertion: bytes, header: str, value: str) -> bytes:
    """The assertion with one single-line header's value changed after signing (the signature
    kept): what a misbehaving store serves."""
    if "\n" in value:
        raise AssertionBuildError("a tampered header value must be one line")
    head_end = assertion.find(b"\n\n")
    if head_end < 0:
        raise AssertionBuildError("not an assertion: no blank line before the signature")
    head = assertion[:head_end]
    pattern = re.compile(rb"^" + re.escape(header.encode("utf-8")) + rb": .*$", re.MULTILINE)
    if not pattern.search(head):
        raise AssertionBuildError(f"cannot tamper: the assertion has no one-line {header!r} header")
    new_head = pattern.sub(lambda _: header.encode("utf-8") + b": " + value.encode("utf-8"), head)
    return new_head + assertion[head_end:]


# -- helpers for the values ------------------------------------------------------------------
def sha3_384_b64url(data: bytes) -> str:
    """snap-revision's snap-sha3-384: base64url, unpadded, of the file's sha3-384."""
    return openpgp.b64url(hashlib.sha3_384(data).digest())


def sha3_384_b64url_from_hex(hex_digest: str) -> str:
    """The same digest from its hex form (the store's JSON carries hex)."""
    raw = bytes.fromhex(hex_digest)
    if len(raw) != 48:
        raise AssertionBuildError(f"a sha3-384 digest is 48 bytes, got {len(raw)}")
    return openpgp.b64url(raw)


def snap_id_for(name: str) -> str:
    """A deterministic 32-character [A-Za-z0-9] snap-id for a snap name."""
    number = int.from_bytes(hashlib.sha256(b"snapconform snap-id " + name.encode()).digest())
    chars = []
    for _ in range(SNAP_ID_LENGTH):
        number, digit = divmod(number, len(_SNAP_ID_ALPHABET))
        chars.append(_SNAP_ID_ALPHABET[digit])
    return "".join(chars)


def rfc3339(moment: datetime | None = None) -> str:
    """A timestamp header (UTC, seconds), default now."""
    moment = moment or datetime.now(UTC)
    if moment.tzinfo is None:
        raise AssertionBuildError("timestamps must carry a timezone")
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


# -- builders --------------------------------------------------------------------------------
def snap_declaration(
    signer: Signer,
    *,
    snap_id: str,
    snap_name: str,
    publisher_id: str = AUTHORITY,
    timestamp: datetime | None = None,
    revision: int = 0,
) -> bytes:
    """A snap-declaration (series 16) signed by `signer` (the store key)."""
    headers = {
        "type": "snap-declaration",
        "series": SERIES,
        "snap-id": snap_id,
        "snap-name": snap_name,
        "publisher-id": publisher_id,
        "timestamp": rfc3339(timestamp),
        "revision": str(revision),
    }
    return sign(headers, None, signer)


def snap_revision(
    signer: Signer,
    *,
    snap_sha3_384: str,
    snap_size: int,
    snap_revision: int,
    snap_id: str,
    developer_id: str = AUTHORITY,
    timestamp: datetime | None = None,
) -> bytes:
    """A snap-revision for one file (`snap_sha3_384` is `sha3_384_b64url(file bytes)`)."""
    if snap_revision < 1:
        raise AssertionBuildError(f"a store revision is a positive number, got {snap_revision}")
    headers = {
        "type": "snap-revision",
        "snap-sha3-384": snap_sha3_384,
        "snap-id": snap_id,
        "snap-size": str(snap_size),
        "snap-revision": str(snap_revision),
        "developer-id": developer_id,
        "timestamp": rfc3339(timestamp),
    }
    return sign(headers, None, signer)


def account_key(
    signer: Signer,
    key: Signer,
    *,
    account_id: str = AUTHORITY,
    name: str = TEST_STORE_KEY_NAME,
    since: datetime = TEST_STORE_KEY_SINCE,
    until: datetime | None = None,
) -> bytes:
    """The account-key for `key`, signed by `signer` (the root key for the store key)."""
    headers = {
        "type": "account-key",
        "account-id": account_id,
        "name": name,
        "public-key-sha3-384": key.key_id,
        "since": rfc3339(since),
    }
    if until is not None:
        headers["until"] = rfc3339(until)
    return sign(headers, key.public_key_encoded.encode("ascii"), signer)


def account(
    signer: Signer,
    *,
    account_id: str,
    display_name: str,
    username: str | None = None,
    validation: str = "unproven",
    timestamp: datetime | None = None,
) -> bytes:
    """An account (only needed for a publisher other than testrootorg, which snapd trusts)."""
    headers = {
        "type": "account",
        "account-id": account_id,
        "display-name": display_name,
        "validation": validation,
        "timestamp": rfc3339(timestamp),
    }
    if username is not None:
        headers["username"] = username
    return sign(headers, None, signer)

"""The store real snapd talks to. Runs INSIDE the host under test, on the host's own python3.

Standard library only, plus the `snapconform/model` package copied next to this file: every
choice of revision comes from `snapconform.model.store.Store`, replayed from the catalog's channel
log, so the served store and the model cannot drift. It binds 127.0.0.1:PORT only.

    python3 server_program.py --port PORT --catalog DIR --log FILE

DIR holds `catalog.json` (format: `snapconform.served_store.catalog`), `files/` (the .snap
blobs) and `assertions/TYPE/KEY...` (pre-signed on the controller; nothing is signed here).
catalog.json is read again whenever it changes, so the harness can rewrite it at each step.
Every request becomes one JSON line in FILE (ASCII, written before the reply is sent):
time, method, path, the request body for a POST, the status, and what was answered.

Endpoints (snapd's store protocol, reference/store.md):
- POST /v2/snaps/refresh: install, download and refresh actions; `fetch-assertions` (snapd's
  bulk refresh of snap-declarations before `snap refresh`): per group the stream URLs of what
  the catalog holds at a newer revision than snapd's, not-found errors for what it lacks, and
  no results at all when snapd is up to date (one POST instead of a 400 and a GET per
  assertion); while assertions are tampered it answers 400, so snapd GETs each one and meets
  the tampered copy as it always did;
- GET /v2/assertions/TYPE/KEY...: the file, or 404 with snapd's problem+json error list;
- GET /download/FILE: the blob (Range `bytes=N-` resumes with 206).

When started by systemd as Type=notify it says READY=1 once it is listening.
"""

from __future__ import annotations

import argparse
import dataclasses
import enum
import hashlib
import json
import os
import re
import signal
import socket
import sys
import threading
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

from snapconform.model.epoch import Epoch, EpochError
from snapconform.model.store import Answer, Policies, Store, StoreError

CATALOG_FORMAT = 1
LISTEN_ADDRESS = "127.0.0.1"
DEFAULT_ARCHITECTURE = "amd64"  # when snapd sends no Snap-Device-Architecture header
DEFAULT_CHANNEL = "stable"
ASSERTION_TYPE = "application/x.ubuntu.assertion"
PROBLEM_TYPE = "application/problem+json"
JSON_TYPE = "application/json"
CHUNK = 1 << 16
# A path segment of an assertion or file name: no separators, no dot-only names.
SEGMENT = re.compile(r"(?!\.\.?$)[A-Za-z0-9._=~+-]+")
SNAP_EVENTS = ("release", "close", "unrelease")
# Request headers worth keeping in the log: why snapd asked (an auto-refresh says "scheduled")
# and what it said about the device.
LOGGED_HEADERS = (
    "Snap-Refresh-Reason",
    "Snap-Refresh-Managed",
    "Snap-Device-Architecture",
    "Snap-Device-Series",
    "Snap-Classic",
    "Snap-Accept-Delta-Format",
    "Range",
)


class CatalogError(ValueError):
    """catalog.json cannot be served; str() is one line naming where and what."""


# -- the catalog -----------------------------------------------------------------------------


@dataclass(frozen=True)
class RevisionMeta:
    revision: int
    version: str
    epoch: Epoch
    type: str
    confinement: str
    file: str
    sha3_384: str
    size: int
    created_at: str


@dataclass(frozen=True)
class SnapEntry:
    name: str
    snap_id: str
    publisher: dict[str, str]
    store: Store
    revisions: dict[int, RevisionMeta]


@dataclass(frozen=True)
class Misbehaviour:
    """Answers the model says a store never gives (see the catalog module for the format)."""

    status: int | None = None
    offer_unreadable: dict[str, int | None] = dataclasses.field(default_factory=dict)
    report_epoch: dict[str, dict[int, Epoch]] = dataclasses.field(default_factory=dict)
    wrong_sha3_384: dict[str, frozenset[int] | None] = dataclasses.field(default_factory=dict)
    tampered_assertions: dict[str, str] = dataclasses.field(default_factory=dict)


@dataclass(frozen=True)
class Catalog:
    root: Path
    digest: str  # sha256 of catalog.json, so each log line says which catalog answered
    snaps: dict[str, SnapEntry]
    by_id: dict[str, SnapEntry]
    misbehave: Misbehaviour


def _where(*parts: object) -> str:
    return "catalog.json: " + " ".join(str(part) for part in parts if part != "")


def _require(value: Any, kind: type | tuple[type, ...], where: str) -> Any:
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        names = kind.__name__ if isinstance(kind, type) else " or ".join(k.__name__ for k in kind)
        raise CatalogError(f"{where}: expected {names}, got {json.dumps(value)[:80]}")
    return value


def epoch_from_json(value: Any, where: str) -> Epoch:
    """An epoch as the store speaks it ({"read": [...], "write": [...]}, a string, or null)."""
    try:
        return Epoch.parse_json(json.dumps(value))
    except EpochError as exc:
        raise CatalogError(f"{where}: bad epoch {json.dumps(value)}: {exc}") from None


def epoch_to_json(epoch: Epoch) -> dict[str, list[int]]:
    return {"read": list(epoch.read), "write": list(epoch.write)}


def policies_from_json(value: Any, where: str) -> Policies:
    """Policies by field name; enum fields take the enum's value, booleans a JSON boolean."""
    _require(value, dict, where)
    defaults = Policies()
    chosen: dict[str, Any] = {}
    known = {field.name: getattr(defaults, field.name) for field in dataclasses.fields(Policies)}
    for key, raw in value.items():
        if key not in known:
            raise CatalogError(f"{where}: unknown policy {key!r} (known: {', '.join(known)})")
        default = known[key]
        if isinstance(default, enum.Enum):
            try:
                chosen[key] = type(default)(raw)
            except ValueError:
                values = ", ".join(str(member.value) for member in type(default))
                raise CatalogError(f"{where}.{key}: {raw!r} is not one of {values}") from None
        else:
            chosen[key] = _require(raw, type(default), f"{where}.{key}")
    return dataclasses.replace(defaults, **chosen)


def replay(store: Store, events: list[Any], where: str) -> Store:
    """The store after the channel log's events, applied in order through the model."""
    for number, event in enumerate(_require(events, list, where), start=1):
        here = f"{where}[{number}]"
        _require(event, dict, here)
        kind = event.get("event")
        if kind not in SNAP_EVENTS:
            raise CatalogError(f"{here}: unknown event {kind!r} (known: {', '.join(SNAP_EVENTS)})")
        channel = _require(event.get("channel"), str, f"{here}.channel")
        try:
            if kind == "release":
                revision = _require(event.get("revision"), int, f"{here}.revision")
                epoch = epoch_from_json(event.get("epoch"), f"{here}.epoch")
                store = store.release(channel, revision, epoch)
                continue
            apply: Callable[[str], Store] | None = getattr(store, kind, None)
            if apply is None:
                raise CatalogError(
                    f"{here}: cannot replay {kind} {channel!r}: this copy of"
                    f" snapconform.model.store.Store has no {kind}() method"
                )
            store = apply(channel)
        except StoreError as exc:
            raise CatalogError(f"{here}: {kind} {channel!r}: {exc}") from None
    return store


def _revision_meta(number: int, raw: Any, where: str, root: Path) -> RevisionMeta:
    _require(raw, dict, where)
    file = _require(raw.get("file"), str, f"{where}.file")
    if not SEGMENT.fullmatch(file):
        raise CatalogError(f"{where}.file: {file!r} is not a plain file name")
    if not (root / "files" / file).is_file():
        raise CatalogError(f"{where}.file: files/{file} does not exist")
    sha3 = _require(raw.get("sha3-384"), str, f"{where}.sha3-384")
    if not re.fullmatch(r"[0-9a-f]{96}", sha3):
        raise CatalogError(f"{where}.sha3-384: {sha3!r} is not 96 lower-case hex digits")
    return RevisionMeta(
        revision=number,
        version=_require(raw.get("version"), str, f"{where}.version"),
        epoch=epoch_from_json(raw.get("epoch"), f"{where}.epoch"),
        type=_require(raw.get("type", "app"), str, f"{where}.type"),
        confinement=_require(raw.get("confinement", "strict"), str, f"{where}.confinement"),
        file=file,
        sha3_384=sha3,
        size=_require(raw.get("size"), int, f"{where}.size"),
        created_at=_require(raw.get("created-at", ""), str, f"{where}.created-at"),
    )


def _snap_entry(name: str, raw: Any, root: Path) -> SnapEntry:
    where = _where(f"snaps.{name}")
    _require(raw, dict, where)
    snap_id = _require(raw.get("snap-id"), str, f"{where}.snap-id")
    publisher = _require(raw.get("publisher"), dict, f"{where}.publisher")
    for key in ("id", "username", "display-name"):
        _require(publisher.get(key), str, f"{where}.publisher.{key}")
    risks = _require(raw.get("risks", list(Store().risks)), list, f"{where}.risks")
    try:
        empty = Store(
            risks=tuple(risks), policies=policies_from_json(raw.get("policies", {}), where)
        )
    except StoreError as exc:
        raise CatalogError(f"{where}.risks: {exc}") from None
    revisions: dict[int, RevisionMeta] = {}
    for key, meta in _require(raw.get("revisions", {}), dict, f"{where}.revisions").items():
        if not re.fullmatch(r"[1-9][0-9]*", key):
            raise CatalogError(f"{where}.revisions: {key!r} is not a store revision number")
        revisions[int(key)] = _revision_meta(int(key), meta, f"{where}.revisions.{key}", root)
    store = replay(empty, raw.get("events", []), f"{where}.events")
    for release in store.releases:
        meta_of = revisions.get(release.revision)
        if meta_of is None:
            raise CatalogError(f"{where}: revision {release.revision} is released but not listed")
        if meta_of.epoch != release.epoch:
            raise CatalogError(
                f"{where}: revision {release.revision} is released with epoch {release.epoch}"
                f" but listed with epoch {meta_of.epoch} (use misbehave.report-epoch to lie)"
            )
    return SnapEntry(name, snap_id, dict(publisher), store, revisions)


def _misbehaviour(raw: Any, snaps: dict[str, SnapEntry], root: Path) -> Misbehaviour:
    where = _where("misbehave")
    _require(raw, dict, where)
    known = ("status", "offer-unreadable", "report-epoch", "wrong-sha3-384", "tampered-assertions")
    for key in raw:
        if key not in known:
            raise CatalogError(f"{where}: unknown key {key!r} (known: {', '.join(known)})")

    def snap_map(key: str) -> dict[str, Any]:
        value = _require(raw.get(key, {}), dict, f"{where}.{key}")
        for name in value:
            if name not in snaps:
                raise CatalogError(f"{where}.{key}: no snap {name!r} in the catalog")
        return value

    status = raw.get("status")
    if status is not None:
        _require(status, int, f"{where}.status")
        if not 400 <= status <= 599:
            raise CatalogError(f"{where}.status: {status} is not an HTTP error status")
    offer: dict[str, int | None] = {}
    for name, revision in snap_map("offer-unreadable").items():
        if revision is not None:
            _require(revision, int, f"{where}.offer-unreadable.{name}")
            if revision not in snaps[name].revisions:
                raise CatalogError(f"{where}.offer-unreadable.{name}: no revision {revision}")
        offer[name] = revision
    report: dict[str, dict[int, Epoch]] = {}
    for name, per_revision in snap_map("report-epoch").items():
        _require(per_revision, dict, f"{where}.report-epoch.{name}")
        report[name] = {
            int(rev): epoch_from_json(epoch, f"{where}.report-epoch.{name}.{rev}")
            for rev, epoch in per_revision.items()
        }
    wrong: dict[str, frozenset[int] | None] = {}
    for name, revisions in snap_map("wrong-sha3-384").items():
        if revisions is not None:
            _require(revisions, list, f"{where}.wrong-sha3-384.{name}")
        wrong[name] = None if revisions is None else frozenset(revisions)
    tampered: dict[str, str] = {}
    for key, file in _require(raw.get("tampered-assertions", {}), dict, where).items():
        _require(file, str, f"{where}.tampered-assertions.{key}")
        if not _safe_relative(file) or not (root / file).is_file():
            raise CatalogError(f"{where}.tampered-assertions.{key}: no file {file!r}")
        tampered[key] = file
    return Misbehaviour(status, offer, report, wrong, tampered)


def _safe_relative(path: str) -> bool:
    return all(SEGMENT.fullmatch(part) for part in path.split("/"))


def load_catalog(root: Path) -> Catalog:
    """Read DIR/catalog.json and replay every snap's channel log through the model."""
    path = root / "catalog.json"
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise CatalogError(f"cannot read {path}: {exc.strerror}") from None
    try:
        document = json.loads(data)
    except ValueError as exc:
        raise CatalogError(f"catalog.json is not JSON: {exc}") from None
    _require(document, dict, _where("top level"))
    if document.get("format") != CATALOG_FORMAT:
        raise CatalogError(
            _where(f"format is {document.get('format')!r}, this server reads {CATALOG_FORMAT}")
        )
    snaps: dict[str, SnapEntry] = {}
    for name, raw in _require(document.get("snaps", {}), dict, _where("snaps")).items():
        snaps[name] = _snap_entry(name, raw, root)
    by_id: dict[str, SnapEntry] = {}
    for entry in snaps.values():
        if entry.snap_id in by_id:
            raise CatalogError(
                _where(
                    f"snaps {by_id[entry.snap_id].name} and {entry.name}"
                    f" share snap-id {entry.snap_id}"
                )
            )
        by_id[entry.snap_id] = entry
    misbehave = _misbehaviour(document.get("misbehave", {}), snaps, root)
    digest = hashlib.sha256(data).hexdigest()[:16]
    return Catalog(root, digest, snaps, by_id, misbehave)


class CatalogSource:
    """The current catalog, read again when catalog.json changes (the harness swaps it)."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self._lock = threading.Lock()
        self._stamp: tuple[Any, ...] | None = None
        self._catalog: Catalog | None = None
        self._error: CatalogError | None = None

    def current(self) -> Catalog:
        """The catalog to answer from; raises CatalogError when the present one is bad."""
        with self._lock:
            stamp = self._stat()
            if stamp != self._stamp:
                self._stamp = stamp
                try:
                    # The directory may be a symlink the harness swaps: resolve it once, so
                    # one catalog never mixes files of two generations.
                    self._catalog = load_catalog(self.directory.resolve())
                    self._error = None
                except CatalogError as exc:
                    self._catalog, self._error = None, exc
            if self._error is not None:
                raise self._error
            assert self._catalog is not None
            return self._catalog

    def _stat(self) -> tuple[Any, ...]:
        try:
            info = (self.directory / "catalog.json").stat()
        except OSError:
            return ("missing", os.path.realpath(self.directory))
        resolved = os.path.realpath(self.directory)
        return (resolved, info.st_dev, info.st_ino, info.st_mtime_ns, info.st_size)


# -- answering snap actions ------------------------------------------------------------------


@dataclass
class Reply:
    status: int
    body: bytes
    content_type: str
    log: dict[str, Any]
    file: Path | None = None  # streamed after the headers (downloads)
    offset: int = 0
    length: int = 0


def json_reply(
    status: int, document: Any, log: dict[str, Any], content_type: str = JSON_TYPE
) -> Reply:
    body = json.dumps(document, separators=(",", ":")).encode()
    return Reply(status, body, content_type, log)


def problem(status: int, code: str, message: str, log: dict[str, Any] | None = None) -> Reply:
    entry = {"code": code, "message": message}
    return json_reply(
        status, {"error-list": [entry]}, {**(log or {}), "error": entry}, PROBLEM_TYPE
    )


def canonical_channel(store: Store, text: str) -> str:
    """snapd's channel text as the model names it: a bare track means its stable risk."""
    text = text or DEFAULT_CHANNEL
    if "/" not in text and text not in store.risks:
        text = f"{text}/{DEFAULT_CHANNEL}"
    return store.channel(text)


def full_channel(channel: str) -> str:
    return channel if "/" in channel else f"latest/{channel}"


def open_channels(store: Store) -> list[str]:
    seen: list[str] = []
    for release in store.releases:
        if release.channel not in seen and store.is_open(release.channel):
            seen.append(release.channel)
    return seen


class ActionContext:
    """One POST /v2/snaps/refresh: the catalog, the device's architecture, this server's URL."""

    def __init__(self, catalog: Catalog, architecture: str, base_url: str) -> None:
        self.catalog = catalog
        self.architecture = architecture
        self.base_url = base_url

    # -- results ---------------------------------------------------------------------------

    def error(
        self,
        code: str,
        message: str,
        action: dict[str, Any],
        *,
        name: str | None = None,
        snap_id: str | None = None,
        releases: list[str] | None = None,
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        error: dict[str, Any] = {"code": code, "message": message}
        if releases:
            error["extra"] = {
                "releases": [
                    {"architecture": self.architecture, "channel": full_channel(channel)}
                    for channel in releases
                ]
            }
        result: dict[str, Any] = {
            "result": "error",
            "instance-key": action.get("instance-key", ""),
            "error": error,
        }
        if name:
            result["name"] = name
        if snap_id:
            result["snap-id"] = snap_id
        log = {
            "result": "error",
            "instance-key": result["instance-key"],
            "name": name,
            "code": code,
            "message": message,
        }
        if releases:
            log["releases"] = releases
        return result, log

    def snap_result(
        self,
        kind: str,
        action: dict[str, Any],
        entry: SnapEntry,
        revision: int,
        effective_channel: str | None,
        why: str,
        misbehaved: list[str],
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        meta = entry.revisions[revision]
        lies = self.catalog.misbehave
        epoch = lies.report_epoch.get(entry.name, {}).get(revision)
        if epoch is not None:
            misbehaved.append("report-epoch")
        else:
            epoch = meta.epoch
        sha3 = meta.sha3_384
        wrong = lies.wrong_sha3_384
        if entry.name in wrong and (wrong[entry.name] is None or revision in wrong[entry.name]):
            sha3 = hashlib.sha3_384(f"snapconform wrong sha3-384 of {sha3}".encode()).hexdigest()
            misbehaved.append("wrong-sha3-384")
        snap = {
            "architectures": ["all"],
            "base": "",
            "confinement": meta.confinement,
            "contact": "",
            "created-at": meta.created_at,
            "description": "A fixture snap served by the snapconform store.",
            "download": {
                "deltas": [],
                "sha3-384": sha3,
                "size": meta.size,
                "url": f"{self.base_url}/download/{meta.file}",
            },
            "epoch": epoch_to_json(epoch),
            "license": "",
            "media": [],
            "name": entry.name,
            "prices": {},
            "private": False,
            "publisher": entry.publisher,
            "revision": revision,
            "snap-id": entry.snap_id,
            "summary": "snapconform fixture snap",
            "title": entry.name,
            "type": meta.type,
            "version": meta.version,
        }
        result: dict[str, Any] = {
            "result": kind,
            "instance-key": action.get("instance-key", ""),
            "snap-id": entry.snap_id,
            "name": entry.name,
            "snap": snap,
        }
        if effective_channel is not None:
            result["effective-channel"] = effective_channel
        log: dict[str, Any] = {
            "result": kind,
            "instance-key": result["instance-key"],
            "name": entry.name,
            "revision": revision,
            "epoch": epoch_to_json(epoch),
            "effective-channel": effective_channel,
            "why": why,
        }
        if misbehaved:
            log["misbehaved"] = misbehaved
        return result, log

    # -- actions ---------------------------------------------------------------------------

    def install(self, action: dict[str, Any], kind: str) -> tuple[dict[str, Any], dict[str, Any]]:
        """install/download: a new user (snapd sends epoch null) asking by name."""
        name = action.get("name")
        entry = self.catalog.snaps.get(name) if isinstance(name, str) else None
        if entry is None:
            return self.error(
                "name-not-found",
                f"no snap named {name!r} in this store",
                action,
                name=name if isinstance(name, str) else None,
            )
        store = entry.store
        requested = action.get("channel") or DEFAULT_CHANNEL
        revision = action.get("revision")
        try:
            channel = canonical_channel(store, requested)
        except StoreError as exc:
            if not revision:
                return self.error(
                    "revision-not-found",
                    str(exc),
                    action,
                    name=entry.name,
                    snap_id=entry.snap_id,
                    releases=open_channels(store),
                )
            channel = None
        if revision:
            return self.pinned(kind, action, entry, revision, channel)
        assert channel is not None
        answer = store.fresh_install(channel)
        if not answer.found:
            return self.error(
                "revision-not-found",
                answer.why,
                action,
                name=entry.name,
                snap_id=entry.snap_id,
                releases=open_channels(store),
            )
        return self.answered(kind, action, entry, answer, [])

    def refresh(
        self, action: dict[str, Any], context: dict[str, dict[str, Any]]
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        """refresh: an installed instance (its context entry) asking what to have next."""
        key = action.get("instance-key")
        current = context.get(key) if isinstance(key, str) else None
        snap_id = action.get("snap-id") or (current or {}).get("snap-id")
        entry = self.catalog.by_id.get(snap_id) if isinstance(snap_id, str) else None
        if entry is None:
            return self.error(
                "id-not-found",
                f"no snap with id {snap_id!r} in this store",
                action,
                snap_id=snap_id if isinstance(snap_id, str) else None,
            )
        if current is None:
            return self.error(
                "id-not-found",
                f"no context entry for instance-key {key!r}",
                action,
                name=entry.name,
                snap_id=entry.snap_id,
            )
        store = entry.store
        requested = action.get("channel") or current.get("tracking-channel") or DEFAULT_CHANNEL
        revision = action.get("revision")
        try:
            channel: str | None = canonical_channel(store, requested)
        except StoreError as exc:
            if not revision:
                return self.error(
                    "revision-not-found", str(exc), action, name=entry.name, snap_id=entry.snap_id
                )
            channel = None
        if revision:
            return self.pinned("refresh", action, entry, revision, channel)
        assert channel is not None
        try:
            installed = int(current.get("revision"))  # type: ignore[arg-type]
            epoch = Epoch.parse_json(json.dumps(current.get("epoch")))
        except (TypeError, ValueError) as exc:
            return self.error(
                "invalid-context",
                f"bad context entry: {exc}",
                action,
                name=entry.name,
                snap_id=entry.snap_id,
            )
        misbehaved: list[str] = []
        if entry.name in self.catalog.misbehave.offer_unreadable:
            answer = self.unreadable_offer(entry, channel, installed, epoch)
            misbehaved.append("offer-unreadable")
        else:
            answer = store.refresh(channel, installed, epoch)
        if not answer.found:
            return self.error(
                "revision-not-found", answer.why, action, name=entry.name, snap_id=entry.snap_id
            )
        return self.answered("refresh", action, entry, answer, misbehaved)

    def unreadable_offer(
        self, entry: SnapEntry, channel: str, installed: int, epoch: Epoch
    ) -> Answer:
        """What the misbehaving store offers: the set revision, else what a new user gets."""
        pinned = self.catalog.misbehave.offer_unreadable[entry.name]
        if pinned is not None:
            offered = entry.revisions[pinned].epoch
            why = f"misbehaving: R{pinned} (epoch {offered}) offered whatever it can read"
            return Answer(pinned, offered, entry.store.follows(channel), why)
        fresh = entry.store.fresh_install(channel)
        return dataclasses.replace(fresh, why=f"misbehaving: can-read ignored, {fresh.why}")

    def pinned(
        self,
        kind: str,
        action: dict[str, Any],
        entry: SnapEntry,
        revision: Any,
        channel: str | None,
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        """--revision: any revision the store holds; snapd itself checks the epoch."""
        if not isinstance(revision, int) or revision not in entry.revisions:
            return self.error(
                "revision-not-found",
                f"{entry.name} has no revision {revision!r}",
                action,
                name=entry.name,
                snap_id=entry.snap_id,
            )
        why = f"revision {revision} was asked for"
        return self.snap_result(kind, action, entry, revision, channel, why, [])

    def answered(
        self,
        kind: str,
        action: dict[str, Any],
        entry: SnapEntry,
        answer: Answer,
        misbehaved: list[str],
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        assert answer.revision is not None
        return self.snap_result(
            kind, action, entry, answer.revision, answer.channel, answer.why, misbehaved
        )


ASSERTION_REVISION = re.compile(rb"^revision: ([0-9]+)$", re.MULTILINE)


def assertion_revision(data: bytes) -> int:
    """An assertion's `revision` header (0 when absent), read from its headers."""
    headers = data.split(b"\n\n", 1)[0]
    match = ASSERTION_REVISION.search(headers)
    return int(match.group(1)) if match else 0


def fetch_assertions(
    catalog: Catalog, actions: list[Any], base_url: str, log: dict[str, Any]
) -> Reply:
    """snapd's bulk assertion refresh (store_action.go, assertstate/bulk.go): one action per
    group (`key`), each asking for assertions by type and primary key, `if-newer-than` the
    revision snapd has. A group gets the URLs of GET /v2/assertions/... for what is newer (or
    asked without a revision), not-found errors for what the catalog lacks, and no result when
    snapd is up to date; no results at all reads to snapd as all up to date. Anything else in
    the request (snap actions, sequence keys) gets 400: snapd then fetches one by one."""
    if catalog.misbehave.tampered_assertions:
        return problem(400, "bad-request", "assertions are tampered: GET each", log)
    results: list[dict[str, Any]] = []
    logged: list[dict[str, Any]] = []
    for action in actions:
        if not isinstance(action, dict) or action.get("action") != "fetch-assertions":
            return problem(400, "bad-request", "fetch-assertions only with its own kind", log)
        key = action.get("key")
        wanted = action.get("assertions") or []
        if not isinstance(key, str) or not isinstance(wanted, list):
            return problem(400, "bad-request", "fetch-assertions needs a key and a list", log)
        urls: list[str] = []
        errors: list[dict[str, Any]] = []
        answered: list[str] = []
        for item in wanted:
            kind = item.get("type") if isinstance(item, dict) else None
            primary = item.get("primary-key") if isinstance(item, dict) else None
            newer_than = item.get("if-newer-than") if isinstance(item, dict) else None
            if (
                not isinstance(kind, str)
                or not isinstance(primary, list)
                or not all(isinstance(part, str) for part in [kind, *primary])
                or not all(SEGMENT.fullmatch(part) for part in [kind, *primary])
                or (newer_than is not None and not isinstance(newer_than, int))
            ):
                return problem(400, "bad-request", f"cannot serve assertion {item!r}", log)
            name = "/".join([kind, *primary])
            try:
                data = (catalog.root / "assertions" / name).read_bytes()
            except OSError:
                errors.append(
                    {
                        "code": "not-found",
                        "message": f"{kind} assertion not found: {name}",
                        "type": kind,
                        "primary-key": primary,
                    }
                )
                answered.append(f"{name}: not found")
                continue
            revision = assertion_revision(data)
            if newer_than is not None and revision <= newer_than:
                answered.append(f"{name}: up to date at {revision}")
                continue
            urls.append(f"{base_url}/v2/assertions/{name}")
            answered.append(f"{name}: revision {revision}")
        logged.append({"key": key, "answered": answered})
        if urls or errors:
            result: dict[str, Any] = {"result": "fetch-assertions", "key": key}
            result["assertion-stream-urls"] = urls
            if errors:
                result["error-list"] = errors
            results.append(result)
    log["results"] = logged
    return json_reply(200, {"results": results}, log)


def snap_action(catalog: Catalog, request: Any, architecture: str, base_url: str) -> Reply:
    log: dict[str, Any] = {"request": request}
    if not isinstance(request, dict):
        return problem(400, "bad-request", "the body is not a JSON object", log)
    actions = request.get("actions") or []
    context_list = request.get("context") or []
    if not isinstance(actions, list) or not isinstance(context_list, list):
        return problem(400, "bad-request", "actions and context must be lists", log)
    if any(isinstance(a, dict) and a.get("action") == "fetch-assertions" for a in actions):
        return fetch_assertions(catalog, actions, base_url, log)
    context = {
        c["instance-key"]: c for c in context_list if isinstance(c, dict) and "instance-key" in c
    }
    handler = ActionContext(catalog, architecture, base_url)
    results: list[dict[str, Any]] = []
    logged: list[dict[str, Any]] = []
    for action in actions:
        if not isinstance(action, dict):
            return problem(400, "bad-request", "an action is not a JSON object", log)
        kind = action.get("action")
        if kind in ("install", "download"):
            result, line = handler.install(action, kind)
        elif kind == "refresh":
            result, line = handler.refresh(action, context)
        else:
            return problem(400, "bad-request", f"unknown action {kind!r}", log)
        results.append(result)
        logged.append(line)
    log["results"] = logged
    return json_reply(200, {"results": results}, log)


# -- the HTTP side ---------------------------------------------------------------------------


class RequestLog:
    """One JSON line per request, appended whole (one write) under a lock."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()

    def write(self, entry: dict[str, Any]) -> None:
        line = json.dumps(entry, separators=(",", ":"), ensure_ascii=True) + "\n"
        with self._lock:
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
            try:
                os.write(fd, line.encode("ascii"))
            finally:
                os.close(fd)


class StoreServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, port: int, catalog: CatalogSource, log: RequestLog) -> None:
        self.catalog = catalog
        self.request_log = log
        self.base_url = f"http://{LISTEN_ADDRESS}:{port}"
        super().__init__((LISTEN_ADDRESS, port), StoreHandler)
        # Port 0 (tests) binds a free port: name the one actually bound.
        self.base_url = f"http://{LISTEN_ADDRESS}:{self.server_address[1]}"


class StoreHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # Headers and body go out in separate writes; with Nagle on, snapd's delayed ACK held each
    # keep-alive answer ~40 ms (seen on real snapd: 44 ms between its assertion GETs).
    disable_nagle_algorithm = True
    server: StoreServer
    server_version = "snapconform-store"

    def log_message(self, format: str, *args: Any) -> None:
        """Silent: the JSON request log is the record."""

    def do_GET(self) -> None:
        self.answer("GET", None)

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        self.answer("POST", self.rfile.read(length) if length else b"")

    def answer(self, method: str, body: bytes | None) -> None:
        started = datetime.now(UTC)
        path = urlsplit(self.path).path
        entry: dict[str, Any] = {
            "time": started.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "method": method,
            "path": self.path,
        }
        headers = {name: self.headers[name] for name in LOGGED_HEADERS if name in self.headers}
        if headers:
            entry["headers"] = headers
        try:
            reply = self.route(method, path, body)
        except Exception as exc:  # the log must say why, and snapd must get an answer
            reply = problem(500, "internal-error", f"{type(exc).__name__}: {exc}")
            reply.log["traceback"] = traceback.format_exc()
        entry.update(reply.log)
        entry["status"] = reply.status
        self.server.request_log.write(entry)  # before replying: snapd may act on the answer
        self.send(reply)

    def route(self, method: str, path: str, body: bytes | None) -> Reply:
        try:
            catalog = self.server.catalog.current()
        except CatalogError as exc:
            return problem(500, "catalog-error", str(exc))
        log = {"catalog": catalog.digest}
        status = catalog.misbehave.status
        if status is not None:
            reply = problem(status, "internal-error", "misbehaving store: every request fails")
            reply.log.update(log, misbehaved=["status"])
            if body:
                reply.log["request"] = _json_or_text(body)
            return reply
        if method == "POST" and path == "/v2/snaps/refresh":
            request = _json_or_text(body or b"")
            architecture = (
                self.headers.get("Snap-Device-Architecture")
                or self.headers.get("X-Ubuntu-Architecture")
                or DEFAULT_ARCHITECTURE
            )
            reply = snap_action(catalog, request, architecture, self.server.base_url)
        elif method == "GET" and path.startswith("/v2/assertions/"):
            reply = self.assertion(catalog, path[len("/v2/assertions/") :])
        elif method == "GET" and path.startswith("/download/"):
            reply = self.download(catalog, unquote(path[len("/download/") :]))
        else:
            reply = problem(404, "not-found", f"{method} {path} is not served here")
        reply.log.update(log)
        return reply

    def assertion(self, catalog: Catalog, key: str) -> Reply:
        parts = [unquote(part) for part in key.strip("/").split("/")]
        if not all(SEGMENT.fullmatch(part) for part in parts):
            return problem(404, "not-found", f"no assertion {key!r}", {"assertion": key})
        name = "/".join(parts)
        log: dict[str, Any] = {"assertion": name}
        tampered = catalog.misbehave.tampered_assertions.get(name)
        if tampered is not None:
            path = catalog.root / tampered
            log["misbehaved"] = ["tampered-assertion"]
        else:
            path = catalog.root / "assertions" / name
        try:
            data = path.read_bytes()
        except OSError:
            return problem(404, "not-found", f"{parts[0]} assertion not found: {name}", log)
        log["bytes"] = len(data)
        return Reply(200, data, ASSERTION_TYPE, log)

    def download(self, catalog: Catalog, name: str) -> Reply:
        log: dict[str, Any] = {"file": name}
        path = catalog.root / "files" / name
        if not SEGMENT.fullmatch(name) or not path.is_file():
            return problem(404, "not-found", f"no file {name!r}", log)
        size = path.stat().st_size
        offset = 0
        wanted = self.headers.get("Range")
        if wanted:
            log["range"] = wanted
            match = re.fullmatch(r"bytes=([0-9]+)-", wanted.strip())
            if match is None or int(match.group(1)) > size:
                return problem(416, "bad-range", f"cannot serve range {wanted!r}", log)
            offset = int(match.group(1))
        log["bytes"] = size - offset
        status = 206 if wanted else 200
        return Reply(status, b"", "application/octet-stream", log, path, offset, size - offset)

    def send(self, reply: Reply) -> None:
        self.send_response(reply.status)
        self.send_header("Content-Type", reply.content_type)
        if reply.file is not None:
            self.send_header("Content-Length", str(reply.length))
            if reply.status == 206:
                total = reply.offset + reply.length
                self.send_header("Content-Range", f"bytes {reply.offset}-{total - 1}/{total}")
            self.end_headers()
            with reply.file.open("rb") as handle:
                handle.seek(reply.offset)
                while chunk := handle.read(CHUNK):
                    self.wfile.write(chunk)
            return
        self.send_header("Content-Length", str(len(reply.body)))
        self.end_headers()
        self.wfile.write(reply.body)


def _json_or_text(body: bytes) -> Any:
    try:
        return json.loads(body)
    except ValueError:
        return {"unparsed": body.decode("utf-8", "replace")[:4000]}


def notify_ready() -> None:
    """sd_notify(READY=1) when systemd started us as Type=notify (no libsystemd needed)."""
    address = os.environ.get("NOTIFY_SOCKET")
    if not address:
        return
    if address.startswith("@"):
        address = "\0" + address[1:]
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.connect(address)
        sock.sendall(b"READY=1")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="the snapconform store, for real snapd")
    parser.add_argument("--port", type=int, required=True, help="port on 127.0.0.1 (0: any)")
    parser.add_argument("--catalog", type=Path, required=True, help="the catalog directory")
    parser.add_argument("--log", type=Path, required=True, help="request log (JSON lines)")
    parser.add_argument("--port-file", type=Path, help="write the bound port here once listening")
    args = parser.parse_args(argv)
    source = CatalogSource(args.catalog)
    try:
        source.current()  # a bad catalog at start is the operator's error: say so and stop
    except CatalogError as exc:
        print(f"server_program: {exc}", file=sys.stderr)
        return 2
    try:
        server = StoreServer(args.port, source, RequestLog(args.log))
    except OSError as exc:
        print(
            f"server_program: cannot listen on {LISTEN_ADDRESS}:{args.port}: {exc.strerror}",
            file=sys.stderr,
        )
        return 2

    def stop(_signum: int, _frame: object) -> None:
        raise SystemExit(0)

    signal.signal(signal.SIGTERM, stop)
    if args.port_file is not None:
        temporary = args.port_file.with_name(args.port_file.name + ".tmp")
        temporary.write_text(f"{server.server_address[1]}\n")
        temporary.replace(args.port_file)
    notify_ready()
    try:
        server.serve_forever(poll_interval=0.5)
    except (SystemExit, KeyboardInterrupt):
        pass
    finally:
        server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())

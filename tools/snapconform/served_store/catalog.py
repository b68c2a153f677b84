"""The catalog directory the served store answers from, written on the controller.

From each snap's `model.store.Store` (its channel log) and the built .snap file of each store
revision (`snaps_of` turns the model's `StoreCatalog` into those, given a file builder),
`CatalogWriter.write(dest, snaps, misbehave)` makes:

    dest/catalog.json      what the server reads (below), written last and atomically
    dest/files/NAME_REV.snap     the blobs (hard links to the built fixtures when possible)
    dest/assertions/TYPE/KEY...  pre-signed assertions, named as snapd GETs them
    dest/tampered/TYPE/KEY...    tampered copies, served only when `misbehave` says so

catalog.json (format 1; keys as the store protocol spells them):

    {"format": 1,
     "snaps": {NAME: {
        "snap-id": ID, "publisher": {"id", "username", "display-name", "validation"},
        "risks": ["stable", "candidate", "beta", "edge"],
        "policies": {"epoch_order": "written", ...},      # model.store.Policies by field name
        "events": [                                        # the channel log, replayed in order
            {"event": "release", "channel": C, "revision": N, "epoch": {"read": [], "write": []}},
            {"event": "close", "channel": C}, {"event": "unrelease", "channel": C}],
        "revisions": {"N": {"version", "epoch", "type", "confinement", "file", "sha3-384" (hex),
                            "size", "created-at"}}}},
     "misbehave": {
        "status": 500,                          # every request answered with this status
        "offer-unreadable": {NAME: REV|null},   # refreshes offer REV (null: a new user's pick)
                                                # whether or not it can read the installed epoch
        "report-epoch": {NAME: {"REV": EPOCH}}, # metadata epoch unlike the file's
        "wrong-sha3-384": {NAME: [REV..]|null}, # download.sha3-384 not the file's
        "tampered-assertions": {"TYPE/KEY..": "tampered/TYPE/KEY.."}}}

The server replays the events through the same model, and this writer checks that the replay
gives back the very `Store` it was handed, so the two cannot drift. Assertions are optional:
without `TestKeys` none are written (enough for offline tests of the server).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, fields
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from snapconform.model.epoch import Epoch
from snapconform.model.snapd_state import SnapFile
from snapconform.model.store import Policies, Store
from snapconform.model.store_catalog import StoreCatalog, file_epoch
from snapconform.served_store import assertions
from snapconform.served_store.server_program import (
    CATALOG_FORMAT,
    CatalogError,
    epoch_to_json,
    replay,
)

__all__ = [
    "TESTROOTORG",
    "CatalogError",
    "CatalogSnap",
    "CatalogWriter",
    "Misbehave",
    "Publisher",
    "RevisionFile",
    "Tamper",
    "snaps_of",
    "store_events",
    "write_catalog",
]

# A fixed moment for every timestamp we write, so the same catalog gives the same bytes (and
# the carrier pushes nothing twice). Within the test store key's validity (since 2016-08-11).
CATALOG_TIME = datetime(2024, 1, 1, tzinfo=UTC)
CREATED_AT = "2024-01-01T00:00:00.000000Z"
ASSERTION_KINDS = ("snap-declaration", "snap-revision", "account-key")


@dataclass(frozen=True)
class Publisher:
    id: str
    username: str
    display_name: str
    validation: str = "unproven"

    def to_json(self) -> dict[str, str]:
        return {
            "id": self.id,
            "username": self.username,
            "display-name": self.display_name,
            "validation": self.validation,
        }


# snapd built with test keys trusts this account already (no account assertion needed); the
# store names it as its account assertion does (asserts/systestkeys/trusted.go), and snapd
# shows that one ("from Testrootorg**": verified, in ASCII).
TESTROOTORG = Publisher(assertions.AUTHORITY, assertions.AUTHORITY, "Testrootorg", "verified")


@dataclass(frozen=True)
class RevisionFile:
    """One store revision's built .snap and the metadata the store reports for it.

    `epoch` None: the epoch the store released it with (`Store.epoch_of`).
    """

    path: Path
    version: str
    epoch: Epoch | None = None
    type: str = "app"
    confinement: str = "strict"


@dataclass(frozen=True)
class CatalogSnap:
    name: str
    store: Store
    revisions: Mapping[int, RevisionFile]
    snap_id: str | None = None  # None: assertions.snap_id_for(name)
    publisher: Publisher = TESTROOTORG

    @property
    def id(self) -> str:
        return self.snap_id or assertions.snap_id_for(self.name)


@dataclass(frozen=True)
class Tamper:
    """Serve `assertion` (of `snap`, and for snap-revision of `revision`) with `header`
    changed to `value` after signing."""

    snap: str
    assertion: str  # snap-declaration, snap-revision or account-key
    header: str
    value: str
    revision: int | None = None


@dataclass(frozen=True)
class Misbehave:
    """Answers the model says a store never gives; the default is a well-behaved store."""

    status: int | None = None
    offer_unreadable: Mapping[str, int | None] = field(default_factory=dict)
    report_epoch: Mapping[str, Mapping[int, Epoch]] = field(default_factory=dict)
    wrong_sha3_384: Mapping[str, Sequence[int] | None] = field(default_factory=dict)
    tampered: Sequence[Tamper] = ()

    def to_json(self, tampered_files: Mapping[str, str]) -> dict[str, Any]:
        document: dict[str, Any] = {}
        if self.status is not None:
            document["status"] = self.status
        if self.offer_unreadable:
            document["offer-unreadable"] = dict(self.offer_unreadable)
        if self.report_epoch:
            document["report-epoch"] = {
                name: {str(rev): epoch_to_json(epoch) for rev, epoch in per_rev.items()}
                for name, per_rev in self.report_epoch.items()
            }
        if self.wrong_sha3_384:
            document["wrong-sha3-384"] = {
                name: None if revs is None else sorted(revs)
                for name, revs in self.wrong_sha3_384.items()
            }
        if tampered_files:
            document["tampered-assertions"] = dict(tampered_files)
        return document


def snaps_of(catalog: StoreCatalog, build: Callable[[SnapFile], Path]) -> list[CatalogSnap]:
    """The model's store catalog as the snaps to write; `build` makes (or finds) each file.

    The conformance layer passes the harness's fixture builder here, so this room never needs
    the harness."""
    snaps: list[CatalogSnap] = []
    for entry in catalog.snaps:
        revisions = {
            number: RevisionFile(build(file), file.version, epoch=file_epoch(file))
            for number, file in entry.files
        }
        snaps.append(CatalogSnap(entry.name, entry.store, revisions))
    return snaps


def store_events(store: Store) -> list[dict[str, Any]]:
    """The store's channel log as catalog events, checked by replaying them through the model."""
    events: list[dict[str, Any]] = []
    for entry in store.log:
        event: dict[str, Any] = {"event": entry.kind, "channel": entry.channel}
        if entry.kind == "release":
            event["revision"] = entry.revision
            event["epoch"] = epoch_to_json(entry.epoch)
        events.append(event)
    empty = Store(risks=store.risks, policies=store.policies)
    replayed = replay(empty, events, f"the catalog events of {store!r:.60}")
    if replayed != store:
        raise CatalogError(
            "this Store holds state its channel log does not carry: replaying the log gives"
            f" {replayed!r:.200}"
        )
    return events


def _policies_json(policies: Policies) -> dict[str, Any]:
    document: dict[str, Any] = {}
    for item in fields(Policies):
        value = getattr(policies, item.name)
        document[item.name] = getattr(value, "value", value)
    return document


def _sha3_and_size(path: Path) -> tuple[str, int]:
    digest = hashlib.sha3_384()
    size = 0
    with path.open("rb") as handle:
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
            size += len(chunk)
    return digest.hexdigest(), size


def _place(source: Path, target: Path) -> None:
    """Hard-link `source` at `target` (a copy across file systems); identical files stay."""
    if target.exists():
        if target.samefile(source):
            return
        target.unlink()
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.link(source, target)
    except OSError:
        shutil.copyfile(source, target)


def _write_atomic(path: Path, data: bytes) -> None:
    """Write `data` at `path` by rename, and only when it differs (keeps mtimes still)."""
    with contextlib.suppress(OSError):
        if path.read_bytes() == data:
            return
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(handle, "wb") as out:
            out.write(data)
        os.chmod(temporary, 0o644)
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise


class CatalogWriter:
    """Writes catalog directories; keeps each signed assertion so a rewrite gives equal bytes."""

    def __init__(self, keys: assertions.TestKeys | None = None) -> None:
        self.keys = keys
        self._signed: dict[tuple[Any, ...], bytes] = {}
        self._digests: dict[tuple[Path, int, int], tuple[str, int]] = {}

    def write(
        self, dest: Path, snaps: Sequence[CatalogSnap], misbehave: Misbehave | None = None
    ) -> Path:
        """Make (or bring up to date) the catalog directory `dest`; catalog.json goes last."""
        misbehave = misbehave or Misbehave()
        names = [snap.name for snap in snaps]
        duplicates = sorted({name for name in names if names.count(name) > 1})
        if duplicates:
            raise CatalogError(f"snap listed twice: {', '.join(duplicates)}")
        by_name = {snap.name: snap for snap in snaps}
        for name in (
            *misbehave.offer_unreadable,
            *misbehave.report_epoch,
            *misbehave.wrong_sha3_384,
        ):
            if name not in by_name:
                raise CatalogError(f"misbehave names {name!r}, which is not in the catalog")
        # Everything is worked out (and refused) before anything is written.
        document: dict[str, Any] = {"format": CATALOG_FORMAT, "snaps": {}}
        blobs: dict[str, Path] = {}
        assertion_files: dict[str, bytes] = {}
        for snap in snaps:
            entry, snap_blobs, signed = self._snap(snap)
            document["snaps"][snap.name] = entry
            blobs.update(snap_blobs)
            assertion_files.update(signed)
        tampered_files: dict[str, str] = {}
        for tamper in misbehave.tampered:
            key, data = self._tampered(tamper, by_name, assertion_files)
            tampered_files[key] = f"tampered/{key}"
            assertion_files[tampered_files[key]] = data
        dest.mkdir(parents=True, exist_ok=True)
        wanted: set[Path] = {dest / "catalog.json"}
        for name, source in blobs.items():
            _place(source, dest / "files" / name)
            wanted.add(dest / "files" / name)
        for relative, data in assertion_files.items():
            top = "" if relative.startswith("tampered/") else "assertions/"
            _write_atomic(dest / f"{top}{relative}", data)
            wanted.add(dest / f"{top}{relative}")
        document["misbehave"] = misbehave.to_json(tampered_files)
        _remove_unwanted(dest, wanted)
        text = json.dumps(document, indent=1, sort_keys=True) + "\n"
        _write_atomic(dest / "catalog.json", text.encode())
        return dest

    # -- one snap --------------------------------------------------------------------------

    def _snap(self, snap: CatalogSnap) -> tuple[dict[str, Any], dict[str, Path], dict[str, bytes]]:
        store = snap.store
        events = store_events(store)
        released = {release.revision for release in store.releases}
        missing = sorted(released - set(snap.revisions))
        if missing:
            raise CatalogError(
                f"{snap.name}: revisions {', '.join(map(str, missing))} are released but have"
                " no built file"
            )
        revisions: dict[str, Any] = {}
        blobs: dict[str, Path] = {}
        signed: dict[str, bytes] = {}
        for number in sorted(snap.revisions):
            revision = snap.revisions[number]
            if number < 1:
                raise CatalogError(f"{snap.name}: store revisions start at 1, not {number}")
            epoch = revision.epoch or store.epoch_of(number) or Epoch()
            known = store.epoch_of(number)
            if known is not None and known != epoch:
                raise CatalogError(
                    f"{snap.name}: revision {number} is released with epoch {known}, its file"
                    f" says {epoch} (Misbehave.report_epoch is how a store lies)"
                )
            sha3, size = self._digest(revision.path)
            file_name = f"{snap.name}_{number}.snap"
            blobs[file_name] = revision.path
            revisions[str(number)] = {
                "version": revision.version,
                "epoch": epoch_to_json(epoch),
                "type": revision.type,
                "confinement": revision.confinement,
                "file": file_name,
                "sha3-384": sha3,
                "size": size,
                "created-at": CREATED_AT,
            }
            if self.keys is not None:
                key, data = self._revision_assertion(snap, number, sha3, size)
                signed[key] = data
        if self.keys is not None:
            signed.update(self._snap_assertions(snap))
        entry = {
            "snap-id": snap.id,
            "publisher": snap.publisher.to_json(),
            "risks": list(store.risks),
            "policies": _policies_json(store.policies),
            "events": events,
            "revisions": revisions,
        }
        return entry, blobs, signed

    def _digest(self, path: Path) -> tuple[str, int]:
        info = path.stat()
        key = (path.resolve(), info.st_size, info.st_mtime_ns)
        if key not in self._digests:
            self._digests[key] = _sha3_and_size(path)
        return self._digests[key]

    # -- assertions ------------------------------------------------------------------------

    def _sign_once(self, cache_key: tuple[Any, ...], make: Any) -> bytes:
        if cache_key not in self._signed:
            self._signed[cache_key] = make()
        return self._signed[cache_key]

    def _revision_assertion(
        self, snap: CatalogSnap, number: int, sha3_hex: str, size: int
    ) -> tuple[str, bytes]:
        keys = self._require_keys()
        digest = assertions.sha3_384_b64url_from_hex(sha3_hex)
        data = self._sign_once(
            ("snap-revision", digest, size, number, snap.id, snap.publisher.id),
            lambda: assertions.snap_revision(
                keys.store,
                snap_sha3_384=digest,
                snap_size=size,
                snap_revision=number,
                snap_id=snap.id,
                developer_id=snap.publisher.id,
                timestamp=CATALOG_TIME,
            ),
        )
        return f"snap-revision/{digest}", data

    def _snap_assertions(self, snap: CatalogSnap) -> dict[str, bytes]:
        keys = self._require_keys()
        declaration = self._sign_once(
            ("snap-declaration", snap.id, snap.name, snap.publisher.id),
            lambda: assertions.snap_declaration(
                keys.store,
                snap_id=snap.id,
                snap_name=snap.name,
                publisher_id=snap.publisher.id,
                timestamp=CATALOG_TIME,
            ),
        )
        store_key = self._sign_once(
            ("account-key", keys.store.key_id),
            lambda: assertions.account_key(keys.root, keys.store),
        )
        return {
            f"snap-declaration/{assertions.SERIES}/{snap.id}": declaration,
            f"account-key/{keys.store.key_id}": store_key,
        }

    def _tampered(
        self, tamper: Tamper, by_name: Mapping[str, CatalogSnap], signed: Mapping[str, bytes]
    ) -> tuple[str, bytes]:
        keys = self._require_keys()
        snap = by_name.get(tamper.snap)
        if snap is None:
            raise CatalogError(f"Tamper names {tamper.snap!r}, which is not in the catalog")
        if tamper.assertion == "snap-declaration":
            key = f"snap-declaration/{assertions.SERIES}/{snap.id}"
        elif tamper.assertion == "account-key":
            key = f"account-key/{keys.store.key_id}"
        elif tamper.assertion == "snap-revision":
            revision = snap.revisions.get(tamper.revision or 0)
            if revision is None:
                raise CatalogError(f"Tamper: {snap.name} has no revision {tamper.revision!r}")
            sha3, _size = self._digest(revision.path)
            key = f"snap-revision/{assertions.sha3_384_b64url_from_hex(sha3)}"
        else:
            raise CatalogError(
                f"Tamper: cannot tamper with {tamper.assertion!r} (one of"
                f" {', '.join(ASSERTION_KINDS)})"
            )
        return key, assertions.tamper(signed[key], tamper.header, tamper.value)

    def _require_keys(self) -> assertions.TestKeys:
        if self.keys is None:
            raise CatalogError("assertions need the test keys: CatalogWriter(keys=TestKeys...)")
        return self.keys


def _remove_unwanted(dest: Path, wanted: set[Path]) -> None:
    """Files a previous write left that this catalog no longer holds (so dest mirrors it)."""
    for top in ("files", "assertions", "tampered"):
        root = dest / top
        if not root.is_dir():
            continue
        for path in sorted(root.rglob("*"), reverse=True):
            if path.is_file() and path not in wanted:
                path.unlink()
            elif path.is_dir() and not any(path.iterdir()):
                path.rmdir()


def write_catalog(
    dest: Path,
    snaps: Sequence[CatalogSnap],
    misbehave: Misbehave | None = None,
    keys: assertions.TestKeys | None = None,
) -> Path:
    """One-shot `CatalogWriter(keys).write(...)` (signs afresh: prefer a writer per run)."""
    return CatalogWriter(keys).write(dest, snaps, misbehave)

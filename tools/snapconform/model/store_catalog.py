"""The store the snapd model talks to: per snap its channel log (`Store`) and the file of each
store revision, and the store's answer to one request snapd sends.

`StoreCatalog` is what a publisher has done so far: `release(name, channel, revision, file)`,
`close(name, channel)`, `unrelease(name, channel)` each return a new catalog. A revision's
file is fixed once released (a promotion re-releases the same file); its epoch is the file's
snap.yaml epoch, which is also what the store reports for it.

`StoreCatalog.answer(request)` is the honest store: one `StoreResult` per action of a
`StoreRequest`, decided by `snapconform.model.store.Store` exactly as the served store decides
(snapconform.served_store.server_program):
- install: `Store.fresh_install(channel)` (channel "stable" when none is sent); a revision-not-
  found error carries the snap's open channels as `releases` (the CLI then lists them);
- refresh: `Store.refresh(channel, installed revision, installed epoch)` with the action's
  channel, else the context's tracking channel; nothing to offer is revision-not-found (no
  releases);
- a --revision action: that revision if the store has its file (whatever its epoch: snapd checks
  the epoch itself), effective channel the asked (or tracked) channel;
- unknown snap names are name-not-found (install) or id-not-found (refresh).
`effective_channel` is the model store's channel name as the served store sends it ("stable",
"candidate", "2.0/beta").

The snapd operations take any `Responder` (a callable from `StoreRequest` to results), so a
misbehaving store is a different responder: `offering(catalog, name, revision)` answers every
refresh of `name` with `revision` whatever it can read (store.md §2's misbehaving case).
Snap ids are not the model's business (the served store derives them).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace

from snapconform.model.epoch import Epoch, EpochError
from snapconform.model.snapd_state import SnapFile, StoreAction, StoreRequest
from snapconform.model.store import DEFAULT_RISKS, Policies, Store, StoreError

__all__ = [
    "CatalogSnap",
    "Responder",
    "StoreCatalog",
    "StoreResult",
    "file_epoch",
    "offering",
]

DEFAULT_CHANNEL = "stable"
# Per-action error codes snapd understands (store/errors.go translateSnapActionError).
REVISION_NOT_FOUND = "revision-not-found"
NAME_NOT_FOUND = "name-not-found"
ID_NOT_FOUND = "id-not-found"


def file_epoch(snap: SnapFile) -> Epoch:
    """The epoch of a snap file's snap.yaml (no `epoch:` key means 0)."""
    return Epoch() if snap.epoch_yaml is None else Epoch.parse_yaml(snap.epoch_yaml)


@dataclass(frozen=True)
class StoreResult:
    """The store's answer to one action: a revision (with the epoch the store reports, the file
    a download gives and the effective channel), or an error code.

    `releases` (channels, model names) only with revision-not-found: the store's extra.releases.
    """

    instance: str
    revision: int | None = None
    epoch: Epoch | None = None
    effective_channel: str | None = None
    file: SnapFile | None = None
    error: str | None = None
    releases: tuple[str, ...] = ()
    why: str = ""

    @property
    def found(self) -> bool:
        return self.error is None and self.revision is not None


Responder = Callable[[StoreRequest], tuple[StoreResult, ...]]


@dataclass(frozen=True)
class CatalogSnap:
    """One snap in the store: its channel log and the file of each store revision."""

    name: str
    store: Store
    files: tuple[tuple[int, SnapFile], ...] = ()

    def file(self, revision: int) -> SnapFile | None:
        return next((snap for number, snap in self.files if number == revision), None)

    def open_channels(self) -> tuple[str, ...]:
        """Open channels in the order they were first released to (as the served store lists
        them in a revision-not-found error)."""
        seen: list[str] = []
        for release in self.store.releases:
            if release.channel not in seen and self.store.is_open(release.channel):
                seen.append(release.channel)
        return tuple(seen)


@dataclass(frozen=True)
class StoreCatalog:
    """Every snap the store knows, by name; frozen and hashable."""

    snaps: tuple[CatalogSnap, ...] = ()
    risks: tuple[str, ...] = DEFAULT_RISKS
    policies: Policies = field(default_factory=Policies)

    def __post_init__(self) -> None:
        snaps = tuple(sorted(self.snaps, key=lambda entry: entry.name))
        names = [entry.name for entry in snaps]
        if len(set(names)) != len(names):
            raise StoreError(f"a snap is listed twice in {names}")
        object.__setattr__(self, "snaps", snaps)

    def snap(self, name: str) -> CatalogSnap | None:
        return next((entry for entry in self.snaps if entry.name == name), None)

    def store_of(self, name: str) -> Store:
        entry = self.snap(name)
        if entry is None:
            raise StoreError(f"the store has no snap named {name!r}")
        return entry.store

    def _with(self, entry: CatalogSnap) -> StoreCatalog:
        others = tuple(e for e in self.snaps if e.name != entry.name)
        return replace(self, snaps=(*others, entry))

    # -- what publishers do ----------------------------------------------------------------------

    def release(self, name: str, channel: str, revision: int, file: SnapFile) -> StoreCatalog:
        """`revision` (built from `file`) released to `channel` of snap `name`."""
        if file.name != name:
            raise StoreError(f"a file of snap {file.name!r} cannot be released as {name!r}")
        if revision < 1:
            raise StoreError(f"a store revision is a positive number, not {revision}")
        try:
            epoch = file_epoch(file)
        except EpochError as exc:
            raise StoreError(f"the store refuses revision {revision}: {exc}") from None
        entry = self.snap(name) or CatalogSnap(
            name, Store(risks=self.risks, policies=self.policies)
        )
        known = entry.file(revision)
        if known is not None and known != file:
            raise StoreError(f"revision {revision} of {name} was released with another file")
        files = entry.files if known is not None else (*entry.files, (revision, file))
        return self._with(
            replace(entry, store=entry.store.release(channel, revision, epoch), files=files)
        )

    def close(self, name: str, channel: str) -> StoreCatalog:
        entry = self._entry(name)
        return self._with(replace(entry, store=entry.store.close(channel)))

    def unrelease(self, name: str, channel: str) -> StoreCatalog:
        entry = self._entry(name)
        return self._with(replace(entry, store=entry.store.unrelease(channel)))

    def _entry(self, name: str) -> CatalogSnap:
        entry = self.snap(name)
        if entry is None:
            raise StoreError(f"the store has no snap named {name!r}")
        return entry

    # -- what the store answers ------------------------------------------------------------------

    def answer(self, request: StoreRequest) -> tuple[StoreResult, ...]:
        """The honest store's result for each action of `request`, in the actions' order."""
        return tuple(self._answer_one(request, action) for action in request.actions)

    def _answer_one(self, request: StoreRequest, action: StoreAction) -> StoreResult:
        snap_name = action.instance.partition("_")[0]
        entry = self.snap(snap_name)
        if entry is None:
            code = NAME_NOT_FOUND if action.action == "install" else ID_NOT_FOUND
            return StoreResult(action.instance, error=code, why=f"no snap named {snap_name}")
        store = entry.store
        context = None
        if action.action == "install":
            asked = action.channel or DEFAULT_CHANNEL
        else:
            context = request.context_of(action.instance)
            if context is None:
                return StoreResult(action.instance, error=ID_NOT_FOUND, why="no context entry")
            asked = action.channel or context.tracking_channel or DEFAULT_CHANNEL
        try:
            channel: str | None = _canonical(store, asked)
        except StoreError as exc:
            channel = None
            if action.revision is None:
                releases = entry.open_channels() if action.action == "install" else ()
                return StoreResult(
                    action.instance, error=REVISION_NOT_FOUND, releases=releases, why=str(exc)
                )
        if action.revision is not None:
            return self._pinned(entry, action, channel)
        assert channel is not None
        if action.action == "install":
            answer = store.fresh_install(channel)
        else:
            assert context is not None
            answer = store.refresh(channel, int(context.revision), context.epoch)
        if answer.revision is None:
            releases = entry.open_channels() if action.action == "install" else ()
            return StoreResult(
                action.instance, error=REVISION_NOT_FOUND, releases=releases, why=answer.why
            )
        file = entry.file(answer.revision)
        assert file is not None  # released revisions have files
        return StoreResult(
            action.instance,
            answer.revision,
            answer.epoch,
            answer.channel,
            file,
            why=answer.why,
        )

    def _pinned(self, entry: CatalogSnap, action: StoreAction, channel: str | None) -> StoreResult:
        assert action.revision is not None
        number = int(action.revision)
        file = entry.file(number)
        if file is None:
            return StoreResult(
                action.instance,
                error=REVISION_NOT_FOUND,
                why=f"{entry.name} has no revision {number} in the store",
            )
        return StoreResult(
            action.instance,
            number,
            file_epoch(file),
            channel,
            file,
            why=f"revision {number} was asked for",
        )


def _canonical(store: Store, text: str) -> str:
    """snapd's channel text as the model names it: a bare track means its stable risk."""
    if "/" not in text and text not in store.risks:
        text = f"{text}/{DEFAULT_CHANNEL}"
    return store.channel(text)


def offering(catalog: StoreCatalog, name: str, revision: int) -> Responder:
    """A misbehaving store: every refresh of snap `name` is answered with `revision` (its own
    epoch reported), whether or not it can read the installed epoch; the rest is honest, a
    refresh action naming a revision (--revision) too, as the served store answers it."""

    def respond(request: StoreRequest) -> tuple[StoreResult, ...]:
        honest = catalog.answer(request)
        entry = catalog.snap(name)
        file = entry.file(revision) if entry else None
        if file is None:
            raise StoreError(f"the catalog has no revision {revision} of {name}")
        results = []
        for action, result in zip(request.actions, honest, strict=True):
            misled = action.action == "refresh" and action.revision is None
            if misled and action.instance.partition("_")[0] == name:
                context = request.context_of(action.instance)
                asked = action.channel or (context.tracking_channel if context else None)
                store = catalog.store_of(name)
                serving = store.follows(_canonical(store, asked or DEFAULT_CHANNEL))
                result = StoreResult(
                    action.instance,
                    revision,
                    file_epoch(file),
                    serving,
                    file,
                    why=f"misbehaving: R{revision} offered whatever it can read",
                )
            results.append(result)
        return tuple(results)

    return respond

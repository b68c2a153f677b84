"""Steps that involve the store: what publishers do (release, close, unrelease, a store that
misbehaves) and what users do through it (install from a channel, refresh one or all, switch).

Each is an `Operation` whose prediction needs the store's content as well as snapd's state: the
run keeps a `StoreWorld` (the model's catalog and the misbehaviour in force), a publisher step
returns the next world, a user step is predicted by `snapconform.model.snapd`'s store operations
against it. The served store on the host is rewritten from the same world before a user step
runs, so the two cannot drift (conformance/served.py).
"""

from __future__ import annotations

import shlex
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any, ClassVar

from snapconform.conformance.operations import (
    FileLocator,
    Operation,
    register_operation,
    snap_file_from_json,
)
from snapconform.harness.operations import SnapClient, SnapCommandResult
from snapconform.model import snapd as model
from snapconform.model.epoch import Epoch
from snapconform.model.store_catalog import Responder, StoreCatalog, offering

# Publisher steps print nothing and change nothing on snapd; their "command" is this comment.
PUBLISHER_PREFIX = "# store:"


@dataclass(frozen=True)
class Misbehaviour:
    """Answers the model says a store never gives, in force until changed (none by default).

    offer_unreadable -- refreshes of `snap` are offered `revision` whatever epoch it can read;
    report_epoch -- the store reports `revision` of `snap` with this epoch (the file has its own);
    wrong_sha3 -- downloads of `snap` are announced with a wrong sha3-384;
    tampered -- the named assertion of `snap` is served with one header changed after signing;
    status -- every request is answered with this HTTP status (500);
    down -- nothing listens on the store's port.
    """

    offer_unreadable: tuple[tuple[str, int], ...] = ()
    report_epoch: tuple[tuple[str, int, str], ...] = ()  # (snap, revision, epoch yaml text)
    wrong_sha3: tuple[str, ...] = ()
    # (snap, "snap-declaration" | "snap-revision", the revision whose snap-revision it is)
    tampered: tuple[tuple[str, str, int], ...] = ()
    status: int | None = None
    down: bool = False

    @property
    def honest(self) -> bool:
        return self == Misbehaviour()

    @property
    def model_can_predict(self) -> bool:
        """Whether snapd's answer follows from the model: the store's answer is wrong in a way
        the model reasons about (an epoch), not in bytes, signatures or HTTP."""
        return not (self.wrong_sha3 or self.tampered or self.status is not None or self.down)

    def to_json(self) -> dict[str, Any]:
        return {
            "offer_unreadable": [list(item) for item in self.offer_unreadable],
            "report_epoch": [list(item) for item in self.report_epoch],
            "wrong_sha3": list(self.wrong_sha3),
            "tampered": [list(item) for item in self.tampered],
            "status": self.status,
            "down": self.down,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Misbehaviour:
        return cls(
            offer_unreadable=tuple((str(s), int(r)) for s, r in data.get("offer_unreadable", [])),
            report_epoch=tuple(
                (str(s), int(r), str(e)) for s, r, e in data.get("report_epoch", [])
            ),
            wrong_sha3=tuple(str(s) for s in data.get("wrong_sha3", [])),
            tampered=tuple((str(s), str(a), int(r)) for s, a, r in data.get("tampered", [])),
            status=data.get("status"),
            down=bool(data.get("down", False)),
        )


@dataclass(frozen=True)
class StoreWorld:
    """The store as a run's model sees it: its content and how it misbehaves."""

    catalog: StoreCatalog = field(default_factory=StoreCatalog)
    misbehaviour: Misbehaviour = field(default_factory=Misbehaviour)

    def responder(self) -> Responder | None:
        """The store's answers when they are not the honest catalog's (None: honest)."""
        respond: Responder | None = None
        for name, revision in self.misbehaviour.offer_unreadable:
            respond = offering(self.catalog, name, revision)
        if self.misbehaviour.report_epoch:
            respond = _reporting_epochs(self.catalog, respond, self.misbehaviour.report_epoch)
        return respond


def _reporting_epochs(
    catalog: StoreCatalog, inner: Responder | None, reports: tuple[tuple[str, int, str], ...]
) -> Responder:
    """Answers whose reported epoch is not the file's, for the listed revisions."""
    wanted = {(name, revision): Epoch.parse_yaml(text) for name, revision, text in reports}

    def respond(request: model.StoreRequest) -> tuple[Any, ...]:
        results = inner(request) if inner is not None else catalog.answer(request)
        out = []
        for result in results:
            epoch = wanted.get((result.instance.partition("_")[0], result.revision or 0))
            out.append(result if epoch is None else replace(result, epoch=epoch))
        return tuple(out)

    return respond


def unpredictable_refusal(state: model.SnapdState, message: str, why: str) -> model.Outcome:
    """A misbehaving store the model does not reason about: snapd must refuse with a message
    of this form (a regular expression) and change nothing."""
    return model.Outcome(
        state, model.ExpectedError("store-refused", message, pattern=True), (), why
    )


# Patterns of snapd's refusals for misbehaviour whose texts hold hashes, ports and retries
# (observed on 2.57.6 by the served store's own runs; see README "What real snapd taught").
REFUSAL_PATTERNS = {
    "wrong_sha3": r".*\(sha3-384 mismatch for \"{name}\": got \S+ but expected \S+\).*",
    "tampered": r".*cannot accept some assertions:.*failed signature verification: "
    r"openpgp: invalid signature: hash tag doesn't match.*",
    # an install's (or refresh's) store query; a refresh's snap-declaration refresh comes
    # first and fails first (the served store's error text)
    "status": r".*(cannot query the store for updates: got unexpected HTTP status code 500 "
    r"via POST to \"http://127\.0\.0\.1:\d+/v2/snaps/refresh\"|cannot refresh snap-declarations?"
    r" for .*assertion service error: \"misbehaving store: every request fails\").*",
    "down": r".*dial tcp 127\.0\.0\.1:\d+: connect: connection refused.*",
}


# snapd's store client tries each request this many times (store/store.go
# defaultRetryStrategy, LimitCount(6) within 38 s; 6 attempts seen on 2.57.6).
STORE_ATTEMPTS = 6


def requests_until_refused(
    kind: str, tampered: str | None, honest: tuple[model.StoreRequest, ...]
) -> tuple[model.StoreRequest, ...]:
    """Of the requests snapd would send an honest store (`honest`), those it sends before the
    misbehaviour stops it (observed on 2.57.6): none when the store is down; the first one,
    STORE_ATTEMPTS times, when every answer is 500; the first one (a refresh's snap-declaration
    refresh, an install's query) when the snap-declaration is tampered; up to the first install
    or refresh query when the download or its snap-revision is bad (no re-refresh follows)."""
    if kind == "down" or not honest:
        return ()
    if kind == "status":
        return (honest[0],) * STORE_ATTEMPTS
    if kind == "tampered" and tampered == "snap-declaration":
        return honest[:1]
    for index, request in enumerate(honest):
        if request.purpose != "assertions":
            return honest[: index + 1]
    return honest


def misbehaving_refusal(
    state: model.SnapdState,
    world: StoreWorld,
    name: str,
    honest: model.Outcome | None = None,
) -> model.Outcome | None:
    """The outcome for a user step while the store misbehaves in a way the model leaves to
    snapd's defences: refused, nothing changed. None when the model predicts the step itself.
    `honest`, the model's outcome had the store told the truth, gives the requests snapd sends
    before it refuses (`requests_until_refused`)."""
    found = world.misbehaviour
    if found.model_can_predict:
        return None
    snap_name = name.partition("_")[0]
    if found.down:
        kind = "down"
    elif found.status is not None:
        kind = "status"
    elif snap_name in found.wrong_sha3:
        kind = "wrong_sha3"
    elif any(snap == snap_name for snap, _, _ in found.tampered):
        kind = "tampered"
    else:
        return None
    pattern = REFUSAL_PATTERNS[kind].replace("{name}", snap_name)
    why = (
        f"the store misbehaves ({kind.replace('_', ' ')}): snapd's defences must refuse the "
        "step and leave everything as it was"
    )
    refusal = unpredictable_refusal(state, pattern, why)
    if honest is None:
        return refusal
    tampered = next((what for snap, what, _ in found.tampered if snap == snap_name), None)
    sent = requests_until_refused(kind, tampered, honest.store_requests)
    return replace(refusal, store_requests=sent)


def publisher_result(command: str) -> SnapCommandResult:
    return SnapCommandResult(argv=(command,), exit_code=0, output="", duration=0.0)


@dataclass(frozen=True)
class StoreOperation(Operation):
    """A step predicted against the run's `StoreWorld`; `publishes` steps change only it."""

    publishes: ClassVar[bool] = False

    def predict(self, state: model.SnapdState, locate: FileLocator) -> model.Outcome:
        raise TypeError(f"{self.kind} needs the store: ConformanceRun.step predicts it")

    def perform(self, client: SnapClient, locate: FileLocator) -> SnapCommandResult:
        raise TypeError(f"{self.kind} needs the store: ConformanceRun.step performs it")

    def predict_store(
        self, state: model.SnapdState, world: StoreWorld
    ) -> tuple[model.Outcome, StoreWorld]:
        raise NotImplementedError

    def argv(self) -> list[str]:
        """The snap command a user step runs (publisher steps run none)."""
        raise NotImplementedError

    def perform_store(self, client: SnapClient) -> SnapCommandResult:
        if self.publishes:
            return publisher_result(self.shell(_no_files))
        return client.run_snap(self.argv())

    def shell(self, locate: FileLocator) -> str:
        return shlex.join(self.argv())


def _no_files(snap: model.SnapFile) -> str:
    raise TypeError("store steps use no local files")


def _user_step(
    state: model.SnapdState,
    world: StoreWorld,
    instance: str,
    act: Callable[[Responder | None], model.Outcome],
) -> tuple[model.Outcome, StoreWorld]:
    honest = act(world.responder())
    refusal = misbehaving_refusal(state, world, instance, honest)
    return (refusal if refusal is not None else honest), world


# -- what publishers do --------------------------------------------------------------------------


@dataclass(frozen=True)
class Release(StoreOperation):
    """The publisher releases `snap` as store revision `revision` to `channel`."""

    kind: ClassVar[str] = "store-release"
    publishes: ClassVar[bool] = True
    snap: model.SnapFile
    channel: str
    revision: int

    def predict_store(
        self, state: model.SnapdState, world: StoreWorld
    ) -> tuple[model.Outcome, StoreWorld]:
        catalog = world.catalog.release(self.snap.name, self.channel, self.revision, self.snap)
        why = f"the store now has R{self.revision} of {self.snap.name} in {self.channel}"
        return model.Outcome(state, None, (), why), replace(world, catalog=catalog)

    def shell(self, locate: FileLocator) -> str:
        epoch = self.snap.epoch_yaml if self.snap.epoch_yaml is not None else "0"
        return (
            f"{PUBLISHER_PREFIX} release {self.snap.name} {self.snap.version} (epoch {epoch}) as"
            f" revision {self.revision} to {self.channel}"
        )

    def snap_files(self) -> tuple[model.SnapFile, ...]:
        return (self.snap,)


@dataclass(frozen=True)
class CloseChannel(StoreOperation):
    kind: ClassVar[str] = "store-close"
    publishes: ClassVar[bool] = True
    name: str
    channel: str

    def predict_store(
        self, state: model.SnapdState, world: StoreWorld
    ) -> tuple[model.Outcome, StoreWorld]:
        catalog = world.catalog.close(self.name, self.channel)
        why = f"{self.channel} of {self.name} is closed"
        return model.Outcome(state, None, (), why), replace(world, catalog=catalog)

    def shell(self, locate: FileLocator) -> str:
        return f"{PUBLISHER_PREFIX} close {self.channel} of {self.name}"


@dataclass(frozen=True)
class Unrelease(StoreOperation):
    kind: ClassVar[str] = "store-unrelease"
    publishes: ClassVar[bool] = True
    name: str
    channel: str

    def predict_store(
        self, state: model.SnapdState, world: StoreWorld
    ) -> tuple[model.Outcome, StoreWorld]:
        catalog = world.catalog.unrelease(self.name, self.channel)
        why = f"the tip of {self.channel} of {self.name} is withdrawn"
        return model.Outcome(state, None, (), why), replace(world, catalog=catalog)

    def shell(self, locate: FileLocator) -> str:
        return f"{PUBLISHER_PREFIX} unrelease the tip of {self.channel} of {self.name}"


@dataclass(frozen=True)
class Misbehave(StoreOperation):
    """From this step on the store misbehaves as `misbehaviour` says (all honest: it stops)."""

    kind: ClassVar[str] = "store-misbehave"
    publishes: ClassVar[bool] = True
    misbehaviour: Misbehaviour

    def predict_store(
        self, state: model.SnapdState, world: StoreWorld
    ) -> tuple[model.Outcome, StoreWorld]:
        what = "behaves" if self.misbehaviour.honest else f"misbehaves: {self.misbehaviour}"
        return model.Outcome(state, None, (), f"the store {what}"), replace(
            world, misbehaviour=self.misbehaviour
        )

    def shell(self, locate: FileLocator) -> str:
        return f"{PUBLISHER_PREFIX} misbehave {self.misbehaviour.to_json()}"

    def to_json(self) -> dict[str, Any]:
        return {"op": self.kind, "misbehaviour": self.misbehaviour.to_json()}


# -- what users do -------------------------------------------------------------------------------


@dataclass(frozen=True)
class _OneSnapStep(StoreOperation):
    """`snap VERB NAME [--channel=C] [--revision=N]` for one instance."""

    verb: ClassVar[str] = ""
    instance: str
    channel: str | None = None
    revision: int | None = None

    def act(
        self, state: model.SnapdState, catalog: StoreCatalog, store: Responder | None
    ) -> model.Outcome:
        raise NotImplementedError

    def predict_store(
        self, state: model.SnapdState, world: StoreWorld
    ) -> tuple[model.Outcome, StoreWorld]:
        return _user_step(
            state, world, self.instance, lambda store: self.act(state, world.catalog, store)
        )

    @property
    def revision_text(self) -> str | None:
        return None if self.revision is None else str(self.revision)

    def argv(self) -> list[str]:
        argv = ["snap", self.verb, self.instance]
        if self.channel is not None:
            argv.append(f"--channel={self.channel}")
        if self.revision is not None:
            argv.append(f"--revision={self.revision}")
        return argv

    @property
    def instances(self) -> tuple[str, ...]:
        return (self.instance,)


@dataclass(frozen=True)
class StoreInstall(_OneSnapStep):
    """`snap install NAME|NAME_KEY [--channel=C] [--revision=N]` from the store."""

    kind: ClassVar[str] = "store-install"
    verb: ClassVar[str] = "install"

    def act(
        self, state: model.SnapdState, catalog: StoreCatalog, store: Responder | None
    ) -> model.Outcome:
        return model.store_install(
            state, catalog, self.instance, self.channel, self.revision_text, store=store
        )


@dataclass(frozen=True)
class StoreRefresh(_OneSnapStep):
    """`snap refresh NAME [--channel=C] [--revision=N]` of a store snap."""

    kind: ClassVar[str] = "store-refresh"
    verb: ClassVar[str] = "refresh"

    def act(
        self, state: model.SnapdState, catalog: StoreCatalog, store: Responder | None
    ) -> model.Outcome:
        return model.store_refresh(
            state, catalog, self.instance, self.channel, self.revision_text, store=store
        )


@dataclass(frozen=True)
class RefreshAll(StoreOperation):
    """`snap refresh` with no names: every store snap, as an auto-refresh would."""

    kind: ClassVar[str] = "store-refresh-all"
    # the instances the run follows (observed after the step); snapd refreshes whatever it has
    watch: tuple[str, ...] = ()

    def predict_store(
        self, state: model.SnapdState, world: StoreWorld
    ) -> tuple[model.Outcome, StoreWorld]:
        honest = model.refresh_all(state, world.catalog, store=world.responder())
        names = [inst.name for inst in state.instances if inst.from_store]
        for name in names:
            refusal = misbehaving_refusal(state, world, name, honest)
            if refusal is not None:
                return refusal, world
        return honest, world

    def argv(self) -> list[str]:
        return ["snap", "refresh"]

    @property
    def instances(self) -> tuple[str, ...]:
        return self.watch


@dataclass(frozen=True)
class Switch(StoreOperation):
    """`snap switch --channel=C NAME`: only the tracking channel changes."""

    kind: ClassVar[str] = "store-switch"
    instance: str
    channel: str

    def predict_store(
        self, state: model.SnapdState, world: StoreWorld
    ) -> tuple[model.Outcome, StoreWorld]:
        return model.switch_channel(state, self.instance, self.channel), world

    def argv(self) -> list[str]:
        return ["snap", "switch", f"--channel={self.channel}", self.instance]

    @property
    def instances(self) -> tuple[str, ...]:
        return (self.instance,)


def _release_from_json(data: dict[str, Any]) -> dict[str, Any]:
    data["snap"] = snap_file_from_json(data["snap"])
    return data


def _misbehave_from_json(data: dict[str, Any]) -> dict[str, Any]:
    data["misbehaviour"] = Misbehaviour.from_json(data["misbehaviour"])
    return data


def _refresh_all_from_json(data: dict[str, Any]) -> dict[str, Any]:
    data["watch"] = tuple(data.get("watch", ()))
    return data


register_operation(Release, _release_from_json)
register_operation(CloseChannel)
register_operation(Unrelease)
register_operation(Misbehave, _misbehave_from_json)
register_operation(StoreInstall)
register_operation(StoreRefresh)
register_operation(RefreshAll, _refresh_all_from_json)
register_operation(Switch)

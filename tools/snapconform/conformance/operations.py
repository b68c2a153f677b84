"""Operations as data: each one knows how the model predicts it and how the harness performs it.

An operation round-trips through JSON so a history can be saved, replayed and turned into a
shell script or a spread task.
"""

from __future__ import annotations

import shlex
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any, ClassVar

from snapconform.harness.fixtures import (
    ContentEndpoint,
    FixtureSpec,
    HookBehaviour,
    ServiceBehaviour,
)
from snapconform.harness.operations import SnapClient, SnapCommandResult
from snapconform.model import snapd as model

# Where fixture files are put on the host; the model needs the path because snapd's messages
# about a file name it.
FileLocator = Callable[[model.SnapFile], str]


def fixture_spec(snap: model.SnapFile) -> FixtureSpec:
    """The harness's build description of the file the model reasons about."""
    return FixtureSpec(
        name=snap.name,
        version=snap.version,
        epoch_yaml=snap.epoch_yaml,
        hooks=tuple(
            HookBehaviour(hook.name, hook.fails_with, hook.marker, hook.reads_config)
            for hook in snap.hooks
        ),
        **services_fixture_fields(snap),
        confinement=snap.confinement,
    )


def services_fixture_fields(snap: model.SnapFile) -> dict[str, Any]:
    """FixtureSpec's services and content plugs/slots for ``snap`` (none: no keys, so a spec
    without them is the same as before)."""
    fields: dict[str, Any] = {}
    if snap.services:
        fields["services"] = tuple(
            ServiceBehaviour(s.name, s.daemon, s.fails) for s in snap.services
        )
    if snap.content_plugs:
        fields["content_plugs"] = tuple(
            ContentEndpoint(e.name, e.content) for e in snap.content_plugs
        )
    if snap.content_slots:
        fields["content_slots"] = tuple(
            ContentEndpoint(e.name, e.content) for e in snap.content_slots
        )
    return fields


def services_from_json(data: dict[str, Any]) -> dict[str, Any]:
    """SnapFile's services and content plugs/slots from its JSON (absent in older histories)."""
    return {
        "services": tuple(
            model.ServicePlan(s["name"], s.get("daemon", "simple"), s.get("fails", False))
            for s in data.get("services", [])
        ),
        "content_plugs": tuple(
            model.ContentEndpointPlan(e["name"], e.get("content", "scs-content"))
            for e in data.get("content_plugs", [])
        ),
        "content_slots": tuple(
            model.ContentEndpointPlan(e["name"], e.get("content", "scs-content"))
            for e in data.get("content_slots", [])
        ),
    }


def snap_file_from_json(data: dict[str, Any]) -> model.SnapFile:
    return model.SnapFile(
        name=data["name"],
        version=data["version"],
        epoch_yaml=data.get("epoch_yaml"),
        hooks=tuple(
            model.HookPlan(
                hook["name"],
                hook.get("fails_with"),
                hook.get("marker"),
                tuple(hook.get("reads_config") or ()),
            )
            for hook in data.get("hooks", [])
        ),
        **services_from_json(data),
        confinement=data.get("confinement", "strict"),
    )


@dataclass(frozen=True)
class Operation:
    """One step; subclasses set `kind` and implement the three views."""

    kind: ClassVar[str] = ""

    def predict(self, state: model.SnapdState, locate: FileLocator) -> model.Outcome:
        raise NotImplementedError

    def perform(self, client: SnapClient, locate: FileLocator) -> SnapCommandResult:
        raise NotImplementedError

    def shell(self, locate: FileLocator) -> str:
        """The command a person would type to do the same on any host."""
        raise NotImplementedError

    @property
    def instances(self) -> tuple[str, ...]:
        """Instances this step may touch (observed after it)."""
        return ()

    def snap_files(self) -> tuple[model.SnapFile, ...]:
        return ()

    def to_json(self) -> dict[str, Any]:
        return {"op": self.kind, **asdict(self)}

    def __str__(self) -> str:
        return self.shell(lambda snap: f"<{snap.name} {snap.version}>.snap")


@dataclass(frozen=True)
class SnapCommand(Operation):
    """A step that is one `snap` command line: it is run, and shown, as `argv()`."""

    def argv(self) -> list[str]:
        raise NotImplementedError

    def perform(self, client: SnapClient, locate: FileLocator) -> SnapCommandResult:
        return client.run_snap(self.argv())

    def shell(self, locate: FileLocator) -> str:
        return shlex.join(self.argv())


@dataclass(frozen=True)
class InstanceCommand(SnapCommand):
    """A `snap` command on one instance (the one observed after it)."""

    instance: str

    @property
    def instances(self) -> tuple[str, ...]:
        return (self.instance,)


@dataclass(frozen=True)
class FileStep(Operation):
    """A step on one fixture file whose snap is the step's instance (the file's name)."""

    snap: model.SnapFile

    @property
    def instances(self) -> tuple[str, ...]:
        return (self.snap.name,)

    def snap_files(self) -> tuple[model.SnapFile, ...]:
        return (self.snap,)


def file_step_from_json(data: dict[str, Any]) -> dict[str, Any]:
    """A FileStep's JSON fields as constructor arguments: the snap file decoded."""
    return {**data, "snap": snap_file_from_json(data["snap"])}


@dataclass(frozen=True)
class InstallFile(Operation):
    kind: ClassVar[str] = "install"
    snap: model.SnapFile
    name: str | None = None

    def predict(self, state: model.SnapdState, locate: FileLocator) -> model.Outcome:
        return model.install(state, self.snap, name=self.name, file_path=locate(self.snap))

    def perform(self, client: SnapClient, locate: FileLocator) -> SnapCommandResult:
        return client.install_file(locate(self.snap), name=self.name)

    def shell(self, locate: FileLocator) -> str:
        argv = ["snap", "install", "--dangerous", locate(self.snap)]
        if self.name is not None:
            argv += ["--name", self.name]
        return shlex.join(argv)

    @property
    def instances(self) -> tuple[str, ...]:
        return (self.name or self.snap.name,)

    def snap_files(self) -> tuple[model.SnapFile, ...]:
        return (self.snap,)


@dataclass(frozen=True)
class InstallMissingFile(Operation):
    """`snap install --dangerous PATH` for a PATH that does not exist on the host."""

    kind: ClassVar[str] = "install-missing"
    path: str

    def predict(self, state: model.SnapdState, locate: FileLocator) -> model.Outcome:
        return model.install_missing_file(state, self.path)

    def perform(self, client: SnapClient, locate: FileLocator) -> SnapCommandResult:
        return client.install_file(self.path)

    def shell(self, locate: FileLocator) -> str:
        return shlex.join(["snap", "install", "--dangerous", self.path])


@dataclass(frozen=True)
class Refresh(Operation):
    """`snap refresh [--revision=R] NAME` (without a revision: asks the store)."""

    kind: ClassVar[str] = "refresh"
    instance: str
    revision: str | None = None

    def predict(self, state: model.SnapdState, locate: FileLocator) -> model.Outcome:
        if self.revision is None:
            return model.refresh(state, self.instance)
        return model.refresh_revision(state, self.instance, self.revision)

    def perform(self, client: SnapClient, locate: FileLocator) -> SnapCommandResult:
        return client.refresh(self.instance, self.revision)

    def shell(self, locate: FileLocator) -> str:
        revision = [f"--revision={self.revision}"] if self.revision else []
        return shlex.join(["snap", "refresh", *revision, self.instance])

    @property
    def instances(self) -> tuple[str, ...]:
        return (self.instance,)


@dataclass(frozen=True)
class Revert(Operation):
    kind: ClassVar[str] = "revert"
    instance: str
    revision: str | None = None

    def predict(self, state: model.SnapdState, locate: FileLocator) -> model.Outcome:
        return model.revert(state, self.instance, self.revision)

    def perform(self, client: SnapClient, locate: FileLocator) -> SnapCommandResult:
        return client.revert(self.instance, self.revision)

    def shell(self, locate: FileLocator) -> str:
        revision = [f"--revision={self.revision}"] if self.revision else []
        return shlex.join(["snap", "revert", self.instance, *revision])

    @property
    def instances(self) -> tuple[str, ...]:
        return (self.instance,)


@dataclass(frozen=True)
class Remove(Operation):
    kind: ClassVar[str] = "remove"
    instance: str
    revision: str | None = None
    purge: bool = False

    def predict(self, state: model.SnapdState, locate: FileLocator) -> model.Outcome:
        return model.remove(state, self.instance, self.revision, purge=self.purge)

    def perform(self, client: SnapClient, locate: FileLocator) -> SnapCommandResult:
        return client.remove(self.instance, self.revision, purge=self.purge)

    def shell(self, locate: FileLocator) -> str:
        argv = ["snap", "remove", self.instance]
        if self.revision:
            argv.append(f"--revision={self.revision}")
        if self.purge:
            argv.append("--purge")
        return shlex.join(argv)

    @property
    def instances(self) -> tuple[str, ...]:
        return (self.instance,)


@dataclass(frozen=True)
class SetSystem(Operation):
    """`snap set system KEY=VALUE` (refresh.retain, experimental.parallel-instances)."""

    kind: ClassVar[str] = "set"
    key: str
    value: str

    def predict(self, state: model.SnapdState, locate: FileLocator) -> model.Outcome:
        return model.set_config(state, self.key, self.value)

    def perform(self, client: SnapClient, locate: FileLocator) -> SnapCommandResult:
        return client.set_system(self.key, self.value)

    def shell(self, locate: FileLocator) -> str:
        return shlex.join(["snap", "set", "system", f"{self.key}={self.value}"])


@dataclass(frozen=True)
class RunApp(Operation):
    """Run the fixture app, which writes MARKER into SNAP_DATA and SNAP_COMMON."""

    kind: ClassVar[str] = "run-app"
    instance: str
    marker: str = field(default="m1")

    def predict(self, state: model.SnapdState, locate: FileLocator) -> model.Outcome:
        return model.run_app(state, self.instance, self.marker)

    def perform(self, client: SnapClient, locate: FileLocator) -> SnapCommandResult:
        return client.run_app(self.instance, self.marker)

    def shell(self, locate: FileLocator) -> str:
        return shlex.join(["snap", "run", f"{self.instance}.mark", self.marker])

    @property
    def instances(self) -> tuple[str, ...]:
        return (self.instance,)


OPERATION_TYPES: dict[str, type[Operation]] = {
    cls.kind: cls
    for cls in (InstallFile, InstallMissingFile, Refresh, Revert, Remove, SetSystem, RunApp)
}
# kind -> how its JSON fields become constructor arguments (beyond plain values)
_DECODERS: dict[str, Callable[[dict[str, Any]], dict[str, Any]]] = {}


def register_operation(
    cls: type[Operation], decode: Callable[[dict[str, Any]], dict[str, Any]] | None = None
) -> None:
    """Make an operation type round-trip through JSON (other modules add theirs here)."""
    OPERATION_TYPES[cls.kind] = cls
    if decode is not None:
        _DECODERS[cls.kind] = decode


def _install_from_json(data: dict[str, Any]) -> dict[str, Any]:
    data["snap"] = snap_file_from_json(data["snap"])
    return data


_DECODERS[InstallFile.kind] = _install_from_json


def operation_from_json(data: dict[str, Any]) -> Operation:
    """Inverse of Operation.to_json; a clear ValueError for anything else."""
    data = dict(data)
    kind = data.pop("op", None)
    if kind not in OPERATION_TYPES:
        raise ValueError(f"unknown operation {kind!r}; known: {', '.join(OPERATION_TYPES)}")
    try:
        if kind in _DECODERS:
            data = _DECODERS[kind](data)
        return OPERATION_TYPES[kind](**data)
    except (TypeError, KeyError) as exc:
        raise ValueError(f"operation {kind!r}: {exc}") from None

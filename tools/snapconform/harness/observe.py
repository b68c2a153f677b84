"""What snapd did, read through its REST API: one typed Observation per step.

The observer program (observer_program.py) runs on the host and returns everything in one JSON
document; this module turns it into frozen dataclasses that compare directly with the model's
state (the suites do the comparing: the harness does not know the model).
"""

from __future__ import annotations

import json
import shlex
from dataclasses import dataclass
from importlib import resources
from typing import Any

import yaml

from snapconform.harness.fixtures import HOOK_LOG_PATH, HOST_WORK_DIR
from snapconform.harness.shell import Shell

OBSERVER_PATH = str(HOST_WORK_DIR / "observe.py")
TRASH_SUFFIX = ".old"


class ObservationError(RuntimeError):
    """The observer could not read snapd (snapd down, bad JSON): a host fault, not a verdict."""


@dataclass(frozen=True)
class RevisionObservation:
    revision: str
    status: str  # "active" for current, "installed" for the others (REST API)
    version: str
    epoch_yaml: str | None  # raw YAML text of `epoch:` in meta/snap.yaml; None when absent
    data: frozenset[str] | None  # entries of /var/snap/INSTANCE/REV; None when the dir is gone
    tracking_channel: str | None = None  # the REST API's tracking-channel (None: a sideload)


@dataclass(frozen=True)
class InstanceObservation:
    name: str
    revisions: tuple[RevisionObservation, ...]  # snapd's sequence order
    common: frozenset[str] | None
    data_dirs: frozenset[str]  # entries under /var/snap/INSTANCE but trash (leftovers show here)
    # REV.old: a revision's data trashed by a refresh onto that revision. snapd deletes it in
    # the copy-snap-data task's cleanup handler, which runs on the state engine's next ensure
    # pass, not when the change ends (handlers.go cleanupCopySnapData): seen, not compared.
    trash: frozenset[str] = frozenset()

    @property
    def installed(self) -> bool:
        return bool(self.revisions)

    @property
    def current(self) -> str | None:
        for revision in self.revisions:
            if revision.status == "active":
                return revision.revision
        return None

    @property
    def tracking_channel(self) -> str | None:
        """The channel the instance tracks (snapd reports it on every revision entry)."""
        for revision in self.revisions:
            if revision.status == "active":
                return revision.tracking_channel
        return None

    @property
    def sequence(self) -> tuple[str, ...]:
        return tuple(revision.revision for revision in self.revisions)

    def revision(self, name: str) -> RevisionObservation | None:
        return next((rev for rev in self.revisions if rev.revision == name), None)


@dataclass(frozen=True)
class HookLogLine:
    instance: str
    hook: str
    revision: str
    snap_data: str
    version: str

    @classmethod
    def parse(cls, line: str) -> HookLogLine:
        fields = line.split("\t")
        if len(fields) < 5:
            raise ObservationError(f"malformed hook log line: {line!r}")
        return cls(*fields[:5])


@dataclass(frozen=True)
class TaskObservation:
    kind: str
    summary: str
    status: str
    log: tuple[str, ...]


@dataclass(frozen=True)
class ChangeObservation:
    id: int
    kind: str
    summary: str
    status: str
    err: str | None
    tasks: tuple[TaskObservation, ...]


@dataclass(frozen=True)
class Observation:
    instances: dict[str, InstanceObservation]
    hooks: tuple[HookLogLine, ...]
    changes: tuple[ChangeObservation, ...]
    last_change: int
    # What snapd asked the served store since the last observation (its request log's lines,
    # as the server wrote them), when the host has one.
    store_requests: tuple[dict[str, Any], ...] = ()
    store_log_offset: int = 0

    def instance(self, name: str) -> InstanceObservation:
        return self.instances[name]


def epoch_text_of(snap_yaml: str | None) -> str | None:
    """The raw text of the `epoch:` value, as snapd's YAML decoder would see the scalar or map.

    We keep the source text rather than a parsed value: turning it into an epoch is the model's
    job, and YAML 1.1 resolution (0xA -> 10) must not change what snapd reads.
    """
    if not snap_yaml:
        return None
    node = yaml.compose(snap_yaml)
    if not isinstance(node, yaml.MappingNode):
        return None
    for key, value in node.value:
        if isinstance(key, yaml.ScalarNode) and key.value == "epoch":
            start, end = value.start_mark.index, value.end_mark.index
            return snap_yaml[start:end].strip()
    return None


def parse_observation(document: dict[str, Any]) -> Observation:
    instances: dict[str, InstanceObservation] = {}
    for raw in document.get("instances", []):
        revisions = tuple(
            RevisionObservation(
                revision=str(rev["revision"]),
                status=str(rev["status"]),
                version=str(rev["version"]),
                epoch_yaml=epoch_text_of(rev.get("snap_yaml")),
                data=None if rev.get("data") is None else frozenset(rev["data"]),
                tracking_channel=rev.get("tracking_channel") or None,
            )
            for rev in raw.get("revisions", [])
        )
        entries = frozenset(raw.get("data_dirs") or ())
        trash = frozenset(entry for entry in entries if entry.endswith(TRASH_SUFFIX))
        instances[raw["name"]] = InstanceObservation(
            name=raw["name"],
            revisions=revisions,
            common=None if raw.get("common") is None else frozenset(raw["common"]),
            data_dirs=entries - trash,
            trash=trash,
        )
    hooks = tuple(HookLogLine.parse(line) for line in document.get("hook_log", []) if line)
    changes = tuple(
        ChangeObservation(
            id=int(change["id"]),
            kind=str(change.get("kind")),
            summary=str(change.get("summary")),
            status=str(change.get("status")),
            err=change.get("err"),
            tasks=tuple(
                TaskObservation(
                    kind=str(task.get("kind")),
                    summary=str(task.get("summary")),
                    status=str(task.get("status")),
                    log=tuple(task.get("log") or ()),
                )
                for task in change.get("tasks", [])
            ),
        )
        for change in document.get("changes", [])
    )
    return Observation(
        instances=instances,
        hooks=hooks,
        changes=changes,
        last_change=int(document.get("last_change", 0)),
        store_requests=tuple(document.get("store_requests") or ()),
        store_log_offset=int(document.get("store_log_offset", 0)),
    )


class Observer:
    """Reads snapd's state on a host through the framed shell (one command per observation)."""

    def __init__(self, shell: Shell) -> None:
        self.shell = shell
        self._installed = False
        self.last_change = 0
        # The served store's request log on the host, when there is one (set by the session
        # that starts the store), and how far it has been read.
        self.store_log: str | None = None
        self.store_log_offset = 0

    def install(self) -> None:
        source = resources.files("snapconform.harness").joinpath("observer_program.py")
        self.shell.put_text(OBSERVER_PATH, source.read_text(encoding="utf-8"))
        self._installed = True

    def observe(self, instances: list[str], *, consume_hooks: bool = True) -> Observation:
        """Observe the named instances, the hook lines since the last call, and new changes."""
        if not self._installed:
            self.install()
        argv = ["python3", OBSERVER_PATH, "--hook-log", str(HOOK_LOG_PATH)]
        argv += ["--since-change", str(self.last_change)]
        if consume_hooks:
            argv.append("--truncate-hook-log")
        if self.store_log is not None:
            argv += ["--store-log", self.store_log, "--store-log-from", str(self.store_log_offset)]
        argv += instances
        result = self.shell.run(" ".join(shlex.quote(arg) for arg in argv), timeout=60)
        if result.exit_code != 0:
            raise ObservationError(f"observer exited {result.exit_code}: {result.output[-2000:]}")
        try:
            document = json.loads(result.output.strip().splitlines()[-1])
        except (json.JSONDecodeError, IndexError) as exc:
            raise ObservationError(f"observer printed no JSON: {result.output[-2000:]}") from exc
        observation = parse_observation(document)
        self.last_change = max(self.last_change, observation.last_change)
        if self.store_log is not None:
            self.store_log_offset = observation.store_log_offset
        return observation

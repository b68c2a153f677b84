"""What snapd did, read through its REST API: one typed Observation per step.

The observer program (observer_program.py) runs on the host and returns everything in one JSON
document; this module turns it into frozen dataclasses that compare directly with the model's
state (the suites do the comparing: the harness does not know the model).
"""

from __future__ import annotations

import json
import os
import shlex
from dataclasses import dataclass
from importlib import resources
from pathlib import PurePosixPath
from typing import Any

import yaml

from snapconform.harness.fixtures import HOOK_LOG_PATH, HOST_WORK_DIR
from snapconform.harness.shell import Shell

OBSERVER_PATH = str(HOST_WORK_DIR / "observe.py")  # the program, as the Observer puts it
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
class ServiceObservation:
    """A service of the current revision as REST reports it (`enabled`/`active` of its app)."""

    name: str
    daemon: str
    enabled: bool
    active: bool


@dataclass(frozen=True)
class UserDataObservation:
    """~USER/snap/INSTANCE on the host: revision dirs and their entries, common (None:
    absent), the `current` link's target, trash (REV.old, not compared) and anything else."""

    user: str
    revisions: tuple[tuple[str, frozenset[str]], ...]
    common: frozenset[str] | None
    current: str | None
    trash: frozenset[str] = frozenset()
    other: frozenset[str] = frozenset()


@dataclass(frozen=True)
class ConfigLogLine:
    """A value a fixture hook read with `snapctl get` (fixtures.CONFIG_LOG_FIELDS)."""

    instance: str
    hook: str
    revision: str
    key: str
    value: str

    @classmethod
    def parse(cls, line: str) -> ConfigLogLine:
        fields = line.split("\t", 4)
        if len(fields) < 5:
            raise ObservationError(f"malformed config log line: {line!r}")
        return cls(*fields)


def _user_data(raw: dict[str, Any] | None) -> tuple[UserDataObservation, ...]:
    return tuple(
        UserDataObservation(
            user=str(user),
            revisions=tuple(
                sorted(
                    (str(rev), frozenset(entries or ()))
                    for rev, entries in (seen.get("revisions") or {}).items()
                )
            ),
            common=None if seen.get("common") is None else frozenset(seen["common"]),
            current=seen.get("current"),
            trash=frozenset(seen.get("trash") or ()),
            other=frozenset(seen.get("other") or ()),
        )
        for user, seen in sorted((raw or {}).items())
    )


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
    # The current revision's services, and whether the snap is enabled (`snap disable` makes
    # every revision `installed`; `snap_current` then still names the current one). None when
    # not observed or not installed.
    services: tuple[ServiceObservation, ...] = ()
    snap_enabled: bool | None = None
    snap_current: str | None = None
    # Each user's ~/snap/INSTANCE (root and uid >= 1000), and the snap's configuration as
    # canonical JSON from REST /v2/snaps/NAME/conf (None: not installed or not read).
    user_data: tuple[UserDataObservation, ...] = ()
    config_json: str | None = None
    # The active revision's confinement and the devmode/jailmode flags (REST /v2/snaps);
    # None when no revision is active or not observed.
    confinement: tuple[str, bool, bool] | None = None
    # `snap try`: trymode, the directory the active revision is mounted from (None: a .snap)
    # and its try-note file's text (None: none); None when no revision is active.
    tried: tuple[bool, str | None, str | None] | None = None

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
class HostSnapRevision:
    revision: str
    status: str
    version: str
    snap_type: str
    base: str  # "" when the revision's snap.yaml has no base (core, for an app)
    epoch_yaml: str | None
    tracking_channel: str | None
    channel: str | None
    hooks: tuple[str, ...]  # meta/hooks entries; () when none
    data: frozenset[str] | None = None  # entries of /var/snap/NAME/REV; None: no such dir


@dataclass(frozen=True)
class HostSnap:
    """A snap on the host as snapd lists it (the run's own snaps and what the host had)."""

    name: str
    snap_type: str  # app, os, base, snapd, gadget, kernel (the current revision's)
    base: str
    apps: tuple[str, ...]
    revisions: tuple[HostSnapRevision, ...]  # sequence order
    common: frozenset[str] | None = None

    @property
    def current(self) -> str | None:
        return next((r.revision for r in self.revisions if r.status == "active"), None)


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
    # Every snap installed on the host, when asked for (observe(..., host_snaps=True)), and
    # the model assertion's headers (classic, base, gadget, kernel, model; None: no model).
    host_snaps: tuple[HostSnap, ...] = ()
    device_model: dict[str, Any] | None = None
    # /v2/system-info's confinement ("partial": snapd forces devmode), with the host snaps
    confinement_level: str | None = None
    # Established interface connections touching the observed instances:
    # (plug snap, plug, slot snap, slot, manual), sorted.
    connections: tuple[tuple[str, str, str, str, bool], ...] = ()
    # Values fixture hooks read with `snapctl get` since the last observation.
    config_log: tuple[ConfigLogLine, ...] = ()

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


def _services_fields(raw: dict[str, Any] | None) -> dict[str, Any]:
    """InstanceObservation's services fields from observe_services' dict (absent: defaults)."""
    if not raw:
        return {}
    current = raw.get("current")
    return {
        "services": tuple(
            ServiceObservation(
                str(app["name"]), str(app.get("daemon")), bool(app["enabled"]), bool(app["active"])
            )
            for app in raw.get("apps") or ()
        ),
        "snap_enabled": raw.get("enabled"),
        "snap_current": None if current is None else str(current),
    }


def _confinement(raw: dict[str, Any] | None) -> tuple[str, bool, bool] | None:
    if not raw:
        return None
    return (str(raw.get("confinement")), bool(raw.get("devmode")), bool(raw.get("jailmode")))


def _tried(raw: dict[str, Any] | None) -> tuple[bool, str | None, str | None] | None:
    if not raw:
        return None
    return (bool(raw.get("trymode")), raw.get("mounted_from"), raw.get("note"))


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
            **_services_fields(raw.get("services")),
            user_data=_user_data(raw.get("user_data")),
            config_json=None
            if raw.get("config") is None
            else json.dumps(raw["config"], sort_keys=True),
            confinement=_confinement(raw.get("confinement")),
            tried=_tried(raw.get("tried")),
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
        host_snaps=tuple(_host_snap(raw) for raw in document.get("host_snaps") or ()),
        device_model=document.get("device_model"),
        confinement_level=document.get("confinement_level"),
        connections=tuple(
            (str(c[0]), str(c[1]), str(c[2]), str(c[3]), bool(c[4]))
            for c in document.get("connections") or ()
        ),
        config_log=tuple(
            ConfigLogLine.parse(line) for line in document.get("config_log") or () if line
        ),
    )


def _host_snap(raw: dict[str, Any]) -> HostSnap:
    return HostSnap(
        name=str(raw["name"]),
        snap_type=str(raw.get("type") or "app"),
        base=str(raw.get("base") or ""),
        apps=tuple(raw.get("apps") or ()),
        revisions=tuple(
            HostSnapRevision(
                revision=str(rev["revision"]),
                status=str(rev.get("status")),
                version=str(rev.get("version")),
                snap_type=str(rev.get("type") or raw.get("type") or "app"),
                base=str(rev.get("base") or _yaml_base(rev.get("snap_yaml"))),
                epoch_yaml=epoch_text_of(rev.get("snap_yaml")),
                tracking_channel=rev.get("tracking_channel") or None,
                channel=rev.get("channel") or None,
                hooks=tuple(sorted(rev.get("hooks") or ())),
                data=None if rev.get("data") is None else frozenset(rev["data"]),
            )
            for rev in raw.get("revisions", [])
        ),
        common=None if raw.get("common") is None else frozenset(raw["common"]),
    )


class Observer:
    """Reads snapd's state on a host through the framed shell (one command per observation).

    The observer program runs on the host as one long-lived server per Observer (started at
    install, in `server_dir`), so an observation costs one shell round trip and no python3
    start-up. Where the server cannot start (no python3 FIFOs, no setsid) every observation
    runs the program afresh. The server going away between observations (it ends itself when
    idle) starts a new one; dying during an observation, or snapd not answering it, is an
    ObservationError: a host fault, never a verdict.
    """

    def __init__(
        self,
        shell: Shell,
        *,
        work_dir: PurePosixPath = HOST_WORK_DIR,
        snapd_socket: str | None = None,
        snapd_timeout: float | None = None,
        hook_log: str = str(HOOK_LOG_PATH),
    ) -> None:
        self.shell = shell
        self.program_path = str(work_dir / "observe.py")
        self.server_dir = str(work_dir / "observer")
        self.snapd_socket = snapd_socket
        self.snapd_timeout = snapd_timeout
        self.hook_log = hook_log
        self._installed = False
        self.serving = False  # the server answers (else: one run of the program each time)
        self.server_starts = 0
        self.last_change = 0
        self._requests = 0
        # The served store's request log on the host, when there is one (set by the session
        # that starts the store), and how far it has been read.
        self.store_log: str | None = None
        self.store_log_offset = 0

    def install(self) -> None:
        source = resources.files("snapconform.harness").joinpath("observer_program.py")
        self.shell.put_text(self.program_path, source.read_text(encoding="utf-8"))
        self._installed = True
        self.serving = self.start_server()

    def start_server(self) -> bool:
        """(Re)start the program as a server; True when it answers."""
        self.server_starts += 1
        result = self.shell.run(self._start_script(), timeout=60)
        return result.exit_code == 0 and result.output.rstrip().endswith("observer serving")

    def _start_script(self) -> str:
        directory = shlex.quote(self.server_dir)
        serve = shlex.join(["python3", "-I", "-S", self.program_path, "--serve", self.server_dir])
        return "\n".join(
            [
                f"d={directory}",
                _STOP_SERVER,
                'rm -rf -- "$d" && mkdir -p -m 0700 -- "$d" && mkfifo -m 0600 -- "$d/requests"'
                " || exit 3",
                "command -v setsid >/dev/null || exit 4",
                f'setsid -f {serve} </dev/null >"$d/log" 2>&1 || exit 5',
                # the server writes its pid once it reads its FIFO
                'for _ in $(seq 200); do [ -s "$d/pid" ] && break; sleep 0.01; done',
                '[ -s "$d/pid" ] || { cat -- "$d/log"; exit 6; }',
                "echo observer serving",
            ]
        )

    def close(self) -> None:
        """Stop the server (a borrowed host keeps no process of ours), also one started
        before the observer fell back to the one-shot program."""
        if (self.serving or self.server_starts) and self.shell.running:
            directory = shlex.quote(self.server_dir)
            self.shell.run(f'd={directory}\n{_STOP_SERVER}\nrm -rf -- "$d"', timeout=30)
        self.serving = False

    def arguments(self, instances: list[str], consume_hooks: bool, host_snaps: bool) -> list[str]:
        argv = ["--hook-log", self.hook_log, "--since-change", str(self.last_change)]
        if consume_hooks:
            argv.append("--truncate-hook-log")
        if self.store_log is not None:
            argv += ["--store-log", self.store_log, "--store-log-from", str(self.store_log_offset)]
        if host_snaps:
            argv.append("--host-snaps")
        if self.snapd_socket is not None:
            argv += ["--snapd-socket", self.snapd_socket]
        if self.snapd_timeout is not None:
            argv += ["--snapd-timeout", str(self.snapd_timeout)]
        return [*argv, "--", *instances]

    def observe(
        self, instances: list[str], *, consume_hooks: bool = True, host_snaps: bool = False
    ) -> Observation:
        """Observe the named instances, the hook lines since the last call, and new changes
        (with `host_snaps`, also every snap installed on the host: Observation.host_snaps)."""
        if not self._installed:
            self.install()
        argv = self.arguments(instances, consume_hooks, host_snaps)
        document = self._ask_server(argv) if self.serving else None
        if document is None:
            document = self._run_program(argv)
        if "observer_error" in document:
            raise ObservationError(f"the observer failed: {document['observer_error']}")
        observation = parse_observation(document)
        self.last_change = max(self.last_change, observation.last_change)
        if self.store_log is not None:
            self.store_log_offset = observation.store_log_offset
        return observation

    def _run_program(self, argv: list[str]) -> dict[str, Any]:
        result = self.shell.run(shlex.join(["python3", self.program_path, *argv]), timeout=60)
        if result.exit_code != 0:
            raise ObservationError(f"observer exited {result.exit_code}: {result.output[-2000:]}")
        return _last_json_line(result.output, "observer printed no JSON")

    def _ask_server(self, argv: list[str]) -> dict[str, Any] | None:
        """The server's answer; None when no server answers and none can be started (the
        caller then runs the program once)."""
        for _attempt in range(2):
            self._requests += 1
            reply = f"{self.server_dir}/reply.{os.getpid()}.{self._requests}"
            request = json.dumps({"argv": argv, "reply": reply}, separators=(",", ":"))
            result = self.shell.run(_ask_script(self.server_dir, reply, request), timeout=60)
            if result.exit_code == SERVER_DOWN:
                # Gone between observations (idle, or killed): a new one, then ask again.
                if not self.start_server():
                    self.serving = False
                    return None
                continue
            if result.exit_code != 0:
                raise ObservationError(
                    f"observer request exited {result.exit_code}: {result.output[-2000:]}"
                )
            return _last_json_line(
                result.output, "the observer process ended during the observation"
            )
        self.serving = False
        return None


# Exit status of an observation request when no server runs (then one is started).
SERVER_DOWN = 97
# Kills the server whose pid file is in $d, if that process is still our server (its command
# line says --serve), so a recycled pid is never touched.
_STOP_SERVER = (
    'p=; read -r p 2>/dev/null < "$d/pid"; '
    'if [ -n "$p" ] && tr "\\0" " " 2>/dev/null < "/proc/$p/cmdline" | grep -q -- " --serve "; '
    'then kill "$p" 2>/dev/null; fi; true'
)


def _ask_script(server_dir: str, reply: str, request: str) -> str:
    """One observation through the server: builtins but for mkfifo and cat. The request goes
    in through a read-write open (never blocks); the reply FIFO's open waits for the server,
    which opens it before observing, so its death mid-way is an end of file here, at once."""
    return "\n".join(
        [
            f"d={shlex.quote(server_dir)} r={shlex.quote(reply)}",
            'p=; read -r p 2>/dev/null < "$d/pid"',
            'c=(); [ -n "$p" ] && mapfile -d \'\' -t c 2>/dev/null < "/proc/$p/cmdline"',
            f'case " ${{c[*]}} " in *" --serve "*) ;; *) exit {SERVER_DOWN};; esac',
            'mkfifo -m 0600 -- "$r" || exit 98',
            f"printf '%s\\n' {shlex.quote(request)} 1<>\"$d/requests\"",
            'cat -- "$r"; s=$?; rm -f -- "$r"; exit $s',
        ]
    )


def _last_json_line(output: str, problem: str) -> dict[str, Any]:
    try:
        document = json.loads(output.strip().splitlines()[-1])
    except (json.JSONDecodeError, IndexError) as exc:
        raise ObservationError(f"{problem}: {output[-2000:]}") from exc
    if not isinstance(document, dict):
        raise ObservationError(f"{problem}: {output[-2000:]}")
    return document


def _yaml_base(snap_yaml: str | None) -> str:
    """`base:` from a snap.yaml ("" when absent): where the REST API leaves it out."""
    try:
        document = yaml.safe_load(snap_yaml or "")
    except yaml.YAMLError:
        return ""
    return str(document.get("base") or "") if isinstance(document, dict) else ""

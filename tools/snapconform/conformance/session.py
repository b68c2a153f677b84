"""A conformance run on one host: each step is predicted by the model, performed on real snapd,
observed through the REST API and compared; every step is recorded for the history.

`HostSession` owns the host and its framed shell (start, reset on demand, stop);
`ConformanceRun` is one independent sequence of steps (one test, one Hypothesis example) on it.
"""

from __future__ import annotations

import contextlib
import json
import re
import secrets
import shlex
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

# Operation kinds defined outside operations.py register themselves when imported; a run
# must know them all (histories round-trip through JSON).
import snapconform.conformance.ops_commands
import snapconform.conformance.ops_config
import snapconform.conformance.ops_confinement
import snapconform.conformance.ops_host
import snapconform.conformance.ops_interfaces
import snapconform.conformance.ops_services
import snapconform.conformance.ops_try
import snapconform.conformance.ops_userdata  # noqa: F401 (each import binds `snapconform`)
from snapconform.conformance import ops_faults  # noqa: F401 (registers "interrupted" for JSON)
from snapconform.conformance.compare import Mismatch, compare_step, neutralise
from snapconform.conformance.host_seed import seed_from_host
from snapconform.conformance.known import KNOWN_DIVERGENCES, KnownDivergence, explain
from snapconform.conformance.operations import Operation, SetSystem, fixture_spec
from snapconform.conformance.store_steps import StoreOperation, StoreWorld
from snapconform.harness.fixtures import build_snap
from snapconform.harness.observe import InstanceObservation, Observation, ObservationError, Observer
from snapconform.harness.operations import REMOTE_SNAP_DIR, SnapClient, SnapCommandResult
from snapconform.harness.shell import CommandTimeout, Shell
from snapconform.hosts.base import Host, HostError, HostSpec, open_host
from snapconform.model import snapd as model

if TYPE_CHECKING:
    from snapconform.conformance.served import ServedStore

VERSION_PATTERN = re.compile(r"^snapd\s+(\d+)\.(\d+)", re.MULTILINE)


class HostFaultVerdict(HostError):
    """The host failed during a step: not a verdict on snapd. The next run gets a fresh host."""


class KnownDivergenceFound(Exception):
    """The step diverged exactly as a recorded contradiction of the documents says."""

    def __init__(self, record: StepRecord, known: tuple[KnownDivergence, ...]) -> None:
        self.record = record
        self.known = known
        lines = [f"step {record.index} ({record.command}) shows a known divergence:"]
        lines += [f"  {entry.describe()}" for entry in known]
        lines += [f"  {mismatch}" for mismatch in record.mismatches]
        super().__init__("\n".join(lines))


class Divergence(AssertionError):
    """Real snapd and the model disagree on a step."""

    def __init__(self, record: StepRecord) -> None:
        self.record = record
        lines = [f"snapd and the model disagree at step {record.index}: {record.command}"]
        lines += [f"  {mismatch}" for mismatch in record.mismatches]
        lines.append(f"  model's reason: {record.expected_why}")
        if record.observed_output:
            lines.append(f"  snap printed: {record.observed_output.strip()[-600:]}")
        super().__init__("\n".join(lines))


@dataclass
class StepRecord:
    index: int
    operation: dict[str, Any]
    command: str
    expected_ok: bool
    expected_kind: str | None  # the model's kind of refusal (epoch-refused, hook-failed, ...)
    expected_error: str | None
    expected_why: str
    expected_hooks: list[list[str]]
    observed_exit_code: int | None = None
    observed_output: str = ""
    observed_error: str | None = None
    observed_hooks: list[list[str]] = field(default_factory=list)
    # snapd's changes made by the step: id, kind, status, error, and each task's kind/status
    observed_changes: list[dict[str, Any]] = field(default_factory=list)
    # What snapd holds after the step, per instance the step may touch (see observed_state):
    # recorded at every step, so a history can be read without re-running it.
    observed_state: dict[str, Any] = field(default_factory=dict)
    # What snapd asked the served store during the step (its request log's lines).
    observed_store_requests: list[dict[str, Any]] = field(default_factory=list)
    verdict: str = "pending"  # pass | divergence | known-divergence | host-fault
    mismatches: list[Mismatch] = field(default_factory=list)
    duration: float = 0.0
    fault: str | None = None
    known: list[str] = field(default_factory=list)
    # An interrupted step's kill point, what snapd showed and the allowed outcome it matched.
    interruption: dict[str, Any] | None = None

    def to_json(self) -> dict[str, Any]:
        extra = {} if self.interruption is None else {"interruption": self.interruption}
        return {
            "step": self.index,
            "operation": self.operation,
            "command": self.command,
            "expected": {
                "ok": self.expected_ok,
                "kind": self.expected_kind,
                "error": self.expected_error,
                "why": self.expected_why,
                "hooks": self.expected_hooks,
            },
            "observed": {
                "exit_code": self.observed_exit_code,
                "output": self.observed_output,
                "error": self.observed_error,
                "hooks": self.observed_hooks,
                "changes": self.observed_changes,
                "state": self.observed_state,
                "store_requests": self.observed_store_requests,
            },
            "verdict": self.verdict,
            "mismatches": [mismatch.to_json() for mismatch in self.mismatches],
            "duration": round(self.duration, 3),
            "fault": self.fault,
            "known": self.known,
            **extra,
        }


def observed_state(observation: Observation, instances: Sequence[str]) -> dict[str, Any]:
    """Per instance: installed or not, the sequence, current, tracking channel, each revision's
    data entries, SNAP_COMMON's and trashed (REV.old) entries, as lists for JSON."""
    state: dict[str, Any] = {}
    for name in instances:
        seen = observation.instances.get(name)
        if seen is None or not seen.installed:
            state[name] = {"installed": False, **userdata_state(seen)}
            continue
        state[name] = {
            "installed": True,
            "sequence": list(seen.sequence),
            "current": seen.current,
            "channel": seen.tracking_channel,
            "data": {
                rev.revision: None if rev.data is None else sorted(rev.data)
                for rev in seen.revisions
            },
            "common": None if seen.common is None else sorted(seen.common),
            "trash": sorted(seen.trash),
            **services_state(seen, observation),
            **userdata_state(seen),
            **confinement_state(seen),
        }
    return state


def confinement_state(seen: InstanceObservation) -> dict[str, Any]:
    """The active revision's confinement and the devmode/jailmode flags, when observed."""
    if seen.confinement is None:
        return {}
    kind, devmode, jailmode = seen.confinement
    found: dict[str, Any] = {
        "confinement": {"confinement": kind, "devmode": devmode, "jailmode": jailmode}
    }
    if seen.tried is not None and (seen.tried[0] or seen.tried[1]):
        trymode, mounted_from, note = seen.tried
        found["tried"] = {"trymode": trymode, "mounted_from": mounted_from, "note": note}
    return found


def userdata_state(seen: InstanceObservation | None) -> dict[str, Any]:
    """Each user's ~/snap/INSTANCE and the configuration (REST), when observed."""
    if seen is None:
        return {}
    found: dict[str, Any] = {}
    if seen.user_data:
        found["user_data"] = {
            d.user: {
                "revisions": {rev: sorted(entries) for rev, entries in d.revisions},
                "common": None if d.common is None else sorted(d.common),
                "current": d.current,
                "trash": sorted(d.trash),
            }
            for d in seen.user_data
        }
    if seen.config_json is not None:
        found["config"] = json.loads(seen.config_json)
    return found


def services_state(seen: InstanceObservation, observation: Observation) -> dict[str, Any]:
    """`enabled` (snap disable), `services` ([name, daemon, enabled, active]) and the
    established `connections` touching the instance ([plug snap, plug, slot snap, slot])."""
    return {
        "enabled": seen.snap_enabled,
        "services": [[s.name, s.daemon, s.enabled, s.active] for s in seen.services],
        "connections": [list(c[:4]) for c in observation.connections if seen.name in (c[0], c[2])],
    }


def store_tier_url(url: str) -> str:
    """The host URL whose snapd trusts the served store: an nspawn release's or an LXD
    instance's store tier (`?snapd=testkeys`: for lxd://NAME the instance NAME-store, made on
    first use); any other URL as given (its snapd must be a test-keys build that names a store
    URL, or the session says it cannot be used)."""
    spec = HostSpec.parse(url)
    if spec.scheme in ("nspawn", "lxd") and "snapd" not in spec.query:
        return f"{url}{'&' if '?' in url else '?'}snapd=testkeys"
    return url


def parse_snapd_version(text: str) -> tuple[int, int]:
    match = VERSION_PATTERN.search(text)
    if not match:
        raise HostError(f"cannot read snapd's version from `snap version`: {text!r}")
    return int(match.group(1)), int(match.group(2))


# System settings the suites change; each run starts from the host's own values of them.
MANAGED_SETTINGS = ("refresh.retain", "experimental.parallel-instances", "homedirs")


class HostSession:
    """One host for many runs: started lazily, its system settings put back after each run
    (to what the host had: a borrowed host keeps its owner's values), reset when broken."""

    def __init__(
        self,
        url: str,
        artifacts: Path,
        cache_dir: Path | None = None,
        host_options: dict[str, Any] | None = None,
    ) -> None:
        self.url = url
        self.artifacts = artifacts
        self.cache_dir = cache_dir
        self.host: Host = open_host(url, **(host_options or {}))
        self.shell: Shell | None = None
        self.client: SnapClient | None = None
        self.observer: Observer | None = None
        self.snapd_version_text = ""
        self.snapd_version: tuple[int, int] = (0, 0)
        # System settings runs changed on this host (key -> value); the next run puts them back
        # to `baseline` (the host's own values, None where unset) so every run starts from the
        # same state: Hypothesis needs that, and the model starts from `baseline` too.
        self.config: dict[str, str] = {}
        self.baseline: dict[str, str | None] = {}
        self.broken = False  # a host fault happened: restart before the next run
        self.started = False
        self.resets = 0
        self.served: ServedStore | None = None  # started by the first run that needs a store
        # What prepare_run saw (the host's snaps and model assertion): a run's first state.
        self.first_observation: Observation | None = None

    # -- lifecycle -------------------------------------------------------------------------
    def attach(self) -> None:
        """A new framed shell on the (running) host, and snapd's version read through it."""
        transcript = self.artifacts / "host-transcript.log"
        if self.shell is not None:
            self.shell.close()
        self.shell = Shell(self.host, transcript=transcript)
        self.shell.start()
        self.client = SnapClient(self.shell)
        self.observer = Observer(self.shell)
        self.snapd_version_text = self.client.version().strip()
        self.snapd_version = parse_snapd_version(self.snapd_version_text)
        self.baseline = self._read_settings()

    def start(self) -> None:
        if self.started:
            return
        self.artifacts.mkdir(parents=True, exist_ok=True)
        self.host.start()
        self.started = True
        self.attach()

    def reset(self) -> None:
        if self.shell is not None:
            self.shell.close()
            self.shell = None
        self.served = None  # it went with the host's files
        self.host.reset()
        self.resets += 1
        self.broken = False
        self.config = {}
        self.attach()

    def prepare_run(self) -> None:
        """Before a run: snapd's default system settings, and a host that answers. Runs use
        snap names never used on the host, so other leftovers cannot touch them."""
        self.start()
        if self.broken or not self.host.alive():
            self.reset()
        if self.config:
            assert self.shell is not None
            restore = [key for key in sorted(self.config) if self.baseline.get(key) is not None]
            unset = [key for key in sorted(self.config) if self.baseline.get(key) is None]
            commands = []
            if restore:
                pairs = (f"{key}={self.baseline[key]}" for key in restore)
                commands.append("snap set system " + " ".join(shlex.quote(p) for p in pairs))
            if unset:
                commands.append("snap unset system " + " ".join(shlex.quote(k) for k in unset))
            if self.shell.run(" && ".join(commands), timeout=120).exit_code != 0:
                self.reset()
            self.config = {}
        assert self.observer is not None
        # Start the change counter at "now", and drop hook lines from whatever ran before (a
        # previous run's clean-up): neither is this run's. The host's snaps seed the model.
        self.first_observation = self.observer.observe([], consume_hooks=True, host_snaps=True)

    def _read_settings(self) -> dict[str, str | None]:
        """The host's own values of MANAGED_SETTINGS (None: unset, snapd's default applies)."""
        assert self.shell is not None
        values: dict[str, str | None] = {}
        for key in MANAGED_SETTINGS:
            result = self.shell.run(f"snap get -d system {shlex.quote(key)}", timeout=60)
            try:
                value = json.loads(result.output).get(key) if result.exit_code == 0 else None
            except (json.JSONDecodeError, AttributeError):
                value = None
            values[key] = None if value is None else json.dumps(value).strip('"')
        return values

    def served_store(self) -> ServedStore:
        """The host's served store (made the first time a run needs one)."""
        if self.served is None:
            # Loaded with the first store step: signing needs `cryptography`, which a host
            # that only replays sideload histories (local:// inside a VM) may not have.
            from snapconform.conformance.served import ServedStore

            assert self.shell is not None and self.observer is not None
            self.served = ServedStore(
                self.shell, self.host, self.artifacts / "served-catalog", self.cache_dir
            )
            self.observer.store_log = self.served.carrier.log_path
        return self.served

    def stop(self) -> None:
        if self.served is not None and self.shell is not None and not self.broken:
            with contextlib.suppress(HostError):  # the host goes next anyway
                self.served.stop()
        self.served = None
        if self.observer is not None and self.shell is not None and not self.broken:
            with contextlib.suppress(HostError, CommandTimeout):  # its server process
                self.observer.close()
        if self.shell is not None:
            self.shell.close()
            self.shell = None
        if self.started:
            self.host.stop()
            self.started = False

    def journal(self, lines: int = 300) -> str:
        if self.shell is None or self.broken:
            return ""
        try:
            return self.shell.run(
                f"journalctl -u snapd --no-pager -n {lines} -o short-precise", timeout=30
            ).output
        except HostError as exc:
            return f"(journal unavailable: {exc})"

    def describe(self) -> dict[str, str]:
        facts = dict(self.host.describe())
        facts["snapd"] = self.snapd_version_text
        if self.served is not None:
            facts["store"] = f"served store at {self.served.carrier.store_url}"
        return facts


class NameAllocator:
    """Snap names never used before on this host, so runs on one host are independent."""

    def __init__(self, prefix: str = "sc") -> None:
        self.prefix = prefix
        self.token = secrets.token_hex(2)
        self.counter = 0

    def fresh(self) -> str:
        self.counter += 1
        return f"{self.prefix}-{self.token}{self.counter}"


class ConformanceRun:
    """One independent sequence of steps checked against the model."""

    def __init__(
        self,
        session: HostSession,
        *,
        stop_on_divergence: bool = True,
        step_timeout: float | None = None,
        known_divergences: Sequence[KnownDivergence] = KNOWN_DIVERGENCES,
    ) -> None:
        session.prepare_run()
        assert session.client is not None and session.observer is not None
        self.session = session
        self.client: SnapClient = session.client
        self.observer: Observer = session.observer
        state = model.new_state(snapd_version=session.snapd_version)
        if session.first_observation is not None:  # the host's own snaps (snapd_host.py)
            state = seed_from_host(state, session.first_observation)
        # Snaps on the host before this run: never removed by close().
        self.host_snaps = frozenset(inst.name for inst in state.instances)
        for key, value in session.baseline.items():
            if value is not None:  # the host's own setting, e.g. a borrowed VM's retain
                state = model.set_config(state, key, value).state
        self.state: model.SnapdState = state
        self.history: list[StepRecord] = []
        self.known_instances: list[str] = []
        self.stop_on_divergence = stop_on_divergence
        self.known_divergences = known_divergences
        # Seconds a step's snap command may run (None: the harness's own timeouts); past it the
        # command is interrupted and the step is a host fault.
        self.step_timeout = step_timeout
        self._built: dict[model.SnapFile, Path] = {}
        self.last_observation: Observation | None = None
        # The store as the model sees it; published to the host's served store on change.
        self.world = StoreWorld()
        self._published: StoreWorld | None = None
        self.history_path: Path | None = None  # written after every step when set

    # -- fixture files ---------------------------------------------------------------------
    def local_file(self, snap: model.SnapFile) -> Path:
        path = self._built.get(snap)
        if path is None:
            path = build_snap(fixture_spec(snap), cache_dir=self.session.cache_dir)
            self._built[snap] = path
        return path

    def locate(self, snap: model.SnapFile) -> str:
        """The file's path on the host, uploading it the first time."""
        return self.client.upload(self.local_file(snap))

    def predicted_path(self, snap: model.SnapFile) -> str:
        return f"{REMOTE_SNAP_DIR}/{self.local_file(snap).name}"

    # -- steps -----------------------------------------------------------------------------
    def step(self, operation: Operation) -> StepRecord:
        """Predict, perform, observe and compare one step. With `history_path` set the history
        is written after every step, whatever happened, so a run killed at any moment leaves
        every completed step on disk."""
        try:
            return self._step(operation)
        finally:
            if self.history_path is not None:
                self.save_history(self.history_path)

    def _step(self, operation: Operation) -> StepRecord:
        for name in operation.instances:
            if name not in self.known_instances:
                self.known_instances.append(name)
        world_after = self.world
        try:
            if isinstance(operation, StoreOperation):
                outcome, world_after = operation.predict_store(self.state, self.world)
            else:
                outcome = operation.predict(self.state, self.predicted_path)
        except model.ModelGap as gap:
            return self._outside_model(operation, gap)
        record = StepRecord(
            index=len(self.history) + 1,
            operation=operation.to_json(),
            command=operation.shell(self.predicted_path),
            expected_ok=outcome.error is None,
            expected_kind=None if outcome.error is None else outcome.error.kind,
            expected_error=None if outcome.error is None else outcome.error.message,
            expected_why=outcome.why,
            expected_hooks=[[run.instance, run.hook, run.revision] for run in outcome.hooks_run],
        )
        self.history.append(record)
        client = (
            self.client if self.step_timeout is None else self.client.limited_to(self.step_timeout)
        )
        started = time.monotonic()
        try:
            if isinstance(operation, StoreOperation):
                self.publish(world_after)
                if hasattr(operation, "perform_in_run"):  # ops_faults: the store down mid-step
                    result: SnapCommandResult = operation.perform_in_run(self, client)
                else:
                    result = operation.perform_store(client)
            elif hasattr(operation, "perform_in_run"):  # needs the run (ops_faults: power cut)
                result = operation.perform_in_run(self, client)
            else:
                result = operation.perform(client, self.locate)
            observation = self.observer.observe(list(self.known_instances))
        except (HostError, CommandTimeout, ObservationError) as exc:
            record.verdict, record.fault = "host-fault", str(exc)
            record.duration = time.monotonic() - started
            self.session.broken = True
            raise HostFaultVerdict(
                f"host fault at step {record.index} ({record.command}), not a snapd verdict: {exc}"
            ) from exc
        if isinstance(operation, SetSystem) and result.ok:
            self.session.config[operation.key] = operation.value
        record.duration = time.monotonic() - started
        record.observed_exit_code = result.exit_code
        record.observed_output = result.output
        record.observed_error = result.error
        record.observed_hooks = [[h.instance, h.hook, h.revision] for h in observation.hooks]
        record.observed_changes = [
            {
                "id": change.id,
                "kind": change.kind,
                "status": change.status,
                "err": change.err,
                "tasks": [[task.kind, task.status] for task in change.tasks],
            }
            for change in observation.changes
        ]
        record.observed_state = observed_state(observation, self.known_instances)
        record.observed_store_requests = list(observation.store_requests)
        self.last_observation = observation
        anomaly = None
        if hasattr(operation, "judge"):  # a set of allowed outcomes (ops_faults.Interrupted)
            judged = operation.judge(self.state, outcome, result, observation, self.known_instances)
            record.mismatches, outcome, record.interruption, anomaly = (
                judged.mismatches,
                judged.outcome,
                judged.record,
                judged.anomaly,
            )
        else:
            record.mismatches = compare_step(outcome, result, observation, self.known_instances)
        if self.session.served is not None and getattr(operation, "compare_store_requests", True):
            record.mismatches += self.compare_requests(outcome, observation)
        record.verdict = "divergence" if record.mismatches else "pass"
        self.state = outcome.state
        self.world = world_after
        if anomaly is not None and not record.mismatches:
            # snapd matched an outcome it promises not to give (model.faults Allowed.anomaly):
            # known, and the model follows the state it left
            entries = tuple(k for k in self.known_divergences if k.key == anomaly)
            record.verdict, record.known = "known-divergence", [anomaly]
            if self.stop_on_divergence:
                raise KnownDivergenceFound(record, entries)
        if record.mismatches:
            names = [name.split("_", 1)[0] for name in self.known_instances]
            seen = [
                (neutralise(m.field, names), neutralise(str(m.observed), names))
                for m in record.mismatches
            ]
            faults = (
                frozenset({"step", "run"})
                if record.interruption is not None
                else frozenset({"run"})
                if any(step.interruption is not None for step in self.history)
                else frozenset()
            )
            known = explain(seen, self.session.snapd_version, self.known_divergences, faults=faults)
            if known:
                record.verdict, record.known = "known-divergence", [k.key for k in known]
                if self.stop_on_divergence:
                    raise KnownDivergenceFound(record, known)
            elif self.stop_on_divergence:
                raise Divergence(record)
        return record

    def _outside_model(self, operation: Operation, gap: model.ModelGap) -> StepRecord:
        """A step the model cannot predict (it touches what the model does not cover) gets the
        verdict "outside-model", naming what is missing, and is not sent to snapd: both sides
        stay as they were, so the run goes on, and no prediction is ever made up."""
        record = StepRecord(
            index=len(self.history) + 1,
            operation=operation.to_json(),
            command=operation.shell(self.predicted_path),
            expected_ok=False,
            expected_kind="outside-model",
            expected_error=None,
            expected_why=f"outside the model: {gap}",
            expected_hooks=[],
            verdict="outside-model",
        )
        self.history.append(record)
        return record

    # -- the store -------------------------------------------------------------------------
    def publish(self, world: StoreWorld) -> None:
        """Serve `world` on the host unless it is what is served already."""
        if world == self._published:
            return
        mark = self.session.served_store().publish(world)
        # What snapd asks from here on is this step's (nothing else talks to the store).
        self.observer.store_log_offset = mark
        self._published = world

    def store_names(self) -> list[str]:
        return sorted({name.partition("_")[0] for name in self.known_instances})

    def compare_requests(self, outcome: model.Outcome, observation: Observation) -> list[Mismatch]:
        """The store requests snapd sent in the step against those the model predicts."""
        from snapconform.conformance.served import describe_requests, request_lines

        served = self.session.served
        assert served is not None
        observed = describe_requests(
            list(observation.store_requests), served.snap_ids(self.store_names())
        )
        expected = request_lines(outcome.store_requests)
        return [] if observed == expected else [Mismatch("store_requests", expected, observed)]

    def close(self) -> None:
        """Remove what this run installed from the store: every later request would carry it.
        Every instance the run touched, not only those the model holds: after a divergence
        snapd may hold more (a remove of one not installed prints a line and exits 0)."""
        for name in self.known_instances:
            if name in self.host_snaps:
                continue  # the host's own (core, snapd, a borrowed VM's snaps) stay
            try:
                removed = self.client.remove(name, purge=True)
            except (HostError, CommandTimeout):
                self.session.broken = True
                return
            if removed.exit_code != 0:
                # Known divergence rerefresh-leaves-trash-remove-fails: a REV.old that snapd never
                # clears (or a stray revision dir) makes the remove fail, the snap half removed;
                # without them the next remove works. Anything else left would be in every
                # later request's context: then a fresh host (a restart takes about a minute).
                removed = self._remove_after_clearing_trash(name)
            if removed is None or removed.exit_code != 0:
                self.session.broken = True
                return

    def _remove_after_clearing_trash(self, name: str) -> SnapCommandResult | None:
        assert self.session.shell is not None
        try:
            # trash (REV.old) or a stray revision dir an undo left (model/faults.py), in
            # SNAP_DATA or (2.62+ removes the users' dirs too) a home's
            quoted = shlex.quote(name)
            dirs = f"/var/snap/{quoted}/* /root/snap/{quoted}/* /home/*/snap/{quoted}/*"
            self.session.shell.run(f"rm -rf -- {dirs}", timeout=60)
            return self.client.remove(name, purge=True)
        except (HostError, CommandTimeout):
            return None

    def run(self, operations: list[Operation]) -> list[StepRecord]:
        return [self.step(operation) for operation in operations]

    # -- records ---------------------------------------------------------------------------
    def history_json(self) -> dict[str, Any]:
        return {
            "host": self.session.describe(),
            "snapd_version": list(self.session.snapd_version),
            "steps": [record.to_json() for record in self.history],
        }

    def save_history(self, path: Path) -> Path:
        """Write the history whole or not at all (a rename over the old one)."""
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_name(f".{path.name}.partial")
        partial.write_text(json.dumps(self.history_json(), indent=2) + "\n", encoding="utf-8")
        partial.replace(path)
        return path

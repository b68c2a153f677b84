"""Compare the model's prediction for a step with what real snapd did.

A mismatch names the field, the expected value and the observed value, so a divergence reads
like `sc-a1.sequence: expected ('x1', 'x2'), observed ('x2',)`.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from snapconform.harness.observe import InstanceObservation, Observation
from snapconform.harness.operations import SnapCommandResult, normalise_whitespace
from snapconform.model import snapd as model
from snapconform.model.epoch import Epoch, EpochError
from snapconform.model.snapd_confinement import expected_confinement
from snapconform.model.snapd_interfaces import visible_connections
from snapconform.model.snapd_services import expected_services
from snapconform.model.snapd_try import expected_try

# Entries snapd keeps beside the revision directories of an installed instance.
INSTANCE_DIR_EXTRAS = frozenset({"common", "current"})


@dataclass(frozen=True)
class Mismatch:
    field: str
    expected: Any
    observed: Any

    def __str__(self) -> str:
        return f"{self.field}: expected {self.expected!r}, observed {self.observed!r}"

    def to_json(self) -> dict[str, Any]:
        return {
            "field": self.field,
            "expected": _jsonable(self.expected),
            "observed": _jsonable(self.observed),
        }


def _jsonable(value: Any) -> Any:
    if isinstance(value, frozenset | set):
        return sorted(value)
    if isinstance(value, tuple):
        return [_jsonable(item) for item in value]
    return value


def observed_epoch(epoch_yaml: str | None) -> str:
    """An observed revision's epoch as snapd renders it (the model's parser reads the YAML)."""
    try:
        return str(Epoch.parse_yaml(epoch_yaml if epoch_yaml is not None else "0"))
    except EpochError as exc:
        return f"<invalid: {exc}>"


# Fixture file names carry a content hash that changes with the snap name inside them.
_FIXTURE_FILE = re.compile(r"NAME_[^\s/'\"]*?_[0-9a-f]{12}\.snap")


def neutralise(text: str, names: Sequence[str]) -> str:
    """Snap names (and so instance names) as NAME, fixture file names as FILE.snap: what is
    left is the same for the same divergence under any snap name."""
    pattern = "|".join(re.escape(name) for name in sorted(names, key=len, reverse=True))
    text = re.sub(pattern, "NAME", text) if pattern else text
    return _FIXTURE_FILE.sub("FILE.snap", text)


def detailed_signature(
    mismatches: Sequence[tuple[str, Any, Any]], names: Sequence[str]
) -> frozenset[str]:
    """What makes two divergences the same one, with snap names (and fixture file names) taken
    out: the fields, and for a result mismatch (`error`, `outcome`) also both texts, so that a
    different refusal is not mistaken for the same divergence."""
    keys = []
    for field, expected, observed in mismatches:
        key = neutralise(field, names)
        if field in ("error", "outcome"):
            key += f": {neutralise(str(expected), names)} / {neutralise(str(observed), names)}"
        keys.append(key)
    return frozenset(keys)


def compare_result(outcome: model.Outcome, result: SnapCommandResult) -> list[Mismatch]:
    """Exit status first, then snapd's message for any expected refusal (whitespace-normalised;
    a few refusals print their message and exit 0)."""
    expected_exit = 0 if outcome.error is None else outcome.error.exit_code
    if (expected_exit == 0) != (result.exit_code == 0):
        return [
            Mismatch(
                "outcome",
                f"exit {expected_exit}" + (f": {outcome.error.message}" if outcome.error else ""),
                f"exit {result.exit_code}: {result.message}",
            )
        ]
    if outcome.error is not None:
        expected = normalise_whitespace(outcome.error.message)
        if outcome.error.pattern:
            if not re.fullmatch(outcome.error.message, result.message, re.DOTALL):
                return [Mismatch("error", f"matching {outcome.error.message}", result.message)]
        elif expected != result.message:
            return [Mismatch("error", expected, result.message)]
    mismatches = []
    for notice in outcome.notices:
        if normalise_whitespace(notice) not in normalise_whitespace(result.output):
            mismatches.append(Mismatch("notice", notice, result.message))
    return mismatches


def compare_instance(
    expected: model.InstanceState | None, observed: InstanceObservation | None, name: str
) -> list[Mismatch]:
    mismatches: list[Mismatch] = []
    observed_installed = observed is not None and observed.installed
    if expected is None or not observed_installed:
        if (expected is not None) != observed_installed:
            mismatches.append(
                Mismatch(f"{name}.installed", expected is not None, observed_installed)
            )
        if expected is None and observed is not None and observed.data_dirs:
            mismatches.append(Mismatch(f"{name}.data_dirs", frozenset(), observed.data_dirs))
        return mismatches
    assert observed is not None

    sequence = tuple(rev.revision for rev in expected.sequence)
    if sequence != observed.sequence:
        mismatches.append(Mismatch(f"{name}.sequence", sequence, observed.sequence))
    # A disabled snap has no active revision; the observer reads its current one (snap_current).
    observed_current = observed.current or observed.snap_current
    if expected.current != observed_current:
        mismatches.append(Mismatch(f"{name}.current", expected.current, observed_current))
    if expected.channel != observed.tracking_channel:
        mismatches.append(Mismatch(f"{name}.channel", expected.channel, observed.tracking_channel))
    for rev in expected.sequence:
        seen = observed.revision(rev.revision)
        if seen is None:
            continue  # already reported through the sequence
        where = f"{name}[{rev.revision}]"
        status = "active" if rev.revision == expected.current and expected.active else "installed"
        if status != seen.status:
            mismatches.append(Mismatch(f"{where}.status", status, seen.status))
        if rev.version != seen.version:
            mismatches.append(Mismatch(f"{where}.version", rev.version, seen.version))
        if str(rev.epoch) != observed_epoch(seen.epoch_yaml):
            mismatches.append(
                Mismatch(f"{where}.epoch", str(rev.epoch), observed_epoch(seen.epoch_yaml))
            )
        data = expected.data_of(rev.revision)
        if data != seen.data:
            mismatches.append(Mismatch(f"{where}.data", data, seen.data))
    if expected.common != observed.common:
        mismatches.append(Mismatch(f"{name}.common", expected.common, observed.common))
    dirs = frozenset(sequence) | {rev for rev, _ in expected.stray_data} | INSTANCE_DIR_EXTRAS
    if not expected.active:
        dirs -= {"current"}  # `snap disable` unlinks /var/snap/NAME/current too (observed)
    if dirs != observed.data_dirs:
        mismatches.append(Mismatch(f"{name}.data_dirs", dirs, observed.data_dirs))
    return mismatches


def _per_instance(hooks: Sequence[tuple[str, str, str]]) -> dict[str, list[tuple[str, str]]]:
    runs: dict[str, list[tuple[str, str]]] = {}
    for instance, hook, revision in hooks:
        runs.setdefault(instance, []).append((hook, revision))
    return runs


def compare_hooks(outcome: model.Outcome, observation: Observation) -> list[Mismatch]:
    """The hooks each instance ran, in order. Across instances the order is not compared:
    snapd runs the lanes of several snaps refreshed in one change concurrently (seen with
    `snap refresh` of two instances on 2.57: either instance's pre-refresh may run first)."""
    expected = tuple((run.instance, run.hook, run.revision) for run in outcome.hooks_run)
    observed = tuple((line.instance, line.hook, line.revision) for line in observation.hooks)
    if _per_instance(expected) == _per_instance(observed):
        return []
    return [Mismatch("hooks", expected, observed)]


def compare_step(
    outcome: model.Outcome,
    result: SnapCommandResult,
    observation: Observation,
    instances: list[str],
) -> list[Mismatch]:
    mismatches = compare_result(outcome, result)
    for name in instances:
        mismatches += compare_instance(
            outcome.state.instance(name), observation.instances.get(name), name
        )
    mismatches += compare_hooks(outcome, observation)
    mismatches += compare_services_and_connections(outcome.state, observation, instances)
    mismatches += compare_userdata_and_config(outcome, result, observation, instances)
    mismatches += compare_confinement(outcome.state, observation, instances)
    return mismatches


def compare_confinement(
    state: model.SnapdState, observation: Observation, instances: list[str]
) -> list[Mismatch]:
    """Per instance with an active revision: its confinement and the devmode/jailmode flags
    (`NAME.confinement`; model/snapd_confinement.py)."""
    mismatches = []
    for name in instances:
        expected = state.instance(name)
        seen = observation.instances.get(name)
        if expected is None or not expected.active or seen is None or seen.confinement is None:
            continue
        if expected.preinstalled:
            continue
        predicted = expected_confinement(expected)
        if predicted != seen.confinement:
            mismatches.append(Mismatch(f"{name}.confinement", predicted, seen.confinement))
        tried = expected_try(state, expected)
        if seen.tried is not None and tried != seen.tried:
            mismatches.append(Mismatch(f"{name}.tried", tried, seen.tried))
    return mismatches


def compare_services_and_connections(
    state: model.SnapdState, observation: Observation, instances: Sequence[str]
) -> list[Mismatch]:
    """Per installed instance: enabled or disabled (`NAME.enabled`) and its services' enabled
    and active flags (`NAME.services`); then the established connections that touch the
    instances (`connections`). The rules: model/snapd_services.py, snapd_interfaces.py."""
    mismatches = []
    for name in instances:
        expected, seen = state.instance(name), observation.instances.get(name)
        if expected is None or seen is None or not seen.installed:
            continue  # compare_instance reports installed/not installed
        if seen.snap_enabled is not None and expected.active != seen.snap_enabled:
            mismatches.append(Mismatch(f"{name}.enabled", expected.active, seen.snap_enabled))
        predicted = tuple(
            (s.name, s.daemon, s.enabled, s.active) for s in expected_services(expected)
        )
        observed = tuple((s.name, s.daemon, s.enabled, s.active) for s in seen.services)
        if predicted != observed:
            mismatches.append(Mismatch(f"{name}.services", predicted, observed))
    touched = set(instances)
    predicted_connections = tuple(
        sorted(
            (c.plug_snap, c.plug, c.slot_snap, c.slot)
            for c in visible_connections(state)
            if c.plug_snap in touched or c.slot_snap in touched
        )
    )
    observed_connections = tuple(sorted(c[:4] for c in observation.connections))
    if predicted_connections != observed_connections:
        mismatches.append(Mismatch("connections", predicted_connections, observed_connections))
    return mismatches


def compare_userdata_and_config(
    outcome: model.Outcome,
    result: SnapCommandResult,
    observation: Observation,
    instances: Sequence[str],
) -> list[Mismatch]:
    """Per instance and per user the model knows (root and those AddUser made): the revision
    dirs of ~USER/snap/INSTANCE with their markers, common and the `current` link
    (`NAME.user_data[USER]`; trash is not compared); the configuration (`NAME.config`); the
    values hooks read (`config_reads`, per instance in order); and the app's environment
    (`env`). The rules: model/snapd_userdata.py, model/snapd_config.py."""
    from snapconform.conformance.ops_userdata import printed_environment
    from snapconform.model import snapd_config, snapd_userdata

    mismatches = []
    state = outcome.state
    for name in instances:
        seen = observation.instances.get(name)
        if seen is None:
            continue
        observed_dirs = {d.user: d for d in seen.user_data}
        # a simple service's `snap run` races the steps, and the model leaves it out
        # (snapd_userdata.settled_runs): lenient for root's empty dirs and link once one ran,
        # also after its revision or the snap is gone (found by the soak)
        racy = name in state.simple_services_ran or _simple_services_ran(state.instance(name), seen)
        for user in snapd_userdata.accounts(state):
            expected = snapd_userdata.user_dir(state, user.name, name)
            got = observed_dirs.get(user.name)
            want = (expected.revisions, expected.common, expected.current)
            have = (got.revisions, got.common, got.current) if got else ((), None, None)
            if want != have and not (user.name == "root" and racy and _service_touched(want, have)):
                mismatches.append(Mismatch(f"{name}.user_data[{user.name}]", want, have))
        instance = state.instance(name)
        if instance is not None and instance.preinstalled:
            continue  # a host's own snap: its configuration (core's is the system's) is not kept
        if instance is not None and seen.installed and seen.config_json is not None:
            want_config = json.dumps(snapd_config.config_dict(instance), sort_keys=True)
            if want_config != seen.config_json:
                mismatches.append(Mismatch(f"{name}.config", want_config, seen.config_json))
    touched = set(instances)
    want_reads = tuple(
        (r.instance, r.hook, r.revision, r.key, r.value)
        for r in outcome.config_reads
        if r.instance in touched
    )
    have_reads = tuple(
        (r.instance, r.hook, r.revision, r.key, r.value)
        for r in observation.config_log
        if r.instance in touched
    )
    # In order per instance; across instances snapd may run lanes concurrently (compare_hooks).
    if _by_instance(want_reads) != _by_instance(have_reads):
        mismatches.append(Mismatch("config_reads", want_reads, have_reads))
    if outcome.env and result.exit_code == 0:
        printed = printed_environment(result.output)
        want_env = tuple(outcome.env)
        have_env = tuple((key, printed.get(key)) for key, _ in outcome.env)
        if want_env != have_env:
            mismatches.append(Mismatch("env", want_env, have_env))
    return mismatches


def _by_instance(reads: Sequence[tuple[str, ...]]) -> dict[str, list[tuple[str, ...]]]:
    grouped: dict[str, list[tuple[str, ...]]] = {}
    for read in reads:
        grouped.setdefault(read[0], []).append(read)
    return grouped


def _simple_services_ran(instance: model.InstanceState | None, seen: InstanceObservation) -> bool:
    """A simple service of the instance runs (or did): its `snap run` as root races the
    observation (snapd_userdata.settled_runs), so root's dirs are compared leniently."""
    if any(service.daemon == "simple" for service in seen.services):
        return True
    return instance is not None and any(
        service.daemon == "simple" for rev in instance.sequence for service in rev.services
    )


def _service_touched(want: tuple[Any, ...], have: tuple[Any, ...]) -> bool:
    """``have`` is ``want`` plus what a service's `snap run` adds: empty revision dirs, an
    empty common, the `current` link anywhere. Markers must match."""
    want_revs, want_common, _ = want
    have_revs, have_common, _ = have
    wanted, got = dict(want_revs), dict(have_revs)
    if any(got.get(rev) != markers for rev, markers in wanted.items()):
        return False
    if any(markers for rev, markers in got.items() if rev not in wanted):
        return False
    return have_common == want_common or (want_common is None and have_common == frozenset())

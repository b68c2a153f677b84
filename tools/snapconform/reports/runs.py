"""One host's conformance run, read back from its artifacts directory as data for a page.

What a run leaves (conftest.py, snapconform.conformance): `host.json` (the host's facts),
`run.json` (this room's record of the pytest session: outcomes, profile, seed),
`tests/<test>/history.json` (+ `transcript.log`, `snapd-journal.txt`, reproducers), and
`state-machine/` (summary.json, first/minimal failure histories, reproducer/reproduce.sh).
Every file and every field may be missing (an interrupted run, an older history): what is there
is shown, what is not is left out.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from snapconform.conformance.known import KNOWN_DIVERGENCES
from snapconform.conformance.reproducer import shell_script

RUN_RECORD = "run.json"
HOST_FACTS = "host.json"
REPORT_NAME = "report.html"
TRANSCRIPT_PAGE = "transcript.html"
OUTCOMES = ("passed", "failed", "xfailed", "xpassed", "error", "skipped", "interrupted", "not run")
# Keys of a history step's `observed` that the page lays out itself; any other key (a field a
# later history gains) is still shown, as JSON.
OBSERVED_SHOWN = ("exit_code", "output", "error", "hooks", "changes", "state", "store_requests")
# State-machine histories, most useful first.
MACHINE_HISTORIES = (
    ("minimal-failure.json", "minimal failing sequence (shrunk by replay)"),
    ("first-failure.json", "first failing sequence (before shrinking)"),
)
_COMMAND_LINE = re.compile(r"^\[[^\]]+\] \$ (?P<command>.*)$")
# A mismatch field about an instance's state: NAME.what or NAME[REV].what (compare.py)
_STATE_FIELD = re.compile(r"^(?P<name>[^.\[]+)(?:\[(?P<rev>[^\]]+)\])?\.(?P<what>\w+)$")


@dataclass
class MismatchView:
    field: str
    expected: Any
    observed: Any


@dataclass
class StepView:
    index: int
    command: str
    operation: dict[str, Any]
    expected: dict[str, Any]
    observed: dict[str, Any]
    verdict: str
    mismatches: list[MismatchView]
    duration: float | None
    fault: str | None
    known: list[str]
    transcript_href: str | None = None

    @property
    def mismatched(self) -> set[str]:
        """Which parts of the step disagreed: "outcome", "error", "hooks", "state"."""
        parts = set()
        for mismatch in self.mismatches:
            parts.add(
                mismatch.field if mismatch.field in ("outcome", "error", "hooks") else "state"
            )
        return parts

    @property
    def state_marks(self) -> dict[str, set[str]]:
        """Per instance, the parts of the observed state that disagreed: "sequence", "current",
        "common", "installed", "data_dirs", and "data:REV" / "status:REV" / ... per revision."""
        marks: dict[str, set[str]] = {}
        for mismatch in self.mismatches:
            match = _STATE_FIELD.match(mismatch.field)
            if match:
                name, rev, what = match.group("name", "rev", "what")
                marks.setdefault(name, set()).add(f"{what}:{rev}" if rev else what)
        return marks

    @property
    def extra_observed(self) -> dict[str, Any]:
        return {k: v for k, v in self.observed.items() if k not in OBSERVED_SHOWN}


@dataclass
class Reproducer:
    text: str
    source: str  # where it came from: a path relative to the artifacts dir, or how it was made
    shrunk: bool


@dataclass
class KnownView:
    key: str
    document: str
    observed: str
    seen_in: list[str] = field(default_factory=list)


@dataclass
class TestView:
    nodeid: str
    anchor: str
    outcome: str
    duration: float | None = None
    message: str = ""
    artifacts: str | None = None  # directory relative to the artifacts dir
    history: str | None = None  # file relative to the artifacts dir
    steps: list[StepView] = field(default_factory=list)
    transcript_href: str | None = None
    journal_href: str | None = None
    reproducer: Reproducer | None = None
    problems: list[str] = field(default_factory=list)  # files that could not be read

    @property
    def verdicts(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for step in self.steps:
            counts[step.verdict] = counts.get(step.verdict, 0) + 1
        return counts


@dataclass
class MachineView:
    summary: dict[str, Any]
    histories: list[TestView]


@dataclass
class RunView:
    directory: Path
    host: dict[str, Any]
    session: dict[str, Any]
    totals: dict[str, int]
    tests: list[TestView]
    known: list[KnownView]
    machine: MachineView | None
    problems: list[str]

    @property
    def snapd_version(self) -> str | None:
        """The `snapd X` line of `snap version` (host.json keeps the whole text)."""
        text = str(self.host.get("snapd") or "")
        found = re.search(r"^snapd\s+(\S+)", text, re.MULTILINE)
        return f"snapd {found.group(1)}" if found else (text.strip() or None)

    @property
    def snapd_build(self) -> str | None:
        build = self.host.get("snapd_build")
        return str(build) if build else None


def _read_json(path: Path, problems: list[str], base: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        problems.append(f"{path.relative_to(base)}: {exc}")
        return None


def _mapping(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def anchor_for(text: str) -> str:
    """An id for a test's section: readable, and unique (long node ids share their start)."""
    slug = re.sub(r"[^A-Za-z0-9_-]+", "-", text).strip("-")
    if len(slug) <= 100:
        return f"t-{slug}"
    return f"t-{slug[:90]}-{hashlib.sha256(text.encode()).hexdigest()[:8]}"


def steps_of(history: dict[str, Any]) -> list[StepView]:
    steps = []
    for number, raw in enumerate(_list(history.get("steps")), 1):
        step = _mapping(raw)
        mismatches = [
            MismatchView(str(m.get("field", "?")), m.get("expected"), m.get("observed"))
            for m in map(_mapping, _list(step.get("mismatches")))
        ]
        duration = step.get("duration")
        steps.append(
            StepView(
                index=int(step.get("step") or number),
                command=str(step.get("command") or ""),
                operation=_mapping(step.get("operation")),
                expected=_mapping(step.get("expected")),
                observed=_mapping(step.get("observed")),
                verdict=str(step.get("verdict") or "pending"),
                mismatches=mismatches,
                duration=float(duration) if isinstance(duration, int | float) else None,
                fault=step.get("fault"),
                known=[str(key) for key in _list(step.get("known"))],
            )
        )
    return steps


def transcript_lines(text: str) -> list[str]:
    return text.split("\n")[:-1] if text.endswith("\n") else text.split("\n")


def locate_steps(steps: list[StepView], lines: list[str]) -> dict[int, int]:
    """Each step's line in the transcript (1-based): the first command line, after the previous
    step's, that starts with the step's command. Steps not found are left out."""
    found: dict[int, int] = {}
    position = 0
    for step in steps:
        if not step.command:
            continue
        for number in range(position, len(lines)):
            match = _COMMAND_LINE.match(lines[number])
            if match and match.group("command").startswith(step.command):
                found[step.index] = number + 1
                position = number + 1
                break
    return found


def _reproducer_near(directory: Path, base: Path) -> Reproducer | None:
    for candidate in (directory / "reproduce.sh", directory / "reproducer" / "reproduce.sh"):
        if candidate.is_file():
            try:
                text = candidate.read_text(encoding="utf-8")
            except (OSError, UnicodeDecodeError):
                continue
            return Reproducer(text, str(candidate.relative_to(base)), shrunk=True)
    return None


def _generated_reproducer(history: dict[str, Any], title: str) -> Reproducer | None:
    """A shell script made from the history itself (not shrunk), when none was written."""
    try:
        text = shell_script(history, title)
    except Exception as exc:  # a history the reproducer cannot read is still shown
        return Reproducer(f"# no reproducer: {exc}\n", "generated from history.json", False)
    return Reproducer(text, "generated from history.json (not shrunk)", shrunk=False)


def _test_view(
    nodeid: str, directory: Path, base: Path, record: dict[str, Any], problems: list[str]
) -> TestView:
    view = TestView(
        nodeid=nodeid,
        anchor=anchor_for(nodeid),
        outcome=str(record.get("outcome") or "not run"),
        duration=record.get("duration"),
        message=str(record.get("message") or ""),
        artifacts=str(directory.relative_to(base)),
    )
    history_path = directory / "history.json"
    history = _read_json(history_path, view.problems, base)
    if isinstance(history, dict):
        view.history = str(history_path.relative_to(base))
        view.steps = steps_of(history)
    transcript = directory / "transcript.log"
    if transcript.is_file():
        view.transcript_href = str((directory / TRANSCRIPT_PAGE).relative_to(base))
        try:
            lines = transcript_lines(transcript.read_text(encoding="utf-8", errors="replace"))
        except OSError as exc:
            view.problems.append(f"{transcript.relative_to(base)}: {exc}")
            lines = []
        for index, line in locate_steps(view.steps, lines).items():
            step = next(s for s in view.steps if s.index == index)
            step.transcript_href = f"{view.transcript_href}#L{line}"
    journal = directory / "snapd-journal.txt"
    if journal.is_file():
        view.journal_href = str(journal.relative_to(base))
    diverged = any(s.verdict in ("divergence", "known-divergence") for s in view.steps)
    if isinstance(history, dict) and diverged:
        view.reproducer = _reproducer_near(directory, base) or _generated_reproducer(
            history, f"snapconform reproducer: {nodeid}"
        )
    problems.extend(view.problems)
    return view


def _test_dirs(base: Path, since: float | None) -> Iterator[Path]:
    tests = base / "tests"
    if not tests.is_dir():
        return
    for directory in sorted(p for p in tests.iterdir() if p.is_dir()):
        marker = directory / "history.json"
        stamp = marker if marker.exists() else directory
        if since is None or stamp.stat().st_mtime >= since - 1:
            yield directory


def _machine(base: Path, since: float | None, problems: list[str]) -> MachineView | None:
    directory = base / "state-machine"
    summary_path = directory / "summary.json"
    if not summary_path.is_file() or (since and summary_path.stat().st_mtime < since - 1):
        return None
    summary = _mapping(_read_json(summary_path, problems, base))
    histories = []
    for name, title in MACHINE_HISTORIES:
        path = directory / name
        if not path.is_file() or (since and path.stat().st_mtime < since - 1):
            continue
        history = _read_json(path, problems, base)
        if not isinstance(history, dict):
            continue
        view = TestView(
            nodeid=f"state machine: {title}",
            anchor=anchor_for(f"state-machine-{name}"),
            outcome="failed",
            history=str(path.relative_to(base)),
            steps=steps_of(history),
        )
        if name == "minimal-failure.json":
            view.reproducer = _reproducer_near(directory, base)
        histories.append(view)
    return MachineView(summary, histories)


def _known(tests: list[TestView], machine: MachineView | None) -> list[KnownView]:
    entries = {entry.key: entry for entry in KNOWN_DIVERGENCES}
    hits: dict[str, KnownView] = {}

    def hit(key: str, where: str) -> None:
        entry = entries.get(key)
        view = hits.setdefault(
            key,
            KnownView(
                key,
                entry.document if entry else "(not in this snapconform's registry)",
                entry.observed if entry else "",
            ),
        )
        if where not in view.seen_in:
            view.seen_in.append(where)

    for test in tests:
        for step in test.steps:
            for key in step.known:
                hit(key, f"{test.nodeid}, step {step.index}")
    if machine is not None:
        for label, count in _mapping(machine.summary.get("labels")).items():
            if str(label).startswith("known divergence: "):
                hit(str(label).removeprefix("known divergence: "), f"state machine ({count}x)")
    return list(hits.values())


def load_run(base: Path) -> RunView:
    """The run recorded in ``base`` (an artifacts directory)."""
    problems: list[str] = []
    session = _mapping(_read_json(base / RUN_RECORD, problems, base))
    host = _mapping(_read_json(base / HOST_FACTS, problems, base))
    since = session.get("started_at")
    since = float(since) if isinstance(since, int | float) else None
    records = {str(r.get("nodeid")): r for r in map(_mapping, _list(session.get("tests")))}
    by_dir = {
        str(r.get("artifacts")): nodeid for nodeid, r in records.items() if r.get("artifacts")
    }

    tests: list[TestView] = []
    seen: set[str] = set()
    for directory in _test_dirs(base, since):
        relative = str(directory.relative_to(base))
        nodeid = by_dir.get(relative, directory.name)
        seen.add(nodeid)
        tests.append(_test_view(nodeid, directory, base, records.get(nodeid, {}), problems))
    for nodeid, record in records.items():  # tests that left no artifacts directory
        if nodeid not in seen:
            tests.append(
                TestView(
                    nodeid=nodeid,
                    anchor=anchor_for(nodeid),
                    outcome=str(record.get("outcome") or "not run"),
                    duration=record.get("duration"),
                    message=str(record.get("message") or ""),
                )
            )
    order = {nodeid: index for index, nodeid in enumerate(records)}
    tests.sort(key=lambda t: (order.get(t.nodeid, len(order)), t.nodeid))

    totals = {outcome: 0 for outcome in OUTCOMES}
    for test in tests:
        totals[test.outcome] = totals.get(test.outcome, 0) + 1
    machine = _machine(base, since, problems)
    return RunView(base, host, session, totals, tests, _known(tests, machine), machine, problems)

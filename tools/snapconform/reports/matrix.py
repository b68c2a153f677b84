"""The release matrix: one conformance run per host, read back and laid out as scenarios x hosts
(matrix.json, matrix.md, matrix.html under the matrix's artifacts directory).

Each host's run is an ordinary artifacts directory (``hosts/SLUG/``: run.json, host.json,
histories, report.html), read with runs.load_run. A cell is one (test, host): the host, its snapd
(version and build), the verdict, the duration and the known divergence's name (or None).

Verdicts, from pytest's outcome and the test's history:
- ``pass``: passed;
- ``divergence``: failed, and no step was a host fault: snapd and the model disagree and no
  recorded contradiction explains it (unexplained);
- ``known-divergence``: an expected failure naming a KnownDivergence (conformance/known.py);
- ``host-fault``: an error (the test's set-up or tear-down failed: the host, not snapd) or a
  failure whose step was a host fault (HostFaultVerdict);
- ``skipped`` (with pytest's reason) and ``not-run`` (the session ended first).
A host none of whose tests ran (every one skipped for want of a host, or no run.json at all) is
``unavailable``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from snapconform.conformance.known import KNOWN_DIVERGENCES
from snapconform.reports.matrix_facts import Evidence, History, evidence, model_facts
from snapconform.reports.pages import render_page
from snapconform.reports.run_report import _write
from snapconform.reports.runs import REPORT_NAME, RunView, TestView

MATRIX_JSON = "matrix.json"
MATRIX_MD = "matrix.md"
MATRIX_HTML = "matrix.html"
SUITE_PREFIX = "suites/conformance/"
VERDICTS = ("pass", "divergence", "known-divergence", "host-fault", "skipped", "not-run")
# Exit statuses of `matrix` (README: "The release matrix").
EXIT_CLEAN, EXIT_DIVERGENCE, EXIT_HOST_FAULT = 0, 1, 2
_KNOWN_IN_MESSAGE = re.compile(r"known divergence ([a-z0-9][a-z0-9-]*):")
_HOST_FAULT_IN_MESSAGE = re.compile(r"\bHostFaultVerdict\b|\bhost fault at step\b")
_NO_HOST = "no host to drive"
_VERSION = re.compile(r"^snapd\s+(\S+)", re.MULTILINE)
_MAJOR_MINOR = re.compile(r"^(\d+)\.(\d+)")


@dataclass
class HostRun:
    """One host's part of the matrix: where its run is and how the run ended."""

    url: str
    slug: str
    directory: Path  # the host's artifacts directory
    exit_status: int | None = None  # pytest's, None when it never ran
    seconds: float | None = None
    note: str = ""  # why it has no run, when it has none
    run: RunView | None = None

    @property
    def relative(self) -> str:
        return f"hosts/{self.slug}"


@dataclass
class Cell:
    test: str
    host: str
    snapd: dict[str, str | None]
    verdict: str
    duration: float | None
    known: str | None
    reason: str = ""
    report: str | None = None  # the test's place in its host's report, relative to matrix.html

    def to_json(self) -> dict[str, Any]:
        return {
            "test": self.test,
            "host": self.host,
            "snapd": self.snapd,
            "verdict": self.verdict,
            "duration": None if self.duration is None else round(self.duration, 2),
            "known": self.known,
            "reason": self.reason,
            "report": self.report,
        }


@dataclass
class HostColumn:
    url: str
    slug: str
    snapd_version: str | None
    snapd_build: str | None
    build_facts: dict[str, str]
    status: str  # "ran", "unavailable"
    note: str
    exit_status: int | None
    seconds: float | None
    report: str | None
    totals: dict[str, int] = field(default_factory=dict)

    @property
    def label(self) -> str:
        version = short_version(self.snapd_version)
        return f"{self.url} ({version})" if version else self.url

    def to_json(self) -> dict[str, Any]:
        return {
            "url": self.url,
            "slug": self.slug,
            "snapd": {"version": self.snapd_version, "build": self.snapd_build, **self.build_facts},
            "status": self.status,
            "note": self.note,
            "pytest_exit_status": self.exit_status,
            "seconds": self.seconds,
            "report": self.report,
            "totals": self.totals,
        }


def short_version(version: str | None) -> str | None:
    """``2.57.6-1+deb12u1`` -> ``2.57.6`` (the upstream part), for column heads."""
    return version.split("-", 1)[0] if version else None


def snapd_version_of(run: RunView | None) -> str | None:
    text = str(run.host.get("snapd") or "") if run is not None else ""
    found = _VERSION.search(text)
    if found:
        return found.group(1)
    return text.strip() or None


def major_minor(version: str | None) -> tuple[int, int] | None:
    found = _MAJOR_MINOR.match(version or "")
    return (int(found.group(1)), int(found.group(2))) if found else None


def known_name(test: TestView) -> str | None:
    for step in test.steps:
        if step.known:
            return step.known[0]
    found = _KNOWN_IN_MESSAGE.search(test.message)
    return found.group(1) if found else None


def verdict_of(test: TestView) -> str:
    outcome = test.outcome
    if outcome == "passed":
        return "pass"
    if outcome == "xfailed":
        return "known-divergence"
    if outcome == "error":
        return "host-fault"
    if outcome == "failed":
        faulted = any(step.verdict == "host-fault" for step in test.steps)
        if faulted or _HOST_FAULT_IN_MESSAGE.search(test.message):
            return "host-fault"
        return "divergence"
    if outcome == "skipped":
        return "skipped"
    if outcome == "xpassed":
        return "divergence"  # expected to diverge and did not: the record needs a look
    return "not-run"


def _first_line(text: str) -> str:
    for line in text.strip().splitlines():
        if line.strip():
            return line.strip()[:300]
    return ""


def _reason(test: TestView, verdict: str) -> str:
    if verdict == "pass":
        return ""
    if verdict == "divergence":
        for line in test.message.splitlines():
            if "snapd and the model disagree" in line:
                return line.strip()[:300]
    if verdict == "skipped":
        return _first_line(test.message.removeprefix("Skipped: "))
    return _first_line(test.message)


def _column(host: HostRun) -> HostColumn:
    run = host.run
    facts = run.host if run is not None else {}
    build_facts = {
        key.removeprefix("snapd_build_"): str(value)
        for key, value in facts.items()
        if key.startswith("snapd_build_") and value
    }
    # A column without a single verdict (every test skipped: no host to drive, most often)
    # says nothing of snapd.
    ran = run is not None and any(t.outcome != "skipped" for t in run.tests)
    note = host.note
    if run is not None and not ran and not note:
        reasons = [t.message for t in run.tests if _NO_HOST in t.message] or [
            t.message for t in run.tests
        ]
        note = _first_line(reasons[0].removeprefix("Skipped: ")) if reasons else "no test ran"
    return HostColumn(
        url=host.url,
        slug=host.slug,
        snapd_version=snapd_version_of(run),
        snapd_build=run.snapd_build if run is not None else None,
        build_facts=build_facts,
        status="ran" if ran else "unavailable",
        note=note,
        exit_status=host.exit_status,
        seconds=host.seconds,
        report=f"{host.relative}/{REPORT_NAME}"
        if (host.directory / REPORT_NAME).is_file()
        else None,
    )


def _short(nodeid: str) -> str:
    return nodeid.removeprefix(SUITE_PREFIX)


def _histories(run: RunView | None) -> list[History]:
    """Each test's saved history (from the run's own files), with the snapd version it ran on."""
    if run is None:
        return []
    found = []
    for test in run.tests:
        if test.history is None:
            continue
        try:
            data = json.loads((run.directory / test.history).read_text(encoding="utf-8"))
            version = tuple(int(part) for part in data.get("snapd_version") or [])
        except (OSError, ValueError, TypeError):
            continue
        if len(version) == 2 and isinstance(data.get("steps"), list):
            found.append(History(test.nodeid, data["steps"], (version[0], version[1])))
    return found


def _fact_rows(columns: Sequence[HostColumn], runs: Sequence[HostRun]) -> list[dict[str, Any]]:
    rows = []
    histories = {host.url: _histories(host.run) for host in runs}
    for fact in model_facts():
        hosts = []
        seen_with: list[str] = []
        seen_before: list[str] = []
        for column in columns:
            version = major_minor(column.snapd_version)
            if column.status != "ran" or version is None:
                continue
            found: Evidence = evidence(fact, histories.get(column.url, []))
            side = "with" if fact.applies_to(version) else "before"
            if found.confirmed:
                (seen_with if side == "with" else seen_before).append(column.snapd_version or "")
            hosts.append(
                {
                    "host": column.url,
                    "snapd": column.snapd_version,
                    "side": side,
                    "confirmed": found.confirmed,
                    "contradicted": found.contradicted,
                }
            )
        rows.append(
            {
                "name": fact.name,
                "module": fact.module,
                "since": fact.version,
                "about": fact.about,
                # Versions, each once (two hosts may run the same snapd: nspawn and lxd).
                "applies_on": _versions(
                    c.snapd_version for c in columns if _applies(fact.since, c)
                ),
                "before_on": _versions(
                    c.snapd_version
                    for c in columns
                    if c.snapd_version
                    and major_minor(c.snapd_version)
                    and not _applies(fact.since, c)
                ),
                "seen_with": _versions(seen_with),
                "seen_before": _versions(seen_before),
                "hosts": hosts,
            }
        )
    return rows


def _versions(versions: Iterable[str | None]) -> list[str]:
    """Each version once, oldest first (by its numbers, then its text)."""
    found = {v for v in versions if v}
    return sorted(found, key=lambda v: ([int(n) for n in re.findall(r"\d+", v)], v))


def _applies(since: tuple[int, int], column: HostColumn) -> bool:
    version = major_minor(column.snapd_version)
    return version is not None and version >= since


def build_matrix(
    hosts: Sequence[HostRun], selection: str = "", *, interrupted: bool = False
) -> dict[str, Any]:
    """matrix.json's content from the hosts' runs."""
    columns = [_column(host) for host in hosts]
    tests: list[str] = []
    for host in hosts:
        for test in host.run.tests if host.run is not None else []:
            if test.nodeid not in tests:
                tests.append(test.nodeid)
    cells: list[Cell] = []
    for host, column in zip(hosts, columns, strict=True):
        by_id = {t.nodeid: t for t in host.run.tests} if host.run is not None else {}
        for nodeid in tests:
            test = by_id.get(nodeid)
            snapd = {"version": column.snapd_version, "build": column.snapd_build}
            if test is None:
                cells.append(Cell(nodeid, host.url, snapd, "not-run", None, None, column.note))
                continue
            verdict = verdict_of(test)
            known = known_name(test) if verdict == "known-divergence" else None
            # a test's section exists in its report when it has steps or a message
            place = test.anchor if (test.steps or test.message) else "tests"
            report = f"{column.report}#{place}" if column.report else None
            cells.append(
                Cell(
                    nodeid,
                    host.url,
                    snapd,
                    verdict,
                    test.duration,
                    known,
                    _reason(test, verdict),
                    report,
                )
            )
        column.totals = {
            v: sum(1 for c in cells if c.host == host.url and c.verdict == v) for v in VERDICTS
        }
    divergences = _divergences(cells, columns)
    unexplained = [c for c in cells if c.verdict == "divergence"]
    faults = [c for c in cells if c.verdict == "host-fault"]
    unavailable = [c for c in columns if c.status != "ran"]
    if unexplained:
        status = EXIT_DIVERGENCE
    elif faults or unavailable:
        status = EXIT_HOST_FAULT
    else:
        status = EXIT_CLEAN
    return {
        "generated": datetime.now(UTC).isoformat(timespec="seconds"),
        "selection": selection,
        "hosts": [column.to_json() for column in columns],
        "tests": tests,
        "cells": [cell.to_json() for cell in cells],
        "divergences": divergences,
        "known_divergences": _known_rows(cells, columns),
        "facts": _fact_rows(columns, hosts),
        "summary": {
            "unexplained_divergences": len(unexplained),
            "known_divergences": sum(1 for c in cells if c.verdict == "known-divergence"),
            "host_faults": len(faults),
            "hosts_unavailable": [c.url for c in unavailable],
            "interrupted": interrupted,
            "exit_status": status,
        },
    }


def _divergences(cells: Sequence[Cell], columns: Sequence[HostColumn]) -> list[dict[str, Any]]:
    """Every (test, divergence kind, known name) with the hosts and versions that show it."""
    version_of = {c.url: c.snapd_version for c in columns}
    rows: dict[tuple[str, str, str | None], dict[str, Any]] = {}
    for cell in cells:
        if cell.verdict not in ("divergence", "known-divergence"):
            continue
        row = rows.setdefault(
            (cell.test, cell.verdict, cell.known),
            {
                "test": cell.test,
                "verdict": cell.verdict,
                "known": cell.known,
                "hosts": [],
                "versions": [],
                "passed_on": [],
                "reason": cell.reason,
            },
        )
        row["hosts"].append(cell.host)
        row["versions"].append(version_of.get(cell.host))
    for row in rows.values():
        row["passed_on"] = [
            version_of.get(c.host) for c in cells if c.test == row["test"] and c.verdict == "pass"
        ]
    return list(rows.values())


def _known_rows(cells: Sequence[Cell], columns: Sequence[HostColumn]) -> list[dict[str, Any]]:
    """Each known divergence hit: the versions showing it, and the versions where the tests that
    show it elsewhere passed (it did not show)."""
    version_of = {c.url: c.snapd_version for c in columns}
    entries = {entry.key: entry for entry in KNOWN_DIVERGENCES}
    rows = []
    for key in dict.fromkeys(c.known for c in cells if c.known):
        showing = [c for c in cells if c.known == key]
        tests = {c.test for c in showing}
        not_showing = [c for c in cells if c.test in tests and c.verdict == "pass"]
        entry = entries.get(key)
        recorded = None
        if entry is not None:
            low = "" if entry.since == (0, 0) else f">= {'.'.join(map(str, entry.since))}"
            high = "" if entry.until == (99, 0) else f"< {'.'.join(map(str, entry.until))}"
            recorded = " and ".join(part for part in (low, high) if part) or "every version"
        rows.append(
            {
                "name": key,
                "recorded_for": recorded,
                "document": entry.document if entry else None,
                "shown_on": sorted({str(version_of.get(c.host)) for c in showing}),
                "shown_on_hosts": sorted({c.host for c in showing}),
                "not_shown_on": sorted(
                    {str(version_of.get(c.host)) for c in not_showing}
                    - {str(version_of.get(c.host)) for c in showing}
                ),
                "tests": sorted(tests),
            }
        )
    return rows


# -- markdown --------------------------------------------------------------------------------

_MD_VERDICT = {
    "pass": "pass",
    "divergence": "**DIVERGENCE**",
    "known-divergence": "known",
    "host-fault": "host fault",
    "skipped": "skipped",
    "not-run": "not run",
}


def _md(text: object) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def _seconds(value: float | None) -> str:
    return "" if value is None else f"{value:.1f} s"


def render_markdown(matrix: dict[str, Any]) -> str:
    hosts = matrix["hosts"]
    summary = matrix["summary"]
    cells = {(c["test"], c["host"]): c for c in matrix["cells"]}
    lines = ["# snapconform release matrix", ""]
    lines.append(
        f"{len(hosts)} hosts x {len(matrix['tests'])} scenarios"
        + (f", selection `{matrix['selection']}`" if matrix["selection"] else "")
        + f"; generated {matrix['generated']}."
    )
    lines.append("")
    lines.append(f"**{verdict_sentence(summary)}** (exit {summary['exit_status']})")
    lines += ["", "## Hosts", ""]
    heads = ("host", "snapd", "build", "pass", "divergence", "known", "host fault", "skipped")
    lines.append("| " + " | ".join([*heads, "time", "report"]) + " |")
    lines.append("|---" * (len(heads) + 2) + "|")
    for host in hosts:
        totals = host["totals"]
        build = host["snapd"]["build"] or ""
        origin = host["snapd"].get("from")
        status = "" if host["status"] == "ran" else f" ({host['status']}: {host['note']})"
        lines.append(
            "| "
            + " | ".join(
                _md(part)
                for part in (
                    host["url"] + status,
                    host["snapd"]["version"] or "?",
                    build + (f" from {origin}" if origin else ""),
                    totals.get("pass", 0),
                    totals.get("divergence", 0),
                    totals.get("known-divergence", 0),
                    totals.get("host-fault", 0),
                    totals.get("skipped", 0),
                    _seconds(host["seconds"]),
                    f"[report.html]({host['report']})" if host["report"] else "none",
                )
            )
            + " |"
        )
    lines += ["", "## Scenarios x hosts", ""]
    heads = [_md(f"{h['url']} ({short_version(h['snapd']['version']) or '?'})") for h in hosts]
    lines.append("| scenario | " + " | ".join(heads) + " |")
    lines.append("|---|" + "---|" * len(hosts))
    for test in matrix["tests"]:
        row = []
        for host in hosts:
            cell = cells.get((test, host["url"]))
            if cell is None:
                row.append("")
                continue
            text = _MD_VERDICT.get(cell["verdict"], cell["verdict"])
            if cell["known"]:
                text += f": `{cell['known']}`"
            if cell["duration"] is not None and cell["verdict"] not in ("skipped", "not-run"):
                text += f" ({cell['duration']:.1f} s)"
            row.append(text)
        lines.append(f"| `{_md(_short(test))}` | " + " | ".join(_md(r) for r in row) + " |")
    lines += ["", "## Divergences", ""]
    unexplained = [d for d in matrix["divergences"] if d["verdict"] == "divergence"]
    if not unexplained:
        lines.append("No unexplained divergence.")
    for row in unexplained:
        lines.append(
            f"- `{_short(row['test'])}` diverges on {', '.join(map(str, row['versions']))}"
            + (f" (passes on {', '.join(map(str, row['passed_on']))})" if row["passed_on"] else "")
            + (f": {row['reason']}" if row["reason"] else "")
        )
    skipped: dict[tuple[str, str], int] = {}
    for cell in matrix["cells"]:
        if cell["verdict"] in ("skipped", "not-run"):
            key = (cell["host"], cell["reason"] or cell["verdict"])
            skipped[key] = skipped.get(key, 0) + 1
    if skipped:
        lines += ["", "## Skipped and not run", ""]
        for (host, reason), number in skipped.items():
            lines.append(f"- {host}: {number} test{'' if number == 1 else 's'}: {reason}")
    lines += ["", "## Known divergences", ""]
    if not matrix["known_divergences"]:
        lines.append("None shown.")
    for row in matrix["known_divergences"]:
        lines.append(
            f"- `{row['name']}` (recorded for snapd {row['recorded_for']}): shown on "
            + ", ".join(row["shown_on"])
            + (
                f"; not shown on {', '.join(row['not_shown_on'])} (the same tests passed)"
                if row["not_shown_on"]
                else ""
            )
            + f". Tests: {', '.join(f'`{_short(t)}`' for t in row['tests'])}."
        )
    lines += ["", "## Version-dependent facts of the model", ""]
    lines.append(
        "Each `*_SINCE` constant of the model; *seen* lists the versions where a step whose "
        "prediction depends on the fact passed (with it: at or after its version; before it: "
        "the older behaviour)."
    )
    lines.append("")
    lines.append(
        "| fact | from | seen with it | seen before it | versions with it / before it | what |"
    )
    lines.append("|---|---|---|---|---|---|")
    for fact in matrix["facts"]:
        lines.append(
            "| "
            + " | ".join(
                _md(part)
                for part in (
                    f"`{fact['name']}`",
                    fact["since"],
                    ", ".join(fact["seen_with"]) or "-",
                    ", ".join(fact["seen_before"]) or "-",
                    f"{', '.join(map(str, fact['applies_on'])) or '-'} / "
                    f"{', '.join(map(str, fact['before_on'])) or '-'}",
                    fact["about"],
                )
            )
            + " |"
        )
    return "\n".join(lines) + "\n"


def verdict_sentence(summary: dict[str, Any]) -> str:
    parts = []
    if summary["unexplained_divergences"]:
        parts.append(f"{summary['unexplained_divergences']} unexplained divergence(s)")
    else:
        parts.append("no unexplained divergence")
    if summary["known_divergences"]:
        parts.append(f"{summary['known_divergences']} known divergence(s)")
    if summary["host_faults"]:
        parts.append(f"{summary['host_faults']} host fault(s)")
    if summary.get("interrupted"):
        parts.append("interrupted: tests not run are not verdicts")
    if summary["hosts_unavailable"]:
        parts.append("unavailable: " + ", ".join(summary["hosts_unavailable"]))
    return "; ".join(parts)


# -- html ------------------------------------------------------------------------------------


def render_html(matrix: dict[str, Any]) -> str:
    cells = {(c["test"], c["host"]): c for c in matrix["cells"]}
    rows = [
        {
            "test": test,
            "short": _short(test),
            "cells": [cells.get((test, h["url"])) for h in matrix["hosts"]],
        }
        for test in matrix["tests"]
    ]
    return render_page(
        "matrix.html.j2",
        title="snapconform release matrix",
        matrix=matrix,
        rows=rows,
        verdict=verdict_sentence(matrix["summary"]),
        short_version=short_version,
    )


def write_matrix(
    base: Path, hosts: Sequence[HostRun], selection: str = "", *, interrupted: bool = False
) -> dict[str, Any]:
    """Write matrix.json, matrix.md and matrix.html under ``base``; returns the matrix."""
    matrix = build_matrix(hosts, selection, interrupted=interrupted)
    base.mkdir(parents=True, exist_ok=True)
    _write(base / MATRIX_JSON, json.dumps(matrix, indent=2) + "\n")
    _write(base / MATRIX_MD, render_markdown(matrix))
    _write(base / MATRIX_HTML, render_html(matrix))
    return matrix

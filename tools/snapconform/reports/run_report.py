"""The run report: artifacts/report.html, and beside each test's transcript.log a transcript.html
with a line anchor per line (the report's steps link to their command's line)."""

from __future__ import annotations

import os
import tempfile
from datetime import UTC, datetime
from pathlib import Path

from snapconform.reports.pages import render_page
from snapconform.reports.runs import (
    REPORT_NAME,
    TRANSCRIPT_PAGE,
    RunView,
    TestView,
    load_run,
    locate_steps,
    transcript_lines,
)

# Host facts shown first, in this order; any other key follows.
HOST_KEYS = ("url", "kind", "release", "mode", "snapd", "snapd_build", "image", "cpu")


def _write(path: Path, text: str) -> None:
    """Replace ``path`` whole (a reader never sees half a page)."""
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as out:
            out.write(text)
        Path(temporary).chmod(0o644)
        Path(temporary).replace(path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def write_transcript_page(test: TestView, base: Path) -> Path | None:
    if test.transcript_href is None or test.artifacts is None:
        return None
    log = base / test.artifacts / "transcript.log"
    lines = transcript_lines(log.read_text(encoding="utf-8", errors="replace"))
    starts = {line: index for index, line in locate_steps(test.steps, lines).items()}
    depth = len(Path(test.artifacts).parts)
    page = render_page(
        "transcript.html.j2",
        title=f"transcript: {test.nodeid}",
        nodeid=test.nodeid,
        lines=lines,
        starts=starts,
        report_href="../" * depth + f"{REPORT_NAME}#{test.anchor}",
    )
    path = base / test.artifacts / TRANSCRIPT_PAGE
    _write(path, page)
    return path


def render_run_report(run: RunView) -> str:
    host = [(key, run.host[key]) for key in HOST_KEYS if run.host.get(key)]
    host += [(k, v) for k, v in run.host.items() if k not in HOST_KEYS and v not in ("", None)]
    with_steps = [test for test in run.tests if test.steps]
    return render_page(
        "run_report.html.j2",
        title=f"snapconform run report: {run.host.get('url', run.directory.name)}",
        run=run,
        host=host,
        with_steps=with_steps,
        generated=datetime.now(UTC).isoformat(timespec="seconds"),
    )


def write_run_report(base: Path) -> Path:
    """Read the run in ``base`` (an artifacts directory) and write its report and transcripts."""
    run = load_run(base)
    for test in run.tests:
        write_transcript_page(test, base)
    path = base / REPORT_NAME
    _write(path, render_run_report(run))
    return path

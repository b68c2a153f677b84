"""Per-run artifacts: the history (JSON), the slice of the shell transcript the run produced,
and snapd's journal when the run failed."""

from __future__ import annotations

from pathlib import Path

from snapconform.conformance.session import ConformanceRun, HostSession

TRANSCRIPT_NAME = "host-transcript.log"


class RunArtifacts:
    def __init__(self, session: HostSession, directory: Path) -> None:
        self.session = session
        self.directory = directory
        self._offset = 0

    @property
    def _transcript(self) -> Path:
        return self.session.artifacts / TRANSCRIPT_NAME

    def begin(self) -> None:
        self._offset = self._transcript.stat().st_size if self._transcript.exists() else 0

    def finish(self, run: ConformanceRun, *, failed: bool) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        run.save_history(self.directory / "history.json")
        if self._transcript.exists():
            with self._transcript.open("rb") as handle:
                handle.seek(self._offset)
                (self.directory / "transcript.log").write_bytes(handle.read())
        if failed:
            journal = self.session.journal()
            if journal:
                (self.directory / "snapd-journal.txt").write_text(journal, encoding="utf-8")

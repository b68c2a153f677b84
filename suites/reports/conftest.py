"""Pages checked as a person would see them: Debian's Chromium, headless, loads a page from the
file system with every host name unresolvable, and we read back the DOM it built, the console
messages it logged, the network requests the page made (its net log) and a screenshot."""

from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

import pytest

CHROMIUM_NAMES = ("chromium", "chromium-browser")
BASE_FLAGS = (
    "--headless",
    "--no-sandbox",  # we run as root in CI
    "--disable-gpu",
    "--no-first-run",
    "--no-default-browser-check",
    "--disable-extensions",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--hide-scrollbars",
    # Nothing resolves: a page that tried to fetch anything could not, and we see it tried.
    "--host-resolver-rules=MAP * ~NOTFOUND",
    "--enable-logging=stderr",
    "--v=0",
    "--virtual-time-budget=3000",
)


@dataclass
class LoadedPage:
    dom: str
    console: list[str]  # what the page logged (console.*, uncaught exceptions)
    requests: list[str]  # URLs the page itself asked for, other than file: and data:
    screenshot: Path | None


def chromium_binary() -> str | None:
    for name in CHROMIUM_NAMES:
        found = shutil.which(name)
        if found:
            return found
    return None


def page_requests(net_log: Path) -> list[str]:
    """URLs requested on behalf of a file: page (the browser's own background requests, made
    for no page, are not the page's doing)."""
    try:
        log = json.loads(net_log.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        # the log is closed when the browser exits; an unfinished one lacks its closing brackets
        text = net_log.read_text(encoding="utf-8").rstrip().rstrip(",")
        log = json.loads(text + "]}")
    start_job = log["constants"]["logEventTypes"]["URL_REQUEST_START_JOB"]
    urls = []
    for event in log.get("events", []):
        params = event.get("params") or {}
        if event.get("type") != start_job or "url" not in params:
            continue
        if not str(params.get("network_isolation_key", "")).startswith("file://"):
            continue
        if not params["url"].startswith(("file:", "data:")):
            urls.append(params["url"])
    return urls


class Chromium:
    def __init__(self, binary: str, screenshots: Path) -> None:
        self.binary = binary
        self.screenshots = screenshots

    def _run(self, url: str, extra: list[str], workdir: Path) -> subprocess.CompletedProcess:
        argv = [
            self.binary,
            *BASE_FLAGS,
            f"--user-data-dir={workdir / 'profile'}",
            f"--log-net-log={workdir / 'net-log.json'}",
            *extra,
            url,
        ]
        return subprocess.run(argv, capture_output=True, text=True, timeout=120, check=False)

    def load(
        self, page: Path, screenshot: str | None = None, size: tuple[int, int] = (1280, 2000)
    ) -> LoadedPage:
        url = page.resolve().as_uri()
        with tempfile.TemporaryDirectory(prefix="snapconform-chromium-") as temporary:
            workdir = Path(temporary)
            dumped = self._run(url, ["--dump-dom"], workdir)
            assert dumped.returncode == 0, dumped.stderr[-2000:]
            console = [line for line in dumped.stderr.splitlines() if ":CONSOLE" in line]
            requests = page_requests(workdir / "net-log.json")
            shot = None
            if screenshot is not None:
                self.screenshots.mkdir(parents=True, exist_ok=True)
                shot = self.screenshots / screenshot
                width, height = size
                taken = self._run(
                    url, [f"--screenshot={shot}", f"--window-size={width},{height}"], workdir
                )
                assert taken.returncode == 0 and shot.is_file(), taken.stderr[-2000:]
        return LoadedPage(dumped.stdout, console, requests, shot)


@pytest.fixture(scope="session")
def chromium(artifacts_dir: Path) -> Chromium:
    binary = chromium_binary()
    if binary is None:
        pytest.skip(
            "Chromium is not installed (Debian: apt-get install chromium); .ci/run installs it"
        )
    return Chromium(binary, artifacts_dir / "screenshots")

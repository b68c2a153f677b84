"""Offline: the observer program as a long-lived server, driven through a real local bash.

snapd is a small HTTP server on a unix socket of this test's (it answers the three requests
the observer makes); the observer program, its FIFOs and the framed shell are the real ones.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socketserver
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler
from pathlib import Path, PurePosixPath
from typing import Any

import pytest

from snapconform.harness.observe import ObservationError, Observer
from snapconform.harness.shell import Shell
from snapconform.hosts.base import Host, HostSpec

pytestmark = pytest.mark.skipif(shutil.which("setsid") is None, reason="needs setsid")


class LocalBash(Host):
    """A real bash on this machine; files are copied."""

    def __init__(self) -> None:
        super().__init__(HostSpec(scheme="local", raw="local://"))

    def shell_argv(self) -> list[str]:
        return ["bash", "--noprofile", "--norc", "-i"]

    def put_file(self, local: Path, remote: str) -> None:
        Path(remote).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(local, remote)

    def start(self) -> None:
        pass

    def reset(self) -> None:
        pass

    def stop(self) -> None:
        pass


class FakeSnapd:
    """Answers /v2/snaps?select=all, /v2/changes?select=all and /v2/changes/ID."""

    def __init__(self, path: Path) -> None:
        self.snaps: list[dict[str, Any]] = []
        self.changes: list[dict[str, Any]] = []
        self.delay = 0.0
        self.requests: list[str] = []
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                fake.requests.append(self.path)
                time.sleep(fake.delay)
                status, result = fake.answer(self.path)
                body = json.dumps({"type": "sync", "status-code": status, "result": result})
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body.encode())

            def log_message(self, *args: object) -> None:
                pass

        class Server(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
            daemon_threads = True

            def get_request(self):  # the client address of a unix socket is ""
                request, _ = super().get_request()
                return request, ("local", 0)

        self.server = Server(str(path), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def answer(self, path: str) -> tuple[int, Any]:
        if path.startswith("/v2/snaps?"):
            return 200, self.snaps
        if path == "/v2/changes?select=all":
            return 200, self.changes
        if path.startswith("/v2/changes/"):
            wanted = path.rsplit("/", 1)[1]
            for change in self.changes:
                if change["id"] == wanted:
                    return 200, change
            return 404, {"kind": "", "message": f"cannot find change with id {wanted!r}"}
        return 404, {"message": "no route"}

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def change(number: int) -> dict[str, Any]:
    return {"id": str(number), "kind": "install-snap", "summary": "s", "status": "Done"}


def entry(name: str, revision: str, status: str = "active") -> dict[str, Any]:
    return {"name": name, "revision": revision, "status": status, "version": "1", "type": "app"}


@pytest.fixture
def world(tmp_path: Path) -> Iterator[tuple[Observer, FakeSnapd, Path]]:
    # A unix socket's path must stay under 108 bytes: not under pytest's tmp_path.
    short = Path(f"/tmp/sco-obs-{os.getpid()}-{time.monotonic_ns()}")
    short.mkdir()
    snapd = FakeSnapd(short / "snapd.socket")
    snapd.snaps = [entry("core", "x1"), entry("sc-a", "x1", "installed"), entry("sc-a", "x2")]
    snapd.changes = [change(1), change(2)]
    work = tmp_path / "work"
    shell = Shell(LocalBash(), transcript=tmp_path / "transcript.log", default_timeout=30)
    shell.start()
    observer = Observer(
        shell,
        work_dir=PurePosixPath(work),
        snapd_socket=str(short / "snapd.socket"),
        snapd_timeout=1.0,
        hook_log=str(tmp_path / "hooks.log"),
    )
    try:
        yield observer, snapd, work
    finally:
        observer.close()
        shell.close()
        snapd.close()
        shutil.rmtree(short, ignore_errors=True)


def server_pid(work: Path) -> int:
    return int((work / "observer" / "pid").read_text())


def test_the_server_answers_what_the_program_answers(world):
    observer, snapd, _work = world
    first = observer.observe(["sc-a", "sc-b"], host_snaps=True)
    assert observer.serving and observer.server_starts == 1
    assert first.last_change == 2 and [c.id for c in first.changes] == [1, 2]
    assert first.instance("sc-a").sequence == ("x1", "x2")
    assert not first.instance("sc-b").installed
    assert [snap.name for snap in first.host_snaps] == ["core", "sc-a"]
    assert first.host_snaps[1].current == "x2"
    snapd.changes.append(change(3))
    served = observer.observe(["sc-a"])
    assert [c.id for c in served.changes] == [3]
    # The one-shot program reads the same (one listing of snaps, changes after the last one).
    observer.serving = False
    snapd.changes.append(change(4))
    again = observer.observe(["sc-a"])
    assert [c.id for c in again.changes] == [4]
    assert again.instances == served.instances
    # After the first observation, changes are asked for by id, never listed again.
    lists = [path for path in snapd.requests if path == "/v2/changes?select=all"]
    assert len(lists) == 1


def test_a_server_gone_between_observations_is_started_again(world):
    observer, snapd, work = world
    observer.observe([])
    os.kill(server_pid(work), signal.SIGKILL)
    time.sleep(0.2)
    snapd.changes.append(change(3))
    seen = observer.observe([])
    assert [c.id for c in seen.changes] == [3]
    assert observer.server_starts == 2 and observer.serving


def test_a_server_dying_during_an_observation_is_an_observation_error_at_once(world):
    observer, snapd, work = world
    observer.observe([])
    pid = server_pid(work)
    snapd.delay = 0.8
    threading.Timer(0.3, os.kill, (pid, signal.SIGKILL)).start()
    began = time.monotonic()
    with pytest.raises(ObservationError, match="ended during the observation"):
        observer.observe(["sc-a"])
    assert time.monotonic() - began < 5


def test_snapd_not_answering_is_an_observation_error(world):
    observer, snapd, _work = world
    observer.observe([])
    snapd.delay = 3.0  # past the observer's 1 s for snapd
    with pytest.raises(ObservationError, match="timed out"):
        observer.observe(["sc-a"])
    snapd.delay = 0.0
    time.sleep(3.0)  # the fake snapd's late answers go nowhere
    assert observer.observe(["sc-a"]).instance("sc-a").current == "x2"  # it still serves


def test_close_stops_the_server(world):
    observer, _snapd, work = world
    observer.observe([])
    pid = server_pid(work)
    observer.close()
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and Path(f"/proc/{pid}").exists():
        time.sleep(0.05)
    assert not Path(f"/proc/{pid}").exists() or "zombie" in Path(f"/proc/{pid}/status").read_text()

"""Helpers of the served-store tests (no tests here): a catalog from model stores, the server
run as a subprocess bound to 127.0.0.1 on a free port, and a small urllib client."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from snapconform.model.epoch import Epoch
from snapconform.model.store import Store
from snapconform.served_store import server_program
from snapconform.served_store.catalog import CatalogSnap, CatalogWriter, Misbehave, RevisionFile

SERVER = Path(server_program.__file__)
START_SECONDS = 30.0


def blob(directory: Path, name: str, revision: int) -> Path:
    """A stand-in .snap: the server never opens it, it only serves its bytes."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{name}_{revision}.bin"
    path.write_bytes(f"{name} revision {revision}\n".encode() * (50 + revision))
    return path


def catalog_snap(blobs: Path, name: str, store: Store) -> CatalogSnap:
    """A CatalogSnap with a blob and version for every revision the store released."""
    revisions = {
        release.revision: RevisionFile(blob(blobs, name, release.revision), f"{release.revision}.0")
        for release in store.releases
    }
    return CatalogSnap(name, store, revisions)


def release_all(store: Store, releases: list[tuple[str, int, str]]) -> Store:
    for channel, revision, epoch in releases:
        store = store.release(channel, revision, Epoch.from_string(epoch))
    return store


@dataclass
class Response:
    status: int
    headers: Mapping[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class RunningServer:
    process: subprocess.Popen[bytes]
    base_url: str
    log: Path
    catalog: Path

    def request(
        self, method: str, path: str, body: Any = None, headers: Mapping[str, str] | None = None
    ) -> Response:
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(
            self.base_url + path, data=data, method=method, headers=dict(headers or {})
        )
        if data is not None:
            request.add_header("Content-Type", "application/json")
        try:
            with urllib.request.urlopen(request, timeout=30) as reply:
                return Response(reply.status, dict(reply.headers), reply.read())
        except urllib.error.HTTPError as error:
            return Response(error.code, dict(error.headers), error.read())

    def actions(
        self,
        actions: list[dict[str, Any]],
        context: list[dict[str, Any]] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> Response:
        body = {"context": context or [], "actions": actions, "fields": ["revision"]}
        return self.request("POST", "/v2/snaps/refresh", body, headers)

    def log_lines(self) -> list[dict[str, Any]]:
        if not self.log.exists():
            return []
        return [json.loads(line) for line in self.log.read_text().splitlines()]


@contextlib.contextmanager
def running_server(catalog: Path, work: Path) -> Iterator[RunningServer]:
    """The server program on 127.0.0.1, a free port; stopped (by PID) when the block ends."""
    port_file = work / "port"
    log = work / "requests.log"
    argv = [sys.executable, str(SERVER), "--port", "0", "--catalog", str(catalog)]
    argv += ["--log", str(log), "--port-file", str(port_file)]
    process = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + START_SECONDS
        while not port_file.exists():
            if process.poll() is not None:
                _out, err = process.communicate()
                raise RuntimeError(f"server exited {process.returncode}: {err.decode()}")
            if time.monotonic() > deadline:
                raise RuntimeError("server did not start listening")
            time.sleep(0.02)
        port = int(port_file.read_text())
        yield RunningServer(process, f"http://127.0.0.1:{port}", log, catalog)
    finally:
        if process.poll() is None:
            os.kill(process.pid, signal.SIGTERM)
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.kill(process.pid, signal.SIGKILL)
                process.wait(timeout=10)
        process.communicate()


def write(
    writer: CatalogWriter, dest: Path, snaps: list[CatalogSnap], misbehave: Misbehave | None = None
) -> Path:
    return writer.write(dest, snaps, misbehave)


def context_entry(
    snap_id: str, revision: int, epoch: Epoch, channel: str, key: str | None = None
) -> dict[str, Any]:
    """One installed instance as snapd describes it in the refresh request's context."""
    return {
        "snap-id": snap_id,
        "instance-key": key or snap_id,
        "revision": revision,
        "tracking-channel": channel,
        "epoch": {"read": list(epoch.read), "write": list(epoch.write)},
        "refreshed-date": "2026-01-01T00:00:00Z",
    }


def install_action(name: str, channel: str | None = None, revision: int | None = None) -> dict:
    action: dict[str, Any] = {
        "action": "install",
        "instance-key": "install-1",
        "name": name,
        "epoch": None,
    }
    if channel is not None:
        action["channel"] = channel
    if revision is not None:
        action["revision"] = revision
    return action


def refresh_action(
    snap_id: str, channel: str | None = None, revision: int | None = None, key: str | None = None
) -> dict:
    action: dict[str, Any] = {
        "action": "refresh",
        "instance-key": key or snap_id,
        "snap-id": snap_id,
    }
    if channel is not None:
        action["channel"] = channel
    if revision is not None:
        action["revision"] = revision
    return action

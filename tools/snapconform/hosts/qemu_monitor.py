"""The two JSON channels of a qemu VM: QMP (the machine) and the guest agent (inside it).

Both speak one JSON object a line over a unix socket that qemu serves. ``Qmp`` reads the
greeting and negotiates capabilities, and skips the asynchronous events it is sent. ``GuestAgent``
talks to ``qemu-guest-agent`` in the guest (a virtio-serial port): it resynchronises first (a
0xFF byte resets the agent's parser, then ``guest-sync-delimited`` with a fresh id), and offers
what the host backend needs from it: run a command (``guest-exec``) and write a file
(``guest-file-*``), both without a terminal.
"""

from __future__ import annotations

import base64
import contextlib
import json
import secrets
import shlex
import socket
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from snapconform.hosts.base import HostError

CONNECT_TIMEOUT = 30.0
FILE_CHUNK = 48 * 1024  # bytes per guest-file-write (the agent's JSON line stays small)


class MonitorError(HostError):
    """qemu or the guest agent answered with an error, or did not answer."""


class JsonChannel:
    """One JSON-lines connection to a unix socket qemu serves."""

    def __init__(self, path: Path, timeout: float = CONNECT_TIMEOUT) -> None:
        self.path = Path(path)
        deadline = time.monotonic() + timeout
        while True:
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                sock.connect(str(self.path))
                break
            except OSError as exc:
                sock.close()
                if time.monotonic() > deadline:
                    raise MonitorError(f"cannot connect to {self.path}: {exc}") from None
                time.sleep(0.05)
        self.sock = sock
        self.buffer = b""

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.sock.close()

    def send(self, data: bytes) -> None:
        try:
            self.sock.sendall(data)
        except OSError as exc:
            raise MonitorError(f"{self.path}: cannot send: {exc}") from None

    def read_line(self, deadline: float) -> bytes:
        while b"\n" not in self.buffer:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise MonitorError(f"{self.path}: no answer in time")
            self.sock.settimeout(remaining)
            try:
                chunk = self.sock.recv(65536)
            except TimeoutError:
                continue
            except OSError as exc:
                raise MonitorError(f"{self.path}: {exc}") from None
            if not chunk:
                raise MonitorError(f"{self.path}: closed by qemu")
            self.buffer += chunk
        line, _, self.buffer = self.buffer.partition(b"\n")
        return line

    def read_json(self, deadline: float) -> dict[str, Any]:
        while True:
            line = self.read_line(deadline).strip(b"\xff \r")
            if not line:
                continue
            try:
                value = json.loads(line)
            except ValueError:
                continue  # a partial line left by an earlier client
            if isinstance(value, dict):
                return value

    def command(self, execute: str, timeout: float, **arguments: Any) -> Any:
        request: dict[str, Any] = {"execute": execute}
        if arguments:
            request["arguments"] = arguments
        self.send(json.dumps(request).encode() + b"\n")
        deadline = time.monotonic() + timeout
        while True:
            answer = self.read_json(deadline)
            if "event" in answer:
                continue
            if "error" in answer:
                error = answer["error"]
                raise MonitorError(f"{execute}: {error.get('class')}: {error.get('desc')}")
            if "return" in answer:
                return answer["return"]


class Qmp(JsonChannel):
    """The QEMU Machine Protocol: what state the VM is in, stop, cont, migrate, quit."""

    def __init__(self, path: Path, timeout: float = CONNECT_TIMEOUT) -> None:
        super().__init__(path, timeout)
        greeting = self.read_json(time.monotonic() + timeout)
        if "QMP" not in greeting:
            raise MonitorError(f"{path}: not a QMP greeting: {greeting!r}")
        self.version = greeting["QMP"].get("version", {}).get("qemu", {})
        self.command("qmp_capabilities", timeout)

    def status(self, timeout: float = 30.0) -> str:
        """The VM's run state: "running", "paused", "inmigrate", "postmigrate", ..."""
        return str(self.command("query-status", timeout)["status"])

    def wait_status(self, wanted: tuple[str, ...], timeout: float) -> str:
        deadline = time.monotonic() + timeout
        while True:
            status = self.status()
            if status in wanted:
                return status
            if time.monotonic() > deadline:
                raise MonitorError(f"the VM stayed {status!r} (waited for {', '.join(wanted)})")
            time.sleep(0.05)

    def save_state(self, target: Path, timeout: float) -> None:
        """Stop the VM and write its whole state (RAM, devices) to ``target`` by migration."""
        self.command("stop", 30)
        self.command("migrate-set-parameters", 30, **{"max-bandwidth": 8 << 30})
        self.command("migrate", 30, uri="exec:cat > " + shlex.quote(str(target)))
        deadline = time.monotonic() + timeout
        while True:
            info = self.command("query-migrate", 30)
            status = info.get("status")
            if status == "completed":
                return
            if status in ("failed", "cancelled"):
                raise MonitorError(f"saving the VM's state failed: {info.get('error-desc', info)}")
            if time.monotonic() > deadline:
                raise MonitorError(f"saving the VM's state took more than {timeout:g} s")
            time.sleep(0.1)

    def wait_incoming(self, timeout: float) -> None:
        """Wait until an ``-incoming`` load is complete: with -S the VM then waits "paused"
        (qemu exits when the load fails)."""
        self.wait_status(("paused",), timeout)


@dataclass(frozen=True)
class ExecResult:
    exit_code: int
    output: str  # stdout, then stderr


class GuestAgent(JsonChannel):
    """qemu-guest-agent inside the VM: run commands and write files without a terminal."""

    def __init__(self, path: Path, timeout: float = CONNECT_TIMEOUT) -> None:
        super().__init__(path, timeout)

    def sync(self, timeout: float) -> None:
        """Resynchronise with the agent (it may hold half a request of an earlier client)."""
        deadline = time.monotonic() + timeout
        while True:
            token = secrets.randbelow(2**31)
            request = {"execute": "guest-sync-delimited", "arguments": {"id": token}}
            self.send(b"\xff" + json.dumps(request).encode() + b"\n")
            attempt = min(deadline, time.monotonic() + 5.0)
            try:
                while True:
                    answer = self.read_json(attempt)
                    if answer.get("return") == token:
                        return
            except MonitorError:
                if time.monotonic() > deadline:
                    raise MonitorError(
                        f"the guest agent did not answer within {timeout:g} s"
                    ) from None

    def exec(self, argv: list[str], timeout: float, stdin: bytes | None = None) -> ExecResult:
        """Run ``argv`` in the guest, wait for it, and return its exit code and output."""
        arguments: dict[str, Any] = {"path": argv[0], "arg": argv[1:], "capture-output": True}
        if stdin is not None:
            arguments["input-data"] = base64.b64encode(stdin).decode()
        pid = self.command("guest-exec", 30, **arguments)["pid"]
        deadline = time.monotonic() + timeout
        pause = 0.02
        while True:
            status = self.command("guest-exec-status", 30, pid=pid)
            if status.get("exited"):
                break
            if time.monotonic() > deadline:
                with contextlib.suppress(MonitorError):
                    self.exec(["/bin/kill", "-KILL", str(pid)], 30)
                raise MonitorError(f"{shlex.join(argv)}: still running after {timeout:g} s")
            time.sleep(pause)
            pause = min(pause * 2, 0.5)
        output = b"".join(
            base64.b64decode(status.get(stream, "")) for stream in ("out-data", "err-data")
        )
        code = status.get("exitcode")
        if code is None:  # killed by a signal
            code = 128 + int(status.get("signal", 0))
        return ExecResult(int(code), output.decode(errors="replace"))

    def write_file(self, path: str, data: bytes, timeout: float = 120.0) -> None:
        """Write ``data`` to ``path`` in the guest (the file is replaced)."""
        handle = self.command("guest-file-open", 30, path=path, mode="w")
        try:
            for start in range(0, len(data), FILE_CHUNK) or [0]:
                chunk = data[start : start + FILE_CHUNK]
                self.command(
                    "guest-file-write",
                    timeout,
                    handle=handle,
                    **{"buf-b64": base64.b64encode(chunk).decode()},
                )
        finally:
            self.command("guest-file-close", 30, handle=handle)

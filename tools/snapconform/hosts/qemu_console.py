"""The framed shell's way into a VM: a bridge between a terminal and the VM's virtio console.

    python3 qemu_console.py SOCKET

qemu serves the guest's ``hvc0`` on a unix socket; root is logged in there (the image's
autologin). This program (stdlib only, started by pexpect as the host's ``shell_argv``) puts
its terminal in raw mode, so every byte, ^C included, reaches the guest's own terminal, whose
line discipline does the rest (echo, signals). Before it hands over, it makes sure a shell
answers: the last session's ``exit`` ends the login shell and getty logs root in again, which
takes a few seconds under emulation. It sends ``printf`` probes with fresh markers until one is
printed, then a last one, and drops everything up to that last marker. After that it copies
bytes both ways until either side closes.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import select
import socket
import sys
import termios
import time
import tty

READY_TIMEOUT = 180.0
PROBE_INTERVAL = 3.0


def probe(token: str) -> bytes:
    """A line that prints ``scq`` + token: the text sent never holds the printed marker."""
    return f"\x15printf '%s%s\\n' scq {token}\n".encode()


def wait_for(sock: socket.socket, marker: bytes, deadline: float, pending: bytes) -> bytes | None:
    """Read until ``marker`` shows up; return what follows it (None at the deadline)."""
    while marker not in pending:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return None
        ready, _, _ = select.select([sock], [], [], remaining)
        if ready:
            chunk = sock.recv(65536)
            if not chunk:
                raise EOFError("the VM's console closed")
            pending = pending[-4096:] + chunk
    return pending.split(marker, 1)[1]


def wait_for_shell(sock: socket.socket, timeout: float = READY_TIMEOUT) -> bytes:
    """Probe until a shell answers on the console; return what came after the last marker."""
    deadline = time.monotonic() + timeout
    pending = b""
    while time.monotonic() < deadline:
        token = secrets.token_hex(6)
        sock.sendall(probe(token))
        found = wait_for(
            sock, f"scq{token}".encode(), min(deadline, time.monotonic() + PROBE_INTERVAL), pending
        )
        if found is None:
            continue
        last = secrets.token_hex(6)
        sock.sendall(probe(last))  # everything sent before it has been read by then
        rest = wait_for(sock, f"scq{last}".encode(), deadline, found)
        if rest is not None:
            return rest.split(b"\n", 1)[1] if b"\n" in rest else b""
    raise TimeoutError(f"no shell answered on the VM's console within {timeout:g} s")


def pump(sock: socket.socket, stdin: int, stdout: int) -> None:
    while True:
        ready, _, _ = select.select([sock, stdin], [], [])
        if sock in ready:
            data = sock.recv(65536)
            if not data:
                return
            os.write(stdout, data)
        if stdin in ready:
            data = os.read(stdin, 65536)
            if not data:
                return
            sock.sendall(data)


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print("usage: qemu_console.py SOCKET", file=sys.stderr)
        return 2
    stdin, stdout = sys.stdin.fileno(), sys.stdout.fileno()
    saved = termios.tcgetattr(stdin) if os.isatty(stdin) else None
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.connect(argv[1])
        if saved is not None:
            # Now, without flushing: what the framed shell already sent waits for the guest.
            tty.setraw(stdin, termios.TCSANOW)
        rest = wait_for_shell(sock)
        if rest:
            os.write(stdout, rest)
        pump(sock, stdin, stdout)
    except (OSError, EOFError, TimeoutError) as exc:
        print(f"qemu console {argv[1]}: {exc}", file=sys.stderr)
        return 1
    finally:
        if saved is not None:
            with contextlib.suppress(termios.error):
                termios.tcsetattr(stdin, termios.TCSADRAIN, saved)
        sock.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv))

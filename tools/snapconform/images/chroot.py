"""Run a script chrooted into a Debian tree, inside a private mount and PID namespace.

/proc, /dev and /sys are mounted into the tree only inside that namespace (``unshare --mount
--propagation private``), so nothing is ever mounted onto this machine, and everything goes
away with the namespace's last process. The namespace's PID 1 dies with the thread that
started it (``--kill-child`` and a parent-death signal), and the kernel then kills every
process left in it: an interrupted build leaves no process behind.

With ``overlay_upper``, the script runs on an overlayfs whose lower layer is the tree and whose
upper layer is that directory: the tree itself is left as it was.

Long scripts print what they are doing: the script marks each phase with a line
``snapconform-phase: TEXT`` (see ``phase``), echoed as it appears, and a heartbeat line with
the elapsed time goes out every ``heartbeat`` seconds.
"""

from __future__ import annotations

import contextlib
import os
import re
import shlex
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from urllib.parse import unquote

from snapconform.hosts.base import HostError, HostUnavailable
from snapconform.images.cache import progress

PHASE_MARK = "snapconform-phase: "
PHASE_DETAIL = " | "
HEARTBEAT_SECONDS = 30.0
CHROOT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


def phase(name: str, detail: str = "") -> str:
    """The shell line that marks the start of a phase in a chroot script's output: ``name``
    names it in heartbeats, ``detail`` is said once when it starts."""
    return f"echo {shlex.quote(PHASE_MARK + name + (PHASE_DETAIL + detail if detail else ''))}"


def format_elapsed(seconds: float) -> str:
    minutes, secs = divmod(int(seconds), 60)
    return f"{minutes}m{secs:02d}s" if minutes else f"{secs}s"


def namespace_argv(script: str) -> list[str]:
    """argv that runs the sh ``script`` in a private mount and PID namespace."""
    argv = []
    if threading.current_thread() is threading.main_thread():
        # When this process dies (SIGKILL included) the namespace's PID 1 goes with it.
        argv += ["setpriv", "--pdeathsig", "KILL"]
    argv += ["unshare", "--mount", "--propagation", "private", "--pid", "--fork", "--kill-child"]
    return [*argv, "sh", "-c", script]


def chroot_script(
    tree: Path,
    script: str,
    *,
    overlay_upper: Path | None = None,
    env: Mapping[str, str] | None = None,
) -> str:
    """The sh text that mounts what the chroot needs and runs the bash ``script`` in it."""
    q = shlex.quote
    tree = Path(tree)
    lines = ["set -eu"]
    root = tree
    if overlay_upper is not None:
        if any(mark in str(path) for path in (tree, overlay_upper) for mark in ",:"):
            raise HostError(f"cannot overlay {tree} with {overlay_upper}: a path holds ',' or ':'")
        upper, work, root = overlay_upper / "upper", overlay_upper / "work", overlay_upper / "root"
        lines += [
            f"mkdir -p {q(str(upper))} {q(str(work))} {q(str(root))}",
            "mount -t overlay -o "
            + q(f"lowerdir={tree},upperdir={upper},workdir={work}")
            + f" snapconform-build {q(str(root))}",
        ]
    lines += [
        f"mount -t proc proc {q(str(root / 'proc'))}",
        f"mount --rbind /dev {q(str(root / 'dev'))}",
        f"mount -t sysfs sysfs {q(str(root / 'sys'))}",
    ]
    variables = {
        "PATH": CHROOT_PATH,
        "HOME": "/root",
        "LANG": "C.UTF-8",
        "DEBIAN_FRONTEND": "noninteractive",
        **(env or {}),
    }
    assignments = [f"{name}={value}" for name, value in variables.items()]
    command = ["chroot", str(root), "env", "-i", *assignments, "bash", "-euo", "pipefail", "-c"]
    lines.append(f"exec {shlex.join(command)} {q(script)}")
    return "\n".join(lines)


def run_logged(
    argv: list[str],
    log: Path,
    *,
    label: str,
    heartbeat: float = HEARTBEAT_SECONDS,
    say: Callable[[str], None] = progress,
    timeout: float | None = None,
    since: float | None = None,
) -> int:
    """Run ``argv`` with its output appended to ``log``; echo its phase marks and a heartbeat
    giving the time elapsed since ``since`` (a time.monotonic() value; default: now).

    Returns the exit code. Interrupted (or past ``timeout``), the whole process group is killed
    before the exception goes on.
    """
    started = time.monotonic()
    since = started if since is None else since
    last_beat = started
    current = ""
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "ab") as out:
        position = out.tell()
        process = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        with open(log, "rb") as reader:
            reader.seek(position)
            pending = b""
            while True:
                try:
                    code = process.wait(timeout=min(1.0, max(heartbeat, 0.05)))
                except subprocess.TimeoutExpired:
                    code = None
                pending += reader.read()
                *complete, pending = pending.split(b"\n")
                for raw in complete:
                    line = raw.decode(errors="replace")
                    if line.startswith(PHASE_MARK):
                        current, _, detail = line[len(PHASE_MARK) :].partition(PHASE_DETAIL)
                        current = current.strip()
                        say(f"{label}: {current}" + (f": {detail.strip()}" if detail else ""))
                if code is not None:
                    return code
                now = time.monotonic()
                if timeout is not None and now - started > timeout:
                    raise HostError(
                        f"{label}: gave up after {format_elapsed(now - started)} (log: {log})"
                    )
                if now - last_beat >= heartbeat:
                    last_beat = now
                    doing = f" at {current}" if current else ""
                    say(f"{label}: still{doing}, {format_elapsed(now - since)} elapsed")
    except BaseException:
        if process.poll() is None:
            with_group_killed(process)
        raise


def with_group_killed(process: subprocess.Popen[bytes]) -> None:
    """SIGKILL ``process``'s group (it leads a session of its own) and reap it."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    process.wait(timeout=30)


def run_in_tree(
    tree: Path,
    script: str,
    log: Path,
    *,
    label: str,
    overlay_upper: Path | None = None,
    env: Mapping[str, str] | None = None,
    timeout: float | None = None,
    since: float | None = None,
) -> None:
    """Run the bash ``script`` chrooted into ``tree`` (see the module text). When it fails,
    raise HostError with a one-line reason and the log's tail (HostUnavailable when the mirror
    refused a download: this machine cannot make it)."""
    argv = namespace_argv(chroot_script(tree, script, overlay_upper=overlay_upper, env=env))
    code = run_logged(argv, log, label=label, timeout=timeout, since=since)
    if code != 0:
        reason = failure_reason(log)
        # A mirror that will not serve a file is this machine's limit, not a fault of the host.
        error = HostUnavailable if reason else HostError
        raise error(
            f"{label} failed (exit {code})"
            + (f": {reason}" if reason else "")
            + f"; log {log}:\n{log_tail(log)}"
        )


_FETCH_FAILED = re.compile(r"^E: Failed to fetch (\S+)\s+(\d{3})\b")


def failure_reason(log: Path) -> str | None:
    """One line saying why apt failed, when the log shows it (files the mirror refused)."""
    try:
        text = log.read_text(errors="replace")
    except OSError:
        return None
    refused: dict[str, list[str]] = {}
    for line in text.splitlines():
        match = _FETCH_FAILED.match(line)
        if match:
            name = unquote(match.group(1).rsplit("/", 1)[-1])
            refused.setdefault(match.group(2), []).append(name)
    if not refused:
        return None
    return "; ".join(
        f"the mirror answered HTTP {status} for {', '.join(names)}"
        for status, names in sorted(refused.items())
    )


def log_tail(log: Path, lines: int = 20) -> str:
    try:
        text = log.read_text(errors="replace")
    except OSError:
        return "(no log)"
    return "\n".join(text.splitlines()[-lines:])

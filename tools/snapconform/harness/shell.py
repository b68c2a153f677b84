"""The framed shell: one long-lived root bash on a host, driven with pexpect.

Every command is framed by two fresh random markers, so its output and exit code are read back
exactly, whatever the command prints. How a command travels and runs:

- The command text is sent as ANSI-C quoted assignments (``__sc_cmd=$'...'``) in lines of at
  most ``CHUNK_CHARS`` characters, every byte outside printable ASCII written as ``\\xHH``. Nothing
  the terminal treats specially (^C, ^D, ^U, ^V, DEL, a 4095-character canonical line) ever
  reaches the tty, and quotes, here-docs and unbalanced text cannot desynchronise the shell: a
  syntax error is just an exit code of 2 from ``eval``.
- It runs as ``( eval "$__sc_cmd" ) >&3 2>&1 3>&- </dev/null``: in a subshell, so ``exit``,
  ``set -e``, ``cd`` or ``exec`` in one command cannot kill the shell or leak into the next;
  stdin is /dev/null, so a command that reads stdin cannot swallow the next command.
- fd 3 is a pipe to one ``cat`` (started once, ignoring SIGINT) that writes to the terminal.
  Commands therefore see a pipe, not a tty, on stdout/stderr: no colour, no progress bars, no
  pagers. The markers go through the same pipe, so they stay in order with the output.
- Markers are printed with ``printf '%s%s\\n' HALF1 HALF2``, so the text we send never contains a
  whole marker even if the terminal echoes it.

A timeout sends ^C and re-syncs with a new marker (CommandTimeout: the shell is still usable);
if the shell does not answer, it is closed and HostFault is raised so the caller restarts the
host. End of file (host died) is a HostFault too.

CPU pinning: when ``host.pinned_cpu`` is set, the shell pins itself once with ``taskset -pc`` at
start (before the output pipe exists) and verifies it. Every command runs in a subshell forked
from that bash, so it and all its children inherit the affinity: shell builtins and functions
are covered too, which a per-command ``taskset -c N bash -c ...`` wrapper would also give but at
the cost of two extra execs per command.
"""

from __future__ import annotations

import base64
import contextlib
import os
import secrets
import shlex
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import IO, NoReturn

import pexpect

from snapconform.hosts.base import Host, HostError

CHUNK_CHARS = 1000  # well under the tty's 4095-character canonical line limit
WINDOW = (200, 4000)  # rows, columns: wide enough that nothing wraps
INTERRUPT_GRACE = 5.0  # seconds the shell gets to answer after ^C before it counts as dead
CLOSE_GRACE = 2.0  # seconds `exit` gets before the shell is killed

# Printable ASCII that may appear literally inside $'...' (not \, ' or the history character !).
_LITERAL = frozenset(chr(c) for c in range(0x20, 0x7F)) - {"\\", "'", "!"}

# Sent once at start; makes the shell quiet and predictable. %(pin)s pins it before fd 3 exists.
_SETUP = (
    "stty -echo 2>/dev/null; set +o history +m +H; set +o emacs +o vi 2>/dev/null; "
    "PS1= PS2= PS0= PS4='+ '; unset PROMPT_COMMAND TMOUT HISTFILE; "
    "export TERM=dumb NO_COLOR=1 PAGER=cat SYSTEMD_PAGER= SYSTEMD_COLORS=0 LC_ALL=C.UTF-8; "
    "%(pin)sexec 3> >(trap '' INT; exec cat)"
)


class CommandTimeout(Exception):
    """The command ran past its timeout and was interrupted; the shell is still usable."""

    def __init__(self, command: str, timeout: float, output: str) -> None:
        super().__init__(f"command timed out after {timeout:g} s and was interrupted: {command!r}")
        self.command = command
        self.timeout = timeout
        self.output = output


class HostFault(HostError):
    """The shell died or stopped answering: the host must be restarted (never a snapd verdict)."""

    def __init__(self, message: str, command: str = "", output: str = "") -> None:
        super().__init__(message)
        self.command = command
        self.output = output


@dataclass(frozen=True)
class CommandResult:
    command: str
    exit_code: int
    output: str  # stdout and stderr merged, CRs stripped, one trailing newline trimmed
    duration: float  # seconds from sending the command to reading its exit code
    started_at: datetime

    @property
    def ok(self) -> bool:
        return self.exit_code == 0


class CommandFailed(Exception):
    """run_checked: the command exited non-zero."""

    def __init__(self, result: CommandResult) -> None:
        tail = result.output[-2000:]
        super().__init__(f"command exited {result.exit_code}: {result.command!r}\n{tail}")
        self.result = result
        self.command = result.command
        self.output = result.output


def ansi_c_quote(text: str) -> list[str]:
    """``text`` as bash ANSI-C ($'...') tokens, one per character, using printable ASCII only."""
    tokens: list[str] = []
    for char in text:
        if char in _LITERAL:
            tokens.append(char)
        elif char == "\n":
            tokens.append("\\n")
        elif char in "\\'":
            tokens.append("\\" + char)
        else:
            tokens.extend(f"\\x{byte:02x}" for byte in char.encode("utf-8"))
    return tokens


def assignment_lines(variable: str, text: str, chunk_chars: int = CHUNK_CHARS) -> list[str]:
    """Shell lines that set ``variable`` to ``text`` exactly, each at most ~chunk_chars long."""
    if "\x00" in text:
        raise ValueError("a shell command cannot contain a NUL character")
    lines: list[str] = []
    current: list[str] = []
    size = 0
    for token in ansi_c_quote(text):
        if size + len(token) > chunk_chars:
            lines.append("".join(current))
            current, size = [], 0
        current.append(token)
        size += len(token)
    lines.append("".join(current))
    return [
        f"{variable}{'=' if index == 0 else '+='}$'{chunk}'" for index, chunk in enumerate(lines)
    ]


def _clean(raw: str) -> str:
    return raw.replace("\r", "")


def _trim_one_newline(text: str) -> str:
    return text[:-1] if text.endswith("\n") else text


class Shell:
    """A framed root shell on ``host``; see the module docstring for how commands are framed."""

    def __init__(
        self, host: Host, transcript: Path | None = None, default_timeout: float = 120.0
    ) -> None:
        self.host = host
        self.transcript = transcript
        self.default_timeout = default_timeout
        self.interrupt_grace = INTERRUPT_GRACE
        self._child: pexpect.spawn | None = None
        self._log: IO[str] | None = None

    # -- lifecycle ---------------------------------------------------------------------------
    @property
    def pid(self) -> int | None:
        """PID of the local process pexpect spawned (the shell itself for a local bash)."""
        return None if self._child is None else self._child.pid

    @property
    def running(self) -> bool:
        return self._child is not None and self._child.isalive()

    def start(self) -> None:
        """Spawn the host's shell, make it quiet, pin it if needed, and sync with a marker."""
        if self._child is not None:
            raise RuntimeError("shell already started")
        argv = self.host.shell_argv()
        if self.transcript is not None:
            self.transcript.parent.mkdir(parents=True, exist_ok=True)
            self._log = self.transcript.open("a", encoding="utf-8")
        self._note(f"shell start on {self.host.url}: {shlex.join(argv)}")
        try:
            self._child = pexpect.spawn(
                argv[0],
                argv[1:],
                encoding="utf-8",
                codec_errors="replace",
                echo=False,
                dimensions=WINDOW,
                maxread=65536,
                env=_local_env(),
            )
        except pexpect.ExceptionPexpect as exc:
            self._close_log()
            raise HostFault(f"{self.host.url}: cannot spawn shell {argv[0]!r}: {exc}") from exc
        self._child.delaybeforesend = None  # pexpect sleeps 50 ms before every send otherwise
        cpu = self.host.pinned_cpu
        pin = "" if cpu is None else f"taskset -pc {int(cpu)} $$ >/dev/null 2>&1; "
        try:
            self._sync(_SETUP % {"pin": pin} + "; ", self.default_timeout, command="(start)")
        except (CommandTimeout, HostFault) as exc:
            self.close(graceful=False)
            output = getattr(exc, "output", "")
            raise HostFault(
                f"{self.host.url}: the shell did not start: {exc}", "(start)", output
            ) from exc
        if cpu is not None:
            result = self.run("taskset -pc $$", timeout=30)
            if result.exit_code != 0 or not result.output.rstrip().endswith(f": {int(cpu)}"):
                self.close()
                raise HostFault(
                    f"{self.host.url}: cannot pin the shell to CPU {cpu}: {result.output}",
                    result.command,
                    result.output,
                )

    def close(self, graceful: bool = True) -> None:
        """Ask the shell to exit (if ``graceful``), then make sure it is gone. Safe to call twice.

        Closing the terminal hangs it up, so the shell and whatever it was running get SIGHUP;
        pexpect then escalates to SIGKILL for its own child if that did not end it.
        """
        child, self._child = self._child, None
        if child is not None:
            if graceful and child.isalive():
                with contextlib.suppress(Exception):
                    child.send("exit\n")
                    child.expect(pexpect.EOF, timeout=CLOSE_GRACE)
            with contextlib.suppress(Exception):
                child.close(force=True)
            self._note("shell closed")
        self._close_log()

    def __enter__(self) -> Shell:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # -- commands ----------------------------------------------------------------------------
    def run(self, command: str, timeout: float | None = None) -> CommandResult:
        """Run ``command`` (any bash text, multi-line allowed) and return what it printed.

        Raises CommandTimeout (interrupted, shell usable) or HostFault (shell gone).
        """
        child = self._require_child(command)
        timeout = self.default_timeout if timeout is None else timeout
        start_mark = _halves()
        end_mark = _halves()
        lines = assignment_lines("__sc_cmd", command)
        lines.append(
            f"printf '%s%s\\n' {start_mark[0]} {start_mark[1]} >&3; "
            '( eval "$__sc_cmd" ) >&3 2>&1 3>&- </dev/null; '
            f"printf '%s%s %d\\n' {end_mark[0]} {end_mark[1]} $? >&3; unset __sc_cmd"
        )
        started_at = datetime.now(UTC)
        began = time.monotonic()
        deadline = began + timeout
        try:
            child.send("\n".join(lines) + "\n")
            child.expect_exact("".join(start_mark), timeout=max(deadline - time.monotonic(), 0))
            child.expect_exact("".join(end_mark) + " ", timeout=max(deadline - time.monotonic(), 0))
            raw_output = child.before
            child.expect(r"(\d+)\r*\n", timeout=max(deadline - time.monotonic(), 1.0))
            exit_code = int(child.match.group(1))
        except pexpect.TIMEOUT:
            partial = _tidy_partial(_clean(child.before or ""))
            self._interrupt(command, timeout, partial, started_at, time.monotonic() - began)
        except pexpect.EOF:
            partial = _tidy_partial(_clean(child.before or ""))
            self._fault(
                "shell ended (end of file): the host died or the connection was lost",
                command,
                partial,
                started_at,
                time.monotonic() - began,
            )
        except OSError as exc:  # writing to a terminal whose other side is gone
            self._fault(
                f"cannot write to the shell ({exc}): the host died or the connection was lost",
                command,
                "",
                started_at,
                time.monotonic() - began,
            )
        output = _trim_one_newline(_strip_leading_newline(_clean(raw_output)))
        result = CommandResult(
            command=command,
            exit_code=exit_code,
            output=output,
            duration=time.monotonic() - began,
            started_at=started_at,
        )
        self._record(result)
        return result

    def run_checked(self, command: str, timeout: float | None = None) -> CommandResult:
        """run(), raising CommandFailed when the command exits non-zero."""
        result = self.run(command, timeout=timeout)
        if result.exit_code != 0:
            raise CommandFailed(result)
        return result

    # -- files -------------------------------------------------------------------------------
    def put_text(self, remote_path: str, text: str) -> None:
        """Write ``text`` (UTF-8) to ``remote_path`` on the host, through host.put_file."""
        with tempfile.TemporaryDirectory(prefix="snapconform-put-") as tmp:
            local = Path(tmp) / "content"
            local.write_text(text, encoding="utf-8")
            self.host.put_file(local, remote_path)
        self._note(f"put_text {remote_path} ({len(text)} characters)")

    def read_text(self, remote_path: str, timeout: float | None = None) -> str | None:
        """The file's exact text (UTF-8, bad bytes replaced), or None if it does not exist."""
        path = shlex.quote(remote_path)
        result = self.run(
            f"if [ ! -e {path} ]; then exit 3; fi; base64 -w0 -- {path}", timeout=timeout
        )
        if result.exit_code == 3:
            return None
        if result.exit_code != 0:
            raise CommandFailed(result)
        return base64.b64decode(result.output).decode("utf-8", errors="replace")

    # -- internals ---------------------------------------------------------------------------
    def _require_child(self, command: str) -> pexpect.spawn:
        if self._child is None:
            raise HostFault(f"{self.host.url}: the shell is not running", command, "")
        return self._child

    def _sync(self, prefix: str, timeout: float, command: str) -> str:
        """Send ``prefix`` plus a fresh marker; wait for it. Returns what came before it."""
        child = self._require_child(command)
        mark = _halves()
        try:
            child.send(f"{prefix}printf '%s%s\\n' {mark[0]} {mark[1]} >&3\n")
            child.expect_exact("".join(mark), timeout=timeout)
            before = child.before or ""
            child.expect(r"\r*\n", timeout=timeout)
        except pexpect.TIMEOUT:
            raise CommandTimeout(command, timeout, _clean(child.before or "")) from None
        except pexpect.EOF:
            raise HostFault(
                f"{self.host.url}: shell ended (end of file)", command, _clean(child.before or "")
            ) from None
        except OSError as exc:
            raise HostFault(f"{self.host.url}: cannot write to the shell: {exc}", command) from exc
        return _clean(before)

    def _interrupt(
        self, command: str, timeout: float, partial: str, started_at: datetime, elapsed: float
    ) -> NoReturn:
        """^C the running command and re-sync; raise CommandTimeout, or HostFault if that fails.

        pexpect keeps unread data in its buffer across a TIMEOUT, so what each attempt reports
        already holds what came before: replace ``partial``, never append to it.
        """
        child = self._child
        assert child is not None
        for _attempt in range(2):
            try:
                child.sendintr()
                partial = self._sync("", self.interrupt_grace / 2, command)
            except CommandTimeout as exc:
                partial = exc.output or partial
                continue
            except HostFault as exc:
                partial = exc.output or partial
                break
            partial = _tidy_partial(partial)
            self._record_failure(command, "timeout, interrupted", partial, started_at, elapsed)
            raise CommandTimeout(command, timeout, partial)
        self._fault(
            f"shell did not answer after interrupt (command timed out after {timeout:g} s)",
            command,
            _tidy_partial(partial),
            started_at,
            elapsed,
        )

    def _fault(
        self, message: str, command: str, partial: str, started_at: datetime, elapsed: float
    ) -> NoReturn:
        self._record_failure(command, "host fault: " + message, partial, started_at, elapsed)
        self.close(graceful=False)
        raise HostFault(f"{self.host.url}: {message}", command, partial)

    # -- transcript --------------------------------------------------------------------------
    def _note(self, text: str) -> None:
        if self._log is not None:
            self._log.write(f"[{_stamp(datetime.now(UTC))}] # {text}\n")
            self._log.flush()

    def _record(self, result: CommandResult) -> None:
        if self._log is None:
            return
        self._log.write(_format_command(result.command, result.started_at))
        self._log.write(_format_output(result.output))
        self._log.write(f"[exit {result.exit_code}, {result.duration:.3f} s]\n\n")
        self._log.flush()

    def _record_failure(
        self, command: str, what: str, partial: str, started_at: datetime, elapsed: float
    ) -> None:
        if self._log is None:
            return
        self._log.write(_format_command(command, started_at))
        self._log.write(_format_output(partial))
        self._log.write(f"[{what} after {elapsed:.3f} s]\n\n")
        self._log.flush()

    def _close_log(self) -> None:
        if self._log is not None:
            self._log.close()
            self._log = None


def _halves() -> tuple[str, str]:
    """A fresh marker, as two halves that are only ever joined by the remote printf."""
    return f"__SC{secrets.token_hex(4)}", f"{secrets.token_hex(4)}__"


def _tidy_partial(text: str) -> str:
    """Output of an interrupted command, without the blank lines bash adds around ^C."""
    return text.strip("\n")


def _strip_leading_newline(text: str) -> str:
    return text[1:] if text.startswith("\n") else text


def _stamp(moment: datetime) -> str:
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _format_command(command: str, started_at: datetime) -> str:
    first, *rest = command.split("\n")
    text = f"[{_stamp(started_at)}] $ {first}\n"
    return text + "".join(f"  > {line}\n" for line in rest)


def _format_output(output: str) -> str:
    return "".join(f"  | {line}\n" for line in _lines(output))


def _lines(text: str) -> Iterator[str]:
    if text:
        yield from text.split("\n")


def _local_env() -> dict[str, str]:
    """Environment of the spawned local process (ssh, lxc, nsenter, bash): quiet and ASCII."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("LC_")}
    env.update({"TERM": "dumb", "LANG": "C.UTF-8", "NO_COLOR": "1"})
    return env

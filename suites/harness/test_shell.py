"""The framed shell against a real local bash (no snapd needed)."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from snapconform.harness.shell import (
    CommandFailed,
    CommandResult,
    CommandTimeout,
    HostFault,
    Shell,
    assignment_lines,
)
from snapconform.hosts.base import Host, HostError, HostSpec


class LocalBash(Host):
    """A real bash on this machine; files are copied. Nothing about it is simulated."""

    def __init__(self, cpu: int | None = None) -> None:
        super().__init__(HostSpec(scheme="local", raw="local://"))
        self.cpu = cpu

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

    @property
    def pinned_cpu(self) -> int | None:
        return self.cpu


@pytest.fixture
def shell(tmp_path: Path) -> Iterator[Shell]:
    with Shell(LocalBash(), transcript=tmp_path / "transcript.log", default_timeout=30) as sh:
        yield sh


def process_exists(pid: int) -> bool:
    """True while pid runs (a zombie waiting for its reaper counts as gone)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return False
    return state != "Z"


def test_exit_codes(shell: Shell) -> None:
    assert shell.run("true").exit_code == 0
    assert shell.run("false").exit_code == 1
    assert shell.run("exit 42").exit_code == 42
    assert shell.run("sh -c 'kill -TERM $$'").exit_code == 128 + signal.SIGTERM


def test_result_fields(shell: Shell) -> None:
    result = shell.run("echo hello")
    assert isinstance(result, CommandResult)
    assert result.command == "echo hello"
    assert result.output == "hello"
    assert result.ok
    assert 0 <= result.duration < 5
    assert result.started_at.tzinfo is not None


def test_multi_line_output_and_command(shell: Shell) -> None:
    result = shell.run("for i in 1 2 3; do\n  echo line $i\ndone")
    assert result.output == "line 1\nline 2\nline 3"


def test_output_without_trailing_newline(shell: Shell) -> None:
    assert shell.run("printf abc").output == "abc"
    assert shell.run("printf 'abc\\n\\n'").output == "abc\n"
    assert shell.run("true").output == ""


def test_stderr_is_merged_in_order(shell: Shell) -> None:
    result = shell.run("echo out; echo err >&2; echo out2")
    assert result.output == "out\nerr\nout2"


def test_output_that_looks_like_markers(shell: Shell) -> None:
    text = "__SC0123abcd 0\n__SC 1\nprintf '%s%s\\n' __SCdead beef__ 0"
    result = shell.run(f"cat <<'EOF'\n{text}\nEOF\nexit 3")
    assert result.output == text
    assert result.exit_code == 3


def test_quotes_heredocs_and_shell_syntax(shell: Shell) -> None:
    nasty = 'it\'s "quoted" `not run` $(not run) $HOME \\ back\\slash ! EOF\n\'"EOF'
    result = shell.run(f"cat <<'EOF_X'\n{nasty}\nEOF_X")
    assert result.output == nasty
    assert shell.run("printf '%s\\n' \"a'b\" 'c\"d'").output == "a'b\nc\"d"


def test_unbalanced_command_is_a_syntax_error_not_a_hang(shell: Shell) -> None:
    result = shell.run("echo 'never closed", timeout=10)
    assert result.exit_code == 2
    assert "unexpected EOF" in result.output
    assert shell.run("echo fine").output == "fine"


def test_terminal_control_characters_in_command(shell: Shell) -> None:
    # ^C ^D ^U ^V ^Z DEL would be acted on by the terminal if sent raw.
    text = "a\x03b\x04c\x15d\x16e\x1af\x7fg"
    result = shell.run(f"printf '%s' '{text}' | od -An -c | tr -s ' '")
    assert result.exit_code == 0
    assert "003" in result.output and "177" in result.output


def test_binary_and_non_ascii_output(shell: Shell) -> None:
    result = shell.run("printf 'caf\\xc3\\xa9 \\xff\\xfe \\x00 \\x1b[31mred\\n'")
    assert result.exit_code == 0
    assert result.output.startswith("café \ufffd\ufffd \x00 \x1b[31mred")
    assert shell.run("echo 'snap ✓ — ü'").output == "snap ✓ — ü"


def test_long_command_beyond_terminal_line_limit(shell: Shell) -> None:
    payload = "x" * 20000
    assert shell.run(f"printf %s {payload} | wc -c").output == "20000"
    assert len(assignment_lines("v", payload)) > 10


def test_large_output(shell: Shell) -> None:
    result = shell.run("seq 1 100000")
    assert result.output.split("\n")[-1] == "100000"
    assert len(result.output.split("\n")) == 100000


def test_commands_do_not_leak_state(shell: Shell) -> None:
    shell.run("cd /; export LEAK=1; set -e; exec 9>/dev/null")
    assert shell.run("echo ${LEAK:-none}").output == "none"
    assert shell.run("false; echo survived").output == "survived"


def test_stdin_is_empty(shell: Shell) -> None:
    result = shell.run("cat; read -r line; echo read=$?", timeout=10)
    assert result.output == "read=1"


def test_output_is_a_pipe_not_a_terminal(shell: Shell) -> None:
    assert shell.run("[ -t 1 ] || [ -t 2 ] || echo no-tty").output == "no-tty"
    assert shell.run("echo $TERM $NO_COLOR").output == "dumb 1"


def test_run_checked(shell: Shell) -> None:
    assert shell.run_checked("echo ok").output == "ok"
    with pytest.raises(CommandFailed) as failed:
        shell.run_checked("echo boom; exit 5")
    assert failed.value.result.exit_code == 5
    assert failed.value.output == "boom"
    assert "exited 5" in str(failed.value)


def test_timeout_interrupts_and_shell_stays_usable(shell: Shell) -> None:
    began = time.monotonic()
    with pytest.raises(CommandTimeout) as timed_out:
        shell.run("echo started; sleep 1000", timeout=2)
    assert time.monotonic() - began < 8
    assert timed_out.value.command == "echo started; sleep 1000"
    assert timed_out.value.output == "started"
    assert not isinstance(timed_out.value, HostError)
    assert shell.running
    assert shell.run("echo after").output == "after"
    assert shell.run("exit 4").exit_code == 4


def test_timeout_of_a_shell_loop(shell: Shell) -> None:
    with pytest.raises(CommandTimeout):
        shell.run("while :; do :; done", timeout=1)
    assert shell.run("echo after").output == "after"


def test_command_ignoring_interrupt_is_a_host_fault(tmp_path: Path) -> None:
    sh = Shell(LocalBash(), transcript=tmp_path / "t.log")
    sh.interrupt_grace = 2
    sh.start()
    try:
        with pytest.raises(HostFault) as fault:
            sh.run("trap '' INT; echo stuck; exec sleep 1000", timeout=1)
        assert "shell did not answer after interrupt" in str(fault.value)
        assert fault.value.output == "stuck"
        assert not sh.running
        with pytest.raises(HostFault):
            sh.run("true")
    finally:
        sh.close()
    assert "host fault" in (tmp_path / "t.log").read_text()


def test_killed_shell_is_a_host_fault(tmp_path: Path) -> None:
    sh = Shell(LocalBash(), default_timeout=30)
    sh.start()
    try:
        pid = sh.pid
        assert pid is not None
        sleeper = int(sh.run("sleep 1000 & echo $!").output)
        threading.Timer(0.5, os.kill, (pid, signal.SIGKILL)).start()
        began = time.monotonic()
        with pytest.raises(HostFault) as fault:
            sh.run("echo before-kill; sleep 30")
        assert time.monotonic() - began < 10
        assert isinstance(fault.value, HostError)
        assert fault.value.command == "echo before-kill; sleep 30"
        assert fault.value.output == "before-kill"
        assert not sh.running
    finally:
        sh.close()
    with contextlib.suppress(ProcessLookupError):
        os.kill(sleeper, signal.SIGKILL)  # the background sleep we started ourselves


def test_close_ends_what_the_shell_was_running(tmp_path: Path) -> None:
    sh = Shell(LocalBash())
    sh.start()
    child = int(sh.run("sleep 1000 >/dev/null 2>&1 & echo $!").output)
    shell_pid = sh.pid
    assert shell_pid is not None
    sh.close()
    sh.close()  # twice is fine
    assert not process_exists(shell_pid)
    if process_exists(child):  # a background job may survive the hang-up; it is ours to end
        with contextlib.suppress(ProcessLookupError):
            os.kill(child, signal.SIGKILL)


def test_shell_restarts_after_close(tmp_path: Path) -> None:
    sh = Shell(LocalBash(), transcript=tmp_path / "t.log")
    sh.start()
    sh.close()
    sh.start()
    try:
        assert sh.run("echo again").output == "again"
    finally:
        sh.close()
    assert (tmp_path / "t.log").read_text().count("shell start") == 2


def test_transcript(shell: Shell, tmp_path: Path) -> None:
    shell.run("echo one\necho two >&2")
    shell.run("exit 3")
    with pytest.raises(CommandTimeout):
        shell.run("sleep 100", timeout=1)
    text = (tmp_path / "transcript.log").read_text()
    assert "shell start on local://: bash --noprofile --norc -i" in text
    assert "$ echo one\n  > echo two >&2\n  | one\n  | two\n[exit 0, " in text
    assert "$ exit 3\n[exit 3, " in text
    assert "$ sleep 100\n[timeout, interrupted after " in text
    assert "LC_ALL" not in text  # the set-up line is not logged
    for line in text.splitlines():
        assert not line or line.startswith(("[", "  |", "  >")), line


def test_two_hundred_commands_stay_in_sync(shell: Shell) -> None:
    for index in range(200):
        command = f"echo {index}; echo err{index} >&2; exit {index % 7}"
        result = shell.run(command)
        assert result.output == f"{index}\nerr{index}"
        assert result.exit_code == index % 7


def test_put_text_and_read_text(shell: Shell, tmp_path: Path) -> None:
    target = tmp_path / "sub" / "file.txt"
    text = "line 1\r\nünï\n\n"
    shell.put_text(str(target), text)
    assert target.read_bytes() == text.encode()
    assert shell.read_text(str(target)) == text
    assert shell.read_text(str(tmp_path / "missing")) is None
    with pytest.raises(CommandFailed):
        shell.read_text(str(tmp_path))  # a directory


def test_pinned_cpu_applies_to_every_command() -> None:
    cpu = max(os.sched_getaffinity(0))
    with Shell(LocalBash(cpu=cpu)) as sh:
        status = sh.run("grep Cpus_allowed_list /proc/self/status").output
        assert status.split()[-1] == str(cpu)
        assert sh.run("taskset -pc $$").output.endswith(f": {cpu}")
        assert sh.run("bash -c 'taskset -pc $$'").output.endswith(f": {cpu}")


def test_nul_in_command_is_refused(shell: Shell) -> None:
    with pytest.raises(ValueError, match="NUL"):
        shell.run("echo a\x00b")
    assert shell.run("echo ok").output == "ok"


def test_dead_argv_is_a_host_fault() -> None:
    class Missing(LocalBash):
        def shell_argv(self) -> list[str]:
            return ["/nonexistent/shell"]

    with pytest.raises(HostFault, match=r"cannot spawn"):
        Shell(Missing(), default_timeout=5).start()


def test_shell_that_exits_at_once_is_a_host_fault() -> None:
    class Quits(LocalBash):
        def shell_argv(self) -> list[str]:
            return ["bash", "-c", "exit 0"]

    with pytest.raises(HostFault, match="did not start"):
        Shell(Quits(), default_timeout=5).start()


def test_host_side_failure_in_a_commands_output_is_a_host_fault(shell: Shell) -> None:
    """hosts.md: the kernel's mount-namespace failure is the host's, never a snapd verdict."""
    from snapconform.harness.operations import HostSideFailure, SnapClient

    client = SnapClient(shell)
    line = "cannot preserve mount namespace of process 42 as sc-a.mnt: Invalid argument"
    with pytest.raises(HostSideFailure, match="cannot preserve mount namespace"):
        client._run(["sh", "-c", f"echo {line!r} >&2; exit 1"])
    assert client._run(["sh", "-c", "echo fine"]).output == "fine"

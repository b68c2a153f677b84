"""One LXD instance, driven with the ``lxc`` client: its facts, readiness, CPU pin and snapshot.

What was measured on these machines (bookworm's LXD 5.0.2, an unprivileged container, no NIC):
the kernel's "cannot preserve mount namespace of process N as NAME.mnt: Invalid argument"
failure hits LXD containers by CPU. Depending on the CPU where the container's mount namespace
was made, 0%, about half or all of the hook runs fail, and ``limits.cpu`` given at launch does not
help. So after every start, restart or restore, ``pin`` tries each CPU inside the container
(``taskset -c N unshare --mount=FILE true``, FILE an empty file under a private bind mount, the
way snap-confine keeps a snap's namespace) and sets ``limits.cpu=N-N`` to one that passes. A
container already pinned to a CPU that passes is left as it is (a second session on the same
instance must not move the first one's shell).
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

from snapconform.hosts.base import HostError, HostUnavailable

SNAPSHOT = "sc-pristine"  # taken by `hosts create` when the instance is seeded, stopped
MARK = "user.snapconform.release"  # set by `hosts create`: the instance is snapconform's
IMAGE_KEY = "user.snapconform.image"
SNAPD_KEY = "user.snapconform.snapd"  # the snapd build: "testkeys VERSION"; absent: archive
STORE_TIER_OF = "user.snapconform.store-tier-of"  # on a store tier: the instance it serves
STORE_SUFFIX = "-store"  # lxd://NAME?snapd=testkeys drives the instance NAME-store
# LXD instance names: a hostname label (letters, digits, hyphens; not starting with a digit or
# hyphen, not ending with a hyphen; at most 63 characters).
INSTANCE_NAME = re.compile(r"[A-Za-z](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?")
LIMITS_CPU = "limits.cpu"
READY_TIMEOUT = 120.0  # seconds from `lxc start` to a seeded snapd
PROBE_TRIES = 5  # unshare runs per CPU; a CPU passes only when all of them do
PIN_BOOTS = 3  # boots tried before giving up on finding a CPU that passes
LXC_TIMEOUT = 120.0

_PROBE_LINE = re.compile(r"^sc-probe: cpu (\d+) passed (\d+) of (\d+)$", re.MULTILINE)

# Prints one `sc-probe: cpu N passed K of TRIES` line per CPU the container may use.
PROBE_SCRIPT = """\
set -u
tries=%(tries)d
dir=$(mktemp -d /run/sc-cpu-probe.XXXXXX) || exit 3
if ! mount --bind "$dir" "$dir" || ! mount --make-private "$dir"; then
    rmdir "$dir"; echo 'sc-probe: cannot make a private bind mount'; exit 3
fi
allowed=$(sed -n 's/^Cpus_allowed_list:[[:space:]]*//p' /proc/self/status)
IFS=, read -ra parts <<< "$allowed"
for part in "${parts[@]}"; do
    for ((cpu = ${part%%-*}; cpu <= ${part##*-}; cpu++)); do
        passed=0
        for ((try = 0; try < tries; try++)); do
            : > "$dir/ns"
            if taskset -c "$cpu" unshare --mount="$dir/ns" true 2>/dev/null; then
                passed=$((passed + 1))
                umount "$dir/ns"
            fi
        done
        echo "sc-probe: cpu $cpu passed $passed of $tries"
    done
done
rm -f "$dir/ns"
umount "$dir"
rmdir "$dir"
"""


def store_tier_name(name: str) -> str:
    """The instance that is the store tier of instance ``name`` (ValueError when too long)."""
    companion = f"{name}{STORE_SUFFIX}"
    if not INSTANCE_NAME.fullmatch(companion):
        raise ValueError(
            f"lxd://{name}: its store tier would be the instance {companion!r}, longer than LXD "
            "allows (63); use a shorter name"
        )
    return companion


def last_line(text: str) -> str:
    lines = [line.strip() for line in (text or "").strip().splitlines() if line.strip()]
    return lines[-1] if lines else "(no output)"


def lxc(
    *args: str, timeout: float = LXC_TIMEOUT, stdin_text: str | None = None
) -> subprocess.CompletedProcess[str]:
    """Run ``lxc ARGS`` (no terminal); HostUnavailable without a client, HostError on timeout."""
    if shutil.which("lxc") is None:
        raise HostUnavailable("the lxc client is not installed here (apt-get install lxd-client)")
    try:
        return subprocess.run(
            ["lxc", *args],
            input=stdin_text,
            stdin=None if stdin_text is not None else subprocess.DEVNULL,
            capture_output=True,
            text=True,
            errors="replace",
            timeout=timeout,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        raise HostError(f"`lxc {' '.join(args)}` did not finish within {timeout:g} s") from exc


def lxc_ok(*args: str, timeout: float = LXC_TIMEOUT, stdin_text: str | None = None) -> str:
    """``lxc ARGS``'s output; HostError with lxc's own last line when it fails."""
    done = lxc(*args, timeout=timeout, stdin_text=stdin_text)
    if done.returncode != 0:
        raise HostError(f"`lxc {' '.join(args)}` failed: {last_line(done.stderr or done.stdout)}")
    return done.stdout


BUSY_SECONDS = 90.0  # how long an instance busy with LXD's own operation is waited for


def lxc_when_idle(*args: str, already: str | None = None) -> None:
    """``lxc ARGS``, retried while LXD says the instance is busy with an operation of its own
    (after its init was killed, LXD runs a "stop" of the dead instance for a few seconds);
    a failure saying ``already`` (e.g. "already stopped") counts as done."""
    deadline = time.monotonic() + BUSY_SECONDS
    while True:
        done = lxc(*args)
        if done.returncode == 0:
            return
        reason = last_line(done.stderr or done.stdout)
        if already is not None and already in reason.lower():
            return
        if "is busy running" not in reason or time.monotonic() > deadline:
            raise HostError(f"`lxc {' '.join(args)}` failed: {reason}")
        time.sleep(0.5)


def exec_argv(name: str, script: str) -> list[str]:
    """argv that runs bash ``script`` as root in the instance (lxc passes argv unchanged)."""
    return ["lxc", "exec", name, "--", "bash", "--noprofile", "--norc", "-c", script]


def run_in(
    name: str, script: str, timeout: float = LXC_TIMEOUT
) -> subprocess.CompletedProcess[str]:
    return lxc(*exec_argv(name, script)[1:], timeout=timeout)


@dataclass(frozen=True)
class InstanceFacts:
    """What LXD says of an instance: status, its own config, snapshot names, init's PID."""

    name: str
    status: str
    config: dict[str, str] = field(default_factory=dict)
    snapshots: tuple[str, ...] = ()
    pid: int | None = None

    @property
    def running(self) -> bool:
        return self.status == "RUNNING"

    @property
    def made_by_snapconform(self) -> bool:
        return MARK in self.config

    @property
    def pinned_cpu(self) -> int | None:
        return single_cpu(self.config.get(LIMITS_CPU))

    @property
    def snapd_build(self) -> str:
        """Which snapd `hosts create` put in: "archive" or "testkeys VERSION"."""
        return self.config.get(SNAPD_KEY, "archive")

    @classmethod
    def from_api(cls, data: dict[str, object]) -> InstanceFacts:
        """From LXD's /1.0/instances/NAME?recursion=1 answer."""
        config = data.get("config") or {}
        snapshots = data.get("snapshots") or []
        state = data.get("state") or {}
        pid = state.get("pid") if isinstance(state, dict) else None
        return cls(
            name=str(data.get("name", "")),
            status=str(data.get("status", "")).upper(),
            config={str(k): str(v) for k, v in dict(config).items()},  # type: ignore[call-overload]
            snapshots=tuple(
                str(s.get("name", "")).rsplit("/", 1)[-1]
                for s in snapshots  # type: ignore[union-attr]
                if isinstance(s, dict)
            ),
            pid=int(pid) if isinstance(pid, int) and pid > 0 else None,
        )


def instance_facts(name: str) -> InstanceFacts | None:
    """The instance's facts, or None when LXD has no instance of that name."""
    done = lxc("query", f"/1.0/instances/{name}?recursion=1", timeout=60)
    if done.returncode != 0:
        reason = last_line(done.stderr or done.stdout)
        if "not found" in reason.lower():
            return None
        raise HostError(f"`lxc query /1.0/instances/{name}` failed: {reason}")
    try:
        return InstanceFacts.from_api(json.loads(done.stdout))
    except (ValueError, TypeError, AttributeError) as exc:
        raise HostError(f"cannot read LXD's answer about {name}: {exc}") from exc


def single_cpu(limits: str | None) -> int | None:
    """The CPU a ``limits.cpu`` value pins to (``N-N`` or ``N,``-less ranges of one), else None.

    A bare ``N`` is a count of CPUs that LXD balances, not a pin."""
    if not limits:
        return None
    match = re.fullmatch(r"\s*(\d+)-(\d+)\s*", limits)
    if match and match.group(1) == match.group(2):
        return int(match.group(1))
    return None


def parse_probe(output: str) -> dict[int, bool]:
    """{cpu: passed every try} from PROBE_SCRIPT's output."""
    return {
        int(cpu): int(passed) == int(tries) and int(tries) > 0
        for cpu, passed, tries in _PROBE_LINE.findall(output)
    }


def probe_cpus(name: str, tries: int = PROBE_TRIES) -> dict[int, bool]:
    """Which of the CPUs the instance may use now keep a mount namespace (see the module)."""
    done = run_in(name, PROBE_SCRIPT % {"tries": tries}, timeout=60)
    results = parse_probe(done.stdout)
    if done.returncode != 0 or not results:
        raise HostError(
            f"lxd://{name}: the CPU probe failed (exit {done.returncode}): "
            f"{last_line(done.stdout + done.stderr)}"
        )
    return results


def wait_ready(name: str, timeout: float = READY_TIMEOUT) -> None:
    """Wait until snapd in the (just started) instance has seeded."""
    deadline = time.monotonic() + timeout
    reason = ""
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            raise HostError(f"lxd://{name}: snapd did not seed within {timeout:g} s ({reason})")
        try:
            done = run_in(name, "snap wait system seed.loaded 2>&1", timeout=max(left, 1.0))
        except HostError as exc:
            reason = str(exc)
            continue
        if done.returncode == 0:
            return
        reason = last_line(done.stdout + done.stderr)
        time.sleep(0.2)


def set_limits_cpu(name: str, value: str | None) -> None:
    if value is None:
        facts = instance_facts(name)
        if facts is not None and LIMITS_CPU in facts.config:
            lxc_ok("config", "unset", name, LIMITS_CPU)
        return
    lxc_ok("config", "set", name, f"{LIMITS_CPU}={value}")


def pin(name: str, facts: InstanceFacts | None = None) -> int:
    """Pin the running instance to a CPU that keeps mount namespaces; returns that CPU.

    An instance pinned to a CPU that passes stays as it is; otherwise every CPU is tried and
    the first that passes is set; when none does, the instance is restarted (its namespaces are
    made anew) up to PIN_BOOTS times."""
    facts = facts or instance_facts(name)
    if facts is None:
        raise HostError(f"lxd://{name}: the instance is gone")
    current = facts.pinned_cpu
    if current is not None and probe_cpus(name).get(current):
        return current
    for boot in range(PIN_BOOTS):
        if boot:
            lxc_ok("restart", "--force", name)
            wait_ready(name)
        set_limits_cpu(name, None)
        results = probe_cpus(name)
        passing = [cpu for cpu, ok in sorted(results.items()) if ok]
        if passing:
            set_limits_cpu(name, f"{passing[0]}-{passing[0]}")
            return passing[0]
    raise HostError(
        f"lxd://{name}: no CPU keeps a mount namespace in this container after {PIN_BOOTS} boots "
        "(taskset -c N unshare --mount=FILE true fails on every CPU)"
    )


def start(name: str) -> None:
    lxc_ok("start", name)
    wait_ready(name)


def restore_pristine(name: str, snapshot: str = SNAPSHOT) -> None:
    """Kill the instance, restore ``snapshot`` (taken stopped) and start it again, seeded.

    Nothing goes through snapd: a hung or frozen snapd is killed with the rest."""
    facts = instance_facts(name)
    if facts is None:
        raise HostError(f"lxd://{name}: the instance is gone")
    if facts.status != "STOPPED":
        lxc_when_idle("stop", "--force", name, already="already stopped")
    lxc_when_idle("restore", name, snapshot)
    start(name)


def force_restart(name: str) -> None:
    facts = instance_facts(name)
    if facts is not None and facts.running:
        lxc_when_idle("restart", "--force", name)
    else:
        lxc_when_idle("start", name, already="already running")
    wait_ready(name)


def push_file(name: str, local: Path, remote: str) -> None:
    lxc_ok("file", "push", "--create-dirs", str(local), f"{name}{remote}", timeout=600)

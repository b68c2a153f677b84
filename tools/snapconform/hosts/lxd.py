"""``lxd://NAME``: an LXD instance where snapd runs, reached with the ``lxc`` client.

Measured on these machines (Debian bookworm's LXD 5.0.2, Debian's unmodified snapd 2.57.6, an
unprivileged container): LXD needs a ``dir`` storage pool and no network. snapd in an LXD
container mounts snaps with squashfuse, so the image carries ``squashfuse`` and ``fuse3`` and
the instance a ``/dev/fuse`` its root can open: a ``unix-char`` device with mode 0666 (the
host's node is often 0600, and then every install fails with "fuse: failed to open /dev/fuse:
Permission denied"). The kernel's "cannot preserve mount namespace" failure hits such a
container by CPU (0%, about half or all hook runs fail; ``limits.cpu`` at launch does not help):
after every start, restart and restore this backend tries each CPU inside the container with
``taskset -c N unshare --mount=FILE true`` and sets ``limits.cpu=N-N`` to one that passes
(lxd_instance.pin); that CPU is ``pinned_cpu``. The image is built offline from the golden
recipe's Debian tree, packed as metadata.yaml and a rootfs tarball and imported with ``lxc
image import`` (snapconform.images.lxd_image); ``python -m snapconform hosts create
lxd://NAME`` makes a seeded instance with a pristine snapshot (lxd_provision).

The framed shell is ``lxc exec NAME -- bash``; files go in with ``lxc file push``. start()
starts a stopped instance (and stops it again at stop()), pins it and checks snapd. reset() is a
real one and never goes through snapd, which may be hung or frozen: the instance is killed and
its ``sc-pristine`` snapshot restored (~1.5-3.5 s); an instance without one gets a forced
restart, then the suite's ``sc-`` snaps are removed through the fresh snapd. stop() removes
the ``sc-`` snaps this host installed: all at once by the same restore when there were none at
start, else one by one through snapd (a second session on the instance, such as a replay in a
child process, leaves the first one's snaps, shell and boot alone), by a new boot when snapd
does not answer; an instance of the user's own gets its ``limits.cpu`` back. alive() is false
once the instance was restored or restarted under this host (by another session): its shells
and its pin went with that boot. power_cut() kills the whole instance (``lxc stop --force``) and
boots the same disk again, without a restore (the fault scenarios' power cut). After an
instance's init dies, LXD runs a "stop" operation of its own for a few seconds, during which it
refuses a restore or start ("Instance is busy running a "stop" operation"): those wait for it.

The store tier, ``lxd://NAME?snapd=testkeys`` (what the store scenarios drive when the suite runs
on ``lxd://NAME``, as nspawn's is ``nspawn://RELEASE?snapd=testkeys``), is the instance
``NAME-store``: its image holds the release's snapd rebuilt with the test keys and the drop-in
that points snapd at the store served on the instance's loopback (``store_url``). When it does
not exist and NAME is one `hosts create` made, it is made on first use from NAME's release, as
nspawn builds its store image on first use (lxd_provision; ~1.5 minutes with the snapd build
cached), and it is stopped again at stop(); `hosts delete lxd://NAME` deletes it with NAME. It
is a separate instance because the plain tier's session and the store tier's run side by side,
and each resets its own instance by restoring a snapshot.
"""

from __future__ import annotations

import shlex
import shutil
import sys
from pathlib import Path
from typing import ClassVar
from urllib.parse import urlsplit

from snapconform.hosts import lxd_instance, lxd_provision
from snapconform.hosts.base import HostError, HostSpec, HostUnavailable
from snapconform.hosts.local import (
    CHECK_TIMEOUT,
    REMOVE_TIMEOUT,
    BorrowedSnapdHost,
    last_line,
    suite_snap_names,
)
from snapconform.hosts.lxd_instance import INSTANCE_NAME
from snapconform.images import snapd_build, store_tier

STOP_TIMEOUT = 30.0  # seconds `snap list` gets at stop(): a hung snapd is restored away instead


def parse_lxc_status(lxc_info_output: str) -> str | None:
    """The ``Status:`` value of `lxc info NAME` (e.g. ``RUNNING``), upper-cased; None if absent."""
    for line in lxc_info_output.splitlines():
        key, _, value = line.partition(":")
        if key.strip().lower() == "status" and value.strip():
            return value.strip().upper()
    return None


def instance_name(spec: HostSpec) -> str:
    """The instance an lxd:// URL names (ValueError, one line, when it names none)."""
    # urlsplit lower-cases the host part; LXD names keep their case, so read the raw URL.
    name = urlsplit(spec.raw).netloc if spec.raw else spec.hostname
    if not name:
        raise ValueError(f"host URL {spec.raw!r}: lxd:// needs an instance name, e.g. lxd://c1")
    if spec.path not in ("", "/"):
        raise ValueError(f"host URL {spec.raw!r}: lxd:// takes no path ({spec.path!r})")
    if not INSTANCE_NAME.fullmatch(name):
        raise ValueError(
            f"host URL {spec.raw!r}: {name!r} is not an LXD instance name "
            "(letters, digits and hyphens, starting with a letter)"
        )
    return name


class LxdHost(BorrowedSnapdHost):
    """An instance on this machine's LXD, pinned to a CPU, reset by its pristine snapshot."""

    QUERY_OPTIONS: ClassVar[dict[str, tuple[str, ...]]] = {"snapd": store_tier.SNAPD_CHOICES}

    def __init__(self, spec: HostSpec, **options: object) -> None:
        name = instance_name(spec)
        super().__init__(spec, **options)
        self.snapd_flavour = spec.query.get("snapd", "archive")
        self.served_instance = name  # the instance whose store tier this is (or this one)
        if self.snapd_flavour == store_tier.FLAVOUR:
            name = lxd_instance.store_tier_name(name)
        self.instance = name
        self.where = f"instance {name}"
        self.snapd_build: snapd_build.SnapdBuild | None = None  # the store tier's build
        self._cpu: int | None = None
        self._started = False  # start() succeeded: stop() has something to put back
        self._booted_by_us = False  # the instance was stopped and we started it
        self._own_limits: str | None = None  # the instance's limits.cpu before we pinned it
        self._instance: lxd_instance.InstanceFacts | None = None
        self._boot: int | None = None  # the instance's init PID when we pinned it
        self._found_snaps: set[str] = set()  # sc- snaps already there at start()

    def shell_argv(self) -> list[str]:
        return ["lxc", "exec", self.instance, "--", "bash", "--noprofile", "--norc", "-i"]

    def command_argv(self, script: str) -> list[str]:
        # lxc exec passes argv through unchanged: no remote shell parses it again.
        return lxd_instance.exec_argv(self.instance, script)

    # -- lifecycle ---------------------------------------------------------------------------
    def _facts(self) -> lxd_instance.InstanceFacts:
        if shutil.which("lxc") is None:
            raise HostUnavailable(
                f"{self.url}: the lxc client is not installed here "
                "(snap install lxd, or apt-get install lxd-client; then "
                f"python -m snapconform hosts create {self.url})"
            )
        try:
            facts = lxd_instance.instance_facts(self.instance)
        except HostError as exc:
            raise HostUnavailable(f"{self.url}: LXD does not answer: {exc}") from exc
        if facts is None and self.snapd_flavour == store_tier.FLAVOUR:
            facts = self._make_store_tier()
        if facts is None:
            raise HostUnavailable(
                f"{self.url}: LXD instance {self.instance!r} does not exist "
                f"(make one with: python -m snapconform hosts create {shlex.quote(self.url)})"
            )
        if self.snapd_flavour == store_tier.FLAVOUR:
            self.snapd_build = self._store_build(facts)
        self._instance = facts
        return facts

    def _make_store_tier(self) -> lxd_instance.InstanceFacts | None:
        """Make the store tier of an instance `hosts create` made, on first use; None when the
        served instance is not one of those (the user makes the store tier with hosts create).
        One being made by another run is waited for."""
        with lxd_provision.creation_lock(self.instance):
            facts = lxd_instance.instance_facts(self.instance)
        if facts is not None:
            return facts
        served = lxd_instance.instance_facts(self.served_instance)
        if served is None or not served.made_by_snapconform:
            return None
        release = served.config[lxd_instance.MARK]
        say(
            f"making {self.url}, the store tier of lxd://{self.served_instance}: instance "
            f"{self.instance} with {release}'s snapd built with the test keys"
        )
        try:
            lxd_provision.create_instance(
                self.instance,
                release,
                say,
                snapd=store_tier.FLAVOUR,
                store_tier_of=self.served_instance,
            )
            self._booted_by_us = True  # made running for this session: stopped at stop()
        except lxd_provision.BadRequest:  # made meanwhile by another run
            pass
        return lxd_instance.instance_facts(self.instance)

    def _store_build(self, facts: lxd_instance.InstanceFacts) -> snapd_build.SnapdBuild:
        """The cached test-keys build the store-tier instance runs (its keys sign for it)."""
        flavour, _, version = facts.snapd_build.partition(" ")
        release = facts.config.get(lxd_instance.MARK, "")
        if flavour != store_tier.FLAVOUR or not version or not release:
            raise HostUnavailable(
                f"{self.url}: instance {self.instance} runs snapd {facts.snapd_build!r}, not a "
                "test-keys build made by `hosts create` (delete it, or name another instance)"
            )
        entry = snapd_build.builds_root() / snapd_build.entry_name(release, version)
        build = snapd_build.load_build(entry)
        if build is None:
            raise HostUnavailable(
                f"{self.url}: the test keys of snapd {facts.snapd_build} are no longer cached "
                f"({entry}); make the instance anew: python -m snapconform hosts delete "
                f"{shlex.quote(self.url)}, then create it"
            )
        return build

    @property
    def store_url(self) -> str | None:
        return store_tier.STORE_URL if self.snapd_flavour == store_tier.FLAVOUR else None

    def preflight(self) -> None:
        """The instance exists and runs (started if it was stopped), snapd has seeded, and it is
        pinned to a CPU that keeps mount namespaces."""
        facts = self._facts()
        if facts.status == "STOPPED":
            lxd_instance.start(self.instance)
            self._booted_by_us = True
        elif facts.running:
            lxd_instance.wait_ready(self.instance)
        else:
            raise HostUnavailable(
                f"{self.url}: LXD instance {self.instance!r} is {facts.status or 'in no state'}, "
                f"neither running nor stopped"
            )
        if not self._started:
            self._own_limits = facts.config.get(lxd_instance.LIMITS_CPU)
        self._cpu = lxd_instance.pin(self.instance)
        self._boot = self._facts().pid

    def start(self) -> None:
        super().start()  # preflight, then snapd's own check
        if not self._started:
            self._found_snaps = set(self.suite_snaps())
        self._started = True

    def suite_snaps(self, timeout: float = CHECK_TIMEOUT) -> list[str]:
        """The suite's snaps (``sc-`` names) installed on the instance now."""
        listing = self.run_script("snap list --unicode=never --color=never 2>&1", timeout)
        if listing.returncode != 0 and "No snaps are installed" not in listing.stdout:
            raise HostError(f"{self.url}: `snap list` failed: {last_line(listing.stdout)}")
        return suite_snap_names(listing.stdout)

    def remove_snaps(self, names: list[str]) -> None:
        failures = []
        for name in names:
            # --purge: no automatic snapshot is kept of a snap the suite made up.
            removed = self.run_script(
                f"snap remove --purge {shlex.quote(name)} </dev/null 2>&1", timeout=REMOVE_TIMEOUT
            )
            if removed.returncode != 0:
                failures.append(f"{name} ({last_line(removed.stdout)})")
        if failures:
            raise HostError(f"{self.url}: could not remove: " + "; ".join(failures))

    def _has_snapshot(self) -> bool:
        return lxd_instance.SNAPSHOT in self._facts().snapshots

    def reset(self) -> None:
        """Back to pristine without asking snapd: restore the snapshot, else a forced restart
        (and then the suite's snaps removed through the fresh snapd)."""
        self._cpu = None
        if self._has_snapshot():
            lxd_instance.restore_pristine(self.instance)
            self.start()
            return
        lxd_instance.force_restart(self.instance)
        self.start()
        self.remove_snaps(self.suite_snaps())

    def stop(self) -> None:
        """Remove the ``sc-`` snaps installed since start() (all of them at once by restoring
        the pristine snapshot when there were none before), and leave the instance as we found
        it: running or stopped, with its own limits.cpu. Another session's snaps (a replay run
        in a child process shares the instance) stay."""
        if not self._started:
            return
        self._started = False
        self._cpu = None
        facts = lxd_instance.instance_facts(self.instance)
        if facts is None:
            return
        has_snapshot = lxd_instance.SNAPSHOT in facts.snapshots
        try:
            installed = [n for n in self.suite_snaps(STOP_TIMEOUT) if n not in self._found_snaps]
            if installed and not (has_snapshot and not self._found_snaps):
                self.remove_snaps(installed)
                installed = []
        except HostError:  # snapd does not answer: only a new boot helps
            installed = ["(unknown)"]
        if installed and has_snapshot:
            if facts.status != "STOPPED":
                lxd_instance.lxc_when_idle(
                    "stop", "--force", self.instance, already="already stopped"
                )
            lxd_instance.lxc_when_idle("restore", self.instance, lxd_instance.SNAPSHOT)
            if not self._booted_by_us:
                lxd_instance.start(self.instance)
            return
        if installed:
            lxd_instance.force_restart(self.instance)
            self.remove_snaps([n for n in self.suite_snaps() if n not in self._found_snaps])
        # The user's own instance (no snapshot to say what is pristine) gets its limits back.
        after = lxd_instance.instance_facts(self.instance)
        own = self._own_limits
        if not has_snapshot and after and after.config.get(lxd_instance.LIMITS_CPU) != own:
            lxd_instance.set_limits_cpu(self.instance, own)
        if self._booted_by_us:
            lxd_instance.lxc_ok("stop", self.instance)

    def power_cut(self) -> None:
        """Kill the whole instance at once (``lxc stop --force``) and boot the same disk again,
        without a restore, pinned anew; the framed shells on it die with it (attach new ones)."""
        lxd_instance.lxc_when_idle("stop", "--force", self.instance, already="already stopped")
        lxd_instance.start(self.instance)
        self._cpu = lxd_instance.pin(self.instance)
        self._boot = self._facts().pid

    def alive(self) -> bool:
        """Running, and still the boot we pinned: a restore or restart by anyone else (another
        session on the same instance) ended the shells and the pin of this one."""
        try:
            facts = lxd_instance.instance_facts(self.instance)
        except HostError:
            return False
        return facts is not None and facts.running and facts.pid == self._boot

    @property
    def pinned_cpu(self) -> int | None:
        return self._cpu

    @property
    def offline(self) -> bool:
        # An instance made by `hosts create` runs the offline image (stand-ins, no network).
        return self._instance is not None and self._instance.made_by_snapconform

    def put_file(self, local: Path, remote: str) -> None:
        if not remote.startswith("/"):
            raise ValueError(f"remote path {remote!r} is not absolute")
        try:
            lxd_instance.push_file(self.instance, Path(local), remote)
        except HostUnavailable as exc:
            raise HostUnavailable(f"{self.url}: {exc}") from exc
        except HostError as exc:
            raise HostError(f"{self.url}: cannot write {remote}: {exc}") from exc

    def describe(self) -> dict[str, str]:
        facts = super().describe()
        facts["instance"] = self.instance
        facts["snapd_build"] = (
            self._instance.snapd_build if self._instance is not None else self.snapd_flavour
        )
        if self._instance is not None:
            config = self._instance.config
            if lxd_instance.MARK in config:
                facts["release"] = config[lxd_instance.MARK]
            if lxd_instance.IMAGE_KEY in config:
                facts["image"] = config[lxd_instance.IMAGE_KEY]
            has_snapshot = lxd_instance.SNAPSHOT in self._instance.snapshots
            facts["reset"] = (
                f"restore {lxd_instance.SNAPSHOT}" if has_snapshot else "forced restart"
            )
        if self._cpu is not None:
            facts["cpu"] = str(self._cpu)
        return facts


def say(line: str) -> None:
    print(f"snapconform: {line}", file=sys.stderr, flush=True)


BACKEND = LxdHost

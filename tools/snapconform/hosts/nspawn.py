"""``nspawn://RELEASE``: Debian's snapd in a systemd-nspawn container on a fresh overlay.

``nspawn://RELEASE`` runs the archive's snapd binary, unchanged; ``nspawn://RELEASE?snapd=testkeys``
(the store tier) runs the release's own snapd source package built with the test keys, pointed at
the store the harness serves inside the container (see snapconform.images.store_tier).
``?snapd-deb=PATH[,PATH...]`` or ``?snapd-source=DIR`` runs any snapd build instead, on either
tier (see snapconform.images.snapd_override).

Every boot gets a private mount namespace holding a tmpfs, an overlayfs over the cached golden
tree (see snapconform.images.golden) and a tmpfs on /run/systemd; the container runs there with
no network and pinned to one CPU (this kernel intermittently fails to preserve a snap's mount
namespace when it is made on another CPU). A reset is stop + start: nothing is copied. One boot
is nspawn_container.py's; this module is the Host: preflight, image, lifecycle.

Every container leaves a record under /run/snapconform/ID (PIDs, cgroups, the overlay's device)
so that cleanup.sweep() can remove what a killed run left behind, and nothing else (the
record format and the removal are in nspawn_records.py, which both use).
"""

from __future__ import annotations

import functools
import os
import shlex
import subprocess
import sys
from pathlib import Path
from typing import ClassVar

from snapconform.hosts.base import ANY_VALUE, Host, HostError, HostSpec, HostUnavailable
from snapconform.hosts.cleanup import sweep
from snapconform.hosts.nspawn_container import CommandOutput, NspawnContainer, first_boot
from snapconform.hosts.nspawn_records import STATE_ROOT, process_start_time, same_process
from snapconform.images import golden, releases, snapd_build, snapd_override, store_tier
from snapconform.images.snappack import missing_tools

# executable -> Debian package, for the controller
CONTROLLER_TOOLS = {
    "systemd-nspawn": "systemd-container",
    "mmdebstrap": "mmdebstrap",
    "mksquashfs": "squashfs-tools",
    "unshare": "util-linux",
    "nsenter": "util-linux",
    "setpriv": "util-linux",
    "taskset": "util-linux",
}


# -- the Host --------------------------------------------------------------------------------


def _is_debian_like() -> bool:
    try:
        text = Path("/etc/os-release").read_text()
    except OSError:
        return False
    return any(
        line.split("=", 1)[0] in ("ID", "ID_LIKE")
        and any(name in line for name in ("debian", "ubuntu"))
        for line in text.splitlines()
    )


def ensure_controller_tools(url: str) -> None:
    """Install the controller's missing tools with apt-get when we may, else say what to do."""
    missing = missing_tools(CONTROLLER_TOOLS)
    if not missing:
        return
    packages = sorted(set(missing.values()))
    command = "apt-get install -y --no-install-recommends " + " ".join(packages)
    if os.geteuid() == 0 and _is_debian_like() and missing_tools({"apt-get": "apt"}) == {}:
        print(
            f"snapconform: {url} needs {', '.join(sorted(missing))}; running: {command}",
            file=sys.stderr,
            flush=True,
        )
        done = subprocess.run(
            ["apt-get", "install", "-y", "--no-install-recommends", *packages],
            capture_output=True,
            text=True,
            check=False,
            env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"},
        )
        if done.returncode == 0 and not missing_tools(CONTROLLER_TOOLS):
            return
        detail = (done.stderr or done.stdout).strip().splitlines()[-3:]
        raise HostUnavailable(
            f"{url}: installing {', '.join(packages)} failed: " + " / ".join(detail)
        )
    raise HostUnavailable(f"{url} needs {', '.join(sorted(missing))}; install them with: {command}")


def unavailable_reason(url: str = "nspawn://bookworm") -> str | None:
    """Why this machine cannot run nspawn hosts right now (no side effects), or None."""
    if os.geteuid() != 0:
        return f"{url} needs root"
    missing = missing_tools(CONTROLLER_TOOLS)
    if missing:
        return f"{url} needs " + ", ".join(
            f"{exe} (apt-get install {pkg})" for exe, pkg in sorted(missing.items())
        )
    return None


def _kernel_has(filesystem: str) -> bool:
    try:
        text = Path("/proc/filesystems").read_text()
    except OSError:
        return False
    if any(line.split()[-1] == filesystem for line in text.splitlines() if line.split()):
        return True
    subprocess.run(["modprobe", filesystem], capture_output=True, check=False)
    text = Path("/proc/filesystems").read_text()
    return any(line.split()[-1] == filesystem for line in text.splitlines() if line.split())


# ``?cpu=N``: pin the container (and every command sent into it) to CPU N, one of those this
# process may run on; without it the CPU with the fewest of our containers is taken. pytest -n
# gives each worker's container its own CPU this way (conftest.py).
CPU_QUERY = "cpu"


def cpu_from_query(spec: HostSpec) -> int | None:
    """The CPU a URL's ``?cpu=N`` names, checked against this process's affinity, or None."""
    text = spec.query.get(CPU_QUERY)
    if text is None:
        return None
    allowed = sorted(os.sched_getaffinity(0))
    if not text.isdigit() or int(text) not in allowed:
        raise ValueError(
            f"host URL {spec.raw!r}: cpu={text!r} is not a CPU this process may use; "
            f"allowed: {', '.join(map(str, allowed))}"
        )
    return int(text)


class NspawnHost(Host):
    """Debian RELEASE's snapd in a systemd-nspawn container (``nspawn://bookworm``); with
    ``?snapd=testkeys`` the store tier (its test-keys build, pointed at the served store)."""

    QUERY_OPTIONS: ClassVar[dict[str, tuple[str, ...]]] = {
        "snapd": store_tier.SNAPD_CHOICES,
        snapd_override.QUERY_DEB: ANY_VALUE,
        snapd_override.QUERY_SOURCE: ANY_VALUE,
        CPU_QUERY: ANY_VALUE,
    }

    def __init__(
        self,
        spec: HostSpec,
        *,
        cache_dir: Path | None = None,
        mode: str | None = None,
        cpu: int | None = None,
    ) -> None:
        super().__init__(spec)
        self.release = spec.hostname or "bookworm"
        if self.release not in releases.RELEASES:
            raise ValueError(
                f"{spec.raw}: unknown release {self.release!r}; "
                f"known: {', '.join(releases.RELEASES)}"
            )
        self.mode = mode or releases.DEFAULT_MODES[self.release]
        self.snapd_flavour = spec.query.get("snapd", "archive")
        # Any snapd build named in the query (checked when the image is made).
        self.snapd_request = snapd_override.request_from_query(spec.query)
        self.snapd_facts: dict[str, str] = {}
        # The store tier's recipe is known once its snapd build is (at start).
        self.recipe: golden.ImageRecipe | None = None
        if self.snapd_flavour == "archive" and self.snapd_request is None:
            self.recipe = golden.ImageRecipe(self.release, self.mode)
        elif mode is not None and mode not in releases.MODES:
            golden.ImageRecipe(self.release, mode)  # the same error for a bad mode
        self.cache_dir = cache_dir
        self.requested_cpu = cpu if cpu is not None else cpu_from_query(spec)
        cpu = self.requested_cpu
        self.snapd_build: snapd_build.SnapdBuild | None = None
        self.image: golden.GoldenImage | None = None
        self.container: NspawnContainer | None = None
        self._cpu: int | None = cpu

    @property
    def url(self) -> str:
        return self.spec.raw or f"nspawn://{self.release}"

    def preflight(self) -> None:
        """Raise HostUnavailable unless this machine can run the container."""
        if os.geteuid() != 0:
            raise HostUnavailable(
                f"{self.url} needs root: systemd-nspawn, overlay mounts and loop devices "
                "need it (run as root, e.g. with sudo)"
            )
        ensure_controller_tools(self.url)
        needed = ["overlay"] + (["fuse"] if self.mode == "userns" else ["squashfs"])
        lacking = [fs for fs in needed if not _kernel_has(fs)]
        if lacking:
            raise HostUnavailable(
                f"{self.url}: the kernel lacks {', '.join(lacking)} file system support"
            )
        if self.mode == "userns" and not Path("/dev/fuse").exists():
            raise HostUnavailable(f"{self.url} in userns mode needs /dev/fuse")

    def start(self) -> None:
        if self.container is not None:
            if self.container.alive():
                return
            self.stop()  # it died: clear what it left before booting anew
        self.preflight()
        # Leftovers of killed runs (their owner is gone) go first; live runs are not touched.
        for action in sweep():
            print(f"snapconform: cleanup of a killed run: {action}", file=sys.stderr)
        if self.image is None or not self.image.rootfs.is_dir():
            self.image = self._ensure_image()
        container = NspawnContainer(self.image.rootfs, mode=self.mode, cpu=self.requested_cpu)
        self.container = container
        self._cpu = container.cpu
        try:
            container.boot()
        except BaseException:
            container.kill()
            self.container = None
            raise

    def _ensure_image(self) -> golden.GoldenImage:
        """The golden image (the store tier's: after its snapd build), built when missing."""
        store = self.snapd_flavour == store_tier.FLAVOUR
        if self.snapd_request is not None:
            try:
                resolved = snapd_override.resolve(
                    self.snapd_request,
                    self.release,
                    self.mode,
                    store=store,
                    cache_dir=self.cache_dir,
                )
            except snapd_override.BadSnapdInput as exc:
                raise HostUnavailable(f"{self.url}: {exc}") from None
            self.recipe, self.snapd_facts = resolved.recipe, resolved.facts
            if resolved.build is not None:
                self.snapd_build = resolved.build
        elif store:
            self.snapd_build = snapd_build.ensure_testkeys_build(self.release, self.cache_dir)
            self.recipe = store_tier.store_recipe(self.release, self.mode, self.snapd_build)
        assert self.recipe is not None
        image = golden.ensure_image(
            self.recipe,
            self.cache_dir,
            first_boot=functools.partial(first_boot, cpu=self.requested_cpu),
        )
        if self.snapd_flavour == store_tier.FLAVOUR and not store_tier.trusts_test_root(
            image.rootfs
        ):
            raise HostError(
                f"{self.url}: the image {image.entry} holds a snapd without the test keys"
            )
        return image

    def reset(self) -> None:
        self.stop()
        self.start()

    def stop(self) -> None:
        if self.container is not None:
            self.container.kill()
            self.container = None

    def alive(self) -> bool:
        return self.container is not None and self.container.alive()

    def power_cut(self) -> None:
        """Kill the whole container at once and boot the same disk (its overlay) again; the
        framed shells on it die with it (attach new ones)."""
        self._running().power_cycle()

    def _running(self) -> NspawnContainer:
        if self.container is None or self.container.pid1 is None:
            raise HostError(f"{self.url} is not started")
        return self.container

    def shell_argv(self) -> list[str]:
        return [*self._running().enter_argv(), "bash", "--noprofile", "--norc", "-i"]

    def run(self, script: str, timeout: float = 60.0) -> CommandOutput:
        """Run a bash script in the container, without the framed shell (setup and tests)."""
        return self._running().run(script, timeout)

    def put_file(self, local: Path, remote: str) -> None:
        self._running().put_file(local, remote)

    def loopback_proxy_command(self, port: int) -> str:
        """An ssh ProxyCommand that reaches 127.0.0.1:PORT on the container's own loopback.

        The container's network is private, so the controller has no route to it; this runs
        the container's busybox ``nc`` in the container's network and mount namespaces (nothing
        needed on the controller, nothing listening outside). Valid until the container stops.
        """
        container = self._running()
        argv = ["nsenter", "--target", str(container.pid1), "--net", "--mount", "--"]
        argv += ["/bin/busybox", "nc", "127.0.0.1", str(int(port))]
        return shlex.join(argv).replace("%", "%%")  # ssh expands %-tokens in a ProxyCommand

    @property
    def pinned_cpu(self) -> int | None:
        return self._cpu

    @property
    def offline(self) -> bool:
        return True

    @property
    def store_url(self) -> str | None:
        return store_tier.STORE_URL if self.snapd_flavour == store_tier.FLAVOUR else None

    @property
    def container_pid(self) -> int | None:
        """The container's PID 1 as the controller sees it (None when stopped)."""
        return self.container.pid1 if self.container is not None else None

    def _unresolved_build(self) -> str:
        """What describe() says of the snapd build before start() has resolved it."""
        if self.snapd_request is None:
            return self.snapd_flavour
        return "source" if self.snapd_request.source is not None else "deb"

    def describe(self) -> dict[str, str]:
        facts = {
            "url": self.url,
            "kind": "nspawn",
            "release": self.release,
            "mode": self.mode,
            # "testkeys" alone until start() has resolved the build's source version
            "snapd_build": self.recipe.snapd_build
            if self.recipe is not None
            else self._unresolved_build(),
        }
        facts.update(self.snapd_facts)
        if self.image is not None:
            facts["snapd"] = self.image.snapd_version
            facts["image"] = self.image.recipe.key
        if self._cpu is not None:
            facts["cpu"] = str(self._cpu)
        return facts


BACKEND = NspawnHost

# Names the suites take from here (the container's records live in nspawn_records.py).
__all__ = [
    "BACKEND",
    "STATE_ROOT",
    "NspawnContainer",
    "NspawnHost",
    "process_start_time",
    "same_process",
    "unavailable_reason",
]

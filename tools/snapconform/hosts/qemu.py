"""``qemu://RELEASE``: a full VM (real kernel, AppArmor possible). Not built yet.

The URL parses and the object exists so that plans and reports can name it, but start() says
exactly why it cannot run here instead of pretending. What a VM needs on these machines is
measured in /work/shared/reference/hosts.md §B and summarised in the message below.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

from snapconform.hosts.base import Host, HostSpec, HostUnavailable

RELEASE_NAME = re.compile(r"[a-z][a-z0-9.-]*")

NOT_BUILT = (
    "the qemu backend is not built yet. A VM here runs under TCG emulation only (this "
    "machine's /dev/kvm is a PVM flavour that cannot boot stock guest kernels): a cold boot "
    "takes ~35-65 s to a shell and 50-95 s to seed.loaded, and an install 14-36 s (hosts.md §B). "
    "It needs qemu-system-x86 on this machine, a {release} root image with linux-image-amd64 "
    "and snapd (mmdebstrap + mke2fs -d), a serial console driven by the framed shell, and a "
    "saved seeded VM restored with -incoming for resets. Use nspawn://{release} here."
)


class QemuHost(Host):
    """A VM of ``RELEASE`` under qemu; every operation that needs the VM raises HostUnavailable."""

    def __init__(self, spec: HostSpec, **options: object) -> None:
        release = spec.hostname
        if not release:
            raise ValueError(
                f"host URL {spec.raw!r}: qemu:// needs a release, e.g. qemu://bookworm"
            )
        if spec.path not in ("", "/") or spec.user or spec.port:
            raise ValueError(f"host URL {spec.raw!r}: qemu:// takes only a release name")
        if not RELEASE_NAME.fullmatch(release):
            raise ValueError(f"host URL {spec.raw!r}: {release!r} is not a release name")
        if options:
            raise ValueError(f"{spec.raw}: unknown option(s) {', '.join(sorted(options))}")
        super().__init__(spec)
        self.release = release

    def unavailable(self) -> HostUnavailable:
        message = f"{self.url}: " + NOT_BUILT.format(release=self.release)
        if shutil.which("qemu-system-x86_64") is None:
            message += " (qemu-system-x86_64 is not installed: apt-get install qemu-system-x86)"
        return HostUnavailable(message)

    def shell_argv(self) -> list[str]:
        raise self.unavailable()

    def put_file(self, local: Path, remote: str) -> None:
        raise self.unavailable()

    def start(self) -> None:
        raise self.unavailable()

    def reset(self) -> None:
        raise self.unavailable()

    def stop(self) -> None:
        """Nothing was started."""

    def alive(self) -> bool:
        return False

    @property
    def offline(self) -> bool:
        return True  # the VM would be booted with -nic none

    def describe(self) -> dict[str, str]:
        facts = super().describe()
        facts["release"] = self.release
        facts["status"] = "not built"
        return facts


BACKEND = QemuHost

"""What every host backend provides, and the registry that maps a URL scheme to a backend.

A host is named by a URL, as pytest-testinfra names its backends:
``nspawn://bookworm``, ``local://``, ``ssh://root@vm:22``, ``lxd://c1``, ``qemu://bookworm``.
A backend knows three things only: how to spawn a root shell (argv for pexpect), how to put a
file on the host, and its lifecycle (start, reset to pristine, stop). Everything else (framing
commands, observing snapd) is the harness's job and works the same on every backend.
"""

from __future__ import annotations

import abc
import importlib
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

DEFAULT_HOST_URL = "nspawn://bookworm"

# scheme -> module under snapconform.hosts that defines `BACKEND` (a Host subclass)
BACKEND_MODULES: dict[str, str] = {
    "nspawn": "nspawn",
    "local": "local",
    "ssh": "ssh",
    "lxd": "lxd",
    "qemu": "qemu",
}


class HostError(RuntimeError):
    """The host itself failed (could not start, died, cannot be reached): never a snapd verdict."""


class HostUnavailable(HostError):
    """This host cannot be made here; the message says exactly what is missing."""


@dataclass(frozen=True)
class HostSpec:
    """A parsed host URL."""

    scheme: str
    user: str | None = None
    hostname: str = ""
    port: int | None = None
    path: str = ""
    raw: str = field(default="", compare=False)

    @classmethod
    def parse(cls, url: str) -> HostSpec:
        if "://" not in url:
            raise ValueError(
                f"host URL {url!r} has no scheme; use one of "
                + ", ".join(f"{s}://" for s in BACKEND_MODULES)
            )
        parts = urlsplit(url)
        if parts.scheme not in BACKEND_MODULES:
            raise ValueError(
                f"host URL {url!r}: unknown scheme {parts.scheme!r}; known: "
                + ", ".join(sorted(BACKEND_MODULES))
            )
        try:
            port = parts.port
        except ValueError as exc:
            raise ValueError(f"host URL {url!r}: {exc}") from None
        return cls(
            scheme=parts.scheme,
            user=parts.username,
            hostname=parts.hostname or "",
            port=port,
            path=parts.path,
            raw=url,
        )


class Host(abc.ABC):
    """One machine (or container) that runs snapd and that we drive as root."""

    spec: HostSpec

    def __init__(self, spec: HostSpec) -> None:
        self.spec = spec

    @property
    def url(self) -> str:
        return self.spec.raw

    # -- shell -------------------------------------------------------------------------------
    @abc.abstractmethod
    def shell_argv(self) -> list[str]:
        """argv that starts an interactive root bash on the host (pexpect spawns it)."""

    # -- files -------------------------------------------------------------------------------
    @abc.abstractmethod
    def put_file(self, local: Path, remote: str) -> None:
        """Copy a local file to an absolute path on the host (parents are created)."""

    # -- lifecycle ---------------------------------------------------------------------------
    @abc.abstractmethod
    def start(self) -> None:
        """Make the host ready to take commands (boot it, or check that it answers)."""

    @abc.abstractmethod
    def reset(self) -> None:
        """Bring the host back to its pristine state (for nspawn: stop + start on a new overlay)."""

    @abc.abstractmethod
    def stop(self) -> None:
        """Stop what start() started; safe to call twice and after a crash."""

    def alive(self) -> bool:
        """Whether the host is still there to take commands (a killed container is not)."""
        return True

    @property
    def pinned_cpu(self) -> int | None:
        """The CPU every command must be pinned to (taskset), if the host needs one."""
        return None

    @property
    def offline(self) -> bool:
        """True when the host has no store to reach (offline stand-ins are then needed)."""
        return False

    def describe(self) -> dict[str, str]:
        """Facts about the host for reports (kind, release, ...)."""
        return {"url": self.url, "kind": self.spec.scheme}

    def __enter__(self) -> Host:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def open_host(url: str = DEFAULT_HOST_URL, **options: object) -> Host:
    """Make (but do not start) the host a URL names."""
    spec = HostSpec.parse(url)
    module = importlib.import_module(f"snapconform.hosts.{BACKEND_MODULES[spec.scheme]}")
    backend: type[Host] = module.BACKEND
    return backend(spec, **options)  # type: ignore[call-arg]

"""What every host backend provides, and the registry that maps a URL scheme to a backend.

A host is named by a URL, as pytest-testinfra names its backends:
``nspawn://bookworm``, ``local://``, ``ssh://root@vm:22``, ``lxd://c1``, ``qemu://bookworm``.
A query picks a variant where a backend has them (``nspawn://bookworm?snapd=testkeys``); each
backend lists the keys and values it takes (``Host.QUERY_OPTIONS``), anything else is refused.
A backend knows three things only: how to spawn a root shell (argv for pexpect), how to put a
file on the host, and its lifecycle (start, reset to pristine, stop). Everything else (framing
commands, observing snapd) is the harness's job and works the same on every backend.
"""

from __future__ import annotations

import abc
import importlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar
from urllib.parse import parse_qsl, urlsplit

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
    query: dict[str, str] = field(default_factory=dict, hash=False)

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
            query=parse_query(url, parts.query),
        )


def parse_query(url: str, query: str) -> dict[str, str]:
    """A host URL's query as {key: value}: each key once, each with a value."""
    if not query:
        return {}
    try:
        pairs = parse_qsl(query, keep_blank_values=True, strict_parsing=True)
    except ValueError:
        raise ValueError(
            f"host URL {url!r}: cannot read the query {query!r} (KEY=VALUE&...)"
        ) from None
    found: dict[str, str] = {}
    for key, value in pairs:
        if key in found:
            raise ValueError(f"host URL {url!r}: {key!r} is given twice")
        found[key] = value
    return found


# A QUERY_OPTIONS entry whose value is free text (a path, say) rather than one of a list.
ANY_VALUE: tuple[str, ...] = ("<any>",)


def check_query(spec: HostSpec, options: dict[str, tuple[str, ...]]) -> None:
    """Refuse query keys and values ``options`` (key -> allowed values, or ANY_VALUE) does not
    list."""
    url = spec.raw or f"{spec.scheme}://"
    for key, value in spec.query.items():
        if key not in options:
            allowed = ", ".join(sorted(options)) if options else "none"
            raise ValueError(
                f"host URL {url!r}: unknown query key {key!r} for {spec.scheme}://; "
                f"allowed: {allowed}"
            )
        if options[key] != ANY_VALUE and value not in options[key]:
            raise ValueError(
                f"host URL {url!r}: {key}={value!r} is not allowed; "
                f"allowed values of {key}: {', '.join(options[key])}"
            )


class Host(abc.ABC):
    """One machine (or container) that runs snapd and that we drive as root."""

    spec: HostSpec
    # query key -> the values it may take, for this backend's URLs
    QUERY_OPTIONS: ClassVar[dict[str, tuple[str, ...]]] = {}

    def __init__(self, spec: HostSpec) -> None:
        check_query(spec, self.QUERY_OPTIONS)
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

    @property
    def store_url(self) -> str | None:
        """The URL snapd on this host uses as its store when the harness serves that store
        inside the host (the store tier), else None."""
        return None

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

"""Which Debian mirror to build trees from: the one this machine's apt already uses.

Read from the apt sources (deb822 ``/etc/apt/sources.list.d/*.sources`` and one-line
``/etc/apt/sources.list`` and ``sources.list.d/*.list``), in apt's own reading order, so that
snapconform fetches from wherever this machine is allowed to. ``SNAPCONFORM_DEBIAN_MIRROR``
(and ``SNAPCONFORM_DEBIAN_SECURITY_MIRROR``) override what the sources say.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from snapconform.hosts.base import HostUnavailable

MIRROR_ENV = "SNAPCONFORM_DEBIAN_MIRROR"
SECURITY_MIRROR_ENV = "SNAPCONFORM_DEBIAN_SECURITY_MIRROR"
APT_ROOT = Path("/etc/apt")

# Debian's code names and suite names (not Ubuntu's, not a third party's): an entry for one of
# these with the `main` component is a Debian archive mirror.
DEBIAN_SUITES = frozenset(
    {
        "buster",
        "bullseye",
        "bookworm",
        "trixie",
        "forky",
        "duke",
        "sid",
        "oldoldstable",
        "oldstable",
        "stable",
        "testing",
        "unstable",
        "experimental",
    }
)
ARCHIVE_POCKETS = ("", "-updates", "-backports", "-proposed-updates")
SECURITY_POCKETS = ("-security", "/updates")


@dataclass(frozen=True)
class AptSource:
    """One source entry: a type (deb or deb-src), a URI, suites and components."""

    types: tuple[str, ...]
    uri: str
    suites: tuple[str, ...]
    components: tuple[str, ...]
    origin: str  # the file it came from, for messages


def _deb822_stanzas(text: str) -> Iterator[dict[str, str]]:
    """The stanzas of a deb822 file as {field (lower case): value}; comments dropped."""
    stanza: dict[str, str] = {}
    last: str | None = None
    for raw in text.splitlines():
        if raw.startswith("#"):
            continue
        if not raw.strip():
            if stanza:
                yield stanza
            stanza, last = {}, None
            continue
        if raw[0] in " \t" and last is not None:
            stanza[last] += " " + raw.strip()
            continue
        name, sep, value = raw.partition(":")
        if not sep:
            continue
        last = name.strip().lower()
        stanza[last] = value.strip()
    if stanza:
        yield stanza


def parse_deb822(text: str, origin: str = "") -> list[AptSource]:
    """Entries of a deb822 ``.sources`` file (stanzas with ``Enabled: no`` are skipped)."""
    found = []
    for stanza in _deb822_stanzas(text):
        if stanza.get("enabled", "yes").strip().lower() == "no":
            continue
        types = tuple(stanza.get("types", "").split())
        suites = tuple(stanza.get("suites", "").split())
        components = tuple(stanza.get("components", "").split())
        for uri in stanza.get("uris", "").split():
            found.append(AptSource(types, uri, suites, components, origin))
    return found


_ONE_LINE = re.compile(r"^(deb|deb-src)\s+(?:\[[^\]]*\]\s+)?(\S+)\s+(\S+)((?:\s+\S+)*)\s*$")


def parse_one_line(text: str, origin: str = "") -> list[AptSource]:
    """Entries of a one-line-style ``sources.list``."""
    found = []
    for raw in text.splitlines():
        line = raw.split("#", 1)[0].strip()
        match = _ONE_LINE.match(line)
        if match:
            kind, uri, suite, components = match.groups()
            found.append(AptSource((kind,), uri, (suite,), tuple(components.split()), origin))
    return found


def read_apt_sources(apt_root: Path = APT_ROOT) -> list[AptSource]:
    """Every entry of the machine's apt sources, in the order apt reads them."""
    entries: list[AptSource] = []
    main = apt_root / "sources.list"
    if main.is_file():
        entries += parse_one_line(main.read_text(errors="replace"), str(main))
    parts = apt_root / "sources.list.d"
    if parts.is_dir():
        for path in sorted(parts.iterdir()):
            try:
                if path.suffix == ".list":
                    entries += parse_one_line(path.read_text(errors="replace"), str(path))
                elif path.suffix == ".sources":
                    entries += parse_deb822(path.read_text(errors="replace"), str(path))
            except OSError:
                continue
    return entries


def _is_debian(entry: AptSource, pockets: Iterable[str]) -> bool:
    if "deb" not in entry.types or "main" not in entry.components:
        return False
    if not entry.uri.startswith(("http://", "https://", "file:/")):
        return False
    return any(
        suite == f"{name}{pocket}"
        for suite in entry.suites
        for name in DEBIAN_SUITES
        for pocket in pockets
    )


def find_mirrors(entries: Iterable[AptSource]) -> tuple[str | None, str | None]:
    """(archive mirror, security mirror) among ``entries``: the first Debian entry of each."""
    archive = security = None
    for entry in entries:
        if archive is None and _is_debian(entry, ARCHIVE_POCKETS):
            archive = entry.uri.rstrip("/")
        if security is None and _is_debian(entry, SECURITY_POCKETS):
            security = entry.uri.rstrip("/")
    return archive, security


def debian_mirror(apt_root: Path = APT_ROOT) -> str:
    """The Debian archive mirror to build from (env override, else this machine's apt sources)."""
    override = os.environ.get(MIRROR_ENV, "").strip()
    if override:
        return override.rstrip("/")
    archive, _security = find_mirrors(read_apt_sources(apt_root))
    if archive is None:
        raise HostUnavailable(
            f"no Debian archive mirror in this machine's apt sources ({apt_root}/sources.list, "
            f"{apt_root}/sources.list.d/*.sources or *.list: an entry of type deb for a Debian "
            f"suite with component main); set {MIRROR_ENV}=URL to name one"
        )
    return archive


def security_mirror(apt_root: Path = APT_ROOT) -> str | None:
    """The Debian security mirror (env override, else the apt sources), or None when there is
    none: trees are then built without the -security suite."""
    override = os.environ.get(SECURITY_MIRROR_ENV, "").strip()
    if override:
        return override.rstrip("/")
    _archive, security = find_mirrors(read_apt_sources(apt_root))
    return security

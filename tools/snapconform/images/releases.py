"""The Debian releases snapconform builds trees of, and what differs between them."""

from __future__ import annotations

RELEASES = ("bookworm", "trixie", "sid")
MODES = ("privileged", "userns")
# sid's snap-confine needs file capabilities this host's bounding set lacks, and its systemd
# refuses cgroup v1: it runs in a user namespace (see ../shared/reference/hosts.md).
DEFAULT_MODES = {"bookworm": "privileged", "trixie": "privileged", "sid": "userns"}

# The suites a build tree takes packages and sources from; unstable has no -updates/-security.
ARCHIVE_SUITES = {
    "bookworm": ("bookworm", "bookworm-updates"),
    "trixie": ("trixie", "trixie-updates"),
    "sid": ("sid",),
}
SECURITY_SUITES = {"bookworm": ("bookworm-security",), "trixie": ("trixie-security",), "sid": ()}


def check_release(release: str) -> str:
    if release not in RELEASES:
        raise ValueError(f"unknown release {release!r}; known: {', '.join(RELEASES)}")
    return release


def aptopts(release: str) -> tuple[str, ...]:
    """apt options every tree of ``release`` needs."""
    # Testing and unstable Release files may look expired against this machine's clock.
    if release == "bookworm":
        return ()
    return ('Acquire::Check-Valid-Until "false"',)

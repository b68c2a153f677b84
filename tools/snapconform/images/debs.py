"""Debian packages as files: what a .deb says it is (dpkg-deb), its hash, and why dpkg refused
to install one (its own words, made one line).

Used by the snapd override (snapd_override.py) and by the golden recipe when it installs one.
"""

from __future__ import annotations

import hashlib
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

CONTROL_FIELDS = ("Package", "Version", "Architecture", "Source")


class BadPackage(ValueError):
    """A file that is not the Debian package it should be (the message is one line)."""


@dataclass(frozen=True)
class DebFile:
    path: Path
    package: str
    version: str
    architecture: str
    source: str  # the source package it was built from (Source:, without a version)
    sha256: str


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def parse_control(text: str) -> dict[str, str]:
    """`dpkg-deb -f FILE FIELD...` output (``Field: value`` lines) as {field: value}."""
    fields: dict[str, str] = {}
    for line in text.splitlines():
        name, colon, value = line.partition(":")
        if colon and name and not name[0].isspace():
            fields[name.strip()] = value.strip()
    return fields


def read_deb(path: Path) -> DebFile:
    """What the .deb at ``path`` says it is; BadPackage when it is not a readable .deb."""
    if shutil.which("dpkg-deb") is None:
        raise BadPackage(f"{path}: reading a .deb needs dpkg-deb (apt-get install dpkg)")
    try:
        done = subprocess.run(
            ["dpkg-deb", "-f", str(path), *CONTROL_FIELDS],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    except subprocess.TimeoutExpired:
        raise BadPackage(f"{path}: dpkg-deb did not answer in 60 s") from None
    if done.returncode != 0:
        first = next((line for line in done.stderr.splitlines() if line.strip()), "unreadable")
        raise BadPackage(f"{path} is not a Debian package ({first.strip()})")
    fields = parse_control(done.stdout)
    package, version = fields.get("Package", ""), fields.get("Version", "")
    if not package or not version:
        raise BadPackage(f"{path} is not a Debian package (no Package or Version field)")
    # Source: is absent when it equals the package, and may carry "(version)".
    source = fields.get("Source", "").split(" ", 1)[0] or package
    return DebFile(
        path=path,
        package=package,
        version=version,
        architecture=fields.get("Architecture", ""),
        source=source,
        sha256=sha256_of(path),
    )


def machine_architecture() -> str:
    done = subprocess.run(
        ["dpkg", "--print-architecture"], capture_output=True, text=True, check=False
    )
    return done.stdout.strip() if done.returncode == 0 else ""


_PROBLEMS = "dpkg: dependency problems prevent "  # ... configuration of X / ... removal of X
_RELATION = re.compile(
    r"^ (?P<package>\S+) (?P<relation>depends on|pre-depends on|breaks|conflicts with) "
    r"(?P<what>.+?)(?:; however:)?$"
)


def dpkg_refusal(text: str) -> str | None:
    """One line saying why dpkg would not install a package, from its output: each unmet
    relation and dpkg's reason ("snapd depends on libc6 (>= 2.38): Version of libc6:amd64 on
    system is 2.36-9+deb12u9"), or None when the output shows no such refusal."""
    found: dict[str, list[str]] = {}
    relation: str | None = None
    for line in text.splitlines():
        if line.startswith(_PROBLEMS):
            relation = ""
            continue
        if relation is None or not line.startswith(" "):
            relation = None
            continue
        match = _RELATION.match(line)
        if match:
            relation = f"{match['package']} {match['relation']} {match['what']}"
            found.setdefault(relation, [])
        elif line.startswith("  ") and relation:
            reason = line.strip().rstrip(".")
            if reason not in found[relation]:
                found[relation].append(reason)
    if not found:
        return None
    parts = [what + (f": {', '.join(why)}" if why else "") for what, why in found.items()]
    return "dpkg refused: " + "; ".join(parts)

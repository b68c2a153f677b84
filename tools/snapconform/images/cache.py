"""What every cached build shares: where the cache is, progress lines, the builder's lock,
and putting a finished entry into place.

A cache entry is built under a ``.build-KEY-PID`` name and renamed into place when complete, so
a half-built entry is never used; a lock file ``.KEY.lock`` beside it keeps two builders (two
processes, or two helpers) from racing. ``sweep_unfinished`` removes the ``.build-*`` and
``.retired-*`` directories whose builder is gone.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import sys
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import TypeVar

from snapconform import paths
from snapconform.hosts.base import HostError

Entry = TypeVar("Entry")


def cache_root(cache_dir: Path | None = None) -> Path:
    """``cache_dir`` if given, else snapconform's per-machine cache (see snapconform.paths)."""
    return Path(cache_dir) if cache_dir is not None else paths.cache_root()


def progress(message: str) -> None:
    print(f"snapconform: {message}", file=sys.stderr, flush=True)


def lock_path(parent: Path, key: str) -> Path:
    return parent / f".{key}.lock"


def build_dir_for(parent: Path, key: str) -> Path:
    return parent / f".build-{key}-{os.getpid()}"


@contextlib.contextmanager
def locked(lock: Path) -> Iterator[None]:
    """Hold ``lock`` exclusively (waiting, and saying so, when another builder holds it)."""
    lock.parent.mkdir(parents=True, exist_ok=True)
    with open(lock, "w") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            progress(f"waiting for another builder ({lock})")
            fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def remove_tree(path: Path) -> None:
    """Remove a directory by renaming it aside first, so a reader never sees it half-removed."""
    if not path.exists():
        return
    retired = path.with_name(f".retired-{path.name}-{os.getpid()}")
    path.rename(retired)
    shutil.rmtree(retired, ignore_errors=True)


def put_in_place(build_dir: Path, entry: Path) -> None:
    """Rename the finished ``build_dir`` to ``entry`` (replacing an old, unusable entry)."""
    if entry.exists():
        remove_tree(entry)
    build_dir.rename(entry)


def remove_stale_builds(parent: Path, key: str) -> None:
    """Unfinished builds of ``key`` (call with its lock held: their builders are gone)."""
    for stale in parent.glob(f".build-{key}-*"):
        shutil.rmtree(stale, ignore_errors=True)


def sweep_unfinished(parent: Path) -> list[str]:
    """Remove ``.build-*`` and ``.retired-*`` directories under ``parent`` that no builder holds
    the lock of; returns what was done."""
    actions: list[str] = []
    if not parent.is_dir():
        return actions
    for retired in sorted(parent.glob(".retired-*")):
        # Renamed aside only to be removed: whoever did it may have died before finishing.
        shutil.rmtree(retired, ignore_errors=True)
        actions.append(f"removed retired entry {retired}")
    for build in sorted(parent.glob(".build-*")):
        if not build.is_dir():
            continue
        key = build.name.split("-", 1)[1].rsplit("-", 1)[0]
        with open(lock_path(parent, key), "a") as handle:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                continue  # a builder is at work
            try:
                shutil.rmtree(build, ignore_errors=True)
                actions.append(f"removed unfinished build {build}")
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)
    return actions


def ensure_entry(
    parent: Path,
    key: str,
    load: Callable[[Path], Entry | None],
    build: Callable[[Path], None],
    *,
    what: str,
    after_build: Callable[[], Iterable[str]] = tuple,
) -> Entry:
    """The cache entry ``parent/key`` as ``load`` reads it, built first when it cannot be read.

    ``build(build_dir)`` fills a private ``.build-KEY-PID`` directory that is renamed into place
    when it returns, under the key's lock (so two builders never race, and a half-built entry is
    never read); ``after_build`` then runs once (pruning superseded entries) and each line it
    returns is printed. ``what`` names the entry in the error when it cannot be read back."""
    entry = parent / key
    found = load(entry)
    if found is not None:
        return found
    with locked(lock_path(parent, key)):
        found = load(entry)  # another builder may have finished while we waited
        if found is not None:
            return found
        remove_stale_builds(parent, key)
        build_dir = build_dir_for(parent, key)
        try:
            build(build_dir)
            put_in_place(build_dir, entry)  # replaces an unusable old entry
            for action in after_build():
                progress(action)
        finally:
            if build_dir.exists():
                shutil.rmtree(build_dir, ignore_errors=True)
    found = load(entry)
    if found is None:
        raise HostError(f"{what} {entry} was built but cannot be read back")
    return found

"""Where snapconform keeps what it builds once per machine (images, fixture snaps, examples)."""

from __future__ import annotations

import os
from pathlib import Path


def cache_root() -> Path:
    """`$XDG_CACHE_HOME/snapconform`, else `~/.cache/snapconform` (SNAPCONFORM_CACHE overrides)."""
    override = os.environ.get("SNAPCONFORM_CACHE")
    if override:
        return Path(override)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "snapconform"

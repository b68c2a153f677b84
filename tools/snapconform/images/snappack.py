"""Pack a directory into a .snap (a squashfs image) the way snapd expects, and check for tools.

Used by the offline stand-ins here and by the harness's fixture snaps. Only the controller's
`mksquashfs` (squashfs-tools) is needed; no snapcraft, no `snap pack` on the controller.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from snapconform.hosts.base import HostUnavailable

# Options snapd itself uses for `snap pack` that matter for a reproducible, root-owned image.
MKSQUASHFS_OPTIONS = ("-noappend", "-comp", "xz", "-all-root", "-no-xattrs", "-no-fragments")


def missing_tools(tools: dict[str, str]) -> dict[str, str]:
    """The subset of ``{executable: debian package}`` whose executable is not on PATH."""
    return {exe: pkg for exe, pkg in tools.items() if shutil.which(exe) is None}


def require_tools(tools: dict[str, str]) -> None:
    """Raise HostUnavailable naming every missing executable and the command that installs it.

    ``tools`` maps an executable name to the Debian package that provides it.
    """
    missing = missing_tools(tools)
    if missing:
        packages = " ".join(sorted(set(missing.values())))
        raise HostUnavailable(
            "missing tools: "
            + ", ".join(sorted(missing))
            + f"; install them with: apt-get install -y {packages}"
        )


def pack_snap(source_dir: Path, out: Path) -> Path:
    """Pack ``source_dir`` (which holds meta/snap.yaml) into the squashfs file ``out``.

    The file is written next to ``out`` and renamed into place, so ``out`` is never half-written.
    Returns ``out``.
    """
    require_tools({"mksquashfs": "squashfs-tools"})
    source_dir = Path(source_dir)
    out = Path(out)
    if not source_dir.is_dir():
        raise ValueError(f"cannot pack {source_dir}: not a directory")
    out.parent.mkdir(parents=True, exist_ok=True)
    partial = out.with_name(f".{out.name}.partial")
    argv = ["mksquashfs", str(source_dir), str(partial), *MKSQUASHFS_OPTIONS, "-quiet"]
    result = subprocess.run(argv, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        partial.unlink(missing_ok=True)
        detail = (result.stderr or result.stdout).strip().splitlines()
        raise RuntimeError(
            f"mksquashfs failed for {source_dir} (exit {result.returncode}): "
            + (detail[-1] if detail else "no output")
        )
    partial.replace(out)
    return out

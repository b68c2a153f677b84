"""Packing a directory into a .snap with the controller's mksquashfs, and naming missing tools."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from snapconform.hosts.base import HostUnavailable
from snapconform.images.snappack import MKSQUASHFS_OPTIONS, missing_tools, pack_snap, require_tools

needs_squashfs_tools = pytest.mark.skipif(
    shutil.which("mksquashfs") is None or shutil.which("unsquashfs") is None,
    reason="needs mksquashfs and unsquashfs (apt-get install squashfs-tools)",
)


def _source(tmp_path: Path) -> Path:
    source = tmp_path / "src"
    (source / "meta/hooks").mkdir(parents=True)
    (source / "meta/snap.yaml").write_text("name: packed\nversion: '1'\n")
    hook = source / "meta/hooks/install"
    hook.write_text("#!/bin/sh\necho hi\n")
    hook.chmod(0o755)
    return source


@needs_squashfs_tools
def test_pack_snap_makes_a_root_owned_squashfs(tmp_path: Path) -> None:
    out = pack_snap(_source(tmp_path), tmp_path / "out/packed_1.snap")
    assert out == tmp_path / "out/packed_1.snap"
    assert out.read_bytes()[:4] == b"hsqs"  # squashfs magic
    listing = subprocess.run(
        ["unsquashfs", "-lls", str(out)], capture_output=True, text=True, check=True
    ).stdout
    entries = [line for line in listing.splitlines() if "squashfs-root" in line]
    assert entries and all(" root/root " in line for line in entries)
    assert any(
        line.startswith("-rwxr-xr-x") and line.endswith("/meta/hooks/install") for line in entries
    )
    assert any(line.endswith("/meta/snap.yaml") for line in entries)
    assert [p.name for p in out.parent.iterdir()] == ["packed_1.snap"]  # no partial left


@needs_squashfs_tools
def test_pack_snap_is_reproducible_and_replaces(tmp_path: Path) -> None:
    source = _source(tmp_path)
    first = pack_snap(source, tmp_path / "a.snap").read_bytes()
    second = pack_snap(source, tmp_path / "a.snap").read_bytes()  # -noappend: replaced
    assert first == second


def test_options_are_the_ones_snapd_expects() -> None:
    assert MKSQUASHFS_OPTIONS == (
        "-noappend",
        "-comp",
        "xz",
        "-all-root",
        "-no-xattrs",
        "-no-fragments",
    )


@needs_squashfs_tools
def test_pack_snap_refuses_a_missing_directory(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="not a directory"):
        pack_snap(tmp_path / "absent", tmp_path / "x.snap")
    assert not (tmp_path / "x.snap").exists()


def test_missing_mksquashfs_is_named_with_its_package(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))  # an empty PATH: nothing is found
    with pytest.raises(HostUnavailable) as caught:
        pack_snap(_source(tmp_path), tmp_path / "x.snap")
    assert "mksquashfs" in str(caught.value)
    assert "apt-get install -y squashfs-tools" in str(caught.value)


def test_require_tools_lists_every_missing_tool(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    tools = {"systemd-nspawn": "systemd-container", "mmdebstrap": "mmdebstrap"}
    assert missing_tools(tools) == tools
    with pytest.raises(HostUnavailable) as caught:
        require_tools(tools)
    message = str(caught.value)
    assert "mmdebstrap, systemd-nspawn" in message
    assert message.endswith("apt-get install -y mmdebstrap systemd-container")
    require_tools({})  # nothing needed, nothing raised

"""The nspawn host's recipe, without booting anything: URLs, modes, the image key, the config
tweaks, the offline stand-ins' layout, and the errors a machine without root or tools gets."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from snapconform.hosts import nspawn
from snapconform.hosts.base import HostUnavailable, open_host
from snapconform.hosts.nspawn import NspawnHost
from snapconform.images import golden, releases, standins


@pytest.mark.parametrize(
    ("url", "release", "mode"),
    [
        ("nspawn://bookworm", "bookworm", "privileged"),
        ("nspawn://trixie", "trixie", "privileged"),
        ("nspawn://sid", "sid", "userns"),
        ("nspawn://", "bookworm", "privileged"),
    ],
)
def test_url_names_release_and_default_mode(url: str, release: str, mode: str) -> None:
    host = open_host(url)
    assert isinstance(host, NspawnHost)
    assert (host.release, host.mode) == (release, mode)
    assert host.offline is True
    assert host.describe() == {
        "url": host.url,
        "kind": "nspawn",
        "release": release,
        "mode": mode,
        "snapd_build": "archive",
    }
    assert host.store_url is None
    assert host.alive() is False


def test_mode_and_cpu_options() -> None:
    host = open_host("nspawn://bookworm", mode="userns", cpu=1)
    assert isinstance(host, NspawnHost)
    assert host.mode == "userns"
    assert host.pinned_cpu == 1


@pytest.mark.parametrize("url", ["nspawn://buster", "nspawn://ubuntu"])
def test_unknown_release_is_one_clear_error(url: str) -> None:
    with pytest.raises(ValueError, match=r"unknown release .*known: bookworm, trixie, sid"):
        open_host(url)


def test_unknown_mode_is_one_clear_error() -> None:
    with pytest.raises(ValueError, match="unknown mode 'rootless'"):
        open_host("nspawn://bookworm", mode="rootless")


def test_not_root_is_unavailable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(nspawn.os, "geteuid", lambda: 1000)
    host = open_host("nspawn://trixie")
    with pytest.raises(HostUnavailable, match=r"^nspawn://trixie needs root: "):
        host.start()
    assert nspawn.unavailable_reason("nspawn://trixie") == "nspawn://trixie needs root"


def test_shell_before_start_is_a_host_error() -> None:
    host = open_host("nspawn://bookworm")
    with pytest.raises(nspawn.HostError, match="not started"):
        host.shell_argv()
    host.stop()  # stopping what never started is fine


def test_image_key_follows_the_recipe() -> None:
    keys = {golden.ImageRecipe(r, m).key for r in releases.RELEASES for m in releases.MODES}
    assert len(keys) == len(releases.RELEASES) * len(releases.MODES)
    assert golden.ImageRecipe("bookworm", "privileged").key.startswith("bookworm-privileged-")
    assert golden.ImageRecipe("sid", "userns").key == golden.ImageRecipe("sid", "userns").key


def test_packages_and_apt_options() -> None:
    bookworm = golden.ImageRecipe("bookworm", "privileged")
    sid = golden.ImageRecipe("sid", "userns")
    for package in ("systemd", "systemd-sysv", "dbus", "udev", "snapd", "squashfs-tools"):
        assert package in bookworm.packages
    assert "squashfuse" not in bookworm.packages
    assert {"squashfuse", "fuse3"} <= set(sid.packages)
    assert bookworm.aptopts == ()
    assert sid.aptopts == ('Acquire::Check-Valid-Until "false"',)


def test_sshd_is_installed_but_never_started_at_boot() -> None:
    # suites/conformance/test_remote_hosts.py starts its own sshd, on loopback only.
    for recipe in (
        golden.ImageRecipe("bookworm", "privileged"),
        golden.ImageRecipe("sid", "userns"),
    ):
        assert {"openssh-server", "python3-pexpect", "python3-yaml"} <= set(recipe.packages)
        links = golden.tweak_links(recipe.mode)
        assert links["etc/systemd/system/ssh.service"] == "/dev/null"
        assert links["etc/systemd/system/ssh.socket"] == "/dev/null"


def test_tweaks_are_config_only(tmp_path: Path) -> None:
    rootfs = tmp_path / "rootfs"
    (rootfs / "etc").mkdir(parents=True)
    (rootfs / "etc/nsswitch.conf").write_text("passwd: files\nhosts:          files dns\n")
    (rootfs / "etc/resolv.conf").symlink_to("/run/systemd/resolve/stub-resolv.conf")
    golden.apply_tweaks(rootfs, "userns")
    assert "hosts:          files\n" in (rootfs / "etc/nsswitch.conf").read_text()
    assert "dns" not in (rootfs / "etc/nsswitch.conf").read_text()
    assert not (rootfs / "etc/resolv.conf").is_symlink()
    assert (rootfs / "etc/resolv.conf").read_text() == ""
    units = rootfs / "etc/systemd/system"
    assert (
        "remount,bind,rw /sys/fs/cgroup/freezer"
        in (units / "snapconform-freezer-rw.service").read_text()
    )
    for unit in ("systemd-udevd.service", "systemd-udevd-control.socket"):
        assert "ConditionPathIsReadWrite=\n" in (units / f"{unit}.d/snapconform.conf").read_text()
    assert (units / "sys-kernel-debug.mount").readlink() == Path("/dev/null")
    assert (units / "sysinit.target.wants/snapconform-rebind.service").is_symlink()
    # Nothing of snapd's own is written.
    assert all("snapd" not in path.split("/")[-1] for path in golden.tweak_files("userns"))
    privileged = golden.tweak_files("privileged")
    assert not any("rebind" in path for path in privileged)


@pytest.mark.skipif(
    shutil.which("busybox") is None or shutil.which("unsquashfs") is None,
    reason="needs a static busybox and unsquashfs (apt-get install busybox-static squashfs-tools)",
)
def test_standins_layout(tmp_path: Path) -> None:
    busybox = Path(shutil.which("busybox") or "")
    static = subprocess.run(["file", "-L", str(busybox)], capture_output=True, text=True)
    if static.returncode == 0 and "statically linked" not in static.stdout:
        pytest.skip("the controller's busybox is not static (apt-get install busybox-static)")
    tree = tmp_path / "tree"
    (tree / "usr/bin").mkdir(parents=True)
    shutil.copyfile(busybox, tree / "usr/bin/busybox")
    (tree / "usr/bin/busybox").chmod(0o755)
    (tree / "usr/lib/snapd").mkdir(parents=True)
    for tool in ("snap-exec", "snapctl"):
        (tree / "usr/lib/snapd" / tool).write_text(f"stand-in for {tool}\n")
    snaps = standins.build_standins(tree, tmp_path / "out")

    def listing(snap: Path) -> dict[str, str]:
        text = subprocess.run(
            ["unsquashfs", "-lls", str(snap)], capture_output=True, text=True, check=True
        ).stdout
        entries = {}
        for line in text.splitlines():
            if "squashfs-root" in line:
                path = line.split("squashfs-root", 1)[1].split(" -> ")[0]
                entries[path.lstrip("/")] = line
        return entries

    core = listing(snaps.core)
    assert core["bin/busybox"].startswith("-rwxr-xr-x")
    assert core["bin/sh"].startswith("l") and core["bin/sh"].endswith("-> busybox")
    assert core["usr/bin/snapctl"].endswith("-> ../lib/snapd/snapctl")
    for path in ("usr/lib/snapd/snap-exec", "usr/lib/snapd/snapctl", "usr/lib/snapd/info"):
        assert path in core
    for mount_point in standins.CORE_MOUNT_POINTS:
        assert core[mount_point].startswith("d")
    assert not any(name.endswith("snapd/snapd") for name in core)  # never re-exec'd into
    snapd = listing(snaps.snapd)
    assert "usr/lib/snapd/info" in snapd and "meta/snap.yaml" in snapd
    assert not any(name.startswith("usr/lib/snapd/snap") for name in snapd)


def test_standin_version_sorts_below_every_release() -> None:
    # snapd re-executes into a snap whose info VERSION is >= its own; Debian's revisions of
    # 2.57.6 (bookworm) sort above the bare upstream version.
    assert standins.INFO_TEXT == "VERSION=2.57.6\n"
    for version in ("2.57.6-1+deb12u1+b2", "2.68.3-3+deb13u1+b7", "2.77.1-2"):
        done = subprocess.run(
            ["dpkg", "--compare-versions", standins.STANDIN_SNAPD_VERSION, "lt", version],
            check=False,
        )
        if done.returncode not in (0, 1):
            pytest.skip("needs dpkg")
        assert done.returncode == 0, version


def test_busybox_applet_list() -> None:
    assert standins.busybox_applets("/bin/sh\n/usr/bin/awk\n\n/sbin/ip\n") == [
        "bin/sh",
        "usr/bin/awk",
        "sbin/ip",
    ]


def test_missing_tools_are_named_with_the_install_command(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # With no tools on PATH (apt-get included) nothing can be installed: the error says what to do.
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(HostUnavailable) as caught:
        nspawn.ensure_controller_tools("nspawn://bookworm")
    message = str(caught.value)
    assert message.startswith("nspawn://bookworm needs ")
    for tool in ("mksquashfs", "mmdebstrap", "systemd-nspawn"):
        assert tool in message
    assert "apt-get install -y --no-install-recommends" in message
    assert "mmdebstrap squashfs-tools systemd-container" in message

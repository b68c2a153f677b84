"""Host URLs: every scheme parses into the right backend, and bad URLs get one clear ValueError."""

from __future__ import annotations

from pathlib import Path

import pytest

from snapconform.hosts.base import HostSpec, open_host
from snapconform.hosts.local import LocalHost
from snapconform.hosts.lxd import LxdHost
from snapconform.hosts.qemu import QemuHost
from snapconform.hosts.ssh import SshHost


def test_local() -> None:
    host = open_host("local://")
    assert isinstance(host, LocalHost)
    assert host.url == "local://"
    assert host.offline is False
    assert host.pinned_cpu is None
    assert host.describe()["kind"] == "local"


@pytest.mark.parametrize(
    ("url", "user", "hostname", "port", "target"),
    [
        ("ssh://vm", None, "vm", None, "vm"),
        ("ssh://root@vm", "root", "vm", None, "root@vm"),
        ("ssh://root@vm:2222", "root", "vm", 2222, "root@vm"),
        ("ssh://ubuntu@10.0.0.5:22", "ubuntu", "10.0.0.5", 22, "ubuntu@10.0.0.5"),
        ("ssh://root@[::1]:2200", "root", "::1", 2200, "root@::1"),
        ("ssh://root@vm/", "root", "vm", None, "root@vm"),
    ],
)
def test_ssh(url: str, user: str | None, hostname: str, port: int | None, target: str) -> None:
    host = open_host(url)
    assert isinstance(host, SshHost)
    assert (host.spec.user, host.spec.hostname, host.spec.port) == (user, hostname, port)
    assert host.target == target


def test_ssh_argv_and_options(tmp_path: Path) -> None:
    key, known = tmp_path / "id", tmp_path / "known"
    host = open_host("ssh://root@vm:2222", identity=key, known_hosts=known)
    assert isinstance(host, SshHost)
    argv = host.shell_argv()
    assert argv[:2] == ["ssh", "-tt"]
    assert argv[2:4] == ["-o", "BatchMode=yes"]
    assert "StrictHostKeyChecking=accept-new" in argv
    assert argv[argv.index("-i") + 1] == str(key)
    assert f"UserKnownHostsFile={known}" in argv
    assert argv[argv.index("-p") + 1] == "2222"
    assert argv[-2:] == ["root@vm", "exec bash --noprofile --norc -i"]
    one_shot = host.command_argv("echo 'a b'; snap list")
    assert one_shot[:2] == ["ssh", "-T"]
    assert one_shot[-1] == "bash --noprofile --norc -c 'echo '\"'\"'a b'\"'\"'; snap list'"


def test_ssh_proxy_command_reaches_both_shell_and_one_shot_commands() -> None:
    proxy = "nsenter --target 42 --net --mount -- /bin/busybox nc 127.0.0.1 22"
    host = open_host("ssh://root@127.0.0.1:22", proxy_command=proxy)
    assert isinstance(host, SshHost)
    for argv in (host.shell_argv(), host.command_argv("true")):
        assert argv[argv.index(f"ProxyCommand={proxy}") - 1] == "-o"
    assert host.describe()["proxy"] == proxy
    assert not any(arg.startswith("ProxyCommand=") for arg in open_host("ssh://vm").shell_argv())


def test_ssh_non_root_user_gets_sudo() -> None:
    host = open_host("ssh://ubuntu@vm")
    assert isinstance(host, SshHost)
    assert host.shell_argv()[-1] == "exec sudo -n bash --noprofile --norc -i"
    assert host.command_argv("true")[-1].startswith("sudo -n bash ")


def test_lxd() -> None:
    host = open_host("lxd://c1")
    assert isinstance(host, LxdHost)
    assert host.instance == "c1"
    assert host.shell_argv() == ["lxc", "exec", "c1", "--", "bash", "--noprofile", "--norc", "-i"]
    assert host.command_argv("snap list")[-2:] == ["-c", "snap list"]
    assert open_host("lxd://MyBox-2").instance == "MyBox-2"  # type: ignore[attr-defined]


def test_qemu() -> None:
    host = open_host("qemu://bookworm")
    assert isinstance(host, QemuHost)
    assert host.release == "bookworm"
    assert host.offline is True
    assert host.describe()["kind"] == "qemu"
    assert host.describe()["network"] == "none (-nic none)"


def test_spec_fields() -> None:
    spec = HostSpec.parse("ssh://me@box:2022")
    assert spec == HostSpec(scheme="ssh", user="me", hostname="box", port=2022, path="")
    assert spec.raw == "ssh://me@box:2022"


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("bookworm", "has no scheme"),
        ("", "has no scheme"),
        ("ftp://x", "unknown scheme 'ftp'"),
        ("ssh://", "ssh:// needs a host"),
        ("ssh://root@", "ssh:// needs a host"),
        ("ssh://vm:notaport", "(?i)port"),
        ("ssh://vm:99999", "(?i)port out of range"),
        ("ssh://vm/some/path", "ssh:// takes no path"),
        ("lxd://", "lxd:// needs an instance name"),
        ("lxd://1abc", "not an LXD instance name"),
        ("lxd://a_b", "not an LXD instance name"),
        ("lxd://c1/x", "lxd:// takes no path"),
        ("qemu://", "qemu:// needs a release"),
        ("qemu://root@bookworm", "takes only a release"),
        ("qemu://Book worm", "not a release name"),
        ("local://somewhere", "local:// takes nothing after the scheme"),
        ("local://root@", "local:// takes nothing after the scheme"),
        ("local:///etc", "local:// takes nothing after the scheme"),
    ],
)
def test_bad_urls(url: str, message: str) -> None:
    with pytest.raises(ValueError, match=message) as error:
        open_host(url)
    text = str(error.value)
    assert "\n" not in text
    assert repr(url) in text or url in text


@pytest.mark.parametrize("url", ["local://", "lxd://c1", "qemu://bookworm"])
def test_unknown_options_are_refused(url: str) -> None:
    with pytest.raises(ValueError, match="unknown option"):
        open_host(url, identity=Path("/x"))

"""lxd:// code that needs no LXD: the image recipe and its packing, the CPU probe's script and
reading of it, LXD's answers, the daemon's record and stop by PID, the profile, and
`hosts create`/`hosts delete` refusing bad input with one line and exit 2.

The real instance is tested in suites/hosts/test_lxd.py.
"""

from __future__ import annotations

import datetime
import json
import os
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest
import yaml

from snapconform.conformance.session import store_tier_url
from snapconform.hosts import lxd_daemon, lxd_instance, lxd_provision
from snapconform.hosts.base import open_host
from snapconform.hosts.lxd import LxdHost
from snapconform.images import golden, lxd_image, store_tier

BOOKWORM_SNAPD = "2.57.6-1+deb12u1+b2"


# -- the image ------------------------------------------------------------------------------


def test_the_image_is_the_golden_tree_with_squashfuse_and_without_nspawn_units() -> None:
    recipe = lxd_image.LxdImageRecipe("bookworm")
    assert set(golden.BASE_PACKAGES) <= set(recipe.packages)
    assert {"squashfuse", "fuse3"} <= set(recipe.packages)
    files = lxd_image.tweak_files()
    assert files["etc/resolv.conf"] == ""  # store calls fail at once, as on nspawn
    assert not [path for path in files if "snapconform-" in path or ".d/" in path]
    links = lxd_image.tweak_links()
    assert links["etc/systemd/system/apt-daily.timer"] == "/dev/null"
    assert links["etc/systemd/system/ssh.service"] == "/dev/null"
    assert not [path for path in links if "snapconform-" in path]


def test_the_image_key_names_the_release_and_changes_with_it() -> None:
    bookworm = lxd_image.LxdImageRecipe("bookworm").key
    assert bookworm.startswith("snapconform-bookworm-") and len(bookworm.rsplit("-", 1)[1]) == 12
    assert bookworm == lxd_image.LxdImageRecipe("bookworm").key
    assert lxd_image.LxdImageRecipe("sid").key.startswith("snapconform-sid-")
    with pytest.raises(ValueError, match="unknown release 'jessie'"):
        lxd_image.LxdImageRecipe("jessie")


def test_metadata_yaml_is_what_lxd_image_import_reads(tmp_path: Path) -> None:
    recipe = lxd_image.LxdImageRecipe("bookworm")
    text = lxd_image.metadata_yaml(recipe, BOOKWORM_SNAPD, 1_700_000_000)
    meta = yaml.safe_load(text)
    assert meta["architecture"] == lxd_image.lxd_architecture()
    assert meta["creation_date"] == 1_700_000_000
    assert meta["properties"]["release"] == "bookworm"
    assert meta["properties"]["snapconform.key"] == recipe.key
    assert BOOKWORM_SNAPD in meta["properties"]["description"]
    packed = lxd_image.pack_metadata(text, tmp_path)
    with tarfile.open(packed) as archive:
        (member,) = archive.getmembers()
        assert member.name == "metadata.yaml" and member.mode == 0o644
        assert archive.extractfile(member).read().decode() == text  # type: ignore[union-attr]


def test_a_new_recipe_prunes_the_releases_older_entries_only(tmp_path: Path) -> None:
    recipe = lxd_image.LxdImageRecipe("bookworm")
    root = lxd_image.images_root(tmp_path)
    for name in (recipe.key, "snapconform-bookworm-000000000000", "snapconform-sid-111111111111"):
        (root / name).mkdir(parents=True)
    actions = lxd_image.prune_superseded(recipe, tmp_path)
    assert actions == ["removed superseded LXD image snapconform-bookworm-000000000000"]
    assert sorted(p.name for p in root.iterdir()) == [recipe.key, "snapconform-sid-111111111111"]


def _override(tmp_path: Path, label: str = "testkeys 2.57.6-1+deb12u1") -> golden.SnapdOverride:
    deb = tmp_path / "snapd_2.57.6-1+deb12u1_amd64.deb"
    deb.write_bytes(b"not read by the recipe")
    files = ((store_tier.DROPIN_PATH, store_tier.DROPIN_TEXT),)
    return golden.SnapdOverride(store_tier.FLAVOUR, label, (deb,), ("ab" * 32,), files)


def test_the_store_tiers_image_is_a_family_of_its_own(tmp_path: Path) -> None:
    plain = lxd_image.LxdImageRecipe("bookworm")
    store = lxd_image.LxdImageRecipe("bookworm", _override(tmp_path))
    assert plain.family == "bookworm" and plain.snapd_build == "archive"
    assert store.family == "bookworm-testkeys"
    assert store.snapd_build == "testkeys 2.57.6-1+deb12u1"
    assert store.key.startswith("snapconform-bookworm-testkeys-") and store.key != plain.key
    assert lxd_image.family_of(store.key) == "bookworm-testkeys"
    assert lxd_image.family_of(plain.key) == "bookworm"
    assert lxd_image.family_of("ubuntu-22.04") is None
    # Another build (its .debs' hashes) is another image.
    other = lxd_image.LxdImageRecipe("bookworm", _override(tmp_path, "testkeys 2.57.6-2"))
    assert other.key != store.key
    text = lxd_image.metadata_yaml(store, BOOKWORM_SNAPD, 1_700_000_000)
    assert "testkeys 2.57.6-1+deb12u1" in yaml.safe_load(text)["properties"]["description"]


def test_pruning_keeps_the_other_family(tmp_path: Path) -> None:
    plain = lxd_image.LxdImageRecipe("bookworm")
    store = lxd_image.LxdImageRecipe("bookworm", _override(tmp_path))
    root = lxd_image.images_root(tmp_path)
    old_plain, old_store = "snapconform-bookworm-000000000000", "snapconform-bookworm-testkeys-1"
    old_store += "1" * 11
    for name in (plain.key, store.key, old_plain, old_store):
        (root / name).mkdir(parents=True)
    assert lxd_image.prune_superseded(plain, tmp_path) == [
        f"removed superseded LXD image {old_plain}"
    ]
    assert lxd_image.prune_superseded(store, tmp_path) == [
        f"removed superseded LXD image {old_store}"
    ]
    assert sorted(p.name for p in root.iterdir()) == sorted([plain.key, store.key])


def test_the_store_tier_of_an_instance_is_its_store_companion() -> None:
    host = open_host("lxd://scl-x?snapd=testkeys")
    assert isinstance(host, LxdHost)
    assert host.instance == "scl-x-store" and host.served_instance == "scl-x"
    assert host.store_url == store_tier.STORE_URL
    assert host.describe()["snapd_build"] == "testkeys"  # its version is known once started
    plain = open_host("lxd://scl-x")
    assert isinstance(plain, LxdHost) and plain.instance == "scl-x"
    assert plain.store_url is None
    assert open_host("lxd://scl-x?snapd=archive").instance == "scl-x"  # type: ignore[attr-defined]
    assert store_tier_url("lxd://scl-x") == "lxd://scl-x?snapd=testkeys"
    assert store_tier_url("lxd://scl-x?snapd=testkeys") == "lxd://scl-x?snapd=testkeys"
    with pytest.raises(ValueError, match="longer than LXD allows"):
        open_host("lxd://" + "x" * 60 + "?snapd=testkeys")
    with pytest.raises(ValueError, match="unknown query key 'cpu' for lxd://"):
        open_host("lxd://scl-x?cpu=1")


def test_architecture_names() -> None:
    assert lxd_image.lxd_architecture("x86_64") == "x86_64"
    assert lxd_image.lxd_architecture("aarch64") == "aarch64"
    with pytest.raises(Exception, match="no LXD architecture name known"):
        lxd_image.lxd_architecture("pdp11")


@pytest.mark.skipif(shutil.which("tar") is None, reason="needs tar")
def test_the_rootfs_tarball_has_the_tree_at_its_top_with_numeric_owners(tmp_path: Path) -> None:
    tree = tmp_path / "tree"
    (tree / "etc").mkdir(parents=True)
    (tree / "etc/hostname").write_text("snapconform\n")
    out = tmp_path / "rootfs.tar.gz"
    lxd_image.pack_rootfs(tree, out)
    with tarfile.open(out) as archive:
        names = archive.getnames()
    assert "./etc/hostname" in names
    assert not (tmp_path / ".rootfs.tar.gz.partial").exists()


def test_hold_and_seed_follow_the_golden_recipe() -> None:
    now = datetime.datetime(2026, 1, 1, tzinfo=datetime.UTC)
    hold = lxd_image.hold_command(BOOKWORM_SNAPD, now)
    assert hold == "snap set system refresh.hold=2026-03-31T00:00:00Z"  # 89 days on 2.57
    assert lxd_image.hold_command("2.68.3-1", now) == "snap refresh --hold"
    script = lxd_image.seed_script(BOOKWORM_SNAPD, now).splitlines()
    assert script[:2] == ["set -e", "snap wait system seed.loaded"]
    # snapd's stand-in first: from 2.66 snapd wants the snapd snap before anything else
    assert script.index("snap install --dangerous /root/standins/snapd.snap") < script.index(
        "snap install --dangerous /root/standins/core.snap"
    )
    assert hold in script and script[-1] == "rm -rf /root/standins"


# -- the instance ---------------------------------------------------------------------------


def test_single_cpu_reads_only_a_pin() -> None:
    assert lxd_instance.single_cpu("1-1") == 1
    assert lxd_instance.single_cpu(" 0-0 ") == 0
    assert lxd_instance.single_cpu("0-1") is None
    assert lxd_instance.single_cpu("1") is None  # a count LXD balances, not a pin
    assert lxd_instance.single_cpu("0,1") is None
    assert lxd_instance.single_cpu(None) is None and lxd_instance.single_cpu("") is None


def test_parse_probe() -> None:
    output = "sc-probe: cpu 0 passed 0 of 5\nnoise\nsc-probe: cpu 1 passed 5 of 5\n"
    assert lxd_instance.parse_probe(output) == {0: False, 1: True}
    assert lxd_instance.parse_probe("sc-probe: cpu 3 passed 4 of 5") == {3: False}
    assert lxd_instance.parse_probe("sc-probe: cannot make a private bind mount") == {}


@pytest.mark.skipif(os.geteuid() != 0 or shutil.which("unshare") is None, reason="needs root")
def test_the_probe_script_tries_every_allowed_cpu_and_cleans_up() -> None:
    """Run here in a private mount namespace, pinned to this process's CPUs: one line per CPU,
    and no mount or directory left behind (whether the kernel lets each CPU pass is not ours
    to say here: that is the container's)."""
    script = lxd_instance.PROBE_SCRIPT % {"tries": 2}
    done = subprocess.run(
        ["unshare", "--mount", "--propagation", "private", "bash", "-c", script],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    results = lxd_instance.parse_probe(done.stdout)
    assert sorted(results) == sorted(os.sched_getaffinity(0))
    assert not list(Path("/run").glob("sc-cpu-probe.*"))


def test_instance_facts_from_lxds_answer() -> None:
    answer = {
        "name": "sc-ci",
        "status": "Running",
        "config": {"limits.cpu": "1-1", lxd_instance.MARK: "bookworm", "image.os": "debian"},
        "snapshots": [{"name": "sc-pristine"}, {"name": "sc-ci/other"}],
        "state": {"pid": 4242, "status": "Running"},
    }
    facts = lxd_instance.InstanceFacts.from_api(answer)
    assert facts.running and facts.made_by_snapconform and facts.pinned_cpu == 1
    assert facts.snapshots == ("sc-pristine", "other") and facts.pid == 4242
    stopped = lxd_instance.InstanceFacts.from_api(
        {"name": "c1", "status": "Stopped", "config": {}, "snapshots": None, "state": {"pid": 0}}
    )
    assert not stopped.running and not stopped.made_by_snapconform
    assert stopped.pid is None and stopped.snapshots == () and stopped.pinned_cpu is None


def test_exec_argv_passes_the_script_as_one_argument() -> None:
    script = "echo 'a b' \"$X\"; true"
    assert lxd_instance.exec_argv("c1", script) == [
        *["lxc", "exec", "c1", "--", "bash", "--noprofile", "--norc", "-c"],
        script,
    ]


def test_a_host_never_started_stops_without_calling_lxc(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", "/nonexistent")
    host = open_host("lxd://c1")
    assert isinstance(host, LxdHost)
    host.stop()
    assert host.pinned_cpu is None and host.offline is False
    assert host.describe()["instance"] == "c1"


# -- the profile and the daemon -------------------------------------------------------------


def test_the_profile_has_the_root_disk_and_a_fuse_root_can_open_and_no_nic() -> None:
    profile = lxd_provision.profile_config("default")
    devices = profile["devices"]
    assert isinstance(devices, dict)
    assert devices["root"] == {"type": "disk", "path": "/", "pool": "default"}
    assert devices["fuse"] == {
        "type": "unix-char",
        "source": "/dev/fuse",
        "path": "/dev/fuse",
        "mode": "0666",
    }
    assert not [d for d in devices.values() if d.get("type") == "nic"]


def test_the_preseed_makes_a_dir_pool_no_network_and_a_root_disk_only_profile() -> None:
    preseed = yaml.safe_load(lxd_daemon.PRESEED)
    assert preseed["networks"] == []
    assert preseed["storage_pools"] == [{"name": "default", "driver": "dir"}]
    (profile,) = preseed["profiles"]
    assert profile["name"] == "default"
    assert profile["devices"] == {"root": {"path": "/", "pool": "default", "type": "disk"}}


def test_debian_like(tmp_path: Path) -> None:
    release = tmp_path / "os-release"
    release.write_text('PRETTY_NAME="Debian GNU/Linux 12"\nID=debian\n')
    assert lxd_daemon.is_debian_like(release)
    release.write_text('ID=ubuntu\nID_LIKE="debian"\n')
    assert lxd_daemon.is_debian_like(release)
    release.write_text("ID=fedora\n")
    assert not lxd_daemon.is_debian_like(release)
    assert not lxd_daemon.is_debian_like(tmp_path / "missing")


def test_the_record_round_trips(tmp_path: Path) -> None:
    dirs: dict[str, list[int] | None] = {"/var/lib/lxd": [0o755, 105, 105], "/var/cache/x": None}
    record = lxd_daemon.DaemonRecord(12, 345, "/run/x.log", "/var/lib/lxd", dirs)
    path = tmp_path / "lxd-daemon.json"
    lxd_daemon.write_record(record, path)
    assert lxd_daemon.read_record(path) == record
    path.write_text("{not json")
    assert lxd_daemon.read_record(path) is None
    assert lxd_daemon.read_record(tmp_path / "missing") is None


def test_stop_daemon_stops_that_pid_and_empties_a_state_dir_that_was_empty(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A stand-in daemon (a process of ours) is stopped by its PID, what it left in its state
    directory goes, the directory's mode is put back, and the record is removed."""
    real = lxd_daemon.RECORD
    real_before = real.read_bytes() if real.exists() else None
    monkeypatch.setattr(lxd_daemon, "RECORD", tmp_path / "lxd-daemon.json")
    state = tmp_path / "state"
    state.mkdir(mode=0o755)
    logs, busy = tmp_path / "logs", tmp_path / "busy"
    busy.mkdir()
    (busy / "theirs").write_text("kept")
    daemon = subprocess.Popen(["sleep", "300"], start_new_session=True)
    try:
        record = lxd_daemon.DaemonRecord(
            pid=daemon.pid,
            start_time=lxd_daemon.process_start_time(daemon.pid),
            logfile=str(tmp_path / "log"),
            state_dir=str(state),
            fresh_dirs=lxd_daemon.fresh_dirs((state, logs, busy)),
        )
        owner = [os.getuid(), os.getgid()]
        assert record.fresh_dirs == {str(state): [0o755, *owner], str(logs): None}
        lxd_daemon.write_record(record)
        (state / "database").mkdir()
        (state / "database/global").write_text("x")
        state.chmod(0o711)
        (logs / "sc-1").mkdir(parents=True)
        said: list[str] = []
        actions = lxd_daemon.stop_daemon(record, said.append)
        daemon.wait(timeout=10)  # gone (stop_daemon reaped it: it was its child)
    finally:
        if daemon.poll() is None:
            daemon.kill()
            daemon.wait()
    assert not record.alive() and said == actions
    assert list(state.iterdir()) == [] and state.stat().st_mode & 0o777 == 0o755
    assert not logs.exists() and (busy / "theirs").read_text() == "kept"
    assert not lxd_daemon.RECORD.exists()
    assert (real.read_bytes() if real.exists() else None) == real_before  # a real daemon's


def test_a_reused_pid_is_not_ours() -> None:
    record = lxd_daemon.DaemonRecord(os.getpid(), 1, "", "/nonexistent")
    assert not record.alive()  # this process, but another start time


# -- bad input ------------------------------------------------------------------------------


def hosts_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "snapconform", "hosts", *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("create", "lxd://1bad"), "'1bad' is not an LXD instance name"),
        (("create", "lxd://a_b"), "is not an LXD instance name"),
        (("create", "lxd://"), "needs an instance name"),
        (("create", "lxd://ok", "--release", "jessie"), "unknown release 'jessie'; known:"),
        (("create", "nspawn://bookworm"), "only lxd:// hosts are created and deleted here"),
        (("create", "lxd://ok?snapd=nightly"), "snapd= takes archive or testkeys"),
        (("create", "lxd://ok?cpu=1"), "lxd:// takes only snapd= in its query, not cpu"),
        (("create", "lxd://ok?snapd=testkeys", "--snapd", "archive"), "--snapd says archive"),
        (("create", "lxd://" + "x" * 60, "--snapd", "testkeys"), "longer than LXD allows"),
        (("create", "bogus"), "has no scheme"),
        (("delete", "ssh://root@vm"), "only lxd:// hosts are created and deleted here"),
        (("delete", "lxd://-x"), "is not an LXD instance name"),
    ],
)
def test_bad_input_gets_one_line_and_exit_2(args: tuple[str, ...], message: str) -> None:
    done = hosts_cli(*args)
    assert done.returncode == 2, done.stderr
    assert done.stdout == ""
    assert done.stderr.count("\n") == 1 and done.stderr.startswith("snapconform hosts: ")
    assert message in done.stderr


def test_check_request_runs_before_anything_else() -> None:
    with pytest.raises(lxd_provision.BadRequest, match="not an LXD instance name"):
        lxd_provision.check_request("x" * 64, "bookworm")
    with pytest.raises(lxd_provision.BadRequest, match="unknown release"):
        lxd_provision.check_request("ok", "buster")
    lxd_provision.check_request("sc-ci", "bookworm")


def test_json_profile_is_yaml_lxc_profile_edit_reads() -> None:
    text = json.dumps(lxd_provision.profile_config("p1"))
    assert yaml.safe_load(text)["devices"]["root"]["pool"] == "p1"

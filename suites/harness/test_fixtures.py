"""Offline tests of fixture snaps: snap.yaml text, the packed tree, the cache, the real scripts.

The scripts are run from a tree extracted from a built .snap with unsquashfs, by busybox sh when
it is installed (that is what runs them on the stand-in core) and by /bin/sh as well.
"""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from snapconform.harness import fixtures
from snapconform.harness.fixtures import (
    HOOK_LOG_FIELDS,
    FixtureSpec,
    HookBehaviour,
    build_snap,
    snap_tree,
    snap_yaml,
    write_tree,
)

needs_squashfs = pytest.mark.skipif(
    shutil.which("mksquashfs") is None or shutil.which("unsquashfs") is None,
    reason="squashfs-tools not installed",
)

SHELLS = [
    pytest.param(
        ["busybox", "sh"],
        id="busybox-sh",
        marks=pytest.mark.skipif(shutil.which("busybox") is None, reason="busybox not installed"),
    ),
    pytest.param(["/bin/sh"], id="bin-sh"),
]

EVIL = 'it\'s "bad" $(touch PWNED) `touch PWNED` ${HOME} %s %n \\ \\n\nsecond line\ttab\n'


def plain(name: str = "sc-app", version: str = "1.0", **kwargs) -> FixtureSpec:
    return FixtureSpec(name=name, version=version, **kwargs)


# --- snap.yaml -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "epoch_yaml",
    ["1*", '"2"', "{read: [1, 2], write: [2]}", "0*", "01", "{read: []}", "", "null", "5 # c"],
)
def test_epoch_literal_is_preserved_byte_for_byte(epoch_yaml):
    text = snap_yaml(plain(epoch_yaml=epoch_yaml))
    assert f"\nepoch: {epoch_yaml}\n" in text
    assert text.count("epoch:") == 1
    assert snap_tree(plain(epoch_yaml=epoch_yaml))["meta/snap.yaml"][0] == text.encode()


def test_no_epoch_key_when_epoch_is_none():
    assert "epoch" not in snap_yaml(plain())


def test_snap_yaml_has_the_expected_keys_and_no_base():
    data = yaml.safe_load(snap_yaml(plain(epoch_yaml="1*")))
    assert data == {
        "name": "sc-app",
        "version": "1.0",
        "epoch": "1*",
        "summary": data["summary"],
        "description": data["description"],
        "confinement": "strict",
        "grade": "devel",
        "apps": {"mark": {"command": "bin/mark"}},
    }
    assert "base" not in data
    assert data["summary"] and data["description"]


def test_snap_yaml_parses_epoch_forms_as_yaml_does():
    assert yaml.safe_load(snap_yaml(plain(epoch_yaml='"2"')))["epoch"] == "2"
    assert yaml.safe_load(snap_yaml(plain(epoch_yaml="{read: [1, 2], write: [2]}")))["epoch"] == {
        "read": [1, 2],
        "write": [2],
    }


@pytest.mark.parametrize("version", ["1.10", "null", "1e3", "yes", "", " spaced ", "é\u2028\x7f"])
def test_name_like_and_version_like_scalars_stay_strings(version):
    data = yaml.safe_load(snap_yaml(plain(name="null", version=version)))
    assert data["name"] == "null"
    assert data["version"] == version


@settings(max_examples=200, deadline=None)
@given(st.text())
def test_any_version_reads_back_exactly(version):
    text = snap_yaml(plain(version=version, confinement=version))
    assert text.isascii()
    data = yaml.safe_load(text)
    assert data["version"] == version
    assert data["confinement"] == version


def test_extra_yaml_is_appended_raw_with_a_final_newline():
    text = snap_yaml(plain(extra_yaml="type: gadget\nassumes: [snapd2.99]"))
    assert text.endswith("    command: bin/mark\ntype: gadget\nassumes: [snapd2.99]\n")


def test_confinement_is_written():
    assert yaml.safe_load(snap_yaml(plain(confinement="devmode")))["confinement"] == "devmode"


# --- the tree --------------------------------------------------------------------------------


def test_tree_without_hooks():
    tree = snap_tree(plain())
    assert sorted(tree) == ["bin/mark", "meta/snap.yaml"]
    assert tree["bin/mark"][1] == 0o755
    assert tree["meta/snap.yaml"][1] == 0o644


def test_tree_with_present_and_failing_hooks():
    spec = plain(hooks=(HookBehaviour("post-refresh", "no way"), HookBehaviour("install")))
    tree = snap_tree(spec)
    assert sorted(tree) == [
        "bin/mark",
        "meta/hooks/install",
        "meta/hooks/post-refresh",
        "meta/snap.yaml",
        "snapconform/hooks/post-refresh.stderr",
    ]
    assert tree["meta/hooks/install"][1] == 0o755
    assert tree["snapconform/hooks/post-refresh.stderr"] == (b"no way", 0o644)
    install = tree["meta/hooks/install"][0].decode()
    assert "\nhook=install\nfails=no\n" in install
    assert "\nhook=post-refresh\nfails=yes\n" in tree["meta/hooks/post-refresh"][0].decode()
    for content, _ in tree.values():
        assert b"@HOOK_" not in content


def test_failure_message_never_enters_a_script():
    tree = snap_tree(plain(hooks=(HookBehaviour("configure", "SECRET-$(x)"),)))
    assert b"SECRET" not in tree["meta/hooks/configure"][0]
    assert tree["snapconform/hooks/configure.stderr"][0] == b"SECRET-$(x)"


def test_scripts_are_posix_sh():
    tree = snap_tree(plain(hooks=(HookBehaviour("install"),)))
    for path in ("bin/mark", "meta/hooks/install"):
        assert tree[path][0].startswith(b"#!/bin/sh\n")
        assert b"bash" not in tree[path][0]


def test_hook_order_does_not_matter():
    a = plain(hooks=(HookBehaviour("install"), HookBehaviour("remove")))
    b = plain(hooks=[HookBehaviour("remove"), HookBehaviour("install")])
    assert a == b
    assert hash(a) == hash(b)
    assert a.hook_names == ("install", "remove")
    assert a.hook("remove") == HookBehaviour("remove")
    assert a.hook("configure") is None


# --- validation ------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["a/b", "a b", "", "-x", ".x", "a\nb", "x" * 151, "é"])
def test_bad_names_are_refused(name):
    with pytest.raises(ValueError, match=r"FixtureSpec\.name"):
        plain(name=name)


@pytest.mark.parametrize("name", ["Upper", "a", "a_b", "x" * 41, "1.2"])
def test_names_snapd_must_judge_stay_buildable(name):
    assert snap_yaml(plain(name=name))


@pytest.mark.parametrize("epoch_yaml", ["1\nname: other", "1\r", "1\u2028", "1\x85"])
def test_multi_line_epoch_is_refused(epoch_yaml):
    with pytest.raises(ValueError, match=r"FixtureSpec\.epoch_yaml"):
        plain(epoch_yaml=epoch_yaml)


@pytest.mark.parametrize(
    "hook", ["post-revert", "default-configure", "install/../x", "", "Install", "configure "]
)
def test_unknown_hooks_are_refused(hook):
    with pytest.raises(ValueError, match=r"HookBehaviour\.name"):
        HookBehaviour(hook)


@pytest.mark.parametrize(
    "hook",
    [
        "install",
        "configure",
        "pre-refresh",
        "post-refresh",
        "remove",
        "check-health",
        "gate-auto-refresh",
        "connect-plug-home",
        "prepare-slot-x1",
    ],
)
def test_known_hooks_are_accepted(hook):
    assert HookBehaviour(hook).name == hook


def test_duplicate_hooks_are_refused():
    with pytest.raises(ValueError, match=r"FixtureSpec\.hooks: hook listed twice: install"):
        plain(hooks=(HookBehaviour("install"), HookBehaviour("install", "x")))


def test_wrong_types_are_refused():
    with pytest.raises(ValueError, match=r"FixtureSpec\.version"):
        plain(version=1.0)
    with pytest.raises(ValueError, match=r"FixtureSpec\.hooks"):
        plain(hooks=HookBehaviour("install"))
    with pytest.raises(ValueError, match=r"FixtureSpec\.hooks"):
        plain(hooks=("install",))
    with pytest.raises(ValueError, match=r"HookBehaviour\.fails_with"):
        HookBehaviour("install", 1)
    with pytest.raises(ValueError, match=r"HookBehaviour\.fails_with"):
        HookBehaviour("install", "\ud800")


@pytest.mark.parametrize(
    "epoch_yaml", ["0*", "01", "{read: []}", "4294967296", "-1", "{read: [2, 1]}"]
)
def test_invalid_epochs_stay_buildable(epoch_yaml):
    assert f"epoch: {epoch_yaml}\n" in snap_yaml(plain(epoch_yaml=epoch_yaml))


# --- building and the cache ------------------------------------------------------------------


def unsquashfs_listing(snap: Path) -> dict[str, str]:
    """path inside the snap -> `ls -l` style permissions, from `unsquashfs -lls`."""
    result = subprocess.run(
        ["unsquashfs", "-lls", "-d", "ROOT", str(snap)], capture_output=True, text=True, check=True
    )
    listing = {}
    for line in result.stdout.splitlines():
        parts = line.split()
        if len(parts) == 6 and parts[0][0] in "-dl" and parts[5].startswith("ROOT"):
            listing[parts[5].removeprefix("ROOT") or "/"] = parts[0]
    return listing


def extract(snap: Path, dest: Path) -> Path:
    subprocess.run(
        ["unsquashfs", "-q", "-n", "-d", str(dest), str(snap)], capture_output=True, check=True
    )
    return dest


FULL = FixtureSpec(
    name="sc-app",
    version="1.0",
    epoch_yaml="1*",
    hooks=(
        HookBehaviour("install"),
        HookBehaviour("pre-refresh", EVIL),
        HookBehaviour("configure", ""),
    ),
)


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> Path:
    if shutil.which("mksquashfs") is None:
        pytest.skip("squashfs-tools not installed")
    return build_snap(FULL, tmp_path_factory.mktemp("cache"))


@pytest.fixture(scope="module")
def extracted(built, tmp_path_factory) -> Path:
    return extract(built, tmp_path_factory.mktemp("x") / "snap")


@needs_squashfs
def test_built_snap_lists_the_expected_files_and_modes(built):
    listing = unsquashfs_listing(built)
    assert listing == {
        "/": "drwxr-xr-x",
        "/bin": "drwxr-xr-x",
        "/bin/mark": "-rwxr-xr-x",
        "/meta": "drwxr-xr-x",
        "/meta/hooks": "drwxr-xr-x",
        "/meta/hooks/configure": "-rwxr-xr-x",
        "/meta/hooks/install": "-rwxr-xr-x",
        "/meta/hooks/pre-refresh": "-rwxr-xr-x",
        "/meta/snap.yaml": "-rw-r--r--",
        "/snapconform": "drwxr-xr-x",
        "/snapconform/hooks": "drwxr-xr-x",
        "/snapconform/hooks/configure.stderr": "-rw-r--r--",
        "/snapconform/hooks/pre-refresh.stderr": "-rw-r--r--",
    }


@needs_squashfs
def test_built_snap_holds_exactly_the_tree(extracted):
    for relative, (content, mode) in snap_tree(FULL).items():
        path = extracted / relative
        assert path.read_bytes() == content, relative
        assert stat.S_IMODE(path.stat().st_mode) == mode, relative


@needs_squashfs
def test_file_name_is_name_version_hash(built):
    assert built.name == fixtures.snap_file_name(FULL)
    name, version, digest = built.name.removesuffix(".snap").split("_")
    assert (name, version) == ("sc-app", "1.0")
    assert len(digest) == 12
    assert int(digest, 16) >= 0
    assert not any(p.name.startswith(".") for p in built.parent.iterdir())


@needs_squashfs
def test_same_spec_reuses_the_file_without_packing(tmp_path, monkeypatch):
    first = build_snap(plain(), tmp_path)
    before = first.stat()

    def no_packing(*args, **kwargs):
        raise AssertionError("packed again")

    monkeypatch.setattr(fixtures, "pack_snap", no_packing)
    again = build_snap(plain(), tmp_path)
    assert again == first
    assert again.stat().st_mtime_ns == before.st_mtime_ns
    assert again.stat().st_ino == before.st_ino


@needs_squashfs
def test_different_specs_give_different_files(tmp_path):
    paths = {
        build_snap(plain(), tmp_path),
        build_snap(plain(epoch_yaml="1*"), tmp_path),
        build_snap(plain(hooks=(HookBehaviour("install"),)), tmp_path),
        build_snap(plain(hooks=(HookBehaviour("install", "x"),)), tmp_path),
        build_snap(plain(hooks=(HookBehaviour("install", "y"),)), tmp_path),
    }
    assert len(paths) == 5
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(p.name for p in paths)


@needs_squashfs
def test_concurrent_builds_of_one_spec_agree(tmp_path):
    spec = plain(version="race")
    with ThreadPoolExecutor(max_workers=4) as pool:
        paths = set(pool.map(lambda _: build_snap(spec, tmp_path), range(8)))
    assert len(paths) == 1
    assert [p.name for p in tmp_path.iterdir()] == [paths.pop().name]


def test_odd_versions_give_safe_file_names():
    name = fixtures.snap_file_name(plain(version="1/../2 $x\n" + "9" * 50))
    assert "/" not in name
    assert " " not in name
    assert name.startswith("sc-app_1-..-2--x-999")
    assert len(name) < 100
    assert fixtures.snap_file_name(plain(version="")).startswith("sc-app_-_")


def test_default_cache_dir(monkeypatch, tmp_path):
    monkeypatch.delenv("SNAPCONFORM_CACHE", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert fixtures.default_cache_dir() == tmp_path / "snapconform" / "snaps"
    monkeypatch.delenv("XDG_CACHE_HOME")
    assert fixtures.default_cache_dir() == Path.home() / ".cache" / "snapconform" / "snaps"


def test_write_tree_sets_modes_whatever_the_umask(tmp_path):
    old = os.umask(0o077)
    try:
        root = write_tree(plain(hooks=(HookBehaviour("remove", "m"),)), tmp_path / "t")
    finally:
        os.umask(old)
    assert stat.S_IMODE(root.stat().st_mode) == 0o755
    assert stat.S_IMODE((root / "meta" / "hooks").stat().st_mode) == 0o755
    assert stat.S_IMODE((root / "meta" / "snap.yaml").stat().st_mode) == 0o644
    assert stat.S_IMODE((root / "meta" / "hooks" / "remove").stat().st_mode) == 0o755


# --- running the real scripts ----------------------------------------------------------------


def snap_env(snap_dir: Path, work: Path, revision: str = "x1", version: str = "1.0") -> dict:
    data = work / "var-snap" / revision
    common = work / "var-snap" / "common"
    data.mkdir(parents=True, exist_ok=True)
    common.mkdir(parents=True, exist_ok=True)
    return {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(work),
        "SNAP": str(snap_dir),
        "SNAP_NAME": "sc-app",
        "SNAP_INSTANCE_NAME": "sc-app_foo",
        "SNAP_INSTANCE_KEY": "foo",
        "SNAP_REVISION": revision,
        "SNAP_VERSION": version,
        "SNAP_DATA": str(data),
        "SNAP_COMMON": str(common),
        "SNAPCONFORM_HOOK_LOG": str(work / "log" / "hooks.log"),
    }


def run(shell: list[str], script: Path, env: dict, *args: str, cwd: Path):
    return subprocess.run(
        [*shell, str(script), *args], env=env, cwd=cwd, capture_output=True, check=False
    )


def log_lines(work: Path) -> list[list[str]]:
    text = (work / "log" / "hooks.log").read_text()
    assert text.endswith("\n")
    return [line.split("\t") for line in text.splitlines()]


@needs_squashfs
@pytest.mark.parametrize("shell", SHELLS)
def test_succeeding_hook_logs_one_line(shell, extracted, tmp_path):
    env = snap_env(extracted, tmp_path)
    result = run(shell, extracted / "meta/hooks/install", env, cwd=tmp_path)
    assert (result.returncode, result.stdout, result.stderr) == (0, b"", b"")
    assert len(HOOK_LOG_FIELDS) == 5
    assert log_lines(tmp_path) == [["sc-app_foo", "install", "x1", env["SNAP_DATA"], "1.0"]]
    # A second run appends; it never rewrites.
    env2 = snap_env(extracted, tmp_path, revision="x2", version="2.0")
    run(shell, extracted / "meta/hooks/install", env2, cwd=tmp_path)
    assert [line[2:] for line in log_lines(tmp_path)] == [
        ["x1", env["SNAP_DATA"], "1.0"],
        ["x2", env2["SNAP_DATA"], "2.0"],
    ]


@needs_squashfs
@pytest.mark.parametrize("shell", SHELLS)
def test_evil_failure_message_is_printed_literally(shell, extracted, tmp_path):
    env = snap_env(extracted, tmp_path)
    result = run(shell, extracted / "meta/hooks/pre-refresh", env, cwd=tmp_path)
    assert result.returncode == 1
    assert result.stdout == b""
    assert result.stderr == EVIL.encode()
    assert not (tmp_path / "PWNED").exists()
    assert log_lines(tmp_path) == [["sc-app_foo", "pre-refresh", "x1", env["SNAP_DATA"], "1.0"]]


@needs_squashfs
@pytest.mark.parametrize("shell", SHELLS)
def test_empty_failure_message_fails_silently(shell, extracted, tmp_path):
    result = run(
        shell, extracted / "meta/hooks/configure", snap_env(extracted, tmp_path), cwd=tmp_path
    )
    assert (result.returncode, result.stdout, result.stderr) == (1, b"", b"")
    assert log_lines(tmp_path)[0][1] == "configure"


@needs_squashfs
def test_hook_fails_loudly_when_the_log_cannot_be_written(extracted, tmp_path):
    env = snap_env(extracted, tmp_path)
    (tmp_path / "blocker").write_text("a file, not a directory")
    env["SNAPCONFORM_HOOK_LOG"] = str(tmp_path / "blocker" / "hooks.log")
    result = run(["/bin/sh"], extracted / "meta/hooks/install", env, cwd=tmp_path)
    assert result.returncode == 1
    assert b"cannot append to" in result.stderr


@settings(max_examples=40, deadline=None)
@given(message=st.text(max_size=200))
def test_any_failure_message_is_printed_literally(message, tmp_path_factory):
    work = tmp_path_factory.mktemp("any")
    snap_dir = write_tree(plain(hooks=(HookBehaviour("remove", message),)), work / "snap")
    env = snap_env(snap_dir, work)
    result = run(["/bin/sh"], snap_dir / "meta/hooks/remove", env, cwd=work)
    assert result.returncode == 1
    assert result.stderr == message.encode()
    assert len(log_lines(work)) == 1


@needs_squashfs
@pytest.mark.parametrize("shell", SHELLS)
def test_app_creates_marker_files(shell, extracted, tmp_path):
    env = snap_env(extracted, tmp_path)
    result = run(shell, extracted / "bin/mark", env, "before-refresh_1.x", cwd=tmp_path)
    assert (result.returncode, result.stdout, result.stderr) == (0, b"", b"")
    assert sorted(os.listdir(env["SNAP_DATA"])) == ["before-refresh_1.x"]
    assert sorted(os.listdir(env["SNAP_COMMON"])) == ["before-refresh_1.x"]
    assert (Path(env["SNAP_DATA"]) / "before-refresh_1.x").read_bytes() == b""


@needs_squashfs
@pytest.mark.parametrize("shell", SHELLS)
@pytest.mark.parametrize(
    "args",
    [["../escape"], ["a/b"], ["."], [".."], [""], ["a b"], ["$(x)"], ["é"], [], ["a", "b"]],
)
def test_app_refuses_bad_markers(shell, args, extracted, tmp_path):
    env = snap_env(extracted, tmp_path)
    result = run(shell, extracted / "bin/mark", env, *args, cwd=tmp_path)
    assert result.returncode == 2
    assert result.stdout == b""
    assert b"usage: mark" in result.stderr
    assert os.listdir(env["SNAP_DATA"]) == []
    assert os.listdir(env["SNAP_COMMON"]) == []
    assert sorted(os.listdir(tmp_path / "var-snap")) == ["common", "x1"]


@needs_squashfs
def test_app_refuses_without_data_dirs(extracted, tmp_path):
    env = snap_env(extracted, tmp_path)
    del env["SNAP_DATA"]
    result = run(["/bin/sh"], extracted / "bin/mark", env, "m", cwd=tmp_path)
    assert result.returncode == 1
    assert not (Path("/") / "m").exists()


@needs_squashfs
@pytest.mark.parametrize("shell", SHELLS)
def test_app_env_prints_snap_variables_sorted(shell, extracted, tmp_path):
    env = snap_env(extracted, tmp_path)
    env["SNAPPY_NOT_ME"] = "x"
    env["NOT_SNAP"] = "y"
    result = run(shell, extracted / "bin/mark", env, "--env", cwd=tmp_path)
    assert result.returncode == 0
    lines = result.stdout.decode().splitlines()
    expected = sorted(
        f"{key}={value}" for key, value in env.items() if key == "SNAP" or key.startswith("SNAP_")
    )
    assert lines == expected


@needs_squashfs
@pytest.mark.parametrize("shell", SHELLS)
@pytest.mark.parametrize("fails_with", [None, "half-migrated"])
def test_hook_marker_lands_in_data_and_common_before_the_verdict(shell, fails_with, tmp_path):
    spec = plain(hooks=(HookBehaviour("post-refresh", fails_with, marker="migrated"),))
    snap_dir = extract(build_snap(spec, cache_dir=tmp_path / "cache"), tmp_path / "tree")
    env = snap_env(snap_dir, tmp_path, revision="x2", version="2.0")
    result = run(shell, snap_dir / "meta/hooks/post-refresh", env, cwd=tmp_path)
    assert result.returncode == (0 if fails_with is None else 1)
    assert (Path(env["SNAP_DATA"]) / "migrated").exists()
    assert (Path(env["SNAP_COMMON"]) / "migrated").exists()


@pytest.mark.parametrize("marker", ["..", ".", "a/b", "a b", ""])
def test_bad_hook_markers_are_refused(marker):
    with pytest.raises(ValueError, match="marker"):
        HookBehaviour("install", marker=marker)

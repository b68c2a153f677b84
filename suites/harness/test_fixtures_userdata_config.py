"""The fixture scripts' user-data and configuration parts, run offline: `mark --user`,
`mark --env-all`, and a hook that reads configuration with `snapctl get` (a stand-in snapctl
on PATH answers), logs it and refuses a value starting with "bad"."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from snapconform.harness.fixtures import (
    CONFIG_LOG_FIELDS,
    REFUSED_VALUE_PREFIX,
    FixtureSpec,
    HookBehaviour,
    write_tree,
)
from snapconform.model.snapd_config import REFUSED_VALUE_PREFIX as MODEL_REFUSED_PREFIX


def tree(tmp_path: Path, *hooks: HookBehaviour) -> Path:
    return write_tree(FixtureSpec("sc-app", "1.0", hooks=hooks), tmp_path / "snap")


def env_for(snap_dir: Path, work: Path, values: dict[str, str]) -> dict[str, str]:
    bin_dir = work / "bin"
    bin_dir.mkdir()
    answers = "".join(f'  {key}) printf "%s\\n" "{value}" ;;\n' for key, value in values.items())
    snapctl = bin_dir / "snapctl"
    snapctl.write_text(f'#!/bin/sh\n[ "$1" = get ] || exit 2\ncase $2 in\n{answers}esac\n')
    snapctl.chmod(0o755)
    for sub in ("data", "common", "user-data", "user-common"):
        (work / sub).mkdir()
    return {
        "PATH": f"{bin_dir}:{os.environ.get('PATH', '/usr/bin:/bin')}",
        "SNAP": str(snap_dir),
        "SNAP_INSTANCE_NAME": "sc-app",
        "SNAP_REVISION": "x1",
        "SNAP_VERSION": "1.0",
        "SNAP_DATA": str(work / "data"),
        "SNAP_COMMON": str(work / "common"),
        "SNAP_USER_DATA": str(work / "user-data"),
        "SNAP_USER_COMMON": str(work / "user-common"),
        "HOME": str(work / "user-data"),
        "XDG_RUNTIME_DIR": "/run/user/2001/snap.sc-app",
        "SNAPCONFORM_HOOK_LOG": str(work / "log" / "hooks.log"),
        "SNAPCONFORM_CONFIG_LOG": str(work / "log" / "config.log"),
    }


def run(script: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        ["/bin/sh", str(script), *args], env=env, capture_output=True, check=False
    )


def test_the_model_and_the_fixture_refuse_the_same_values() -> None:
    assert REFUSED_VALUE_PREFIX == MODEL_REFUSED_PREFIX


def test_mark_user_writes_into_the_user_dirs(tmp_path: Path) -> None:
    snap_dir = tree(tmp_path)
    env = env_for(snap_dir, tmp_path, {})
    result = run(snap_dir / "bin/mark", env, "--user", "u1")
    assert result.returncode == 0, result.stderr
    assert os.listdir(tmp_path / "user-data") == ["u1"]
    assert os.listdir(tmp_path / "user-common") == ["u1"]
    assert os.listdir(tmp_path / "data") == []


def test_mark_env_all_prints_home_and_xdg(tmp_path: Path) -> None:
    snap_dir = tree(tmp_path)
    env = env_for(snap_dir, tmp_path, {})
    lines = run(snap_dir / "bin/mark", env, "--env-all").stdout.decode().splitlines()
    assert f"HOME={tmp_path / 'user-data'}" in lines
    assert "XDG_RUNTIME_DIR=/run/user/2001/snap.sc-app" in lines
    assert lines == sorted(lines) and not any(line.startswith("PATH=") for line in lines)


@pytest.mark.parametrize(("value", "fails"), [("one", False), ("", False), ("bad1", True)])
def test_a_hook_logs_what_it_read_and_refuses_bad_values(tmp_path: Path, value, fails) -> None:
    snap_dir = tree(tmp_path, HookBehaviour("configure", reads_config=("k",)))
    env = env_for(snap_dir, tmp_path, {"k": value} if value else {})
    result = run(snap_dir / "meta/hooks/configure", env)
    assert result.returncode == (1 if fails else 0)
    assert result.stderr == (f"refusing k={value}\n".encode() if fails else b"")
    lines = (tmp_path / "log" / "config.log").read_text().splitlines()
    assert [line.split("\t") for line in lines] == [["sc-app", "configure", "x1", "k", value]]
    assert len(CONFIG_LOG_FIELDS) == 5


def test_config_keys_are_plain_words() -> None:
    with pytest.raises(ValueError, match="reads_config"):
        HookBehaviour("configure", reads_config=("a b",))

"""Offline: every sub-command answers bad input with one line on stderr, exit 2, no traceback."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest


def snapconform(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "snapconform", *args],
        capture_output=True,
        text=True,
        check=False,
        env=None if env is None else {**os.environ, **env},
    )


@pytest.fixture
def bad_history(tmp_path):
    path = tmp_path / "history.json"
    path.write_text(json.dumps({"steps": [{"operation": {"op": "frobnicate"}}]}))
    return path


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (("replay", "/nonexistent/history.json"), "No such file"),
        (("bench", "--host", "nope"), "has no scheme"),
        (("bench", "--rounds", "0"), "--rounds must be"),
        (("hosts", "check", "bogus://x"), "unknown scheme"),
        (("table", "/nonexistent/plan.yaml"), "cannot read"),
    ],
)
def test_bad_input_is_one_clear_line(args, needle):
    result = snapconform(*args)
    assert result.returncode == 2
    assert needle in result.stderr
    assert "Traceback" not in result.stderr and len(result.stderr.strip().splitlines()) == 1


def test_replay_names_the_bad_step(bad_history):
    result = snapconform("replay", str(bad_history), "--host", "ftp://x")
    assert result.returncode == 2
    assert "unknown operation 'frobnicate'" in result.stderr


def test_replay_of_a_file_that_is_not_a_history(tmp_path):
    path = tmp_path / "x.json"
    path.write_text("[1, 2]")
    result = snapconform("replay", str(path))
    assert result.returncode == 2 and "no `steps` list" in result.stderr


def test_replay_reproducers_without_test_keys_is_one_line(tmp_path):
    """A store history's reproducer needs the cached test keys of its release's snapd build
    (none in an empty cache); replay says so in one line."""
    release = {"name": "sc-a", "version": "1", "epoch_yaml": "0", "hooks": []}
    history = {
        "host": {"url": "nspawn://trixie?snapd=testkeys", "release": "trixie"},
        "steps": [
            {
                "operation": {
                    "op": "store-release",
                    "snap": release,
                    "channel": "stable",
                    "revision": 1,
                }
            }
        ],
    }
    path = tmp_path / "history.json"
    path.write_text(json.dumps(history))
    result = snapconform(
        "replay",
        str(path),
        "--reproducers",
        "--artifacts",
        str(tmp_path / "out"),
        "--host",
        "nspawn://bookworm",
    )
    assert result.returncode == 2
    assert "no test-keys build of 'trixie' is cached" in result.stderr
    assert "Traceback" not in result.stderr and len(result.stderr.strip().splitlines()) == 1

"""Offline: `python -m snapconform matrix` answers bad input with one line and exit 2 before it
starts any host; a host's directory name is stable and unique per URL."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from snapconform.commands.matrix import host_slug, pytest_argv

REPO = Path(__file__).resolve().parents[2]


def matrix(*args: str, cwd: Path = REPO) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "snapconform", "matrix", *args],
        capture_output=True,
        text=True,
        check=False,
        cwd=cwd,
    )


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        ((), "give at least one --host URL"),
        (("--host", "nope"), "has no scheme"),
        (("--host", "nspawn://bookworm", "--host", "nspawn://bookworm"), "is given twice"),
        (("--host", "nspawn://hamm"), "unknown release 'hamm'"),
        (("--host", "nspawn://sid?snapd=bogus"), "snapd='bogus' is not allowed"),
        (("--host", "nspawn://sid", "-n", "0"), "-n must be at least 1"),
        (("--host", "nspawn://sid", "--snapd-deb", "/nonexistent.deb"), "no such file"),
        (("--host", "nspawn://sid", "--snapd-source", "/"), "has no debian/ directory"),
        (("--host", "nspawn://sid", "--suite", "suites/nope"), "no suites/nope here"),
    ],
)
def test_bad_input_is_one_line(args: tuple[str, ...], needle: str, tmp_path: Path) -> None:
    result = matrix(*args, "--artifacts", str(tmp_path / "m"))
    assert result.returncode == 2, result.stderr
    assert needle in result.stderr
    assert "Traceback" not in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "m").exists()  # nothing was started or written


def test_outside_a_checkout_it_says_where_to_run(tmp_path: Path) -> None:
    result = matrix("--host", "nspawn://sid", cwd=tmp_path)
    assert result.returncode == 2 and "run matrix from snapconform's checkout" in result.stderr


def test_host_directories() -> None:
    assert host_slug("nspawn://bookworm") == "nspawn-bookworm"
    assert host_slug("lxd://sc-dev") == "lxd-sc-dev"
    with_query = host_slug("nspawn://bookworm?snapd-deb=/tmp/a.deb")
    assert with_query.startswith("nspawn-bookworm-") and with_query != "nspawn-bookworm"
    assert host_slug("ssh://root@vm:22") != host_slug("ssh://root@vm:2222")


def test_each_host_gets_its_own_artifacts_and_junit(tmp_path: Path) -> None:
    argv = pytest_argv(
        "nspawn://sid", tmp_path / "hosts/nspawn-sid", ["suites/conformance"], "seed000", ["-x"]
    )
    assert argv[1:4] == ["-m", "pytest", "suites/conformance"]
    assert argv[argv.index("--host") + 1] == "nspawn://sid"
    assert argv[argv.index("--artifacts") + 1] == str(tmp_path / "hosts/nspawn-sid")
    assert f"--junitxml={tmp_path / 'hosts/nspawn-sid/junit.xml'}" in argv
    assert argv[argv.index("-k") + 1] == "seed000" and argv[-1] == "-x"

"""Offline: turning the observer's JSON and snap's output into typed observations."""

from __future__ import annotations

import pytest

from snapconform.harness.observe import (
    HookLogLine,
    ObservationError,
    epoch_text_of,
    parse_observation,
)
from snapconform.harness.operations import SnapCommandResult, snap_command


@pytest.mark.parametrize(
    ("snap_yaml", "expected"),
    [
        ("name: a\nversion: '1'\n", None),
        ("name: a\nepoch: 1*\nversion: '1'\n", "1*"),
        ("name: a\nepoch: 0xA\n", "0xA"),  # raw text: YAML 1.1 would make it 10
        ('name: a\nepoch: "2"\n', '"2"'),
        ("name: a\nepoch: {read: [1, 2], write: [2]}\nversion: x\n", "{read: [1, 2], write: [2]}"),
        ("name: a\nepoch:\n  read: [1]\n  write: [1]\nversion: x\n", "read: [1]\n  write: [1]"),
        (None, None),
    ],
)
def test_epoch_text_is_the_raw_yaml_value(snap_yaml, expected):
    assert epoch_text_of(snap_yaml) == expected


def test_parse_observation_keeps_sequence_order_and_missing_dirs():
    document = {
        "instances": [
            {
                "name": "sc-a",
                "revisions": [
                    {
                        "revision": "x2",
                        "status": "installed",
                        "version": "2",
                        "snap_yaml": "epoch: 1*\n",
                        "data": ["m"],
                    },
                    {
                        "revision": "x1",
                        "status": "active",
                        "version": "1",
                        "snap_yaml": "name: x\n",
                        "data": None,
                    },
                ],
                "common": ["m"],
                "data_dirs": ["common", "current", "x1", "x2", "x1.old"],
            },
            {"name": "sc-b", "revisions": [], "common": None, "data_dirs": None},
        ],
        "hook_log": ["sc-a\tinstall\tx1\t/var/snap/sc-a/x1\t1", ""],
        "changes": [
            {
                "id": 7,
                "kind": "install-snap",
                "summary": "s",
                "status": "Done",
                "err": None,
                "tasks": [],
            }
        ],
        "last_change": 7,
    }
    seen = parse_observation(document)
    a = seen.instance("sc-a")
    assert a.sequence == ("x2", "x1") and a.current == "x1"
    assert a.revision("x2").epoch_yaml == "1*" and a.revision("x1").epoch_yaml is None
    assert a.revision("x1").data is None and a.revision("x2").data == frozenset({"m"})
    assert a.data_dirs == frozenset({"common", "current", "x1", "x2"})
    assert a.trash == frozenset({"x1.old"})
    assert not seen.instance("sc-b").installed and seen.instance("sc-b").data_dirs == frozenset()
    assert seen.hooks == (HookLogLine("sc-a", "install", "x1", "/var/snap/sc-a/x1", "1"),)
    assert seen.changes[0].id == 7 and seen.last_change == 7


def test_malformed_hook_line_is_an_observation_error():
    with pytest.raises(ObservationError):
        parse_observation({"hook_log": ["only\ttwo"]})


def test_error_message_is_what_follows_error_and_whitespace_is_normalised():
    output = (
        "error: cannot perform the following tasks:\n"
        '- Run post-refresh hook of "sc-a" snap if present (run hook "post-refresh":\n'
        "  boom)"
    )
    result = SnapCommandResult(("snap", "install"), 1, output, 0.1)
    assert result.error == (
        'cannot perform the following tasks: - Run post-refresh hook of "sc-a" snap if present '
        '(run hook "post-refresh": boom)'
    )
    assert SnapCommandResult(("snap",), 0, "sc-a 1 installed", 0.1).error is None


def test_snap_command_quotes_and_keeps_snaps_exit_status():
    text = snap_command(["snap", "install", "--dangerous", "/tmp/a b;rm -rf x.snap"])
    assert text.startswith("snap install --dangerous '/tmp/a b;rm -rf x.snap' </dev/null")
    assert text.endswith("(exit ${PIPESTATUS[0]})")


@pytest.mark.parametrize(
    ("argv", "status"), [(["true"], 0), (["false"], 1), (["sh", "-c", "exit 7"], 7)]
)
def test_snap_command_exit_status_survives_the_pipe(argv, status):
    import subprocess

    result = subprocess.run(["bash", "-c", snap_command(argv)], check=False)
    assert result.returncode == status


def test_store_log_is_read_by_whole_lines_from_an_offset(tmp_path):
    from snapconform.harness import observer_program

    log = tmp_path / "requests.jsonl"
    log.write_bytes(b'{"path": "/v2/snaps/refresh"}\n{"path": "/download/a"}\n{"path": "/v2/ass')
    requests, offset = observer_program.read_store_log(str(log), 0)
    assert [r["path"] for r in requests] == ["/v2/snaps/refresh", "/download/a"]
    # the half-written last line waits for the next call
    with log.open("ab") as handle:
        handle.write(b'ertions/x"}\n')
    later, end = observer_program.read_store_log(str(log), offset)
    assert [r["path"] for r in later] == ["/v2/assertions/x"]
    assert end == log.stat().st_size
    assert observer_program.read_store_log(str(tmp_path / "missing"), 7) == ([], 0)


def test_tracking_channel_comes_from_the_active_revision():
    document = {
        "instances": [
            {
                "name": "sc-a",
                "revisions": [
                    {"revision": "1", "status": "installed", "version": "1", "data": []},
                    {
                        "revision": "2",
                        "status": "active",
                        "version": "2",
                        "data": [],
                        "tracking_channel": "latest/candidate",
                    },
                ],
                "data_dirs": ["1", "2", "common", "current"],
                "common": [],
            }
        ],
        "store_requests": [{"path": "/v2/snaps/refresh"}],
        "store_log_offset": 42,
    }
    observation = parse_observation(document)
    assert observation.instance("sc-a").tracking_channel == "latest/candidate"
    assert observation.store_requests == ({"path": "/v2/snaps/refresh"},)
    assert observation.store_log_offset == 42

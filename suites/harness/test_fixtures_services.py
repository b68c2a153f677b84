"""Offline tests of fixture services and content plugs/slots (FixtureSpec.services,
content_plugs, content_slots; snaps/templates/service.sh) and of their observation
(observer_program.observe_services / observe_connections as parsed by observe.py)."""

from __future__ import annotations

import shutil
import subprocess

import pytest
import yaml

from snapconform.harness import observer_program
from snapconform.harness.fixtures import (
    ContentEndpoint,
    FixtureSpec,
    ServiceBehaviour,
    service_script,
    snap_tree,
    snap_yaml,
)
from snapconform.harness.observe import ServiceObservation, parse_observation

SPEC = FixtureSpec(
    "sc-svc",
    "1.0",
    services=(ServiceBehaviour("once", "oneshot", fails=True), ServiceBehaviour("daemon")),
    content_plugs=(ContentEndpoint("shared"),),
    content_slots=(ContentEndpoint("out", "other"),),
)


def test_services_are_apps_with_daemon_and_content_endpoints_are_plugs_and_slots():
    meta = yaml.safe_load(snap_yaml(SPEC))
    assert meta["apps"]["daemon"] == {"command": "bin/services/daemon", "daemon": "simple"}
    assert meta["apps"]["once"] == {"command": "bin/services/once", "daemon": "oneshot"}
    assert meta["plugs"]["shared"] == {
        "interface": "content",
        "content": "scs-content",
        "target": "$SNAP/content-in",
    }
    assert meta["slots"]["out"]["read"] == ["$SNAP/content-out"]
    tree = snap_tree(SPEC)
    assert tree["bin/services/daemon"][1] == 0o755
    assert "content-in/.keep" in tree and "content-out/shared" in tree


def test_a_spec_without_services_or_endpoints_is_unchanged():
    plain = FixtureSpec("sc-svc", "1.0")
    assert "daemon" not in snap_yaml(plain) and "plugs" not in snap_yaml(plain)
    assert set(snap_tree(plain)) == {"bin/mark", "meta/snap.yaml"}


@pytest.mark.parametrize(
    ("kwargs", "needle"),
    [
        ({"name": "Bad"}, "must be a-z"),
        ({"name": "mark"}, "the fixture's own app"),
        ({"name": "x", "daemon": "forking"}, "daemon"),
        ({"name": "x", "fails": True}, "only a oneshot"),
    ],
)
def test_bad_services_are_refused(kwargs, needle):
    with pytest.raises(ValueError, match=needle):
        ServiceBehaviour(**kwargs)


def test_a_name_twice_is_refused():
    with pytest.raises(ValueError, match="twice"):
        FixtureSpec("sc-svc", "1.0", services=(ServiceBehaviour("a"), ServiceBehaviour("a")))


@pytest.mark.skipif(shutil.which("sh") is None, reason="no sh")
@pytest.mark.parametrize(
    ("service", "status"),
    [(ServiceBehaviour("once", "oneshot"), 0), (ServiceBehaviour("once", "oneshot", True), 1)],
)
def test_the_oneshot_script_exits_as_planned(tmp_path, service, status):
    script = tmp_path / "svc"
    script.write_text(service_script(service))
    done = subprocess.run(["sh", str(script)], capture_output=True, text=True, timeout=10)
    assert done.returncode == status
    assert ("planned failure" in done.stderr) == service.fails


def test_observe_services_asks_for_the_snap_only_when_needed(monkeypatch):
    asked = []

    def fake_get(path):
        asked.append(path)
        apps = [{"name": "mark"}, {"name": "daemon", "daemon": "simple", "enabled": True}]
        return 200, {"result": {"status": "installed", "revision": "x2", "apps": apps}}

    monkeypatch.setattr(observer_program, "rest_get", fake_get)
    plain = [{"status": "active", "revision": "x1", "apps": [{"name": "mark"}]}]
    assert observer_program.observe_services("sc-a", plain) == {
        "enabled": True,
        "current": "x1",
        "apps": [],
    }
    assert asked == []
    disabled = [{"status": "installed", "revision": "x2", "apps": [{"name": "mark"}]}]
    seen = observer_program.observe_services("sc-a", disabled)
    assert asked == ["/v2/snaps/sc-a"]
    assert seen["enabled"] is False and seen["current"] == "x2"
    assert seen["apps"] == [
        {"name": "daemon", "daemon": "simple", "enabled": True, "active": False}
    ]


def test_parsed_services_and_connections():
    document = {
        "instances": [
            {
                "name": "sc-a",
                "revisions": [],
                "services": {
                    "enabled": False,
                    "current": "x1",
                    "apps": [{"name": "d", "daemon": "simple", "enabled": False, "active": False}],
                },
            }
        ],
        "connections": [["sc-a", "shared", "sc-p", "out", True]],
    }
    observation = parse_observation(document)
    seen = observation.instance("sc-a")
    assert seen.snap_enabled is False and seen.snap_current == "x1"
    assert seen.services == (ServiceObservation("d", "simple", False, False),)
    assert observation.connections == (("sc-a", "shared", "sc-p", "out", True),)

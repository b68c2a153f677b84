"""Offline: the observer's list of the host's snaps becomes the model's first state."""

from __future__ import annotations

from snapconform.conformance.host_seed import device_model, seed_from_host
from snapconform.harness.observe import parse_observation
from snapconform.model import snapd as model


def host_document() -> dict:
    """What the observer printed on nspawn://bookworm (the stand-ins), trimmed."""
    revision = {
        "revision": "x1",
        "status": "active",
        "version": "standin",
        "tracking_channel": None,
        "channel": None,
        "hooks": None,
        "data": [],
    }
    return {
        "host_snaps": [
            {
                "name": "core",
                "type": "os",
                "base": None,
                "apps": [],
                "common": [],
                "revisions": [{**revision, "type": "os", "snap_yaml": "name: core\ntype: os\n"}],
            },
            {
                "name": "snapd",
                "type": "snapd",
                "base": None,
                "apps": [],
                "common": None,
                "revisions": [{**revision, "type": "snapd", "snap_yaml": "name: snapd\n"}],
            },
            {
                "name": "tool",
                "type": "app",
                "base": None,
                "apps": ["tool"],
                "common": ["state"],
                "revisions": [
                    {
                        **revision,
                        "revision": "7",
                        "type": "app",
                        "hooks": ["configure"],
                        "data": ["a"],
                        "tracking_channel": "latest/stable",
                        "channel": "latest/stable",
                        "snap_yaml": "name: tool\nbase: core22\nepoch: 2*\n",
                    }
                ],
            },
        ],
        "device_model": {"classic": "true", "base": None, "model": "generic-classic"},
    }


def test_the_hosts_snaps_become_preinstalled_instances():
    observation = parse_observation(host_document())
    state = seed_from_host(model.new_state((2, 68)), observation)
    core, tool = state.instance("core"), state.instance("tool")
    assert core.preinstalled and core.current == "x1" and core.sequence[0].snap_type == "os"
    assert state.instance("snapd").common == frozenset()
    # base from snap.yaml where the REST API leaves it out; the epoch from snap.yaml too
    assert tool.sequence[0].base == "core22" and str(tool.sequence[0].epoch) == "2*"
    assert tool.sequence[0].foreign_hooks == ("configure",)
    assert tool.data_of("7") == frozenset({"a"}) and tool.common == frozenset({"state"})
    assert tool.channel == "latest/stable" and tool.from_store
    assert state.device == model.SnapdState().device  # generic-classic: classic, no base


def test_a_core_device_model_is_read_from_its_headers():
    headers = {"classic": "false", "base": "core22", "gadget": "pc", "kernel": "pc-kernel"}
    found = device_model(headers)
    assert found is not None and not found.classic and found.base == "core22"
    assert device_model(None) is None


def test_whether_snapd_forces_devmode_is_read_from_system_info():
    # daemon/api_general.go: confinement "partial" when sandbox.ForceDevMode (no full AppArmor)
    for level, forced in (("partial", True), ("strict", False)):
        observation = parse_observation({**host_document(), "confinement_level": level})
        assert seed_from_host(model.new_state(), observation).force_devmode is forced
    unknown = parse_observation(host_document())  # an older observation: the default stays
    assert seed_from_host(model.new_state(), unknown).force_devmode is True

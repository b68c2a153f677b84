"""Offline: snaps the model did not install (model/snapd_host.py), checked against snapd's
policy source (overlord/snapstate/policy/*.go at 2.57.6, 2.68.3 and 2.77) and real runs
(suites/conformance/test_host_snaps.py on bookworm, trixie and sid)."""

from __future__ import annotations

import pytest

from snapconform.model import snapd as model
from snapconform.model import snapd_host as host
from snapconform.model.snapd_state import DeviceModel

V257, V268, V277 = (2, 57), (2, 68), (2, 77)


def standins(version: tuple[int, int], *extra: host.HostSnap) -> model.SnapdState:
    """An nspawn host: the stand-in core (type os) and snapd, as the observer lists them."""
    core = host.HostSnap("core", "x1", (host.HostRevision("x1", "standin", snap_type="os"),))
    snapd = host.HostSnap("snapd", "x1", (host.HostRevision("x1", "standin", snap_type="snapd"),))
    return host.seed(model.new_state(version), (core, snapd, *extra))


def app(state: model.SnapdState, name: str) -> model.SnapdState:
    return model.install(state, model.SnapFile(name, "1.0")).state


def test_seeding_marks_the_hosts_snaps_and_keeps_their_revisions():
    state = standins(V257)
    core = state.instance("core")
    assert core is not None and core.preinstalled and core.sequence[0].snap_type == "os"
    assert core.data_of("x1") == frozenset() and state.device == DeviceModel()
    assert not app(state, "sc-a").instance("sc-a").preinstalled


@pytest.mark.parametrize(
    ("version", "reason"),
    [
        (V257, "snap is used by the model"),  # os.go: a model naming no base
        (V268, "snap is being used by snap sc-a."),  # 2.62+: baseUsedBy("")
        (V277, "snap is being used by snap sc-a."),
    ],
)
def test_core_in_use_is_not_removable_with_each_releases_reason(version, reason):
    state = app(standins(version), "sc-a")
    outcome = model.remove(state, "core")
    assert outcome.error is not None and outcome.error.kind == "not-removable"
    assert outcome.error.message == f'cannot remove "core": snap "core" is not removable: {reason}'
    assert outcome.state == state


def test_an_unused_core_goes_from_2_62_but_not_before():
    assert model.remove(standins(V257), "core").error is not None
    outcome = model.remove(standins(V268), "core")
    assert outcome.error is None and outcome.state.instance("core") is None


def test_core_without_the_snapd_snap_stays_from_2_62():
    core = host.HostSnap("core", "x1", (host.HostRevision("x1", "16", snap_type="os"),))
    state = host.seed(model.new_state(V268), (core,))
    assert model.remove(state, "core").error.message.endswith(
        "core snap cannot be removed if snapd snap is not installed"
    )


def test_in_use_lists_up_to_five_users_then_counts_the_rest():
    state = standins(V277)
    for index in range(7):
        state = app(state, f"sc-{index}")
    message = model.remove(state, "core").error.message
    assert message.endswith("used by snaps sc-0, sc-1, sc-2, sc-3, sc-4 and 2 more.")
    few = app(app(app(standins(V277), "sc-c"), "sc-a"), "sc-b")
    assert model.remove(few, "core").error.message.endswith("snaps sc-a, sc-b and sc-c.")


def test_parallel_instances_use_core_under_their_instance_names():
    state = model.set_config(standins(V268), "experimental.parallel-instances", "true").state
    state = model.install(state, model.SnapFile("sc-a", "1.0"), name="sc-a_k1").state
    assert model.remove(state, "core").error.message.endswith("used by snap sc-a_k1.")


def test_the_only_revision_of_core_from_2_71_is_a_full_remove_and_refused_alike():
    state = app(standins(V277), "sc-a")
    assert model.remove(state, "core", revision="x1").error.message.endswith("snap sc-a.")
    older = app(standins(V268), "sc-a")
    assert "active revision x1" in model.remove(older, "core", revision="x1").error.message


def test_snapd_goes_only_as_the_last_snap():
    for version in (V257, V268, V277):
        outcome = model.remove(standins(version), "snapd")
        assert outcome.error.message == (
            'cannot remove "snapd": snap "snapd" is not removable: remove all other snaps first'
        )
    alone = host.seed(
        model.new_state(V268),
        (host.HostSnap("snapd", "x1", (host.HostRevision("x1", "2", snap_type="snapd"),)),),
    )
    assert model.remove(alone, "snapd").error is None


def test_a_base_is_in_use_by_apps_naming_it_and_the_models_base_is_the_models():
    base = host.HostSnap("core22", "5", (host.HostRevision("5", "2", snap_type="base"),))
    user = host.HostSnap("lxd", "9", (host.HostRevision("9", "5", base="core22"),))
    state = standins(V277, base, user)
    assert model.remove(state, "core22").error.message.endswith("used by snap lxd.")
    assert model.remove(state, "core").error is None  # lxd uses core22, not core
    on_core = host.seed(model.new_state(V277), (base,), DeviceModel(classic=True, base="core22"))
    assert model.remove(on_core, "core22").error.message.endswith("snap is used by the model")


def test_core16_users_count_for_core_while_core16_is_absent():
    user = host.HostSnap("old", "3", (host.HostRevision("3", "1", base="core16"),))
    assert model.remove(standins(V268, user), "core").error.message.endswith("snap old.")


def test_an_inactive_revision_of_any_type_may_go_on_classic():
    revisions = tuple(host.HostRevision(rev, rev, snap_type="os") for rev in ("x1", "x2"))
    two = host.HostSnap("core", "x2", revisions)
    outcome = model.remove(host.seed(model.new_state(V257), (two,)), "core", revision="x1")
    assert outcome.error is None and outcome.state.instance("core").sequence[0].revision == "x2"


def test_kernels_gadgets_and_core_devices_are_outside_the_model():
    kernel = host.HostSnap("pc-kernel", "1", (host.HostRevision("1", "5", snap_type="kernel"),))
    with pytest.raises(model.ModelGap, match="kernels, gadgets"):
        model.remove(standins(V277, kernel), "pc-kernel")
    device = host.seed(model.new_state(V277), (), DeviceModel(classic=False, base="core22"))
    device = app(device, "sc-a")
    with pytest.raises(model.ModelGap, match="Ubuntu Core"):
        model.remove(device, "sc-a")


def test_what_a_host_snap_does_itself_is_outside_the_model():
    hooked = host.HostSnap("tool", "4", (host.HostRevision("4", "1", hooks=("remove",)),))
    state = standins(V268, hooked)
    with pytest.raises(model.ModelGap, match="own remove hook"):
        model.remove(state, "tool")
    with pytest.raises(model.ModelGap, match="does not know its apps"):
        model.run_app(state, "core", "m1")

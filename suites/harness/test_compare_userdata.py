"""compare_userdata_and_config on parsed observations (no snapd): what it reports when snapd's
~USER/snap, configuration, hook reads or app environment differ from the model's."""

from __future__ import annotations

from dataclasses import replace

from snapconform.conformance.compare import compare_userdata_and_config
from snapconform.harness.observe import parse_observation
from snapconform.harness.operations import SnapCommandResult
from snapconform.model.snapd import (
    HookPlan,
    SnapFile,
    add_user,
    install,
    new_state,
    run_app_as,
    run_env,
    set_snap_config,
)

NAME = "cu"
OK = SnapCommandResult(("snap",), 0, "", 0.0)


def observed(user_data: dict, config: dict | None = None, config_log: tuple = ()):
    document = {
        "instances": [
            {
                "name": NAME,
                "revisions": [{"revision": "x1", "status": "active", "version": "1.0"}],
                "user_data": user_data,
                "config": config if config is not None else {},
            }
        ],
        "config_log": list(config_log),
    }
    return parse_observation(document)


def after_a_user_run():
    state = add_user(new_state(), "u1", "/home/u1", 2001).state
    state = install(state, SnapFile(NAME, "1.0")).state
    return run_app_as(state, "u1", NAME, "m")


def test_matching_user_dirs_give_no_mismatch() -> None:
    seen = {"u1": {"revisions": {"x1": ["m"]}, "common": ["m"], "current": "x1"}}
    assert compare_userdata_and_config(after_a_user_run(), OK, observed(seen), [NAME]) == []


def test_a_missing_marker_or_link_is_named_per_user() -> None:
    seen = {"u1": {"revisions": {"x1": []}, "common": ["m"], "current": None}}
    mismatches = compare_userdata_and_config(after_a_user_run(), OK, observed(seen), [NAME])
    assert [m.field for m in mismatches] == [f"{NAME}.user_data[u1]"]


def test_users_the_model_does_not_know_are_not_compared() -> None:
    seen = {
        "u1": {"revisions": {"x1": ["m"]}, "common": ["m"], "current": "x1"},
        "someone": {"revisions": {"x9": []}, "common": [], "current": "x9"},
    }
    assert compare_userdata_and_config(after_a_user_run(), OK, observed(seen), [NAME]) == []


def test_configuration_and_hook_reads_are_compared() -> None:
    state = install(new_state(), SnapFile(NAME, "1.0", hooks=(HookPlan("configure"),))).state
    outcome = set_snap_config(state, NAME, (("k", "one"),))
    root = {"root": {"revisions": {"x1": []}, "common": [], "current": "x1"}}
    assert compare_userdata_and_config(outcome, OK, observed(root, {"k": "one"}), [NAME]) == []
    wrong = compare_userdata_and_config(outcome, OK, observed(root, {"k": "two"}), [NAME])
    assert [m.field for m in wrong] == [f"{NAME}.config"]
    extra_read = observed(root, {"k": "one"}, (f"{NAME}\tconfigure\tx1\tk\tone",))
    mismatches = compare_userdata_and_config(outcome, OK, extra_read, [NAME])
    assert [m.field for m in mismatches] == ["config_reads"]


def test_the_environment_is_compared_key_by_key() -> None:
    state = install(new_state(), SnapFile(NAME, "1.0")).state
    outcome = run_env(state, "root", NAME)
    printed = "\n".join(f"{key}={value}" for key, value in outcome.env if value is not None)
    seen = {"root": {"revisions": {"x1": []}, "common": [], "current": "x1"}}
    good = SnapCommandResult(("snap",), 0, printed, 0.0)
    assert compare_userdata_and_config(outcome, good, observed(seen), [NAME]) == []
    bad = SnapCommandResult(("snap",), 0, printed.replace("HOME=/root/snap", "HOME=/root"), 0.0)
    assert [m.field for m in compare_userdata_and_config(outcome, bad, observed(seen), [NAME])] == [
        "env"
    ]


def test_roots_dirs_are_lenient_while_a_simple_service_runs() -> None:
    """A simple service's `snap run` races the observation (seen on 2.77.1)."""
    from snapconform.model.snapd import ServicePlan

    snap = SnapFile(NAME, "1.0", services=(ServicePlan("daemon", "simple"),))
    outcome = install(new_state(), snap)
    document_dirs = {"root": {"revisions": {"x1": []}, "common": [], "current": "x1"}}
    seen = observed(document_dirs)
    assert compare_userdata_and_config(outcome, OK, seen, [NAME]) == []
    marked = {"root": {"revisions": {"x1": ["m"]}, "common": [], "current": "x1"}}
    mismatches = compare_userdata_and_config(outcome, OK, observed(marked), [NAME])
    assert [m.field for m in mismatches] == [f"{NAME}.user_data[root]"]


def test_a_removed_snaps_dangling_link_may_follow_its_simple_service() -> None:
    """A simple daemon's `snap run` as root moves ~root/snap/NAME/current after the step that
    started it (snapd_userdata.settled_runs leaves it out); 2.57's full remove leaves that link
    dangling, so root's empty dirs and link stay lenient once one ran (found by the soak)."""
    from snapconform.model.snapd import ServicePlan, remove, run_app

    daemon = (ServicePlan("daemon", "simple"),)
    state = run_app(install(new_state(), SnapFile(NAME, "1.0")).state, NAME, "m").state
    state = install(state, SnapFile(NAME, "2.0", services=daemon)).state
    removed = remove(state, NAME)
    (root,) = removed.state.user_dirs
    assert (root.revisions, root.common, root.current) == ((), None, "x1")  # 2.57: link left
    link_moved = {"root": {"revisions": {}, "common": None, "current": "x2"}}
    gone = parse_observation(
        {"instances": [{"name": NAME, "revisions": [], "user_data": link_moved}]}
    )
    assert NAME in removed.state.simple_services_ran
    assert compare_userdata_and_config(removed, OK, gone, [NAME]) == []
    # without a simple service run noted, the link is compared strictly
    strict = replace(removed, state=replace(removed.state, simple_services_ran=frozenset()))
    assert [m.field for m in compare_userdata_and_config(strict, OK, gone, [NAME])] == [
        f"{NAME}.user_data[root]"
    ]

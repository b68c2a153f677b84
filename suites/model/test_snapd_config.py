"""The configuration model (model/snapd_config.py) against snapd's source and real runs.

Each test names the snapd function whose rule it checks (canonical/snapd 2.57.6; the same in
2.68.3 and 2.77.1) or the run that showed it (nspawn bookworm/trixie/sid, session 2).
"""

from __future__ import annotations

import pytest

from snapconform.model.snapd import (
    HookPlan,
    ModelGap,
    SnapdState,
    SnapFile,
    get_config,
    install,
    new_state,
    refresh_revision,
    remove,
    revert,
    set_snap_config,
)
from snapconform.model.snapd_config import config_dict

NAME = "cf"
READS_K = HookPlan("configure", reads_config=("k",))


def ok(outcome) -> SnapdState:
    assert outcome.error is None, outcome.error
    return outcome.state


def snap(version: str, *more: HookPlan) -> SnapFile:
    return SnapFile(NAME, version, hooks=(READS_K, *more))


def conf(state: SnapdState) -> dict:
    return config_dict(state.instance(NAME))


def reads(outcome) -> list[tuple[str, str, str]]:
    return [(r.hook, r.revision, r.value) for r in outcome.config_reads]


def test_snap_set_runs_configure_with_the_patch_and_commits_it() -> None:
    """configstate.go Configure (patch in the hook's context); observed: the hook printed one."""
    state = ok(install(new_state(), snap("1.0")))
    outcome = set_snap_config(state, NAME, (("k", "one"), ("n", "7")))
    assert reads(outcome) == [("configure", "x1", "one")]
    assert conf(ok(outcome)) == {"k": "one", "n": 7}  # cmd_set.go: JSON first, else a string


def test_a_refused_value_commits_nothing() -> None:
    """hookmgr.go runHook: a failed hook fails the task; the transaction is not committed
    (observed: `- Run configure hook of "NAME" snap (run hook "configure": refusing k=bad1)`)."""
    state = ok(set_snap_config(ok(install(new_state(), snap("1.0"))), NAME, (("k", "one"),)))
    outcome = set_snap_config(state, NAME, (("k", "bad1"),))
    assert outcome.error is not None
    assert outcome.error.message == (
        "cannot perform the following tasks:\n"
        '- Run configure hook of "cf" snap (run hook "configure": refusing k=bad1)'
    )
    assert conf(outcome.state) == {"k": "one"}


def test_no_configure_hook_refuses_a_patch() -> None:
    """configstate.go Configure: Optional only when the patch is empty; hookmgr.go runHook."""
    state = ok(install(new_state(), SnapFile(NAME, "1.0")))
    outcome = set_snap_config(state, NAME, (("k", "x"),))
    assert outcome.error is not None and outcome.error.message.endswith(
        '(snap "cf" has no "configure" hook)'
    )
    missing = get_config(state, NAME, "k")
    assert missing.error is not None
    assert missing.error.message == 'snap "cf" has no "k" configuration option'


def test_refresh_keeps_the_configuration_and_saves_the_old_revisions_copy() -> None:
    """handlers.go doLinkSnap: SaveRevisionConfig(old current); no restore on a refresh."""
    state = ok(set_snap_config(ok(install(new_state(), snap("1.0"))), NAME, (("k", "one"),)))
    outcome = install(state, snap("2.0"))
    assert reads(outcome) == [("configure", "x2", "one")]
    instance = ok(outcome).instance(NAME)
    assert instance is not None and dict(instance.revision_config) == {"x1": (("k", '"one"'),)}


def test_revert_restores_the_targets_copy() -> None:
    """handlers.go doLinkSnap: RestoreRevisionConfig(target) on a revert (observed: one)."""
    state = ok(set_snap_config(ok(install(new_state(), snap("1.0"))), NAME, (("k", "one"),)))
    state = ok(set_snap_config(ok(install(state, snap("2.0"))), NAME, (("k", "two"),)))
    outcome = revert(state, NAME)
    assert reads(outcome) == [("configure", "x1", "one")]
    state = ok(outcome)
    assert conf(state) == {"k": "one"}
    assert conf(ok(revert(state, NAME, "x2"))) == {"k": "two"}
    # refresh --revision=x2 from x1 restores nothing (observed on 2.57.6)
    assert conf(ok(refresh_revision(state, NAME, "x2"))) == {"k": "one"}


def test_revert_without_a_copy_keeps_the_configuration() -> None:
    """config.SaveRevisionConfig saves nothing without an entry; RestoreRevisionConfig of a
    missing copy does nothing."""
    state = ok(install(ok(install(new_state(), snap("1.0"))), snap("2.0")))
    state = ok(set_snap_config(state, NAME, (("k", "two"),)))
    assert conf(ok(revert(state, NAME))) == {"k": "two"}


def test_rollback_restores_the_old_current_copy() -> None:
    """handlers.go undoLinkSnap: RestoreRevisionConfig(oldCurrent)."""
    state = ok(set_snap_config(ok(install(new_state(), snap("1.0"))), NAME, (("k", "one"),)))
    outcome = install(state, snap("2.0", HookPlan("post-refresh", "no")))
    assert outcome.error is not None and conf(outcome.state) == {"k": "one"}


def test_discarding_a_revision_drops_its_copy_and_remove_drops_all() -> None:
    """handlers.go doDiscardSnap: DiscardRevisionConfig; the last revision: DeleteSnapConfig."""
    state = ok(set_snap_config(ok(install(new_state(), snap("1.0"))), NAME, (("k", "one"),)))
    state = ok(install(state, snap("2.0")))
    state = ok(remove(state, NAME, "x1"))
    instance = state.instance(NAME)
    assert instance is not None and instance.revision_config == ()
    state = ok(remove(state, NAME))
    assert state.instance(NAME) is None
    assert conf(ok(install(state, snap("1.0")))) == {}


def test_a_stored_bad_value_inside_a_change_is_outside_the_model() -> None:
    """The model runs a change's hooks by fails_with; a value-driven refusal there is a gap."""
    state = ok(install(new_state(), SnapFile(NAME, "1.0", hooks=(HookPlan("configure"),))))
    state = ok(set_snap_config(state, NAME, (("k", "bad"),)))  # x1's hook reads nothing
    with pytest.raises(ModelGap):
        install(state, snap("2.0"))


def test_hooks_of_an_undone_first_install_read_too() -> None:
    """Found by the state machine on 2.57.6: the install hook read k (unset) before configure
    failed and the install was undone; the read is logged all the same."""
    hooks = (HookPlan("install", reads_config=("k",)), HookPlan("configure", "planned failure"))
    outcome = install(new_state(), SnapFile(NAME, "2.0", hooks=hooks))
    assert outcome.error is not None
    assert reads(outcome) == [("install", "x1", "")]


def test_the_remove_hook_reads_the_configuration_the_snap_had() -> None:
    """Found by the state machine on 2.68.3: a full remove's remove hook read k."""
    hooks = (READS_K, HookPlan("remove", reads_config=("k",)))
    state = ok(install(new_state(), SnapFile(NAME, "1.0", hooks=hooks)))
    state = ok(set_snap_config(state, NAME, (("k", "one"),)))
    assert reads(remove(state, NAME)) == [("remove", "x1", "one")]


def test_a_dotted_key_patches_a_map_and_is_refused_through_anything_else() -> None:
    """config/transaction.go: Set walks the committed value (getFromConfig) and PatchConfig the
    command's own changes: through a value that is not a map both refuse, before the hook runs,
    with `snap "NAME" option "PATH" is not a map` (seen on 2.57.6); a map is patched key by
    key and the leaf replaces what was at its path whole (commitChange)."""
    state = ok(install(new_state(), snap("1.0")))
    state = ok(set_snap_config(state, NAME, (("d.x", "1"), ("d.y", "two"))))
    assert conf(state) == {"d": {"x": 1, "y": "two"}}
    refused = set_snap_config(state, NAME, (("d.x.deep", "true"),))
    assert refused.error.message == (
        'cannot perform the following tasks:\n- Run configure hook of "cf" snap '
        '(snap "cf" option "d.x" is not a map)'
    )
    assert refused.hooks_run == () and refused.state == state
    assert get_config(state, NAME, "d.x.deep").error.message == (
        'snap "cf" option "d.x" is not a map'
    )
    # the same command: d is set to a string first (shallow keys first), then walked through
    same = set_snap_config(state, NAME, (("d.z", "3"), ("d", "plain")))
    assert 'option "d" is not a map' in same.error.message
    # a map set by the same command is patched (PatchConfig on the command's own change)
    state = ok(set_snap_config(state, NAME, (("e.b", "2"), ("e", '{"a": 1}'))))
    assert conf(state) == {"d": {"x": 1, "y": "two"}, "e": {"a": 1, "b": 2}}
    assert get_config(state, NAME, "e.b").notices == ("2",)
    assert get_config(state, NAME, "d.nope").error.message == (
        'snap "cf" has no "d.nope" configuration option'
    )
    with pytest.raises(ModelGap, match="table"):
        get_config(state, NAME, "d")


def test_invalid_option_names_and_nulls_are_outside_the_model() -> None:
    state = ok(install(new_state(), snap("1.0")))
    for pairs in ((("d.X", "1"),), (("d..x", "1"),), (("d.x", "null"),)):
        with pytest.raises(ModelGap):
            set_snap_config(state, NAME, pairs)

"""snapd with a store, on the model: the documents' store claims and snapd's rules for them.

Each test names the sentence (seed 004 = the "Snap epochs" page, seed 000 = the forum thread
"How to cause a snap rollback?") or the snapd source file it rests on; "2.57" is tag 2.57.6,
"2.68" 2.68.3. Facts marked "from source" are predictions a real run confirms
(suites/conformance).
"""

from __future__ import annotations

import pytest

from snapconform.model import snapd as model
from snapconform.model.epoch import Epoch
from snapconform.model.snapd import (
    HookPlan,
    Outcome,
    SnapdState,
    SnapFile,
    StoreCatalog,
    new_state,
    offering,
    refresh_all,
    revert,
    run_app,
    set_config,
    store_install,
    store_refresh,
    switch_channel,
)

NAME = "hookapp"
HOOKS = ("install", "configure", "pre-refresh", "post-refresh")
E = Epoch.parse_yaml

# Seed 004's table, transcribed (see test_table_004.py): step, stable, candidate, then users.
DOCUMENT_ROWS = """\
1 R1E0 - R1E0 R1E0 -
2 R2E0 - R2E0 R2E0 -
3 - R3E1 R2E0 R2E0 (!) R3E1
4 R4E0 - R4E0 R4E0 (!) R3E1
5 R5E1 - R4E0 R4E0 R3E1 (!)
6 - R6E1* R4E0 R6E1 R6E1
7 R6E1* - R6E1 R6E1 R6E1
8 - R7E1 R6E1 R7E1 R7E1
"""


def snap(revision: int, epoch: str | None = None, *failing: tuple[str, str]) -> SnapFile:
    fails = dict(failing)
    hooks = tuple(HookPlan(hook, fails.get(hook)) for hook in HOOKS)
    return SnapFile(NAME, f"{revision}.0", epoch_yaml=epoch, hooks=hooks)


def ok(outcome: Outcome) -> SnapdState:
    assert outcome.error is None or outcome.error.exit_code == 0, outcome.error
    return outcome.state


def current(state: SnapdState, instance: str = NAME) -> str:
    found = state.instance(instance)
    assert found is not None
    return found.current


def runs(outcome: Outcome) -> list[tuple[str, str]]:
    return [(run.hook, run.revision) for run in outcome.hooks_run]


def purposes(outcome: Outcome) -> list[str]:
    return [request.purpose for request in outcome.store_requests]


def catalog(*releases: tuple[str, int, str | None]) -> StoreCatalog:
    result = StoreCatalog()
    for channel, revision, epoch in releases:
        result = result.release(NAME, channel, revision, snap(revision, epoch))
    return result


# -- seed 004: the table, three users as three parallel instances ----------------------------------


def test_004_table_on_one_snapd_with_three_parallel_instances():
    # 004: "which revision (R) and epoch (E) a user will receive when refreshing an application
    # from stable and candidate channels"; issue 7 §5: users as parallel instances, `snap
    # refresh` after each release as an auto-refresh would.
    releases = [line.split()[:3] for line in DOCUMENT_ROWS.splitlines()]
    users = {"user1": ("stable", 1), "user2": ("candidate", 1), "user3": ("candidate", 3)}
    state = ok(set_config(new_state(), "experimental.parallel-instances", "true"))
    store = StoreCatalog()
    rows = []
    for number, stable, candidate in releases:
        channel, released = ("stable", stable) if stable != "-" else ("candidate", candidate)
        revision, _, epoch = released[1:].partition("E")
        store = store.release(NAME, channel, int(revision), snap(int(revision), epoch))
        state = ok(refresh_all(state, store))
        for user, (tracks, start) in users.items():
            if start == int(number):
                state = ok(store_install(state, store, f"{NAME}_{user}", channel=tracks))
        cells = []
        for user in users:
            inst = state.instance(f"{NAME}_{user}")
            if inst is None:
                cells.append("-")
                continue
            data = ",".join(map(str, inst.current_revision.epoch.write))
            cells.append(f"R{inst.current}E{data}")
        rows.append(cells)
    expected = [
        [token for token in line.split()[3:] if token != "(!)"]
        for line in DOCUMENT_ROWS.splitlines()
    ]
    assert rows == expected


# -- seed 004: stepped through each epoch ----------------------------------------------------------


def test_004_one_refresh_steps_a_user_through_each_epoch():
    # 004: "If a user neglects to update their system across epochs, for example, when they
    # eventually refresh, they will be stepped through each epoch: 0 to 1*, 1 to 2*, and 2
    # onwards ... performing the migration process for each step". snapd: handlers.go
    # doCheckReRefresh asks again after every refresh round and keeps answers of another epoch.
    store = catalog(("stable", 1, None))
    state = ok(store_install(new_state(), store, NAME))
    state = ok(run_app(state, NAME, "written-by-r1"))
    for revision, epoch in ((2, "1*"), (3, "1"), (4, "2*"), (5, "2")):
        store = store.release(NAME, "stable", revision, snap(revision, epoch))
    outcome = refresh_all(state, store)
    assert outcome.error is None
    # The store's rule (greatest readable epoch) takes 1* straight to 2*: R4 (2*) reads the
    # epoch-1 data R2 wrote, so R3 (1) is not needed: each epoch's migration still runs once.
    assert runs(outcome) == [
        ("pre-refresh", "1"),
        ("post-refresh", "2"),
        ("configure", "2"),
        ("pre-refresh", "2"),
        ("post-refresh", "4"),
        ("configure", "4"),
        ("pre-refresh", "4"),
        ("post-refresh", "5"),
        ("configure", "5"),
    ]
    inst = outcome.state.instance(NAME)
    assert inst is not None
    assert inst.revisions == ("4", "5")  # refresh.retain=2 collected 1, then 2, hop by hop
    assert outcome.discarded == ("1", "2")
    assert inst.data_of("5") == {"written-by-r1"}  # copied at every hop
    # One refresh query, then one re-refresh after each hop; the last finds R5 again.
    assert purposes(outcome) == ["assertions", "refresh", "re-refresh", "re-refresh", "re-refresh"]
    epochs = [
        str(request.context_of(NAME).epoch)  # type: ignore[union-attr]
        for request in outcome.store_requests[1:]
    ]
    assert epochs == ["0", "1*", "2*", "2"]


def test_004_new_users_get_the_latest_epoch():
    # 004: "the old epoch is invisible to new users who always get the latest epoch with a
    # fresh installation".
    store = catalog(("stable", 1, None), ("stable", 2, "1"), ("stable", 3, "0"))
    outcome = store_install(new_state(), store, NAME)
    assert current(ok(outcome)) == "2"
    assert outcome.store_requests[0].actions == (model.StoreAction("install", NAME, "stable"),)
    assert outcome.store_requests[0].context == ()


def test_004_old_epoch_users_keep_getting_epoch_0_updates():
    # 004: "You can still push updates to users of the old epoch by specifying epoch: 0".
    store = catalog(("stable", 1, None))
    state = ok(store_install(new_state(), store, NAME))
    store = store.release(NAME, "stable", 2, snap(2, "1")).release(NAME, "stable", 3, snap(3, "0"))
    outcome = refresh_all(state, store)
    assert current(ok(outcome)) == "3"
    # same epoch: one re-refresh asks again and gets R3 back: "No re-refreshes found."
    assert purposes(outcome) == ["assertions", "refresh", "re-refresh"]


def test_004_revert_across_epochs_then_refresh_all_keeps_it_refresh_name_takes_it_back():
    # 004: "You can use revert to switch back to releases from a previous epoch, discarding any
    # data changes done by the latest revision". snapd: snapmgr.go SnapState.Block (revisions
    # after current) is sent only when refreshing all (storehelpers.go), so `snap refresh`
    # (and auto-refresh) leave the reverted-from revision alone, `snap refresh NAME` takes it.
    store = catalog(("stable", 4, None))
    state = ok(store_install(new_state(), store, NAME))
    state = ok(run_app(state, NAME, "epoch-0-data"))
    store = store.release(NAME, "stable", 6, snap(6, "1*"))
    state = ok(refresh_all(state, store))
    state = ok(run_app(state, NAME, "epoch-1-data"))
    reverted = revert(state, NAME)
    state = ok(reverted)
    assert current(state) == "4" and runs(reverted) == [("configure", "4")]
    inst = state.instance(NAME)
    assert inst is not None and inst.data_of("4") == {"epoch-0-data"}  # no epoch check, no copy
    again = refresh_all(state, store)
    assert again.error == model.ExpectedError("all-up-to-date", "All snaps up to date.", 0)
    assert current(again.state) == "4"
    named = store_refresh(state, store, NAME)
    assert named.error is None and current(named.state) == "6"
    inst = named.state.instance(NAME)
    assert inst is not None and inst.data_of("6") == {"epoch-0-data"}  # R4's data copied over


# -- seed 000 #8: snap refresh --candidate bounces through a 1* ------------------------------------


def test_000_8_beta_user_refreshing_to_candidate_lands_past_the_bridge():
    # #8: "If a user is on beta (with epoch: 0) and tries to do snap refresh --candidate to
    # something that has epoch: 1 and there is an epoch: 1* somewhere in the channel history to
    # bounce through, the refresh will end up on that revision ... and then a later
    # auto-refresh (or a manual snap refresh) will get them to the wanted revision". Since 2.38
    # the re-refresh takes both hops in the one command (store.md §2, observed on 2.57).
    store = catalog(("beta", 10, None))
    state = ok(store_install(new_state(), store, NAME, channel="beta"))
    store = store.release(NAME, "candidate", 11, snap(11, "1*"))
    store = store.release(NAME, "candidate", 12, snap(12, "1"))
    outcome = store_refresh(state, store, NAME, channel="candidate")
    assert outcome.error is None and outcome.notices == ()
    inst = outcome.state.instance(NAME)
    assert inst is not None
    assert (inst.current, inst.channel) == ("12", "latest/candidate")
    assert purposes(outcome) == ["assertions", "refresh", "re-refresh", "re-refresh"]
    first = outcome.store_requests[1]
    assert first.actions == (model.StoreAction("refresh", NAME, "latest/candidate"),)
    assert first.context == (model.ContextEntry(NAME, "10", "latest/beta", E("0")),)
    # the next refresh has nothing to do
    assert refresh_all(outcome.state, store).error.message == "All snaps up to date."  # type: ignore[union-attr]


# -- seed 000 #4: a failed post-refresh and later refreshes ----------------------------------------

FAILS = ("post-refresh", "cannot migrate the qemu snapshots")


def failed_once(version: tuple[int, int], auto: bool) -> tuple[SnapdState, StoreCatalog]:
    store = catalog(("stable", 1, None))
    state = ok(store_install(new_state(version), store, NAME))
    store = store.release(NAME, "stable", 2, snap(2, None, FAILS))
    outcome = refresh_all(state, store, auto=auto)
    assert outcome.error is not None and outcome.error.kind == "hook-failed"
    assert outcome.error.message == (
        "cannot perform the following tasks:\n"
        '- Run post-refresh hook of "hookapp" snap if present '
        '(run hook "post-refresh": cannot migrate the qemu snapshots)'
    )
    assert current(outcome.state) == "1"  # rolled back
    assert purposes(outcome) == ["assertions", "refresh"]  # nothing refreshed: no re-refresh
    return outcome.state, store


@pytest.mark.parametrize("version", [(2, 57), (2, 68)])
def test_000_4_a_manual_refresh_retries_the_failed_revision(version):
    # #4: "a failure in that hook will actually mark the new snap revision as bad for that
    # system and the upgrade won't be attempted again automatically until you release a new rev
    # (although I think they can manually refresh it)". From source: an undone refresh leaves
    # nothing behind in 2.57 (handlers.go undoLinkSnap drops it from the sequence); 2.67+
    # records failures only of auto-refresh changes and skips only auto-refreshes
    # (autorefresh.go processFailedAutoRefresh, shouldSkipSnapRefresh). So `snap refresh`
    # tries R2 again, and fails again.
    state, store = failed_once(version, auto=False)
    again = refresh_all(state, store)
    assert again.error is not None and again.error.kind == "hook-failed"
    assert ("post-refresh", "2") in runs(again)
    named = store_refresh(state, store, NAME)
    assert named.error is not None and ("post-refresh", "2") in runs(named)


def test_000_4_auto_refresh_retries_on_2_57_but_backs_off_from_2_67():
    # From source: 2.57 has no record of failed refreshes, the next auto-refresh tries R2
    # again; 2.67 adds the backoff (commit dc01a39243): the failed revision is skipped by
    # auto-refreshes until the delay passes (8 h after one failure; the model has no clock).
    state, store = failed_once((2, 57), auto=True)
    assert state.instance(NAME).refresh_failure is None  # type: ignore[union-attr]
    assert ("post-refresh", "2") in runs(refresh_all(state, store, auto=True))

    state, store = failed_once((2, 68), auto=True)
    assert state.instance(NAME).refresh_failure == model.RefreshFailure("2", 1)  # type: ignore[union-attr]
    skipped = refresh_all(state, store, auto=True)
    assert skipped.error is None and skipped.hooks_run == ()
    assert "backoff" in skipped.why


def test_000_4_releasing_a_new_revision_is_taken_and_clears_the_record():
    # #4: "... until you release a new rev". From source: checkSnapRefreshFailures clears the
    # record when the target is another revision.
    state, store = failed_once((2, 68), auto=True)
    store = store.release(NAME, "stable", 3, snap(3, None))
    outcome = refresh_all(state, store, auto=True)
    assert outcome.error is None and current(outcome.state) == "3"
    assert outcome.state.instance(NAME).refresh_failure is None  # type: ignore[union-attr]


def test_000_4_a_failing_pre_refresh_is_not_counted_by_the_backoff():
    # autorefresh.go processFailedAutoRefresh counts only changes whose unlink-current-snap was
    # undone; pre-refresh runs before the unlink (snapstate.go doInstall).
    store = StoreCatalog().release(NAME, "stable", 1, snap(1, None, ("pre-refresh", "not now")))
    state = ok(store_install(new_state((2, 68)), store, NAME))
    store = store.release(NAME, "stable", 2, snap(2, None))
    outcome = refresh_all(state, store, auto=True)
    assert outcome.error is not None and runs(outcome) == [("pre-refresh", "1")]
    assert outcome.state.instance(NAME).refresh_failure is None  # type: ignore[union-attr]


# -- closed channels -------------------------------------------------------------------------------


def test_a_closed_channel_forwards_with_snapds_notice_and_a_reopen_takes_users_back():
    # snapcraft docs (facts §3): "Closed channels fall back to the next less risky channel".
    # cmd/snap/cmd_snap_op.go showDone prints "Channel %s for %s is closed; temporarily
    # forwarding to %s." when the tracking channel and the revision's channel differ in risk;
    # snapd keeps tracking what was asked (handlers.go doLinkSnap).
    store = catalog(("stable", 1, None), ("candidate", 2, None))
    state = ok(store_install(new_state(), store, NAME, channel="candidate"))
    store = store.close(NAME, "candidate")
    forwarded = refresh_all(state, store)
    assert forwarded.error is None
    inst = forwarded.state.instance(NAME)
    assert inst is not None
    assert (inst.current, inst.channel, inst.current_revision.channel) == (
        "1",
        "latest/candidate",
        "stable",
    )
    assert forwarded.notices == (
        "Channel latest/candidate for hookapp is closed; temporarily forwarding to stable.",
    )
    store = store.release(NAME, "candidate", 3, snap(3, None))
    back = refresh_all(forwarded.state, store)
    assert current(ok(back)) == "3" and back.notices == ()


def test_installing_from_a_closed_channel_prints_the_notice_too():
    store = catalog(("stable", 1, None))
    outcome = store_install(new_state(), store, NAME, channel="edge")
    assert outcome.state.instance(NAME).channel == "latest/edge"  # type: ignore[union-attr]
    assert outcome.notices == (
        "Channel latest/edge for hookapp is closed; temporarily forwarding to stable.",
    )


# -- the store requests snapd sends ----------------------------------------------------------------


def test_every_store_instance_is_in_the_context_and_sideloads_are_not():
    # store_action.go / storehelpers.go collectCurrentSnaps: every instance with a snap-id.
    store = catalog(("stable", 1, None))
    state = ok(set_config(new_state(), "experimental.parallel-instances", "true"))
    state = ok(store_install(state, store, NAME))
    state = ok(store_install(state, store, f"{NAME}_two", channel="candidate"))
    state = ok(model.install(state, SnapFile("other", "1.0")))
    outcome = store_install(state, store, f"{NAME}_three")
    request = outcome.store_requests[0]
    assert [entry.instance for entry in request.context] == [NAME, f"{NAME}_two"]
    assert request.context_of(f"{NAME}_two").tracking_channel == "latest/candidate"  # type: ignore[union-attr]
    one = store_refresh(outcome.state, store, NAME)
    assert one.store_requests[0].assertions_for == (NAME, f"{NAME}_three", f"{NAME}_two")
    assert len(one.store_requests[1].context) == 3


@pytest.mark.parametrize(("version", "channel"), [((2, 57), None), ((2, 68), "latest/stable")])
def test_refresh_all_sends_the_tracking_channel_from_2_65(version, channel):
    # 2.57 storehelpers.go refreshCandidates: refresh actions without channel; from 2.65
    # target.go completeStoreAction sets the tracking channel.
    store = catalog(("stable", 1, None))
    state = ok(store_install(new_state(version), store, NAME))
    outcome = refresh_all(state, store)
    assert outcome.store_requests[1].actions == (model.StoreAction("refresh", NAME, channel),)


def test_refresh_revision_sends_the_revision_only():
    store = catalog(("stable", 1, None), ("edge", 2, None))
    state = ok(store_install(new_state(), store, NAME))
    outcome = store_refresh(state, store, NAME, revision="2")
    assert outcome.error is None and current(outcome.state) == "2"
    assert outcome.store_requests[1].actions == (model.StoreAction("refresh", NAME, None, "2"),)
    assert outcome.state.instance(NAME).channel == "latest/stable"  # type: ignore[union-attr]


def test_nothing_is_asked_of_the_store_without_store_snaps():
    state = ok(model.install(new_state(), SnapFile(NAME, "1.0")))
    outcome = refresh_all(state, StoreCatalog())
    assert outcome.store_requests == ()
    assert outcome.error == model.ExpectedError("all-up-to-date", "All snaps up to date.", 0)


# -- snapd's messages ------------------------------------------------------------------------------


def test_install_of_an_unknown_snap():
    # store name-not-found -> store.ErrSnapNotFound -> cmd/snap/error.go `snap %q not found`
    outcome = store_install(new_state(), StoreCatalog(), "nosuch")
    assert outcome.error == model.ExpectedError("snap-not-found", 'snap "nosuch" not found')
    assert len(outcome.store_requests) == 1


def test_install_from_a_channel_with_nothing_lists_the_open_ones():
    # revision-not-found with extra.releases (the served store sends the open channels) ->
    # daemon/errors.go SnapRevisionNotAvailable kind snap-channel-not-available ->
    # cmd/snap/error.go snapRevisionNotAvailableMessage, "architecture:track" case.
    store = catalog(("edge", 1, None))
    outcome = store_install(new_state(), store, NAME, channel="stable")
    assert outcome.error is not None and outcome.error.kind == "channel-not-available"
    assert outcome.error.message == (
        'snap "hookapp" is not available on stable but is available to install on the '
        "following channels:\n"
        "  edge       snap install --edge hookapp\n"
        "\n"
        "Please be mindful pre-release channels may include features not completely tested or "
        "implemented.\n"
        "Get more information with 'snap info hookapp'."
    )


def test_refresh_when_nothing_is_open():
    # revision-not-found without releases -> kind snap-revision-not-available.
    store = catalog(("stable", 1, None))
    state = ok(store_install(new_state(), store, NAME))
    store = store.close(NAME, "stable")
    plain = store_refresh(state, store, NAME)
    assert plain.error is not None
    assert (
        plain.error.message
        == "snap \"hookapp\" not available as specified (see 'snap info hookapp')"
    )
    on_edge = store_refresh(state, store, NAME, channel="edge")
    assert on_edge.error is not None
    assert on_edge.error.message == (
        'snap "hookapp" not available on channel "edge" (see \'snap info hookapp\')'
    )
    missing = store_refresh(state, store, NAME, revision="9")
    assert missing.error is not None
    assert (
        missing.error.message
        == "snap \"hookapp\" revision 9 not available (see 'snap info hookapp')"
    )


def test_refresh_with_nothing_new_is_exit_0_and_a_channel_switch_is_not():
    # store_action.go: the installed revision is ErrNoUpdateAvailable; cmd/snap/error.go prints
    # `snap %q has no updates available` with exit 0; snapstate.go Update still switches
    # tracking with switch-snap-channel when --channel asks for another one.
    store = catalog(("stable", 1, None))
    state = ok(store_install(new_state(), store, NAME))
    same = store_refresh(state, store, NAME)
    assert same.error == model.ExpectedError(
        "no-update", 'snap "hookapp" has no updates available', 0
    )
    switched = store_refresh(state, store, NAME, channel="beta")
    assert switched.error is None and switched.notices == ()
    inst = switched.state.instance(NAME)
    assert inst is not None
    assert (inst.channel, inst.current_revision.channel) == ("latest/beta", "latest/beta")


def test_a_store_offering_an_unreadable_revision_is_refused_before_download():
    # store.md §2: "A store that reports an epoch the installed revision cannot read is refused
    # BEFORE download (earlyEpochCheck)"; refreshing all, snapd skips the snap (logs it).
    store = catalog(("stable", 1, None), ("edge", 3, "1"))
    state = ok(store_install(new_state(), store, NAME))
    liar = offering(store, NAME, 3)
    one = store_refresh(state, store, NAME, store=liar)
    assert one.error is not None and one.error.message == (
        'cannot refresh "hookapp": cannot refresh "hookapp" to new revision 3 with epoch 1, '
        "because it can't read the current epoch of 0"
    )
    assert one.state == state and one.hooks_run == ()
    every = refresh_all(state, store, store=liar)
    assert every.error == model.ExpectedError("all-up-to-date", "All snaps up to date.", 0)


@pytest.mark.parametrize(
    ("version", "summary"),
    [
        ((2, 57), 'Handling re-refresh of "hookapp" as needed'),
        (
            (2, 68),
            'Monitoring snap "hookapp" to determine whether extra refresh steps are required',
        ),
    ],
)
def test_an_unreadable_re_refresh_answer_fails_the_check_rerefresh_task(version, summary):
    # handlers.go doCheckReRefresh -> updateManyFiltered with names: an earlyChecks error is
    # the task's error; the hop before stays (another lane). From source.
    store = catalog(("stable", 1, None))
    state = ok(store_install(new_state(version), store, NAME))
    store = store.release(NAME, "stable", 2, snap(2, "1*")).release(NAME, "edge", 3, snap(3, "2"))

    def liar(request):
        results = store.answer(request)
        if request.purpose == "re-refresh":
            return offering(store, NAME, 3)(request)
        return results

    outcome = refresh_all(state, store, store=liar)
    assert current(outcome.state) == "2"
    assert outcome.error is not None and outcome.error.message == (
        f'cannot perform the following tasks:\n- {summary} (cannot refresh "hookapp" to new '
        "revision 3 with epoch 2, because it can't read the current epoch of 1*)"
    )


def test_install_of_an_instance_asks_the_store_before_the_parallel_instances_refusal():
    # snapstate.go InstallWithDeviceContext: installInfo (the store) before
    # ensureInstallPreconditions (validateFeatureFlags).
    store = catalog(("stable", 1, None))
    outcome = store_install(new_state(), store, f"{NAME}_two")
    assert len(outcome.store_requests) == 1
    assert outcome.error is not None and outcome.error.message == (
        'cannot install "hookapp_two": experimental feature disabled - test it by setting '
        "'experimental.parallel-instances' to true"
    )


def test_install_of_an_installed_snap_asks_nothing():
    store = catalog(("stable", 1, None))
    state = ok(store_install(new_state(), store, NAME))
    again = store_install(state, store, NAME)
    assert again.error == model.ExpectedError(
        "already-installed", "snap \"hookapp\" is already installed, see 'snap help refresh'", 0
    )
    assert again.store_requests == ()


def test_switch_changes_tracking_only_and_the_next_refresh_follows_it():
    # snapstate.go Switch / handlers.go doSwitchSnap; cmd_snap_op.go showDone "switch".
    store = catalog(("stable", 1, None), ("beta", 2, None))
    state = ok(store_install(new_state(), store, NAME))
    switched = switch_channel(state, NAME, "beta")
    assert switched.notices == ('"hookapp" switched to the "latest/beta" channel',)
    assert current(switched.state) == "1" and switched.store_requests == ()
    assert current(ok(refresh_all(switched.state, store))) == "2"
    assert switch_channel(new_state(), NAME, "beta").error == model.ExpectedError(
        "not-installed", 'snap "hookapp" is not installed'
    )


def test_a_sideloaded_snap_is_still_unknown_to_the_store():
    state = ok(model.install(new_state(), SnapFile(NAME, "1.0")))
    outcome = store_refresh(state, StoreCatalog(), NAME)
    assert outcome.error is not None and outcome.error.kind == "local-snap-unknown-to-store"
    assert outcome.store_requests == ()


def test_remove_works_on_store_revisions_as_on_local_ones():
    # snapstate.go removeTasks / removeInactiveRevision: revisions are revisions, wherever from.
    store = catalog(("stable", 1, None))
    state = ok(store_install(new_state(), store, NAME))
    store = store.release(NAME, "stable", 2, snap(2, None))
    state = ok(refresh_all(state, store))
    refused_current = model.remove(state, NAME, revision="2")
    assert refused_current.error is not None and refused_current.error.message == (
        'cannot remove "hookapp": cannot remove active revision 2 of snap "hookapp" (revert first?)'
    )
    one = model.remove(state, NAME, revision="1")
    assert one.error is None and one.state.instance(NAME).revisions == ("2",)  # type: ignore[union-attr]
    gone = model.remove(one.state, NAME)
    assert gone.state.instance(NAME) is None
    again = store_install(gone.state, store, NAME)
    assert current(ok(again)) == "2" and again.state.instance(NAME).channel == "latest/stable"  # type: ignore[union-attr]


def test_a_store_install_and_refresh_keep_what_their_hooks_read_of_the_configuration():
    """The store path runs the same install and refresh changes as a sideload (snapstate.go
    doInstall), so the configuration its hooks read is predicted too (found by the store state
    machine on lxd://, 2.57.6: an install hook's `snapctl get k` went unpredicted)."""

    def reading(revision: int) -> SnapFile:
        hooks = (
            HookPlan("install", reads_config=("k",)),
            HookPlan("post-refresh", reads_config=("k",)),
        )
        return SnapFile(NAME, f"{revision}.0", epoch_yaml="0", hooks=hooks)

    first = StoreCatalog().release(NAME, "stable", 1, reading(1))
    installed = store_install(new_state(), first, NAME)
    assert [(r.hook, r.key, r.value) for r in installed.config_reads] == [("install", "k", "")]
    second = first.release(NAME, "stable", 2, reading(2))
    refreshed = store_refresh(installed.state, second, NAME)
    assert refreshed.error is None
    assert [(r.hook, r.revision, r.key) for r in refreshed.config_reads] == [
        ("post-refresh", "2", "k")
    ]

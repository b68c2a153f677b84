"""Host steps snapd must cope with (issue 9): an app of the snap still running during a remove
or a refresh, and something already where a first install mounts its revision; checked
against model/snapd_hoststeps.py on every release."""

from __future__ import annotations

import shlex
from collections.abc import Iterator

import pytest

from snapconform.conformance.operations import InstallFile, Remove
from snapconform.conformance.ops_host import (
    InstallBlocked,
    InstallIgnoringRunning,
    RemoveTerminate,
    WhileAppRuns,
    leftover_script,
    release_held_apps,
)
from snapconform.model import snapd_hoststeps as hoststeps
from snapconform.model.snapd import HookPlan, SnapFile

pytestmark = pytest.mark.conformance


@pytest.fixture
def held_apps(conformance) -> Iterator[None]:
    """Whatever a failing step left running is killed by its PID at the end."""
    yield
    if conformance.session.shell is not None:
        release_held_apps(conformance.session.shell)


def test_remove_while_app_runs(conformance, names, held_apps):
    name = names.fresh()
    hooks = (HookPlan("remove"),)
    conformance.run(
        [
            InstallFile(SnapFile(name, "1.0", hooks=hooks)),
            InstallFile(SnapFile(name, "2.0", hooks=hooks)),
            # x1 is inactive: removed, the app (running from x2) untouched.
            WhileAppRuns(Remove(name, revision="x1"), marker="held1"),
            # x2 is the active one: the usual refusal (2.71+: the only revision goes whole).
            WhileAppRuns(Remove(name, revision="x2"), marker="held2"),
        ]
    )
    if conformance.state.instance(name) is not None:
        # A full remove while the app runs: not refused, the busy mount goes lazily.
        conformance.step(WhileAppRuns(Remove(name), marker="held3"))
    # Not predicted (snapd_hoststeps.while_app_runs): the held app's line, for the history.
    assert conformance.history[-1].observed_output.startswith("held app: ")


def test_refresh_while_app_runs(conformance, names, held_apps):
    name = names.fresh()
    conformance.run(
        [
            InstallFile(SnapFile(name, "1.0", hooks=(HookPlan("post-refresh"),))),
            # refresh-app-awareness refuses the manual refresh: nothing changes.
            WhileAppRuns(InstallFile(SnapFile(name, "2.0", hooks=(HookPlan("post-refresh"),)))),
            # Once the app is gone the same refresh goes through.
            InstallFile(SnapFile(name, "2.0", hooks=(HookPlan("post-refresh"),))),
            Remove(name),
        ]
    )


def test_refresh_ignoring_the_running_app_then_remove_its_revision(conformance, names, held_apps):
    name = names.fresh()
    conformance.run(
        [
            InstallFile(SnapFile(name, "1.0", hooks=(HookPlan("post-refresh"),))),
            # --ignore-running refreshes to x2 (the FIFO copied with x1's data) while x1's app
            # runs; then x1 itself goes, its mount detached lazily, and the app runs on.
            WhileAppRuns(
                InstallIgnoringRunning(SnapFile(name, "2.0", hooks=(HookPlan("post-refresh"),))),
                then=(Remove(name, revision="x1"),),
            ),
            Remove(name),
        ]
    )


def test_remove_terminate_while_app_runs(conformance, names, held_apps):
    name = names.fresh()
    conformance.run(
        [
            InstallFile(SnapFile(name, "1.0", hooks=(HookPlan("remove"),))),
            InstallFile(SnapFile(name, "2.0", hooks=(HookPlan("remove"),))),
            # The daemon takes --terminate for a whole snap only.
            WhileAppRuns(RemoveTerminate(name, revision="x1"), marker="held1"),
            # 2.65+ kills the app and removes the snap; 2.57's CLI does not know the flag.
            WhileAppRuns(RemoveTerminate(name), marker="held2"),
        ]
    )
    if conformance.state.instance(name) is not None:
        conformance.step(Remove(name))


@pytest.mark.parametrize("blocker", hoststeps.BLOCKERS)
def test_install_over_blocked_mount_point(conformance, names, blocker):
    name = names.fresh()
    conformance.run([InstallBlocked(SnapFile(name, "1.0", hooks=(HookPlan("install"),)), blocker)])
    shell = conformance.session.shell
    if conformance.state.instance(name) is None:
        # Undone; try again with the way clear: nothing of the failed try is in the way.
        conformance.run([InstallFile(SnapFile(name, "1.0")), Remove(name)])
        return
    conformance.step(Remove(name))
    left = shell.run(leftover_script(name), timeout=60).output.strip()
    assert left == f"left at /snap/{name}: {hoststeps.after_remove_leftover(blocker)}"
    shell.run(f"rm -rf -- {shlex.quote(f'/snap/{name}')}", timeout=60)


@pytest.mark.parametrize("blocker", [hoststeps.FILE_AT_REVISION, hoststeps.DIR_WITH_FILE])
def test_refresh_over_blocked_mount_point(conformance, names, blocker):
    name = names.fresh()
    hooks = (HookPlan("pre-refresh"), HookPlan("post-refresh"))
    conformance.run(
        [
            InstallFile(SnapFile(name, "1.0", hooks=hooks)),
            InstallBlocked(SnapFile(name, "2.0", hooks=hooks), blocker, revision="x2"),
            # After an undone refresh the way is clear; after one over the directory, x3.
            InstallFile(SnapFile(name, "3.0", hooks=hooks)),
            Remove(name),
        ]
    )
    left = conformance.session.shell.run(leftover_script(name), timeout=60).output.strip()
    assert left == f"left at /snap/{name}: -"

"""Users' data on real snapd: ~USER/snap/NAME/REV, common and `current`, for root and a user
with a home under /home; a user whose home is elsewhere (the epochs page: "snapd does not
track ... whether a user's home directory is still accessible, or even if a user's home
directory is located in /home/<user>"); the `homedirs` system option; parallel instances;
and what an app is told (SNAP_*, HOME, XDG_RUNTIME_DIR). Every step is compared with
model/snapd_userdata.py: each user's dirs, markers and `current` link after it.
"""

from __future__ import annotations

import pytest

from snapconform.conformance.operations import InstallFile, Remove, Revert, RunApp, SetSystem
from snapconform.conformance.ops_userdata import (
    ELSEWHERE_USER,
    HOME_USER,
    AddUser,
    RunAppAs,
    RunEnv,
)
from snapconform.model.snapd import HookPlan, SnapFile
from snapconform.model.snapd_userdata import HOMEDIRS_COPY_SINCE, HOMEDIRS_SINCE

pytestmark = pytest.mark.conformance

HOME = HOME_USER[0]
AWAY = ELSEWHERE_USER[0]


def test_user_data_is_copied_on_refresh_left_on_revert_dropped_on_rollback(conformance, names):
    name = names.fresh()
    conformance.run(
        [
            AddUser(*HOME_USER),
            InstallFile(SnapFile(name, "1.0")),  # no hooks: nobody's ~/snap/NAME yet
            RunAppAs(HOME, name, "u1"),  # ~/snap/NAME/x1, common, current -> x1
            RunAppAs("root", name, "r1"),
            InstallFile(SnapFile(name, "2.0")),  # x1 copied to x2 for both; links stay at x1
            RunAppAs(HOME, name, "u2"),  # current -> x2
            Revert(name),  # nothing copied, the user's current stays at x2
            RunAppAs(HOME, name, "u3"),  # x1 again: current -> x1
            # post-refresh fails in x3: the refresh is undone and x3's user dirs go, but root's
            # current stays where the hook's `snap run` pointed it (x3, dangling)
            InstallFile(SnapFile(name, "3.0", hooks=(HookPlan("post-refresh", "no"),))),
            RunApp(name, "s1"),  # root again, in x1
            Remove(name),  # 2.57: the current links stay; 2.62+: ~/snap/NAME goes
        ]
    )


def test_a_home_outside_home_per_release(conformance, names):
    """A user whose home is /srv/home/...: snap-confine refuses to run the app there, snapd
    never copies or removes that data; from 2.58 `homedirs` lets the app run, from 2.62 the
    copy on refresh and the removal glob it too."""
    name = names.fresh()
    version = conformance.session.snapd_version
    conformance.run(
        [
            AddUser(*HOME_USER),
            AddUser(*ELSEWHERE_USER),
            InstallFile(SnapFile(name, "1.0")),
            RunAppAs(AWAY, name, "o1"),  # snap run makes the dirs, snap-confine refuses
            RunAppAs(HOME, name, "u1"),
            SetSystem("homedirs", "/srv/home"),  # refused before 2.58
            RunAppAs(AWAY, name, "o2"),  # runs from 2.58
            InstallFile(SnapFile(name, "2.0")),  # copies the away user's x1 from 2.62 only
            RunAppAs(AWAY, name, "o3"),
            SetSystem("homedirs", ""),
            Remove(name),  # the away home is not globbed any more: its data stays
        ]
    )
    seen = {d.user: d for d in conformance.last_observation.instance(name).user_data}
    assert AWAY in seen  # snapd left it: it does not know that home
    if version < HOMEDIRS_SINCE:
        assert seen[AWAY].revisions == (("x1", frozenset()), ("x2", frozenset()))
    elif version >= HOMEDIRS_COPY_SINCE:
        assert dict(seen[AWAY].revisions)["x2"] == {"o2", "o3"}


def test_parallel_instances_have_their_own_user_dirs(conformance, names):
    name = names.fresh()
    keyed = f"{name}_k1"
    conformance.run(
        [
            SetSystem("experimental.parallel-instances", "true"),
            AddUser(*HOME_USER),
            InstallFile(SnapFile(name, "1.0")),
            InstallFile(SnapFile(name, "1.0"), name=keyed),
            RunAppAs(HOME, name, "plain"),
            RunAppAs(HOME, keyed, "keyed"),  # ~/snap/NAME_k1 on the host
            InstallFile(SnapFile(name, "2.0"), name=keyed),  # copies NAME_k1's only
            RunAppAs(HOME, keyed, "keyed2"),
            RunEnv(HOME, keyed),
            Remove(keyed),
            Remove(name),
        ]
    )


def test_the_environment_an_app_is_given(conformance, names):
    name = names.fresh()
    conformance.run(
        [
            AddUser(*HOME_USER),
            InstallFile(SnapFile(name, "1.0")),
            RunEnv("root", name),
            RunEnv(HOME, name),
            InstallFile(SnapFile(name, "2.0")),
            RunEnv(HOME, name),
        ]
    )

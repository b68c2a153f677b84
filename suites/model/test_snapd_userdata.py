"""The users'-data model (model/snapd_userdata.py) against snapd's source and real runs.

Each test names the snapd function whose rule it checks (canonical/snapd at 2.57.6, 2.68.3,
2.77.1) or the run that showed it ("observed": nspawn bookworm/trixie/sid, session 2).
"""

from __future__ import annotations

from snapconform.model import snapd_userdata as userdata
from snapconform.model.snapd import (
    HookPlan,
    SnapdState,
    SnapFile,
    add_user,
    install,
    new_state,
    refresh_revision,
    remove,
    revert,
    run_app,
    run_app_as,
    run_env,
    set_config,
)

NAME = "ud"
HOME = ("u1", "/home/u1", 2001)
AWAY = ("u2", "/srv/home/u2", 2002)


def ok(outcome) -> SnapdState:
    assert outcome.error is None, outcome.error
    return outcome.state


def with_users(version: tuple[int, int] = (2, 57)) -> SnapdState:
    return ok(add_user(ok(add_user(new_state(version), *HOME)), *AWAY))


def dirs(state: SnapdState, user: str, instance: str = NAME):
    d = userdata.user_dir(state, user, instance)
    return dict(d.revisions), d.common, d.current


def test_snap_run_makes_rev_common_and_current_for_its_user() -> None:
    """cmd/snap/cmd_run.go createUserDataDirs + createOrUpdateUserDataSymlink."""
    state = ok(install(with_users(), SnapFile(NAME, "1.0")))
    assert dirs(state, "root") == ({}, None, None)  # no hook ran (observed: nothing there)
    state = ok(run_app_as(state, "u1", NAME, "m"))
    assert dirs(state, "u1") == ({"x1": {"m"}}, {"m"}, "x1")
    assert dirs(state, "root") == ({}, None, None)


def test_hooks_make_roots_dirs() -> None:
    """Hooks run as root through `snap run --hook` (observed: /root/snap/NAME after install)."""
    state = ok(install(new_state(), SnapFile(NAME, "1.0", hooks=(HookPlan("configure"),))))
    assert dirs(state, "root") == ({"x1": frozenset()}, frozenset(), "x1")


def test_refresh_copies_found_users_old_dir_and_leaves_links() -> None:
    """backend/snapdata.go copySnapData over snapDataDirs: /home/* and /root only (2.57)."""
    state = ok(install(with_users(), SnapFile(NAME, "1.0")))
    state = ok(run_app_as(state, "u1", NAME, "m"))
    state, error = userdata.run_as(state, "u2", NAME, "x1", "o")
    assert error is not None  # snap-confine refuses, the dirs are made anyway
    state = ok(install(state, SnapFile(NAME, "2.0")))
    assert dirs(state, "u1") == ({"x1": {"m"}, "x2": {"m"}}, {"m"}, "x1")  # current stays
    assert dirs(state, "u2") == ({"x1": frozenset()}, frozenset(), "x1")  # not globbed


def test_revert_copies_nothing() -> None:
    """snapstate.go RevertToRevision: no copy-snap-data task."""
    state = ok(install(with_users(), SnapFile(NAME, "1.0")))
    state = ok(install(state, SnapFile(NAME, "2.0")))
    state = ok(run_app_as(state, "u1", NAME, "m2"))
    state = ok(revert(state, NAME))
    assert dirs(state, "u1") == ({"x2": {"m2"}}, {"m2"}, "x2")


def test_rollback_removes_the_new_dirs_but_not_roots_link() -> None:
    """backend/copydata.go UndoCopySnapData -> RemoveSnapData; the link is snap run's
    (observed on 2.57.6: /root/snap/NAME/current -> x3 after the undone refresh to x3)."""
    state = ok(install(with_users(), SnapFile(NAME, "1.0")))
    state = ok(run_app_as(state, "u1", NAME, "m"))
    outcome = install(state, SnapFile(NAME, "2.0", hooks=(HookPlan("post-refresh", "no"),)))
    assert outcome.error is not None
    assert dirs(outcome.state, "u1") == ({"x1": {"m"}}, {"m"}, "x1")
    assert dirs(outcome.state, "root") == ({}, frozenset(), "x2")


def test_rollback_onto_a_present_revision_puts_the_users_trash_back() -> None:
    """copySnapDataDirectory trashes the target first; untrashData puts it back."""
    state = ok(
        install(with_users(), SnapFile(NAME, "1.0", hooks=(HookPlan("post-refresh", "no"),)))
    )
    state = ok(run_app_as(state, "u1", NAME, "a"))
    state = ok(install(state, SnapFile(NAME, "2.0")))
    state = ok(run_app_as(state, "u1", NAME, "b"))
    outcome = refresh_revision(state, NAME, "x1")  # x1's post-refresh fails
    assert outcome.error is not None
    assert dirs(outcome.state, "u1")[0] == {"x1": {"a"}, "x2": {"a", "b"}}


def test_full_remove_keeps_links_before_2_62_and_not_after() -> None:
    """backend/snapdata.go RemoveSnapDataDir with snapBaseDataDirs (2.62, commit bc7f9eccc2);
    observed: bookworm leaves `current`, trixie and sid leave nothing."""
    for version, link in (((2, 57), "x1"), ((2, 68), None)):
        state = ok(install(with_users(version), SnapFile(NAME, "1.0")))
        state = ok(run_app_as(state, "u1", NAME, "m"))
        state = ok(remove(state, NAME))
        assert dirs(state, "u1") == ({}, None, link)


def test_home_outside_home_texts_per_release() -> None:
    """cmd/snap-confine/user-support.c setup_user_data (2.57.6, 2.59+ wording, 2.72 link)."""
    texts = {
        version: userdata.run_as(with_users(version), "u2", NAME, "x1", None)[1]
        for version in ((2, 57), (2, 68), (2, 77))
    }
    assert texts[(2, 57)].message.startswith("Sorry, home directories outside of /home are not")
    assert "forum.snapcraft.io/t/11209" in texts[(2, 68)].message
    assert "needs configuration" in texts[(2, 68)].message
    assert "snapcraft.io/docs/home-outside-home" in texts[(2, 77)].message


def test_homedirs_option_per_release() -> None:
    """configcore/homedirs.go (2.58+): refused before; validated; copies glob it from 2.62."""
    refused = set_config(with_users((2, 57)), "homedirs", "/srv/home")
    assert refused.error is not None and "unsupported system option" in refused.error.message
    relative = set_config(with_users((2, 68)), "homedirs", "rel")
    assert relative.error is not None and 'path "rel" is not absolute' in relative.error.message
    reserved = set_config(with_users((2, 68)), "homedirs", "/etc/x")
    assert reserved.error is not None
    assert 'path "/etc/x/" uses reserved root directory "/etc/"' in reserved.error.message
    state = ok(set_config(with_users((2, 68)), "homedirs", "/srv/home"))
    state = ok(install(state, SnapFile(NAME, "1.0")))
    state = ok(run_app_as(state, "u2", NAME, "o"))
    state = ok(install(state, SnapFile(NAME, "2.0")))
    assert dirs(state, "u2")[0] == {"x1": {"o"}, "x2": {"o"}}


def test_garbage_collection_removes_users_dirs() -> None:
    """snapstate discard-snap -> RemoveSnapData for each found user."""
    state = ok(install(with_users(), SnapFile(NAME, "1.0")))
    state = ok(run_app_as(state, "u1", NAME, "m"))
    state = ok(install(state, SnapFile(NAME, "2.0")))
    state = ok(install(state, SnapFile(NAME, "3.0")))  # retain 2: x1 goes
    assert set(dirs(state, "u1")[0]) == {"x2", "x3"}


def test_environment_names_the_instance_for_user_dirs() -> None:
    """snap/snapenv/snapenv.go: HOME is SNAP_USER_DATA; XDG_RUNTIME_DIR /run/user/UID/snap.I;
    SNAP_UID from 2.60 (observed on trixie), SNAP_APP_NAME on 2.77 (observed on sid)."""
    state = ok(install(with_users((2, 68)), SnapFile(NAME, "1.0")))
    env = dict(run_env(state, "u1", NAME).env)
    assert env["HOME"] == env["SNAP_USER_DATA"] == "/home/u1/snap/ud/x1"
    assert env["XDG_RUNTIME_DIR"] == "/run/user/2001/snap.ud"
    assert env["SNAP_UID"] == "2001" and env["SNAP_APP_NAME"] is None
    root_env = dict(run_env(ok(run_app(state, NAME, "r")), "root", NAME).env)
    assert root_env["SNAP_USER_COMMON"] == "/root/snap/ud/common"

"""State-machine rules for users' data and a snap's configuration.

`UserDataRules` is mixed into conformance.machine.SnapdMachine (it uses the machine's `do`,
`installed`, `pick_instance`, `recorder` and `state`). Its rules add the host user with a home
under /home (and sometimes the one outside /home), run the fixture app as one of them or root
(`run-as-user`: the marker lands in that user's ~/snap/INSTANCE/REV and common), print the
app's environment, and `snap set NAME KEY=...` (`set-config`; the generated configure hooks may
read `k` and refuse a value starting with "bad"; the dotted keys under `d` may meet a value
that is not a map). Every rule counts a coverage label.
"""

from __future__ import annotations

from typing import Any

from hypothesis import strategies as st
from hypothesis.stateful import precondition, rule

from snapconform.conformance.ops_config import SetSnapConfig
from snapconform.conformance.ops_userdata import (
    ELSEWHERE_USER,
    HOME_USER,
    AddUser,
    RunAppAs,
    RunEnv,
)
from snapconform.model import snapd as model
from snapconform.model import snapd_userdata as userdata

CONFIG_VALUES = ("one", "two", "7", "bad1")
# k is what the generated configure hooks read; d and its subkeys are maps or not
CONFIG_KEYS = ("k", "d.x", "d", "d.x.y")
USERS = ("home", "away", "root")


class UserDataRules:
    """Rules on users' data and configuration (see the module doc)."""

    recorder: Any
    state: model.SnapdState
    do: Any
    installed: Any
    pick_instance: Any
    any_installed: Any

    def _user(self, who: str) -> str:
        """The user named by ``who`` (home, away, root), root until it has been added."""
        wanted = {"home": HOME_USER[0], "away": ELSEWHERE_USER[0]}.get(who, "root")
        return wanted if userdata.account(self.state, wanted) is not None else "root"

    @precondition(lambda self: len(self.state.users) < 2)
    @rule(away=st.booleans())
    def add_user(self, away: bool) -> None:
        user = ELSEWHERE_USER if away and self.state.users else HOME_USER
        if userdata.account(self.state, user[0]) is not None:
            user = HOME_USER if user == ELSEWHERE_USER else ELSEWHERE_USER
        self.recorder.count(
            "add-user (home outside /home)" if user == ELSEWHERE_USER else "add-user"
        )
        self.do(AddUser(*user))

    @precondition(lambda self: self.any_installed())
    @rule(index=st.integers(0, 1), who=st.sampled_from(USERS), marker=st.sampled_from(("u1", "u2")))
    def run_as_user(self, index: int, who: str, marker: str) -> None:
        instance = self.pick_instance(index, installed=True)
        assert instance is not None
        user = self._user(who)
        label = {
            "root": "run-as-user (root)",
            ELSEWHERE_USER[0]: "run-as-user (home outside /home)",
        }
        self.recorder.count(label.get(user, "run-as-user"))
        self.do(RunAppAs(user, instance, marker))

    @precondition(lambda self: self.any_installed())
    @rule(index=st.integers(0, 1), who=st.sampled_from(USERS))
    def run_env(self, index: int, who: str) -> None:
        instance = self.pick_instance(index, installed=True)
        assert instance is not None
        user = self._user(who)
        self.recorder.count("app environment")
        self.do(RunEnv(user, instance))

    @precondition(lambda self: self.any_installed())
    @rule(
        index=st.integers(0, 1),
        key=st.sampled_from(CONFIG_KEYS),
        value=st.sampled_from(CONFIG_VALUES),
    )
    def set_config(self, index: int, key: str, value: str) -> None:
        instance = self.pick_instance(index, installed=True)
        assert instance is not None
        self.recorder.count("set-config" if "." not in key else "set-config (dotted key)")
        self.do(SetSnapConfig(instance, ((key, value),)))
        record = self.run.history[-1]  # type: ignore[attr-defined]
        if record.expected_kind == "hook-failed":
            self.recorder.count("set-config refused by the configure hook")
        elif record.expected_kind == "not-a-map":
            self.recorder.count("set-config through a value that is not a map")

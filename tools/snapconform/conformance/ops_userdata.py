"""Operations on users' data: a host user, the fixture app run as a user, its environment.

`AddUser` makes an account on the host (useradd, not snapd: the model learns where the home
is); `RunAppAs` runs `snap run INSTANCE.mark --user MARKER` as that user (the marker lands in
$SNAP_USER_DATA and $SNAP_USER_COMMON); `RunEnv` runs `snap run INSTANCE.mark --env-all` and
its output is compared with the environment the model predicts. The homedirs system option is
`SetSystem("homedirs", ...)`.
"""

from __future__ import annotations

import shlex
import time
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import ClassVar

from snapconform.conformance.operations import (
    FileLocator,
    Operation,
    register_operation,
)
from snapconform.harness.operations import SnapClient, SnapCommandResult
from snapconform.model import snapd as model

# The accounts the suites use: a home under /home, and one outside it (the epochs page's
# "a user's home directory is located in /home/<user>").
HOME_USER = ("scu-home", "/home/scu-home", 2001)
ELSEWHERE_USER = ("scu-away", "/srv/home/scu-away", 2002)


def _user_command(user: str, argv: list[str]) -> str:
    if user != "root":
        argv = ["runuser", "-u", user, "--", *argv]
    return shlex.join(argv)


@dataclass(frozen=True)
class AddUser(Operation):
    """`useradd --create-home --home-dir HOME --uid UID USER` unless USER exists (users stay on
    the host for the session; the same name always gets the same home)."""

    kind: ClassVar[str] = "add-user"
    user: str
    home: str
    uid: int

    def predict(self, state: model.SnapdState, locate: FileLocator) -> model.Outcome:
        return model.add_user(state, self.user, self.home, self.uid)

    def _script(self) -> str:
        parent = str(PurePosixPath(self.home).parent)
        create = shlex.join(
            ["useradd", "--create-home", "--home-dir", self.home, "--uid", str(self.uid), self.user]
        )
        known = shlex.join(["getent", "passwd", self.user])
        return f"{known} >/dev/null || {{ mkdir -p {shlex.quote(parent)} && {create}; }}"

    def perform(self, client: SnapClient, locate: FileLocator) -> SnapCommandResult:
        started = time.monotonic()
        result = client.shell.run(self._script() + " 2>&1", timeout=60)
        return SnapCommandResult(
            ("useradd", self.user),
            result.exit_code,
            result.output,
            time.monotonic() - started,
        )

    def shell(self, locate: FileLocator) -> str:
        return self._script()


@dataclass(frozen=True)
class RunAppAs(Operation):
    """`snap run INSTANCE.mark --user MARKER` as USER: MARKER in its ~/snap/INSTANCE/REV and
    ~/snap/INSTANCE/common."""

    kind: ClassVar[str] = "run-app-as"
    user: str
    instance: str
    marker: str = "u1"

    def predict(self, state: model.SnapdState, locate: FileLocator) -> model.Outcome:
        return model.run_app_as(state, self.user, self.instance, self.marker)

    def _argv(self) -> list[str]:
        return ["snap", "run", f"{self.instance}.mark", "--user", self.marker]

    def perform(self, client: SnapClient, locate: FileLocator) -> SnapCommandResult:
        return client.run_as(self.user, self._argv())

    def shell(self, locate: FileLocator) -> str:
        return _user_command(self.user, self._argv())

    @property
    def instances(self) -> tuple[str, ...]:
        return (self.instance,)


@dataclass(frozen=True)
class RunEnv(Operation):
    """`snap run INSTANCE.mark --env-all` as USER: SNAP_*, HOME, XDG_* as the app sees them."""

    kind: ClassVar[str] = "run-env"
    user: str
    instance: str

    def predict(self, state: model.SnapdState, locate: FileLocator) -> model.Outcome:
        return model.run_env(state, self.user, self.instance)

    def _argv(self) -> list[str]:
        return ["snap", "run", f"{self.instance}.mark", "--env-all"]

    def perform(self, client: SnapClient, locate: FileLocator) -> SnapCommandResult:
        return client.run_as(self.user, self._argv())

    def shell(self, locate: FileLocator) -> str:
        return _user_command(self.user, self._argv())

    @property
    def instances(self) -> tuple[str, ...]:
        return (self.instance,)


def printed_environment(output: str) -> dict[str, str]:
    """`mark --env-all`'s KEY=VALUE lines."""
    env = {}
    for line in output.splitlines():
        key, sep, value = line.partition("=")
        if sep and key and key.replace("_", "").isalnum():
            env[key] = value
    return env


for _operation in (AddUser, RunAppAs, RunEnv):
    register_operation(_operation)
